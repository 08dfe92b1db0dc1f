"""benchmarks/multi_gpu.py, the multi-GPU measurement, run at its tiny scale in CPU processes (gloo):
real torchrun jobs, context parallelism over 2 ranks against 1, data parallelism's striping and sums."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.distributed
def test_multi_gpu_benchmark_measures_context_and_data_parallelism(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import multi_gpu

    out = tmp_path / "parallel.json"
    args = ["--scale", "tiny", "--gpus", "1,2", "--steps", "2", "--rows", "4", "--baseline_rows", "1"]
    multi_gpu.main([*args, "--work", str(tmp_path / "work"), "--out", str(out), "--machine", "cpu-test"])
    results = json.loads(out.read_text())
    assert results["machine"] == "cpu-test" and results["scale"] == "tiny"

    cp = results["cp"]
    assert cp["1"]["frames"] == cp["2"]["frames"] == [13, 96, 160, 3]
    # the same video from 2 ranks as from one (float32 on the CPU: rounding at most)
    assert float(cp["2"]["psnr_vs_1_gpu_db"]) >= 60.0
    assert cp["2"]["speedup"] == round(cp["1"]["seconds"] / cp["2"]["seconds"], 3)

    dp = results["dp"]
    assert (dp["1"]["rows"], dp["2"]["rows"]) == (1, 4)
    for run in dp.values():
        assert run["rows_per_hour"] == round(3600.0 * run["rows"] / run["seconds"], 2)
    assert dp["2"]["efficiency"] == round(dp["2"]["rows_per_hour"] / (2 * dp["1"]["rows_per_hour"]), 3)
    printed = capsys.readouterr().out
    assert "cp 2 GPU(s):" in printed and "dp 2 GPU(s): 4 rows" in printed
