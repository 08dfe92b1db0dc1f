"""The guardrail: lemmatiser, blocklists (bundled and Cosmos-Guardrail1's layout), Llama Guard 3 and the
SigLIP video filter on tiny random checkpoints written here, and blocked items in the commands and the
batch worker (status "blocked", the rest generated)."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos_core.guardrail import Blocklist, Guardrail, GuardrailBlocked, lemma_candidates, lemmatize

REPO = Path(__file__).resolve().parents[1]
FAST = ["--steps", "2"]


# ----------------------------------------------------------------------------------------------------
# Lemmatiser and blocklist
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "lemma"),
    [
        ("bioweapons", "bioweapon"),
        ("beheaded", "behead"),
        ("stabbing", "stab"),
        ("making", "make"),
        ("decapitated", "decapitate"),
        ("bodies", "body"),
        ("boxes", "box"),
        ("nerves", "nerve"),
        ("children", "child"),
        ("dying", "die"),
        ("kisses", "kiss"),
        ("killed", "kill"),
        ("ball", "ball"),
        ("glass", "glass"),
    ],
)
def test_lemmatize(word, lemma):
    assert lemmatize(word) == lemma
    assert lemma in lemma_candidates(word)


@pytest.mark.parametrize(
    "prompt",
    [
        "A scientist synthesizes NERVE AGENTS in a lab",
        "soldiers beheaded a prisoner",
        "a factory making bioweapons",
        "a b10weap0n test",  # look-alike characters
        "a dismembering scene",
        "a  dirty   bomb explodes",  # spacing
    ],
)
def test_bundled_blocklist_blocks(prompt):
    verdict = Blocklist.load(None).check(prompt)
    assert not verdict.safe and verdict.check == "blocklist" and "matched" in verdict.reason


@pytest.mark.parametrize(
    "prompt",
    [
        "a red ball rolls on the floor",
        "a nervous agent waits at the airport",
        "a bomb-sniffing dog",
        "goreng",
    ],
)
def test_bundled_blocklist_lets_ordinary_prompts_through(prompt):
    assert Blocklist.load(None).check(prompt).safe


def test_empty_prompt_is_rejected():
    verdict = Guardrail.load(None).prompt_verdict("   ")
    assert not verdict.safe and verdict.check == "empty prompt"


def test_guardrail1_blocklist_layout(tmp_path):
    folder = tmp_path / "nvidia/Cosmos-Guardrail1/blocklist"
    for sub, lines in {
        "custom": ["purple monkey", "# a comment", ""],
        "exact_match": ["zorblax"],
        "whitelist": ["monkeys"],
    }.items():
        (folder / sub).mkdir(parents=True)
        (folder / sub / "list.txt").write_text("\n".join(lines) + "\n")
    (folder / "nltk_data").mkdir()  # the reference's NLTK data: present, not needed
    blocklist = Blocklist.load(tmp_path)
    assert "Cosmos-Guardrail1 (1 terms, 1 exact, 1 whitelisted)" in blocklist.describe()
    assert not blocklist.check("two purple monkey dolls").safe
    assert blocklist.check("two purple monkeys").safe  # whitelisted word
    assert not blocklist.check("a zorblax appears").safe  # exact match
    assert blocklist.check("a zorblaxes appears").safe  # exact match: no lemmas, and 2 letters off
    assert not blocklist.check("nerve agent").safe  # the bundled list still applies


# ----------------------------------------------------------------------------------------------------
# Llama Guard 3 on a tiny checkpoint
# ----------------------------------------------------------------------------------------------------

LLAMA_GUARD_TEMPLATE = (
    "{% for m in messages %}<|begin_of_text|>[INST] Task: check for unsafe content in categories "
    "{% for code in categories %}{{ code }} {% endfor %}\n{{ m['content'] }} [/INST]{% endfor %}"
)


def write_tiny_llama_guard(root: Path, answer: str) -> Path:
    """A random Llama whose output layer is zero, so greedy decoding repeats token 0: `answer`."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = root / "meta-llama/Llama-Guard-3-8B"
    words = [answer, "safe" if answer == "unsafe" else "unsafe", "S1", "S9", "a", "red", "ball", "<unk>"]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens([AddedToken(t, special=True) for t in ("<|begin_of_text|>", "<|eot_id|>")])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", unk_token="<unk>"
    )
    tokenizer.chat_template = LLAMA_GUARD_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = LlamaForCausalLM(config)
    torch.nn.init.zeros_(model.lm_head.weight)
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("answer", ["unsafe", "safe"])
def test_llama_guard_on_a_tiny_checkpoint(tmp_path, answer, caplog):
    write_tiny_llama_guard(tmp_path, answer)
    with caplog.at_level(logging.INFO, logger="cosmos_core"):
        guardrail = Guardrail.load(tmp_path, video=False)
    assert "Llama-Guard-3-8B" in caplog.text  # the log names what runs
    assert [c.name for c in guardrail.text_checks] == ["blocklist", "llama-guard-3"]
    verdict = guardrail.prompt_verdict("a red ball")
    assert verdict.safe == (answer == "safe")
    if answer == "unsafe":
        assert verdict.check == "llama-guard-3" and verdict.reason.startswith("unsafe")
        with pytest.raises(GuardrailBlocked, match=r"^blocked by guardrail: llama-guard-3"):
            guardrail.check_prompt("a red ball")


# ----------------------------------------------------------------------------------------------------
# The video safety filter on a tiny checkpoint
# ----------------------------------------------------------------------------------------------------


def write_tiny_video_filter(root: Path, predicted_class: int) -> Path:
    """A random SigLIP in Hugging Face cache layout plus a safety_filter.pt whose last layer always says
    `predicted_class`."""
    from transformers import SiglipConfig, SiglipModel

    from cosmos_core.guardrail.video_filter import SafetyClassifier

    folder = root / "nvidia/Cosmos-Guardrail1/video_content_safety_filter"
    snapshot = folder / "models--google--siglip-so400m-patch14-384/snapshots/0123abcd"
    config = SiglipConfig(
        text_config={
            "vocab_size": 32,
            "hidden_size": 24,
            "intermediate_size": 48,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
        },
        vision_config={
            "hidden_size": 24,
            "intermediate_size": 48,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
    )
    SiglipModel(config).save_pretrained(snapshot)
    (snapshot / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": {"height": 28, "width": 28}})
    )
    classifier = SafetyClassifier(in_features=24)
    with torch.no_grad():
        classifier.layers[6].weight.zero_()
        classifier.layers[6].bias.zero_()
        classifier.layers[6].bias[predicted_class] = 10.0
    state = {f"network.{k}": v for k, v in classifier.state_dict().items()}
    torch.save({"model": state}, folder / "safety_filter.pt")
    return folder


@pytest.mark.parametrize(("predicted_class", "safe"), [(0, True), (2, False)])
def test_video_filter_on_a_tiny_checkpoint(tmp_path, predicted_class, safe):
    write_tiny_video_filter(tmp_path, predicted_class)
    guardrail = Guardrail.load(tmp_path)
    assert [c.name for c in guardrail.video_checks] == ["video-content-safety-filter"]
    frames = np.random.default_rng(0).integers(0, 256, (5, 40, 64, 3), dtype=np.uint8)
    if safe:
        guardrail.check_video(frames)
    else:
        with pytest.raises(GuardrailBlocked, match=r"video-content-safety-filter \(Violence at frame 0\)"):
            guardrail.check_video(frames)


def test_video_filter_checkpoint_is_loaded_strictly(tmp_path):
    from cosmos_core.guardrail.video_filter import load_classifier

    folder = write_tiny_video_filter(tmp_path, 0)
    state = torch.load(folder / "safety_filter.pt", weights_only=True)["model"]
    state["network.extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, folder / "safety_filter.pt")
    with pytest.raises(ValueError, match=r"unexpected keys \['extra.weight'\]"):
        load_classifier(folder / "safety_filter.pt")


# ----------------------------------------------------------------------------------------------------
# Commands and the batch worker
# ----------------------------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    shutil.copytree(REPO / "assets", tmp_path / "assets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))  # empty: embedded model
    return tmp_path


def test_commands_block_prompts_and_go_on_with_the_batch(workdir, caplog):
    from cosmos_core.cli import text2image_main, text2world_main, video2world_main

    image = "assets/video2world/input0.jpg"
    args = ["--input_path", image, "--save_path", "v.mp4", *FAST]
    assert video2world_main([*args, "--prompt", "a nerve agent attack"]) == 1
    assert "blocked by guardrail: blocklist (matched 'nerve agent')" in caplog.text
    assert not Path("v.mp4").exists()
    assert text2image_main(["--prompt", "decapitated dolls", "--save_path", "i.jpg", *FAST]) == 1
    assert text2world_main(["--prompt", "bioweapons", "--save_path", "w/t.mp4", *FAST]) == 1
    assert not Path("i.jpg").exists() and not Path("w").exists()  # no temporary image either

    items = [
        {"input_video": image, "prompt": "a red ball", "output_video": "b/ok1.mp4"},
        {"input_video": image, "prompt": "soldiers behead a man", "output_video": "b/blocked.mp4"},
        {"input_video": image, "prompt": "a blue box", "output_video": "b/ok2.mp4"},
    ]
    Path("batch.json").write_text(json.dumps(items))
    assert video2world_main(["--batch_input_json", "batch.json", *FAST]) == 1
    assert sorted(p.name for p in Path("b").glob("*.mp4")) == ["ok1.mp4", "ok2.mp4"]
    assert "batch item 1 of batch.json: blocked by guardrail: blocklist" in caplog.text
    sidecar = json.loads(Path("b/ok1.mp4.json").read_text())
    assert sidecar["guardrail"] == ["blocklist"] and sidecar["refined_prompt"] is None

    assert video2world_main([*args, "--prompt", "a nerve agent attack", "--disable_guardrail"]) == 0
    assert json.loads(Path("v.mp4.json").read_text())["guardrail"] == "disabled"


def test_worker_records_blocked_rows(workdir):
    from cosmos_core.worker import run_shard
    from manifests import ModelSpec, Shard, read_manifest, read_record

    rows = [
        {"prompt": p, "steps": 2, "output": f"o/{i}.jpg"}
        for i, p in enumerate(["red ball", "csam", "blue box"])
    ]
    with open("m.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "steps", "output"])
        writer.writeheader()
        writer.writerows(rows)
    manifest = read_manifest("m.csv", "text2image", str(workdir / "out"))
    records = str(workdir / "records")
    shard = Shard(
        shard_id="s",
        task="text2image",
        output_root=str(workdir / "out"),
        records_dir=records,
        model=ModelSpec(),
        rows=manifest.rows,
    )
    counts = run_shard(shard)
    assert counts == {"ok": 2, "failed": 0, "blocked": 1, "skipped": 0}
    blocked = read_record(records, manifest.rows[1].id)
    assert blocked.status == "blocked" and blocked.error == "blocked by guardrail: blocklist (matched 'csam')"
    assert not Path(manifest.rows[1].output).exists() and Path(manifest.rows[2].output).exists()
    # guardrail off for the shard: the row is generated
    assert run_shard(shard.model_copy(update={"guardrail": False}))["ok"] == 1


@pytest.mark.e2e
def test_batch_flow_reports_blocked_rows_and_completes(prefect_server, workdir):
    from flows.video2world import video2world_batch

    image = str(REPO / "assets/video2world/input0.jpg")
    rows = [{"prompt": p, "input": image, "steps": 2} for p in ["a red ball", "a dirty bomb", "a blue box"]]
    with open("v.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["prompt", "input", "steps"])
        writer.writeheader()
        writer.writerows(rows)
    out = workdir / "out"
    state = video2world_batch(
        manifest="v.csv", output_root=str(out), options={"shard_size": 5}, return_state=True
    )
    assert state.is_completed()  # a blocked row is not a failure
    summary = state.result()
    assert (summary["ok"], summary["blocked"], summary["failed"]) == (2, 1, 0)
    with open(out / "results.csv", newline="") as f:
        report = {int(r["row_number"]): r for r in csv.DictReader(f)}
    assert report[2]["status"] == "blocked" and report[2]["error"].startswith(
        "blocked by guardrail: blocklist"
    )
    assert not Path(report[2]["output"]).exists()
    assert all(Path(report[n]["output"]).is_file() for n in (1, 3))
