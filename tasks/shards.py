"""Run one shard: start the cosmos_core worker as a subprocess and stream its lines into Prefect's log.

The Prefect process never runs the engine under torchrun (the flow would run once per rank); it
starts `torchrun ... -m cosmos_core.worker shard.json` (or plain `python -m cosmos_core.worker` for one
process) and reads the result records the worker writes. Failures are classified:
- the process crashed, was killed, ran out of GPU memory or hit an NCCL error -> ShardCrashed, and
  the task is retried (the worker then skips the rows already done);
- the models could not be loaded (missing checkpoint) -> ShardConfigError, not retried;
- a bad row is the worker's business: it records it as failed and the process exits 0.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import subprocess
import sys

from prefect import get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.runtime import task_run

# Set for every launch: NVLink multicast off (safe on shared hosts: it can take a host's GPUs down for others).
SAFE_NCCL_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}
CONFIG_EXIT_CODE = 3  # cosmos_core.worker: the models could not be loaded
GPU_SLOT = "gpu"  # global concurrency limit held around each launch, `occupy` = GPUs of the shard


class ShardCrashed(RuntimeError):
    """The worker process died (signal, OOM, NCCL, crash): the shard is retried."""


class ShardConfigError(RuntimeError):
    """The worker could not start generating (e.g. a missing checkpoint): retrying would not help."""


PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Loaded here, once: the child of a fork in this multi-threaded process (Prefect runs tasks in threads) must
# not import or load anything before exec (another thread may have held the import lock at the fork).
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the child, before exec: the kernel sends it SIGTERM when this (Prefect) process dies, however it
    dies (a cancelled flow run killed by its worker, kill -9), so no shard outlives its flow run (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_group(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM to the worker's process group (torchrun and every rank), SIGKILL after `grace_seconds`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def worker_command(shard_url: str, gpus: int) -> list[str]:
    if gpus <= 1:
        return [sys.executable, "-m", "cosmos_core.worker", shard_url]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={gpus}",
        "-m",
        "cosmos_core.worker",
        shard_url,
    ]


def failure_reason(returncode: int, tail: list[str]) -> str:
    text = "\n".join(tail)
    if returncode < 0:
        return f"killed by signal {-returncode}"
    if "out of memory" in text:
        return "CUDA out of memory"
    if "NCCL" in text:
        return "NCCL error"
    return f"exit code {returncode}"


def retry_only_crashes(task, task_run, state) -> bool:
    """Prefect retry condition: retry a task only when it raised ShardCrashed."""
    try:
        state.result()
    except ShardCrashed:
        return True
    except Exception:
        return False
    return False


@task(
    task_run_name="shard {shard_id}",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_only_crashes,
    cache_policy=None,
)
def run_shard(
    shard_url: str, shard_id: str, gpus: int | None = None, env: dict[str, str] | None = None
) -> dict:
    """Launch the worker for one shard; returns {"shard_id", "attempt"} once every row has a record.

    gpus None: this host's WORLDMILL_GPUS_PER_HOST (the GPU pool's `gpus_per_host` job variable), else 1.
    """
    gpus = gpus or int(os.environ.get("WORLDMILL_GPUS_PER_HOST") or 1)
    logger = get_run_logger()
    attempt = task_run.run_count or 1
    command = worker_command(shard_url, gpus)
    process_env = {**os.environ, **SAFE_NCCL_ENV, "PYTHONUNBUFFERED": "1", "WORLDMILL_ATTEMPT": str(attempt)}
    process_env.update(env or {})
    logger.info("attempt %d: %s", attempt, " ".join(command))
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with concurrency(GPU_SLOT, occupy=max(gpus, 1), strict=False):
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=process_env,
            start_new_session=True,  # its own process group: torchrun and its ranks are stopped together
            preexec_fn=die_with_parent,
        ) as process:
            try:
                for line in process.stdout:
                    line = line.rstrip()
                    tail.append(line)
                    logger.info(line)
                returncode = process.wait()
            except BaseException:  # cancelled, interrupted, terminated: the GPUs must be freed now
                stop_group(process)
                raise
    if returncode == 0:
        return {"shard_id": shard_id, "attempt": attempt}
    last = "\n".join(list(tail)[-10:])
    if returncode == CONFIG_EXIT_CODE:
        raise ShardConfigError(f"shard {shard_id}: the worker could not load its models:\n{last}")
    raise ShardCrashed(f"shard {shard_id}: worker failed ({failure_reason(returncode, list(tail))}):\n{last}")
