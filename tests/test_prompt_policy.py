"""Prompts: a prompt past the text encoder's 512 tokens is generated from its first 512 and says so (sidecar,
record, log); a prompt past the hard character limit is refused before the guardrail reads it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cosmos_core.cli import text2image_main
from manifests import read_manifest, read_record, write_results_csv
from manifests.requests import DEFAULT_MAX_PROMPT_CHARS, Text2ImageRequest
from tests.shards import shard_of

LONG = " ".join(["a red ball on a gray floor"] * 100)  # 700 words: 701 tokens for the embedded T5


@pytest.fixture(autouse=True)
def _embedded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "none"))


def test_a_prompt_past_512_tokens_is_flagged_in_the_sidecar_and_the_log(tmp_path, caplog):
    assert (
        text2image_main(["--prompt", LONG, "--steps", "2", "--disable_guardrail", "--save_path", "a.jpg"])
        == 0
    )
    sidecar = json.loads(Path("a.jpg.json").read_text())
    assert sidecar["prompt_truncated"] == {"tokens": 701, "limit": 512}
    assert "the prompt has 701 tokens; the text encoder reads the first 512" in caplog.text
    assert (
        text2image_main(
            ["--prompt", "a red ball", "--steps", "2", "--disable_guardrail", "--save_path", "b.jpg"]
        )
        == 0
    )
    assert "prompt_truncated" not in json.loads(Path("b.jpg.json").read_text())
    assert json.loads(Path("b.jpg.json").read_text())["warnings"] == []


def test_the_row_record_says_so_too(tmp_path):
    from cosmos_core.worker import run_shard

    Path("m.json").write_text(json.dumps([{"prompt": LONG, "steps": 2}]))
    manifest = read_manifest("m.json", "text2image", str(tmp_path / "out"))
    shard = shard_of(manifest, tmp_path, guardrail=False)
    assert run_shard(shard)["ok"] == 1
    record = read_record(str(tmp_path / "records"), manifest.rows[0].id)
    assert record.extra["prompt_truncated"] == {"tokens": 701, "limit": 512}
    assert record.extra["warnings"] == ["prompt truncated to its first 512 of 701 tokens"]
    write_results_csv([record], str(tmp_path / "results.csv"))  # and the run's report
    (line,) = csv.DictReader(open(tmp_path / "results.csv"))
    assert line["warnings"] == "prompt truncated to its first 512 of 701 tokens"


def test_a_prompt_past_the_character_limit_is_refused_before_the_guardrail(monkeypatch):
    too_long = "x" * (DEFAULT_MAX_PROMPT_CHARS + 1)
    with pytest.raises(ValueError, match="10,001 characters; prompts may have 10,000"):
        Text2ImageRequest(prompt=too_long)
    Path("m.json").write_text(
        json.dumps([{"prompt": too_long}, {"prompt": "ok", "negative_prompt": too_long}])
    )
    m = read_manifest("m.json", "text2image", "out")
    assert [(e.row, e.field) for e in m.errors] == [(1, "prompt"), (2, "negative_prompt")]
    monkeypatch.setenv("WORLDMILL_MAX_PROMPT_CHARS", "20")
    with pytest.raises(ValueError, match="21 characters; prompts may have 20"):
        Text2ImageRequest(prompt="x" * 21)


def test_tokens_are_counted_with_a_transformers_tokenizer_too():
    """The T5 checkpoints' tokenizers are transformers ones: counted without truncation or padding."""
    import torch

    from cosmos_core.text_encoder import T5TextEncoder, word_level_tokenizer

    encoder = T5TextEncoder(torch.nn.Identity(), word_level_tokenizer(["a", "red", "ball"]))
    assert encoder.count_tokens(" ".join(["a red ball"] * 300)) == 901  # 900 words + end of sequence
    assert encoder.count_tokens("a red ball") == 4
