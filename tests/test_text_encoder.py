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


def test_folder_with_only_spiece_model_loads_the_sentencepiece_tokenizer(t5_folder, tmp_path):
    """Older copies of google-t5/t5-11b hold spiece.model but no tokenizer.json: transformers converts
    it (sentencepiece + protobuf), and the ids are sentencepiece's own followed by </s>."""
    import shutil

    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"A red ball falls {i} and bounces on a gray floor." for i in range(200)))
    folder = tmp_path / "t5-11b"
    folder.mkdir()
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "spiece"), vocab_size=32,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2,
    )  # fmt: skip
    for name in ("config.json", "model.safetensors"):
        shutil.copy(t5_folder / name, folder / name)

    encoder = T5TextEncoder.from_pretrained(folder)
    prompt = "A gray ball bounces, 7 falls."
    sentencepiece_ids = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model")).encode(prompt)
    expected = [*sentencepiece_ids, 1]  # </s>
    ids = encoder.tokenizer(prompt).input_ids
    assert ids == expected
    assert encoder.encode(prompt).shape == (1, MAX_TOKENS, 1024)


# ----------------------------------------------------------------------------------------------------
# cosmos_core/small_t5.py: the embedded model's T5 without transformers
# ----------------------------------------------------------------------------------------------------

PROMPTS = [
    "A red ball falls and bounces on a gray floor in front of a white wall.",
    "Three boxes, a red one, a purple one and a yellow one, slide to the left.",
    "words the captions never use map to unk",
    " ".join(["ball"] * 600),  # longer than 512 tokens: truncated, </s> kept
]


@pytest.mark.parametrize("folder", ["shipped", "random"])
def test_small_t5_equals_transformers(folder, t5_folder, tmp_path):
    """The shipped embedded T5 and a random one; the long prompt reaches the clamped far buckets."""
    from cosmos_core.models import EMBEDDED_DIR
    from cosmos_core.small_t5 import load_small_t5

    path = EMBEDDED_DIR / "t5" if folder == "shipped" else t5_folder
    reference = T5TextEncoder.from_pretrained(path)
    model, tokenizer = load_small_t5(path)
    ours = T5TextEncoder(model, tokenizer)
    want = reference.tokenizer(PROMPTS, padding="max_length", max_length=MAX_TOKENS, truncation=True)
    got = tokenizer(PROMPTS, max_length=MAX_TOKENS)
    assert got["input_ids"].tolist() == want["input_ids"]
    assert got["attention_mask"].tolist() == want["attention_mask"]
    # float32, summation order differs (d_model 1024): the project's parity tolerance
    torch.testing.assert_close(ours.encode(PROMPTS), reference.encode(PROMPTS), rtol=1e-4, atol=1e-4)


def test_small_t5_rejects_other_weights(tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from cosmos_core.models import EMBEDDED_DIR
    from cosmos_core.small_t5 import load_small_t5

    shutil.copytree(EMBEDDED_DIR / "t5", tmp_path / "t5")
    state = load_file(tmp_path / "t5" / "model.safetensors")
    state["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] = torch.zeros(32, 4)
    save_file(state, tmp_path / "t5" / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*unexpected keys \['encoder\.block\.1"):
        load_small_t5(tmp_path / "t5")


def test_checkpoint_precision_or_downcast(t5_folder):
    """dtype None (the reference's default): the checkpoint's precision; a dtype: that one (downcast)."""
    assert T5TextEncoder.from_pretrained(t5_folder, "cpu", None).dtype == torch.float32
    downcast = T5TextEncoder.from_pretrained(t5_folder, "cpu", torch.bfloat16)
    assert downcast.dtype == torch.bfloat16 and downcast.encode("a red ball").dtype == torch.bfloat16


@pytest.mark.gpu
def test_offloaded_encoder_lives_on_the_cpu_and_encodes_the_same(t5_folder):
    resident = T5TextEncoder.from_pretrained(t5_folder, "cuda", None)
    offloaded = T5TextEncoder.from_pretrained(t5_folder, "cuda", None)
    offloaded.offload()
    assert offloaded.offloaded and next(offloaded.model.parameters()).device.type == "cpu"
    out = offloaded.encode(["a red ball falls"])
    assert out.device.type == "cuda" and next(offloaded.model.parameters()).device.type == "cpu"
    torch.testing.assert_close(out, resident.encode(["a red ball falls"]))
