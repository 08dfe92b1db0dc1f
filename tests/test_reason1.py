"""Cosmos-Reason1 (Qwen2.5-VL): the answer parser, the vision input layout, and the refiner and critic end
to end on a tiny random checkpoint written here in the real checkpoint's file layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos_core import media
from cosmos_core.critic import CriticResult, answer_score, html_report, parse_answer, parse_response
from cosmos_core.reason1 import (
    Reason1,
    VisionSpec,
    image_input,
    patchify,
    sample_frame_indices,
    smart_resize,
    video_input,
)

REPO = Path(__file__).resolve().parents[1]

# Qwen2.5-VL's special tokens (the real ids are 151643...; a tiny vocabulary numbers them after its words).
SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# The first words are not ASCII: with an all-zero output layer, greedy decoding picks the lowest id, so
# the refiner's ASCII-only constraint decides what comes out.
WORDS = [
    "日本",
    "café",
    "the",
    "ball",
    "rolls",
    "slowly",
    "camera",
    "a",
    "red",
    "<answer>",
    "</answer>",
    "Yes",
    "No",
]

# Qwen2-VL's chat template, reduced to what the refiner and critic send.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_reason1(folder: Path, zero_output_layer: bool = True) -> Path:
    """A random Qwen2.5-VL with Cosmos-Reason1-7B's files: config.json, generation_config.json,
    model.safetensors, tokenizer.json + tokenizer_config.json, chat_template.json, preprocessor_config.json."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {word: i for i, word in enumerate([*WORDS, "<unk>"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(folder)
    ids = {s: tokenizer.convert_tokens_to_ids(s) for s in SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "bos_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [0],
            "window_size": 112,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config)
    if zero_output_layer:
        torch.nn.init.zeros_(model.lm_head.weight)
    model.save_pretrained(folder)
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    spec = VisionSpec()
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2_5_VLProcessor",
                "patch_size": spec.patch_size,
                "temporal_patch_size": spec.temporal_patch_size,
                "merge_size": spec.merge_size,
                "image_mean": list(spec.mean),
                "image_std": list(spec.std),
                "min_pixels": 3136,
                "max_pixels": 12845056,
            }
        )
    )
    return folder


@pytest.fixture(scope="module")
def tiny_reason1(tmp_path_factory) -> Path:
    return write_tiny_reason1(tmp_path_factory.mktemp("ckpt") / "nvidia" / "Cosmos-Reason1-7B")


# ----------------------------------------------------------------------------------------------------
# Answers
# ----------------------------------------------------------------------------------------------------

YES = '<think>\n<overview>A ball.</overview>\n<component name="Motion">\n<analysis>It teleports.</analysis>\n<anomaly>Yes</anomaly>\n</component>\n</think>\n\n<answer>\nYes\n</answer>'
NO = "<think><overview>A ball.</overview></think><answer> no </answer>"
MALFORMED = "<think>The video looks fine <answer>maybe</answer>"


def test_answer_parser_yes_no_and_malformed():
    assert parse_answer(YES) == "Yes" and parse_answer(NO) == "No"
    assert parse_answer(MALFORMED) is None and parse_answer("No tags at all") is None
    assert parse_answer("<ANSWER>NO</ANSWER>") == "No"  # case-insensitive, as the reference's regex
    assert answer_score([YES, NO, NO, MALFORMED]) == pytest.approx(2 / 3)  # #No / #parsed
    assert answer_score([MALFORMED]) == 0.0 and answer_score([]) == 0.0
    parsed = parse_response(YES)
    assert parsed["answer"] == "Yes" and parsed["overview"] == "A ball."
    assert parsed["components"] == [{"name": "Motion", "analysis": "It teleports.", "anomaly": "Yes"}]
    assert parse_response(MALFORMED) is None


def test_html_report_colours_counts_and_escapes():
    result = CriticResult("cosmos-reason1", [YES, NO, MALFORMED.replace("fine", "<script>")], 0.5)
    page = html_report("v.mp4", b"\x00\x01mp4", result)
    assert "data:video/mp4;base64,AAFtcDQ=" in page
    assert '<div class="stat red"><div class="count">1</div><div>Anomaly Detected</div>' in page
    assert '<div class="stat green"><div class="count">1</div><div>No Anomaly</div>' in page
    assert '<div class="red">\n<strong>Motion - Yes</strong>' in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count('<div class="trial">') == 3


# ----------------------------------------------------------------------------------------------------
# Vision input
# ----------------------------------------------------------------------------------------------------


def test_smart_resize_and_frame_sampling_follow_qwen_vl_utils():
    assert smart_resize(704, 1280, 28, 4 * 784, 16384 * 784) == (700, 1288)
    assert smart_resize(96, 160, 28, 128 * 784, 768 * 784) == (252, 420)  # small: scaled up
    assert smart_resize(2000, 3000, 28, 4 * 784, 1280 * 784) == (812, 1204)  # large: scaled down
    indices, fps = sample_frame_indices(93, 16.0, 16)  # the critic on a 720p 16 fps clip
    assert len(indices) == 92 and indices[0] == 0 and indices[-1] == 92 and fps == pytest.approx(92 / 93 * 16)
    indices, _ = sample_frame_indices(93, 16.0, 2.0)  # the refiner's default 2 fps
    assert len(indices) == 10


def test_patches_match_transformers_image_processor():
    """Our layout against transformers' own Qwen2-VL image processor, on an image that needs no resize."""
    transformers = pytest.importorskip("transformers")
    processor_class = (
        getattr(transformers, "Qwen2VLImageProcessorPil", None) or transformers.Qwen2VLImageProcessor
    )
    try:
        processor = processor_class(min_pixels=56 * 56, max_pixels=28 * 28 * 1280)
    except ImportError as error:  # neither torchvision nor Pillow
        pytest.skip(str(error))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)
    theirs = processor(images=[image], do_resize=False, return_tensors="pt")
    spec = VisionSpec()
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    ours, grid = patchify(x.expand(2, -1, -1, -1), spec)
    assert list(theirs["image_grid_thw"][0]) == list(grid) == [1, 4, 6]
    torch.testing.assert_close(ours, theirs["pixel_values"].float(), rtol=1e-5, atol=1e-5)


def test_video_input_sizes_for_the_critic():
    frames = np.zeros((17, 96, 160, 3), np.uint8)  # the embedded model's 16:9 clip
    vision = video_input(frames, 16.0, VisionSpec(), fps=16, total_pixels=8192 * 28 * 28)
    # 16 sampled frames; qwen-vl-utils sizes 96x160 up to 252x420, the processor's 256x28x28 minimum to 364x588
    assert vision.grid_thw == (8, 26, 42) and vision.pixel_values.shape == (8 * 26 * 42, 3 * 2 * 14 * 14)
    assert vision.second_per_grid == pytest.approx(2 / (16 / 17 * 16))
    image = image_input(np.zeros((96, 160, 3), np.uint8), VisionSpec())
    assert image.grid_thw[0] == 1 and image.num_tokens(2) == image.grid_thw[1] * image.grid_thw[2] // 4


# ----------------------------------------------------------------------------------------------------
# End to end on a tiny checkpoint
# ----------------------------------------------------------------------------------------------------


def test_refiner_output_is_ascii_only(tiny_reason1, tmp_path):
    reason1 = Reason1.load(tiny_reason1, device="cpu")
    image = str(REPO / "assets/video2world/input0.jpg")
    refined = reason1.refine_prompt(image, "a red ball", max_new_tokens=8)
    assert refined and refined.isascii()
    assert refined.split()[0] == "the"  # the lowest allowed id: the non-ASCII words before it are masked
    # Without the constraint the same model writes the non-ASCII word: the processor is what stops it.
    vision_messages = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]}]
    from cosmos_core.reason1 import read_vision_input

    raw = reason1.generate(vision_messages, read_vision_input(image, reason1.spec), 0, max_new_tokens=3)
    assert not raw[0].isascii()


def test_critic_samples_trials_reproducibly(tiny_reason1, tmp_path):
    from cosmos_core.critic import load_critic

    video = str(tmp_path / "v.mp4")
    rng = np.random.default_rng(1)
    media.write_video(video, rng.integers(0, 256, (9, 48, 64, 3), dtype=np.uint8), fps=16)
    critic = load_critic(tiny_reason1, "cpu", max_new_tokens=12)
    assert critic.name == "cosmos-reason1"
    first = critic.analyze(video, num_trials=3, seed=7)
    again = critic.analyze(video, num_trials=3, seed=7)
    assert len(first.responses) == 3 and first.responses == again.responses
    assert 0.0 <= first.score <= 1.0 and first.score == answer_score(first.responses)
