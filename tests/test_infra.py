"""infra/: the GPU work-pool job templates, and create-pools.sh + deploy.sh against a real Prefect server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from prefect.utilities.templating import find_placeholders

from tasks.shards import GPU_SLOT, SAFE_NCCL_ENV

REPO = Path(__file__).resolve().parents[1]
POOLS = REPO / "infra" / "pools"
TEMPLATES = ["process-gpu.json", "docker-gpu.json", "kubernetes-gpu.json"]
# Prefect's worker class for each template; docker and kubernetes come with prefect-docker and
# prefect-kubernetes (dev extras; those checks are skipped where they are not installed).
WORKERS = {
    "process-gpu.json": ("prefect.workers.process", "ProcessWorker"),
    "docker-gpu.json": ("prefect_docker.worker", "DockerWorker"),
    "kubernetes-gpu.json": ("prefect_kubernetes.worker", "KubernetesWorker"),
}
REPLACED = {"container_create_kwargs"}  # docker: a fixed GPU dict in job_configuration instead


def load(name: str) -> dict:
    return json.loads((POOLS / name).read_text())


def defaults(variables: dict) -> dict:
    return {key: prop["default"] for key, prop in variables["properties"].items() if "default" in prop}


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_declares_every_variable_it_uses(name):
    template = load(name)
    assert set(template) == {"job_configuration", "variables"}
    variables = template["variables"]
    assert variables["type"] == "object"
    used = {p.name for p in find_placeholders(json.dumps(template["job_configuration"]))}
    undeclared = used - set(variables["properties"])
    assert not undeclared, f"{name}: job_configuration uses undeclared variable(s) {sorted(undeclared)}"
    jsonschema.validate(defaults(variables), variables)  # every default fits its own schema
    env = variables["properties"]["env"]["default"]
    assert {**SAFE_NCCL_ENV, "PYTHONUNBUFFERED": "1"}.items() <= env.items()


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_keeps_prefect_default(name):
    module, worker = WORKERS[name]
    default = getattr(pytest.importorskip(module), worker).get_default_base_job_template()
    ours = load(name)
    assert set(default["job_configuration"]) <= set(ours["job_configuration"])
    assert set(default["variables"]["properties"]) - REPLACED <= set(ours["variables"]["properties"])


def test_templates_ask_for_gpus():
    process = load("process-gpu.json")
    assert process["job_configuration"]["env"]["CUDA_VISIBLE_DEVICES"] == "{{ cuda_visible_devices }}"
    assert process["variables"]["properties"]["gpus_per_host"]["type"] == "integer"

    docker = load("docker-gpu.json")
    kwargs = docker["job_configuration"]["container_create_kwargs"]
    assert kwargs["device_requests"] == "{{ device_requests }}"
    assert kwargs["shm_size"] == "{{ shm_size }}"
    requests = docker["variables"]["properties"]["device_requests"]["default"]
    assert requests == [{"driver": "nvidia", "count": -1, "capabilities": [["gpu"]]}]  # all GPUs of the host

    kubernetes = load("kubernetes-gpu.json")
    pod = kubernetes["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpus }}"
    assert (pod["nodeSelector"], pod["tolerations"]) == ("{{ node_selector }}", "{{ tolerations }}")
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "{{ shm_size }}"}} in pod["volumes"]


def run_script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


async def read_state(pools: list[str], deployments: list[str]) -> dict:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {
            "pools": {name: await client.read_work_pool(name) for name in pools},
            "limit": await client.read_global_concurrency_limit_by_name(GPU_SLOT),
            "deployments": {name: await client.read_deployment_by_name(name) for name in deployments},
        }


async def read_limit():
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            return await client.read_global_concurrency_limit_by_name(GPU_SLOT)
        except ObjectNotFound:
            return None


async def restore_limit(before) -> None:
    """The session's server is shared: leave the "gpu" limit as this test found it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    async with get_client() as client:
        if before is None:
            await client.delete_global_concurrency_limit_by_name(GPU_SLOT)
        else:
            update = GlobalConcurrencyLimitUpdate(limit=before.limit, active=before.active)
            await client.update_global_concurrency_limit(GPU_SLOT, update)


async def create_pool(name: str, pool_type: str, template: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async with get_client() as client:
        pool = WorkPoolCreate(name=name, type=pool_type, base_job_template=template)
        await client.create_work_pool(pool, overwrite=True)


@pytest.mark.e2e
def test_create_pools_and_deploy(prefect_server, tmp_path):
    from prefect.workers.process import ProcessJobConfiguration

    pool, gpu_pool = "infra-test", "infra-test-gpu"
    env = {
        **prefect_server.env,
        "WORLDMILL_HOME": str(REPO),
        "WORLDMILL_POOL": pool,
        "WORLDMILL_GPU_POOL": gpu_pool,
        "WORLDMILL_GPU_SLOTS": "3",
        "WORLDMILL_INBOX": str(tmp_path / "inbox"),
        "WORLDMILL_OUTPUT_ROOT": str(tmp_path / "inbox-out"),
    }
    limit_before = asyncio.run(read_limit())
    try:
        for attempt in range(2):  # the second run updates what the first created
            done = run_script(["infra/create-pools.sh"], env)
            assert done.returncode == 0, f"create-pools.sh run {attempt + 1}:\n{done.stdout}\n{done.stderr}"
        refused = run_script(["infra/create-pools.sh", "--type", "docker"], env)
        assert refused.returncode == 1 and "cannot change a pool's type" in refused.stderr.replace("\n", " ")

        done = run_script(["infra/deploy.sh"], env)
        assert done.returncode == 0, f"deploy.sh:\n{done.stdout}\n{done.stderr}"
        state = asyncio.run(
            read_state(
                [pool, gpu_pool],
                ["text2world/batch", "manifest/batch", "generate-shard/gpu", "manifest-inbox/text2world"],
            )
        )
        assert state["pools"][pool].type == state["pools"][gpu_pool].type == "process"
        assert (state["limit"].limit, state["limit"].active) == (3, True)
        deployments = state["deployments"]
        assert deployments["text2world/batch"].work_pool_name == pool
        # no parameter copies: the flow's defaults apply (gpus_per_shard None -> the pool's gpus_per_host)
        assert deployments["text2world/batch"].parameters == {}
        assert deployments["manifest/batch"].work_pool_name == pool  # any registered task
        assert deployments["generate-shard/gpu"].work_pool_name == gpu_pool
        inbox = deployments["manifest-inbox/text2world"]
        assert inbox.parameters["inbox"] == env["WORLDMILL_INBOX"]
        assert [schedule.active for schedule in inbox.schedules] == [False]
        assert inbox.global_concurrency_limit.limit == 1  # one inbox run at a time (prefect.yaml)

        # What a GPU-pool worker hands a flow run: the checkout, multicast off, the host's devices.
        template = state["pools"][gpu_pool].base_job_template
        assert template["variables"]["properties"]["working_dir"]["default"] == str(REPO)
        values = {"cuda_visible_devices": "0,1", "gpus_per_host": 2, "env": {"HF_HOME": "/cache"}}
        config = asyncio.run(ProcessJobConfiguration.from_template_and_values(template, values))
        assert config.working_dir == REPO
        assert config.env == {
            **SAFE_NCCL_ENV,
            "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": "0,1",
            "WORLDMILL_GPUS_PER_HOST": "2",
            "HF_HOME": "/cache",
        }

        # The server validates the docker and kubernetes templates as it does the process one.
        for pool_type in ("docker", "kubernetes"):
            asyncio.run(create_pool(f"infra-test-{pool_type}", pool_type, load(f"{pool_type}-gpu.json")))
    finally:
        asyncio.run(restore_limit(limit_before))


def test_every_dependency_is_pinned_for_reproducible_installs():
    """infra/constraints.txt (infra/lock.sh) pins every package pyproject.toml names, but torch and
    natten, which setup.sh pins itself (torch's build differs per host)."""
    import re
    from importlib.metadata import requires

    wanted = requires("worldmill") or []  # pyproject.toml's dependencies and extras, as installed
    names = {re.split(r"[<>=\[;! ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in wanted}
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (REPO / "infra/constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert names - pinned <= {"torch", "natten"}, sorted(names - pinned - {"torch", "natten"})
    setup = (REPO / "infra/setup.sh").read_text()
    assert setup.count("-c infra/constraints.txt") >= 2 and "torch==" in setup and "natten==" in setup


def test_a_worker_started_by_the_script_stops_on_one_signal(prefect_server, tmp_path):
    """Prefect's worker takes a first SIGTERM as "stop when idle" and stays up (60 s and more, measured);
    infra/start-worker.sh passes one kill on as two signals, so one is enough."""
    import signal
    import time

    prefect_server.cli("work-pool", "create", "stop-test", "--type", "process", "--overwrite")
    log = open(tmp_path / "worker.log", "w")
    script = subprocess.Popen(
        ["bash", "infra/start-worker.sh", "stop-test", "1"],
        cwd=REPO,
        env={**prefect_server.env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):  # until the worker says it started (a hang guard, not a budget)
            if "started!" in (tmp_path / "worker.log").read_text():
                break
            time.sleep(0.2)
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=60) != 0
        time.sleep(0.5)
        ps = subprocess.run(["pgrep", "-f", "worker start --pool stop-test"], capture_output=True, text=True)
        assert ps.stdout.strip() == "", "the Prefect worker outlived its script"
    finally:
        if script.poll() is None:
            script.kill()
        log.close()


def _first_import_output(module: str, home: Path) -> str:
    """What importing `module` prints on a terminal (a pty) for a user who never set DO_NOT_TRACK."""
    import os
    import pty
    import sys

    from prefect._internal.analytics.ci_detection import CI_ENV_VARS

    env = {k: v for k, v in os.environ.items() if k not in CI_ENV_VARS and k != "DO_NOT_TRACK"}
    env["PREFECT_HOME"] = str(home)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", f"import {module}"], stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")


def test_project_imports_print_no_telemetry_notice(tmp_path):
    # the control: a bare Prefect import on a terminal prints the notice (so the check below can fail)
    assert "anonymous usage data" in _first_import_output("prefect", tmp_path / "bare")
    for module in ("flows.batch", "tasks.shards"):
        assert "anonymous usage data" not in _first_import_output(module, tmp_path / module)


def a_flow_run():
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun

    return FlowRun(id=uuid4(), flow_id=uuid4(), name="merry-otter")


FLEET_API = {"PREFECT_API_URL": "http://prefect.example.internal:4200/api"}


def test_docker_template_renders_gpu_container_settings(prefect_server):
    """The default docker template, through prefect-docker's own job configuration and container settings,
    then docker-py's own HostConfig: every GPU, 16g /dev/shm, NVIDIA's ulimits, checkpoints read-only."""
    worker = pytest.importorskip("prefect_docker.worker")
    from docker.models.containers import _create_container_args

    values = {"image": "registry.example/worldmill:1", "env": FLEET_API}
    config = asyncio.run(
        worker.DockerWorkerJobConfiguration.from_template_and_values(load("docker-gpu.json"), values)
    )
    config.prepare_for_flow_run(a_flow_run())
    settings = worker.DockerWorker(work_pool_name="worldmill-gpu")._build_container_settings(None, config)
    args = _create_container_args({**settings, "version": "1.41"})
    host = args["host_config"]
    assert host["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert host["ShmSize"] == 16 * 1024**3
    assert host["Ulimits"] == [
        {"Name": "memlock", "Soft": -1, "Hard": -1},
        {"Name": "stack", "Soft": 67108864, "Hard": 67108864},
    ]
    assert host["Binds"] == ["/srv/worldmill/checkpoints:/checkpoints:ro"]
    assert args["image"] == "registry.example/worldmill:1"
    assert {**SAFE_NCCL_ENV, **FLEET_API}.items() <= args["environment"].items()


def contains(big, small, path="") -> list[str]:
    """Where `small` is not part of `big` (dict keys and values, list items in order); [] when it is."""
    if isinstance(small, dict) and isinstance(big, dict):
        return [m for key, value in small.items() for m in (
            contains(big[key], value, f"{path}.{key}") if key in big else [f"{path}.{key}: missing"]
        )]  # fmt: skip
    if isinstance(small, list) and isinstance(big, list) and len(small) <= len(big):
        return [m for i, item in enumerate(small) for m in contains(big[i], item, f"{path}[{i}]")]
    return [] if big == small else [f"{path}: {big!r} != {small!r}"]


def test_kubernetes_template_renders_a_gpu_job(prefect_server):
    """Ours and the kubernetes worker's own base template rendered with the same values: ours is the
    worker's job plus the GPU limit, GPU node placement, /dev/shm in memory, the checkpoints claim
    read-only and credentials from a Secret; and a valid V1Job for the kubernetes client."""
    worker = pytest.importorskip("prefect_kubernetes.worker")
    from kubernetes_asyncio.client import ApiClient

    values = {"image": "registry.example/worldmill:1", "namespace": "gen", "env": FLEET_API}
    ours_values = {**values, "gpus": 2, "env_from": [{"secretRef": {"name": "worldmill-s3"}}]}
    flow_run = a_flow_run()

    def render(template: dict, values: dict) -> dict:
        config = asyncio.run(
            worker.KubernetesWorkerJobConfiguration.from_template_and_values(template, values)
        )
        config.prepare_for_flow_run(flow_run)
        manifest = config.job_manifest
        for container in manifest["spec"]["template"]["spec"]["containers"]:  # env as a dict: order aside
            container["env"] = {item["name"]: item.get("value") for item in container["env"]}
        return manifest

    default = render(worker.KubernetesWorker.get_default_base_job_template(), values)
    ours = render(load("kubernetes-gpu.json"), ours_values)
    assert contains(ours, default) == []

    pod = ours["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert container["envFrom"] == [{"secretRef": {"name": "worldmill-s3"}}]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {"name": "checkpoints", "mountPath": "/checkpoints", "readOnly": True} in container["volumeMounts"]
    claim = {"claimName": "cosmos-checkpoints", "readOnly": True}
    assert {"name": "checkpoints", "persistentVolumeClaim": claim} in pod["volumes"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}} in pod["volumes"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {**SAFE_NCCL_ENV, **FLEET_API}.items() <= container["env"].items()
    container["env"] = [{"name": name, "value": value} for name, value in container["env"].items()]

    async def as_v1_job():
        async with ApiClient() as client:
            return client._ApiClient__deserialize(ours, "V1Job")

    job = asyncio.run(as_v1_job())
    assert job.spec.template.spec.containers[0].image == "registry.example/worldmill:1"
    assert job.spec.template.spec.volumes[1].persistent_volume_claim.read_only is True
