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
