"""CPU time of the embedded default model: one prompt each through the reference's commands.

    python benchmarks/embedded_cpu.py [--runs 3] [--json benchmarks/results/<date>-cpu-embedded.json]

For text2image and text2world it runs `python -m examples.<command> --prompt ... --save_path ...` with
every other setting at its default (35 steps, guidance, default negative prompt, the guardrail on), as a
user would, and prints the command's wall time and the generation time from the output's sidecar
(T5 + all DiT evaluations + VAE + file write; the rest is Python start-up and model loading). The
median of `--runs` runs is reported. Targets on a 2-core machine: text2image <= 5 s, text2world <= 30 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "A red ball falls and bounces on a gray floor in front of a white wall."
COMMANDS = {"text2image": "out.jpg", "text2world": "out.mp4"}
TARGETS_S = {"text2image": 5.0, "text2world": 30.0}


def run_once(command: str, folder: Path) -> dict:
    output = folder / COMMANDS[command]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", f"examples.{command}", "--prompt", PROMPT, "--save_path", str(output)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    sidecar = json.loads(Path(f"{output}.json").read_text())
    generation = sidecar["timings"]["total_s"]
    if command == "text2world":  # the video stage's timings, plus the image stage's
        generation += sidecar["image_stage"]["timings"]["total_s"]
    return {"command_s": round(wall, 2), "generation_s": round(generation, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for command in COMMANDS:
            runs = [run_once(command, Path(tmp)) for _ in range(args.runs)]
            median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results[command] = {**median, "target_s": TARGETS_S[command], "runs": runs}
            print(
                f"{command}: command {median['command_s']:.2f} s (generation {median['generation_s']:.2f} s), "
                f"target <= {TARGETS_S[command]:.0f} s, median of {args.runs}",
                flush=True,
            )
    if args.json:
        record = {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU only",
            "prompt": PROMPT,
            "results": results,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
