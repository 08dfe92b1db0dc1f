"""The T5 wrapper on a real transformers T5 encoder at a tiny random config, loaded from a saved folder."""

from __future__ import annotations

import pytest
import torch

from cosmos_core.checkpoints import CheckpointError
from cosmos_core.text_encoder import MAX_TOKENS, T5TextEncoder, word_level_tokenizer

WORDS = "a red ball falls and bounces on gray floor blue box slides left right".split()


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    from transformers import T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("t5-tiny")
    torch.manual_seed(0)
    config = T5Config(vocab_size=32, d_model=1024, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(folder)
    word_level_tokenizer(WORDS).save_pretrained(folder)
    return folder


def test_output_shape_and_zeroed_padding(t5_folder):
    encoder = T5TextEncoder.from_pretrained(t5_folder)
    emb = encoder.encode(["a red ball falls", "a blue box slides left on a gray floor"])
    assert emb.shape == (2, MAX_TOKENS, 1024)
    # 4 words + </s> = 5 tokens; 9 words + </s> = 10 tokens
    assert emb[0, :5].abs().sum(-1).gt(0).all() and emb[0, 5:].eq(0).all()
    assert emb[1, :10].abs().sum(-1).gt(0).all() and emb[1, 10:].eq(0).all()


def test_matches_transformers_with_mask(t5_folder):
    from transformers import AutoTokenizer, T5EncoderModel

    encoder = T5TextEncoder.from_pretrained(t5_folder)
    tok = AutoTokenizer.from_pretrained(t5_folder)
    model = T5EncoderModel.from_pretrained(t5_folder).eval()
    batch = tok(["red ball bounces"], padding="max_length", max_length=512, return_tensors="pt")
    with torch.no_grad():
        direct = model(**batch).last_hidden_state * batch["attention_mask"][..., None]
    torch.testing.assert_close(encoder.encode("red ball bounces"), direct)


def test_cache_encodes_each_prompt_once(t5_folder):
    encoder = T5TextEncoder.from_pretrained(t5_folder)
    forwards = []
    encoder.model.register_forward_hook(lambda module, args, out: forwards.append(1))
    negative = "blue box"
    first = encoder.encode(negative)
    for prompt in ["red ball", "gray floor", "red ball"]:
        encoder.encode([prompt, negative])
    assert len(forwards) == 3  # negative, "red ball", "gray floor"
    assert torch.equal(encoder.encode(negative), first)


def test_cache_is_bounded(t5_folder):
    encoder = T5TextEncoder.from_pretrained(t5_folder)
    encoder.cache_size = 2
    for prompt in ["red", "blue", "gray", "ball"]:
        encoder.encode(prompt)
    assert list(encoder._cache) == ["gray", "ball"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"T5 encoder not found: .*t5-11b.*config.json"):
        T5TextEncoder.from_pretrained(tmp_path / "google-t5" / "t5-11b")
