"""A shard's worker process never outlives what launched it: killed with it (the kernel's parent-death
signal) and stopped with its whole process group when the launching task is interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.shards import die_with_parent, stop_group

REPO = Path(__file__).resolve().parents[1]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited


def wait_until(condition, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_the_worker_dies_when_its_launcher_is_killed():
    code = (
        "import subprocess, sys, time\n"
        "from tasks.shards import die_with_parent\n"
        f"child = subprocess.Popen({SLEEPER!r}, preexec_fn=die_with_parent, start_new_session=True)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    launcher = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    assert alive(child)
    launcher.send_signal(signal.SIGKILL)  # as a cancelled flow run's process is killed: no cleanup runs
    launcher.wait()
    assert wait_until(lambda: not alive(child))


def test_stop_group_stops_every_process_of_the_group():
    code = (
        "import subprocess, sys, time\n"
        f"grandchild = subprocess.Popen({SLEEPER!r})\n"  # a rank under torchrun, say
        "print(grandchild.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    grandchild = int(worker.stdout.readline())
    stop_group(worker, grace_seconds=30)
    assert worker.returncode == -signal.SIGTERM
    assert wait_until(lambda: not alive(grandchild))
    assert os.getpgid(os.getpid()) != worker.pid  # the group stopped was the worker's, not ours
