"""Each torch process takes its share of the host's cores: shards running at once split them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cosmos_core.device import torch_threads

CORES = len(os.sched_getaffinity(0))


def test_share_of_the_cores(monkeypatch):
    monkeypatch.delenv("WORLDMILL_TORCH_THREADS", raising=False)
    assert torch_threads() == CORES  # a command alone
    assert torch_threads(CORES) == 1
    assert torch_threads(CORES * 4) == 1  # never zero
    monkeypatch.setenv("WORLDMILL_TORCH_THREADS", "3")
    assert torch_threads(CORES * 4) == 3  # the override wins


def test_the_worker_sizes_its_threads_by_the_lanes_its_launcher_gives(tmp_path):
    code = "from cosmos_core.worker import main; main(['/nonexistent/shard.json'])"
    env = {**os.environ, "WORLDMILL_LANES": str(CORES)}
    env.pop("WORLDMILL_TORCH_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path(__file__).parents[1]
    )
    assert "torch threads: 1" in out.stdout
