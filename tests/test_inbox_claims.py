"""The inbox takes each manifest exactly once, on local folders and on S3: its claim is an exclusive create
(O_EXCL; a conditional PUT against the real S3 protocol of a moto server) that only one run can win."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fsspec.core import url_to_fs

from manifests import storage


def race(url: str, runners: int = 8) -> list[bool]:
    """`runners` threads try to create `url` at the same instant."""
    barrier = threading.Barrier(runners)
    results: list[bool] = [False] * runners

    def attempt(i: int) -> None:
        barrier.wait()
        results[i] = storage.create_exclusive(url, f"runner {i}".encode())

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_exactly_one_local_creator_wins(tmp_path):
    url = str(tmp_path / "processing" / "m.csv.lease")
    results = race(url)
    assert results.count(True) == 1
    assert Path(url).read_text() == f"runner {results.index(True)}"  # the winner's content, whole


@pytest.mark.e2e
def test_exactly_one_s3_creator_wins(s3_bucket_url):
    url = f"{s3_bucket_url}/processing/m.csv.lease"
    results = race(url)
    assert results.count(True) == 1
    assert storage.read_bytes(url) == f"runner {results.index(True)}".encode()
    assert storage.create_exclusive(url, b"late") is False


@pytest.mark.e2e
def test_an_inbox_run_skips_a_manifest_another_run_holds_on_s3(
    prefect_server, s3_bucket_url, tmp_path, monkeypatch
):
    from flows.inbox import process_inbox

    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "none"))
    inbox = f"{s3_bucket_url}/inbox"
    storage.write_text_atomic(f"{inbox}/held.jsonl", json.dumps({"prompt": "a red ball", "steps": 2}) + "\n")
    storage.write_text_atomic(f"{inbox}/free.jsonl", json.dumps({"prompt": "a blue box", "steps": 2}) + "\n")
    # another run holds held.jsonl: its lease exists (it is between its claim and its move)
    assert storage.create_exclusive(f"{inbox}/processing/held.jsonl.lease", b"{}")

    outcomes = process_inbox(inbox=inbox, output_root=f"{s3_bucket_url}/out", task="text2image")

    assert [o["manifest"] for o in outcomes] == ["free.jsonl"] and outcomes[0]["status"] == "done"
    fs, root = url_to_fs(inbox)
    fs.invalidate_cache()
    assert fs.exists(f"{root}/held.jsonl")  # untouched, for its holder
    assert fs.exists(f"{root}/done/free.jsonl") and not fs.exists(f"{root}/processing/free.jsonl.lease")


async def a_flow_run_in(state) -> str:
    """A flow run on the server, forced into `state` (what its worker reports when its process dies)."""
    from prefect.client.orchestration import get_client
    from prefect.flows import Flow

    async with get_client() as client:
        run = await client.create_flow_run(Flow(fn=lambda: None, name="inbox-holder"))
        await client.set_flow_run_state(run.id, state, force=True)
        return str(run.id)


@pytest.mark.e2e
def test_an_inbox_run_resumes_a_manifest_whose_run_died_and_leaves_a_live_one(
    prefect_server, s3_bucket_url, tmp_path, monkeypatch
):
    import asyncio

    from prefect.states import Crashed, Running

    from flows.inbox import process_inbox

    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "none"))
    inbox = f"{s3_bucket_url}/inbox"
    dead, alive = asyncio.run(a_flow_run_in(Crashed())), asyncio.run(a_flow_run_in(Running()))
    rows = [{"id": f"r{i}", "prompt": f"a red ball {i}", "steps": 2} for i in range(2)]
    for name, holder in (("orphan.jsonl", dead), ("busy.jsonl", alive)):
        storage.write_text_atomic(f"{inbox}/processing/{name}", "".join(json.dumps(r) + "\n" for r in rows))
        lease = {"flow_run": holder, "host": "gone", "at": 0}
        assert storage.create_exclusive(f"{inbox}/processing/{name}.lease", json.dumps(lease).encode())

    outcomes = process_inbox(inbox=inbox, output_root=f"{s3_bucket_url}/out", task="text2image")

    assert outcomes == [
        {"manifest": "orphan.jsonl", "status": "done", "output_root": f"{s3_bucket_url}/out/orphan"}
    ]
    fs, root = url_to_fs(inbox)
    fs.invalidate_cache()
    assert fs.exists(f"{root}/done/orphan.jsonl") and fs.exists(f"{root}/done/orphan.jsonl.results.csv")
    assert fs.glob(f"{root}/processing/orphan.jsonl*") == []  # lease and takeover marker gone
    assert fs.exists(f"{root}/processing/busy.jsonl")  # its run is alive: untouched, lease and all
    assert json.loads(fs.cat(f"{root}/processing/busy.jsonl.lease"))["flow_run"] == alive
    # a second run finds nothing left to take over
    assert process_inbox(inbox=inbox, output_root=f"{s3_bucket_url}/out", task="text2image") == []
