"""End to end, as a user runs it: a work pool, `prefect deploy` from prefect.yaml, a process worker,
`prefect deployment run text2world/batch` on the reference's batch example, checked through the API."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.prefect_server import PREFECT, say, stop

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
POOL = "worldmill-e2e"


def deployment_env(tmp_path: Path) -> dict[str, str]:
    return {
        "WORLDMILL_HOME": str(REPO),
        "WORLDMILL_GPU_HOME": str(REPO),
        "WORLDMILL_POOL": POOL,
        "WORLDMILL_GPU_POOL": POOL,
        "WORLDMILL_INBOX": str(tmp_path / "inbox"),
        "WORLDMILL_OUTPUT_ROOT": str(tmp_path / "inbox-out"),
        "WORLDMILL_INBOX_ACTIVE": "false",
        "COSMOS_CHECKPOINT_DIR": str(tmp_path / "no-checkpoints"),  # the embedded model
    }


async def wait_for_run(flow_run_id: str, timeout: float = 1800):
    """The run once final. `timeout` only guards against a hang: a loaded shared machine may take many
    times a quiet one's time; each state change is reported as it happens (say)."""
    from prefect.client.orchestration import get_client

    start, last = time.monotonic(), None
    async with get_client() as client:
        while time.monotonic() - start < timeout:
            run = await client.read_flow_run(flow_run_id)
            if run.state and run.state.name != last:
                last = run.state.name
                say(f"flow run {run.name}: {last} after {time.monotonic() - start:.0f} s")
            if run.state and run.state.is_final():
                return run
            await asyncio.sleep(1)
    raise TimeoutError(f"flow run {flow_run_id} did not finish in {timeout} s")


async def run_artifacts(flow_run_id: str, kind: str):
    """The run's artifacts of one type, oldest first (a keyed artifact published again is a new version)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                type=ArtifactFilterType(any_=[kind]),
            )
        )
    return sorted(found, key=lambda a: a.created)


async def child_shard_runs(parent_id: str) -> int:
    """generate-shard flow runs started by the parent run's dispatch tasks."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["generate-shard"]))
        )
        task_runs = {r.parent_task_run_id for r in runs if r.parent_task_run_id}
        parents = [await client.read_task_run(t) for t in task_runs]
        return sum(1 for t in parents if str(t.flow_run_id) == parent_id)


def shard_workers(output_root: Path) -> list[int]:
    """cosmos_core.worker processes working on shards under `output_root`."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "cosmos_core.worker" in cmdline and str(output_root) in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_until(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.5)
    return bool(condition())


def test_text2world_batch_deployment(prefect_server, tmp_path):
    env = deployment_env(tmp_path)
    prefect_server.cli("work-pool", "create", POOL, "--type", "process", "--overwrite")
    deployed = prefect_server.cli("--no-prompt", "deploy", "--all", cwd=REPO, extra_env=env, timeout=900)
    for name in ("text2image/batch", "video2world/batch", "text2world/batch", "generate-shard/gpu"):
        assert name in deployed

    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [PREFECT, "worker", "start", "--pool", POOL, "--limit", "2"],
        env={**prefect_server.env, **env},
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out = tmp_path / "out"
        flow_run_id = prefect_server.deployment_run(
            "text2world/batch",
            manifest=str(REPO / "assets/text2world/batch_example.json"),
            output_root=str(out),
            options={"shard_size": 2},
        )
        run = asyncio.run(wait_for_run(flow_run_id))
        assert run.state.is_completed(), f"{run.state}\n{(tmp_path / 'worker.log').read_text()[-4000:]}"

        videos = sorted(p.name for p in (out / "output").glob("*.mp4"))
        assert videos == [
            "kitchen-mixer-baking.mp4",
            "sailboat-mountain-lake.mp4",
            "welding-robot-factory.mp4",
        ]
        with open(out / "results.csv", newline="") as f:
            report = list(csv.DictReader(f))
        assert [r["status"] for r in report] == ["ok", "ok", "ok"]
        tables = asyncio.run(run_artifacts(flow_run_id, "table"))
        assert {t.key for t in tables} == {"text2world-rows"} and len(
            tables
        ) >= 2  # during the run, and at its end
        rows = tables[-1].data if isinstance(tables[-1].data, list) else json.loads(tables[-1].data)
        assert sorted(r["status"] for r in rows) == ["ok", "ok", "ok"]
        (progress,) = asyncio.run(run_artifacts(flow_run_id, "progress"))
        assert progress.key == "text2world-progress" and float(progress.data) == 100.0
        assert "text2world-video: 3 ok, 0 failed, 0 blocked, 0 left" in progress.description

        # Dispatch: each shard becomes a run of generate-shard/gpu (same pool here; a GPU pool in a fleet).
        manifest = tmp_path / "t2i.jsonl"
        manifest.write_text("".join(json.dumps({"prompt": f"ball {i}", "steps": 2}) + "\n" for i in range(2)))
        parent = prefect_server.deployment_run(
            "text2image/batch",
            manifest=str(manifest),
            output_root=str(tmp_path / "dispatched"),
            options={"shard_size": 1, "dispatch_deployment": "generate-shard/gpu"},
        )
        run = asyncio.run(wait_for_run(parent))
        assert run.state.is_completed(), f"{run.state}\n{(tmp_path / 'worker.log').read_text()[-4000:]}"
        assert len(list((tmp_path / "dispatched").glob("*.jpg"))) == 2
        assert asyncio.run(child_shard_runs(parent)) == 2

        # Ctrl-C on infra/run.py (what the main job runs): the flow run is cancelled and its shard's
        # worker process stops with it.
        slow = tmp_path / "slow.jsonl"
        slow.write_text(json.dumps({"prompt": "a red ball", "steps": 1000}) + "\n")
        runner = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "infra/run.py"),
                "text2image/batch",
                "--param",
                f"manifest={slow}",
                "--param",
                f"output_root={tmp_path / 'cancelled'}",
            ],
            env={**prefect_server.env, **env},
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        header = runner.stdout.readline()
        flow_run_id = re.search(r"\(([0-9a-f-]{36})\)", header).group(1)
        assert wait_until(lambda: shard_workers(tmp_path / "cancelled"), timeout=600), "no shard started"
        runner.send_signal(signal.SIGINT)
        rest, _ = runner.communicate(timeout=120)
        assert runner.returncode == 130 and "interrupted: cancelling flow run" in rest
        run = asyncio.run(wait_for_run(flow_run_id))
        assert run.state.is_cancelled(), run.state
        assert wait_until(lambda: not shard_workers(tmp_path / "cancelled"), timeout=120)
    finally:
        stop(worker)
        log.close()
