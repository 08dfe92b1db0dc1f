"""The fleet path on a real docker daemon: the image built from the Dockerfile (CPU torch, on a Debian
base made here with debootstrap: no registry is reachable), a docker work pool from
infra/pools/docker-gpu.json, a real `prefect worker` of type docker, and a text2image batch whose shards
are dispatched to `generate-shard/gpu`, so that each shard runs in its own container, on S3 (moto) as
fleets share storage. One shard's container is killed mid-way: the shard runs again as a new container
and only its missing rows are generated.

Skipped, with the reason, where no docker daemon answers (.ci/run starts one where it can).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
import tomllib

from tests.prefect_server import free_port, say, stop
from tests.test_deployment_e2e import wait_for_run
from tests.test_infra import read_limit, restore_limit, run_script

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[1]
BASE = "worldmill-base:bookworm"  # infra/debian-base.sh; kept by the daemon between runs
IMAGE = "worldmill:test-cpu"
IMAGE_HOME = "/opt/worldmill"  # where the Dockerfile puts the checkout
CONSTRAINTS = REPO / "infra" / "constraints.txt"
WHEELHOUSE_PORT = 18765
IMAGE_ONLY_MARK = "# Pins for the image's Python"  # the section of constraints.txt infra/lock.sh writes


def read_text(url: str) -> str:
    from manifests import storage

    return storage.read_bytes(url).decode()


def docker_missing() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI on this machine"
    done = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return f"no docker daemon answers ({done.stderr.strip().splitlines()[-1:]}); .ci/run starts dockerd as root"
    return None


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def requirements() -> list[str]:
    """What the image installs besides torch: the project's dependencies and the image-only pins."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = CONSTRAINTS.read_text().splitlines()
    image_only = lines[lines.index(next(line for line in lines if line.startswith(IMAGE_ONLY_MARK))) :]
    pins = [line for line in image_only if line and not line.startswith("#")]
    return [d for d in project if not d.startswith("torch")] + pins


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def served(folder: Path):
    """An HTTP file server of `folder` on 127.0.0.1 (pip reads its listing as --find-links)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    try:  # a fixed port when free: the URL is a build arg, part of docker's cache key for the pip layers
        server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEELHOUSE_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def cpu_image(tmp_path_factory) -> str:
    """The Dockerfile built with the CPU torch, from a wheelhouse of this machine's pip (pinned by
    infra/constraints.txt) served on loopback: the build needs no index. Docker's layer cache makes a
    rebuild with unchanged dependencies take seconds."""
    if reason := docker_missing():
        pytest.skip(reason)
    if not image_exists(BASE):
        if shutil.which("debootstrap") is None:
            pytest.skip(f"no {BASE} image and no debootstrap to make it")
        say(f"making the base image {BASE} (debootstrap)")
        done = subprocess.run(
            ["bash", "infra/debian-base.sh", BASE], cwd=REPO, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    import torch

    torch_version = torch.__version__.split("+")[0]
    wheels = tmp_path_factory.mktemp("wheelhouse")
    download = [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels), "-c", str(CONSTRAINTS)]
    # torch at the exact build the tests run (2.13.0+cpu here), so that the image's is the CPU one too
    done = subprocess.run(
        [*download, f"torch=={torch.__version__}", *requirements()], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    say(f"building {IMAGE} from the Dockerfile ({len(list(wheels.iterdir()))} wheels)")
    log = tmp_path_factory.mktemp("build") / "build.log"
    with served(wheels) as url, open(log, "w") as out:
        build = [
            "docker",
            "build",
            "--network",
            "host",
            "-t",
            IMAGE,
            "--build-arg",
            f"BASE={BASE}",
            "--build-arg",
            f"TORCH_VERSION={torch_version}",
            "--build-arg",
            "PIP_NO_INDEX=1",
            "--build-arg",
            f"PIP_FIND_LINKS={url}",
            str(REPO),
        ]
        returncode = subprocess.run(build, stdout=out, stderr=subprocess.STDOUT).returncode
    assert returncode == 0, log.read_text()[-5000:]
    size = int(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", IMAGE], capture_output=True, text=True
        ).stdout
    )
    say(f"{IMAGE}: {size / 1e9:.2f} GB")
    return IMAGE


def test_image_runs_the_commands_as_a_user_without_checkpoints(cpu_image, tmp_path):
    """The image alone: non-root, the embedded model inside, the reference's command unchanged."""
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)  # the image's user (uid 10001) writes here
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "-v",
            f"{out}:/out",
            cpu_image,
            "sh",
            "-c",
            "id -u && python -m examples.text2image --prompt 'a red cube on a table' --save_path /out/cube.jpg",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "10001"
    assert "using the embedded default model" in done.stderr
    assert (out / "cube.jpg").stat().st_size > 0 and json.loads((out / "cube.jpg.json").read_text())


async def flow_run(flow_run_id: str):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


async def shard_runs(deployment_name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        deployment = await client.read_deployment_by_name(deployment_name)
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )


def containers_of(flow_run_id) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.prefect.flow-run-id={flow_run_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_docker_pool_runs_shards_in_containers_and_retries_a_killed_one(
    cpu_image, prefect_server, s3_server, s3_bucket_url, tmp_path
):
    from flows.batch import workdir
    from manifests import read_records, storage
    from manifests.results import record_url
    from manifests.sharding import read_shard

    orchestration_pool, gpu_pool = "fleet-orchestration", "fleet-docker"
    s3_env = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "FSSPEC_S3_"))}
    env = {
        **prefect_server.env,
        **s3_env,
        "WORLDMILL_HOME": str(REPO),
        "WORLDMILL_GPU_HOME": IMAGE_HOME,
        "WORLDMILL_POOL": orchestration_pool,
        "WORLDMILL_GPU_POOL": gpu_pool,
        "WORLDMILL_GPU_SLOTS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    checkpoints = tmp_path / "checkpoints"  # empty: the embedded model; mounted read-only as on a GPU host
    checkpoints.mkdir()
    job_variables = {
        "image": cpu_image,
        "image_pull_policy": "Never",  # built here; a fleet pulls from its registry
        "device_requests": [],  # no GPUs on this host
        "network_mode": "host",  # the Prefect and S3 servers listen on this host's loopback
        "shm_size": "1g",
        "volumes": [f"{checkpoints}:/checkpoints:ro"],
        "ulimits": [],  # this sandboxed daemon may not raise locked memory (GPU hosts keep the default)
        "auto_remove": True,
        "env": {**s3_env, "WORLDMILL_TORCH_THREADS": "1"},  # credentials through the pool's environment
    }
    limit_before = asyncio.run(read_limit())
    workers = []
    try:
        for args in (
            ["infra/create-pools.sh", "--type", "docker"],
            ["infra/deploy.sh", "--name", "text2image/batch"],
            ["infra/deploy.sh", "--name", "generate-shard/gpu", "--job-variable", json.dumps(job_variables)],
        ):
            done = run_script(args, env)
            assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
        for pool, limit in ((orchestration_pool, 1), (gpu_pool, 2)):
            log = open(tmp_path / f"{pool}.log", "w")
            workers.append(
                subprocess.Popen(
                    ["bash", "infra/start-worker.sh", pool, str(limit)],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        # 5 rows in shards of 3 and 2; enough steps that a row takes seconds, so that the kill lands
        # between the first and the last row of the first shard.
        manifest = f"{s3_bucket_url}/manifest.jsonl"
        rows = [
            {"id": f"r{i}", "prompt": f"a red cube number {i}", "steps": 150, "seed": i} for i in range(5)
        ]
        storage.write_text_atomic(manifest, "".join(json.dumps(r) + "\n" for r in rows))
        output_root = f"{s3_bucket_url}/out"
        options = {"shard_size": 3, "dispatch_deployment": "generate-shard/gpu"}
        parent_id = prefect_server.deployment_run(
            "text2image/batch", extra_env=s3_env, manifest=manifest, output_root=output_root, options=options
        )
        records_dir = f"{workdir(output_root)}/records/text2image"
        say("batch started: waiting for the first row of the first shard")

        def first_shard_container():
            for run in asyncio.run(shard_runs("generate-shard/gpu")):
                if run.parameters.get("shard_url", "").startswith(output_root) and run.state.is_running():
                    if read_shard(run.parameters["shard_url"]).rows[0].id == "r0":
                        return run, containers_of(run.id)
            return None, []

        deadline = time.monotonic() + 1800  # a hang guard, not a budget
        killed_run = None
        while time.monotonic() < deadline and not asyncio.run(flow_run(parent_id)).state.is_final():
            done_ids = read_records(records_dir, ["r0", "r1", "r2"])
            if "r0" in done_ids:
                assert "r2" not in done_ids, "the first shard finished before it could be killed"
                killed_run, containers = first_shard_container()
                assert containers, "no container runs the first shard"
                subprocess.run(["docker", "kill", *containers], check=True, capture_output=True)
                break
            time.sleep(0.2)
        logs = "\n".join((tmp_path / f"{p}.log").read_text()[-3000:] for p in (orchestration_pool, gpu_pool))
        assert killed_run is not None, f"the first row never finished:\n{logs}"
        kill_time = time.time()
        before = read_text(record_url(records_dir, "r0"))
        say(f"killed the container of shard run {killed_run.name} after its first row")

        run = asyncio.run(wait_for_run(parent_id))
        logs = "\n".join((tmp_path / f"{p}.log").read_text()[-3000:] for p in (orchestration_pool, gpu_pool))
        assert run.state.is_completed(), f"{run.state}\n{logs}"

        # every row: its image, its sidecar, an ok line in results.csv
        report = list(csv.DictReader(io.StringIO(read_text(f"{output_root}/results.csv"))))
        assert sorted((r["id"], r["status"]) for r in report) == [(f"r{i}", "ok") for i in range(5)]
        for line in report:
            assert storage.exists(line["output"]) and json.loads(read_text(line["output"] + ".json"))

        # the killed shard: its run Crashed, a new run took it, and redid only the rows left
        runs = [
            r
            for r in asyncio.run(shard_runs("generate-shard/gpu"))
            if r.parameters["shard_url"].startswith(output_root)
        ]
        states = sorted(r.state.type.value for r in runs)
        assert states == ["COMPLETED", "COMPLETED", "CRASHED"], states
        assert read_text(record_url(records_dir, "r0")) == before  # not generated again
        redone = read_records(records_dir, ["r1", "r2"])
        assert all(datetime.fromisoformat(r.finished_at).timestamp() > kill_time for r in redone.values())
        assert len(redone) == 2
    finally:
        for worker in workers:
            stop(worker)
        asyncio.run(restore_limit(limit_before))
