"""Best-of-N: the reference's command on the embedded model (built-in critic, and Cosmos-Reason1 on a tiny
checkpoint), --skip_generation, and the Prefect flow video2world/best-of-n picking the best candidate."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from cosmos_core.bestofn_command import bestofn_main
from tests.test_reason1 import write_tiny_reason1

REPO = Path(__file__).resolve().parents[1]
FAST = ["--steps", "2"]
SCORED = re.compile(r"input0_seed(\d)_score(\d{3})")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(REPO / "assets", tmp_path / "assets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))  # empty: embedded + built-in
    return tmp_path


def names(folder: Path, suffix: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(suffix))


def test_command_scores_ranks_and_rescores(workdir, caplog):
    argv = ["--prompt", "a red ball rolls", "--num_generations", "3", "--num_critic_trials", "2", *FAST]
    assert bestofn_main(argv) == 0
    out = workdir / "output/best-of-n"  # the reference's default --save_path
    videos = names(out, ".mp4")
    assert [SCORED.fullmatch(v.removesuffix(".mp4"))[1] for v in videos] == ["0", "1", "2"]
    stems = [v.removesuffix(".mp4") for v in videos]
    assert names(out, ".html") == [f"{s}.html" for s in stems]
    assert names(out, ".mp4.json") == [f"{s}.mp4.json" for s in stems]  # sidecars follow the videos
    for stem in stems:
        assert len(json.loads((out / f"{stem}.json").read_text())) == 2  # raw responses, one per trial
        page = (out / f"{stem}.html").read_text()
        assert "data:video/mp4;base64," in page and page.count('<div class="trial">') == 2
    ranking = json.loads((out / "ranking.json").read_text())
    assert ranking["critic"] == "builtin" and [e["rank"] for e in ranking["ranking"]] == [1, 2, 3]
    scores = [e["score"] for e in ranking["ranking"]]
    assert scores == sorted(scores, reverse=True) and ranking["best"] == ranking["ranking"][0]
    for entry in ranking["ranking"]:
        pct = int(SCORED.fullmatch(Path(entry["video"]).stem)[2])
        assert pct == entry["pct"] == int(entry["score"] * 100)
        sidecar = json.loads(Path(f"{entry['video']}.json").read_text())
        assert sidecar["critic"]["score"] == entry["score"] and sidecar["seed"] == entry["seed"]
    assert "Best video:" in caplog.text and "critic: built-in critic" in caplog.text

    # --skip_generation: the same folder rescored (the reference crashes here), names kept, reports replaced
    caplog.clear()
    assert bestofn_main(["--skip_generation", "--num_critic_trials", "3"]) == 0
    assert names(out, ".mp4") == videos and len(names(out, ".html")) == 3
    rescored = json.loads((out / "ranking.json").read_text())
    assert rescored["num_critic_trials"] == 3 and [e["score"] for e in rescored["ranking"]] == scores
    assert all(len(json.loads((out / f"{s}.json").read_text())) == 3 for s in stems)
    assert "generating" not in caplog.text


def test_command_blocked_prompt_generates_nothing(workdir, caplog):
    assert bestofn_main(["--prompt", "a nerve agent attack", "--save_path", "b", *FAST]) == 1
    assert "blocked by guardrail: blocklist" in caplog.text
    assert not Path("b").exists() or not list(Path("b").glob("*.mp4"))


def test_command_with_reason1_refines_and_critiques(workdir, caplog):
    reason1 = write_tiny_reason1(workdir / "ckpt/nvidia/Cosmos-Reason1-7B")
    argv = [
        "--prompt",
        "a red ball",
        "--checkpoint_dir",
        str(reason1),  # the reference's meaning: Reason1's folder
        "--num_generations",
        "2",
        "--num_critic_trials",
        "2",
        "--critic_max_new_tokens",
        "8",
        "--save_path",
        "r",
        *FAST,
    ]
    assert bestofn_main(argv) == 0
    assert "prompt refiner: Cosmos-Reason1" in caplog.text and "critic: Cosmos-Reason1" in caplog.text
    ranking = json.loads(Path("r/ranking.json").read_text())
    assert ranking["critic"] == "cosmos-reason1" and len(ranking["ranking"]) == 2
    sidecar = json.loads(Path(f"{ranking['best']['video']}.json").read_text())
    assert sidecar["prompt"] == "a red ball" and sidecar["refined_prompt"].startswith("the")
    assert sidecar["refined_prompt"].isascii() and sidecar["critic"]["trials"] == 2


@pytest.mark.e2e
def test_best_of_n_deploys_and_its_flow_picks_the_best_candidate(prefect_server, workdir):
    from flows.bestofn import video2world_best_of_n

    env = {
        "WORLDMILL_HOME": str(REPO),
        "WORLDMILL_POOL": "bestofn-test",
        "WORLDMILL_GPU_POOL": "bestofn-test",
    }
    prefect_server.cli("work-pool", "create", "bestofn-test", "--type", "process", "--overwrite")
    deployed = prefect_server.cli(
        "--no-prompt", "deploy", "--name", "best-of-n", cwd=REPO, extra_env=env, timeout=900
    )
    assert "video2world/best-of-n" in deployed

    image = str(REPO / "assets/video2world/input0.jpg")
    rows = [
        {
            "id": "ball",
            "prompt": "a red ball rolls",
            "input": image,
            "num_generations": 3,
            "num_critic_trials": 2,
        },
        {"id": "box", "prompt": "a blue box slides", "input": image, "num_generations": 2, "seed": 10},
        {"id": "bad", "prompt": "a dirty bomb", "input": image},
    ]
    manifest = workdir / "m.jsonl"
    manifest.write_text("".join(json.dumps({**r, "steps": 2}) + "\n" for r in rows))
    out = workdir / "out"
    state = video2world_best_of_n(
        manifest=str(manifest), output_root=str(out), options={"shard_size": 5}, return_state=True
    )
    assert state.is_completed(), state.message
    summary = state.result()
    assert (summary["ok"], summary["blocked"], summary["failed"]) == (2, 1, 0)

    with open(out / "results.csv", newline="") as f:
        report = {r["id"]: r for r in csv.DictReader(f)}
    assert report["bad"]["status"] == "blocked" and report["bad"]["error"].startswith("blocked by guardrail")
    records = out / ".worldmill/records/best-of-n-score"
    for row_id, seeds in (("ball", [0, 1, 2]), ("box", [10, 11])):
        extra = json.loads((records / f"{row_id}.json").read_text())["extra"]
        assert sorted(c["seed"] for c in extra["candidates"]) == seeds
        best = max(extra["candidates"], key=lambda c: (c["score"], -c["seed"]))
        assert extra["best"]["video"] == best["video"]
        output = Path(report[row_id]["output"])
        assert output.read_bytes() == Path(best["video"]).read_bytes()  # the best candidate, copied
        sidecar = json.loads(Path(f"{output}.json").read_text())
        assert sidecar["best_of_n"]["best"]["seed"] == best["seed"] and sidecar["seed"] == best["seed"]
        for candidate in extra["candidates"]:
            assert (
                Path(candidate["report"]).is_file() and f"_score{candidate['pct']:03d}" in candidate["report"]
            )
    assert not (out / ".worldmill/candidates/bad").exists()

    async def candidate_artifact():
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            return await client.read_latest_artifacts()

    artifacts = [a for a in asyncio.run(candidate_artifact()) if a.key == "best-of-n-candidates"]
    table = artifacts[0].data if isinstance(artifacts[0].data, list) else json.loads(artifacts[0].data)
    assert len(table) == 5 and sum(line["best"] for line in table) == 2
