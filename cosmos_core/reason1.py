"""Cosmos-Reason1-7B (Qwen2.5-VL) through transformers: the prompt refiner and the video critic.

Reference: cosmos_predict2/auxiliary/cosmos_reason1.py (+ qwen-vl-utils 0.0.11 and transformers 4.51.3,
the versions it pins). The model is `Qwen2_5_VLForConditionalGeneration`, loaded from
`checkpoints/nvidia/Cosmos-Reason1-7B`; the tokenizer and chat template come from the same folder.

Vision input is prepared here, in torch, instead of by transformers' `AutoProcessor`: in transformers 5
the Qwen2-VL video processor needs torchvision (which has no CPU build) and its image processor falls
back to Pillow without it. What it computes is the processor's layout, with the reference's sizes:
- image (refiner): qwen-vl-utils' smart_resize (factor 28, 4..16384 x 28x28 pixels), then the
  processor's (256..1280 x 28x28, the reference's min_pixels/max_pixels), one bicubic antialiased
  resize, scale to [0, 1], CLIP mean/std, the frame repeated to the temporal patch size;
- video: frames sampled at `fps` (2 for the refiner, 16 for the critic; an even count, 4..768,
  evenly spaced), sized by qwen-vl-utils (128..768 x 28x28 pixels per frame, at most
  total_pixels / frames x 2) then by the processor as above; `second_per_grid_ts` = 2 / sampled fps;
- patches: (t/2 x h/14 x w/14, 3 x 2 x 14 x 14) in the processor's merge-window order, and each
  `<|image_pad|>` / `<|video_pad|>` of the chat template repeated once per 2x2 merged patch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_core import media
from cosmos_core.device import Placement, pick_device

log = logging.getLogger("cosmos_core")

REASON1_REPO = Path("nvidia/Cosmos-Reason1-7B")

# The reference's system prompts (data, reproduced as is).
SYSTEM_PROMPT_REFINE = (
    """You are a prompt optimization specialist whose goal is to rewrite the user's input prompts into high-quality English prompts by referring to the details of the user's input images, making them more complete and expressive while maintaining the original meaning. You need to integrate the content of the user's photo with the input prompt for the rewrite, strictly adhering to the formatting of the examples provided.\n"""
    """Task Requirements:\n"""
    """1. For overly brief user inputs, reasonably infer and supplement details without changing the original meaning, making the image more complete and visually appealing;\n"""
    """2. Improve the characteristics of the main subject in the user's description (such as appearance, actions, expression, quantity, ethnicity, posture, surrounding environment etc.), rendering style, spatial relationships, and camera angles;\n"""
    """3. The overall output should be in English, retaining original text in quotes and book titles as well as important input information without rewriting them;\n"""
    """4. The prompt should match the user’s intent and provide a precise and detailed style description. If the user has not specified a style, you need to carefully analyze the style of the user's provided photo and use that as a reference for rewriting;\n"""
    """5. You need to emphasize movement information in the input and different camera angles;\n"""
    """6. Your output should convey natural movement attributes, incorporating natural actions related to the described subject category, using simple and direct verbs as much as possible;\n"""
    """7. You should reference the detailed information in the image, such as character actions, clothing, backgrounds, and emphasize the details in the photo;\n"""
    """8. Control the rewritten prompt to around 80-100 words.\n"""
    """9. No matter what language the user inputs, you must always output in English.\n"""
    """Example of the rewritten English prompt:\n"""
    """1. A Japanese fresh film-style video of a young East Asian girl with double braids sitting by the boat. The girl wears a white square collar puff sleeve dress, decorated with pleats and buttons. She has fair skin, delicate features, and slightly melancholic eyes, staring directly at the camera. Her hair falls naturally, with bangs covering part of her forehead. She rests her hands on the boat, appearing natural and relaxed. The background features a blurred outdoor scene, with hints of blue sky, mountains, and some dry plants. The video has a vintage film texture. A medium shot of a seated portrait.\n"""
    """2. An anime illustration in vibrant thick painting style of a white girl with cat ears holding a folder, showing a slightly dissatisfied expression. She has long dark purple hair and red eyes, wearing a dark gray skirt and a light gray top with a white waist tie and a name tag in bold Chinese characters that says "Ziyang". The background has a light yellow indoor tone, with faint outlines of some furniture visible. A pink halo hovers above her head, in a smooth Japanese cel-shading style. A close-up shot from a slightly elevated perspective.\n"""
    """3. CG game concept digital art featuring a huge crocodile with its mouth wide open, with trees and thorns growing on its back. The crocodile's skin is rough and grayish-white, resembling stone or wood texture. Its back is lush with trees, shrubs, and thorny protrusions. With its mouth agape, the crocodile reveals a pink tongue and sharp teeth. The background features a dusk sky with some distant trees, giving the overall scene a dark and cold atmosphere. A close-up from a low angle.\n"""
    """4. In the style of an American drama promotional poster, Walter White sits in a metal folding chair wearing a yellow protective suit, with the words "Breaking Bad" written in sans-serif English above him, surrounded by piles of dollar bills and blue plastic storage boxes. He wears glasses, staring forward, dressed in a yellow jumpsuit, with his hands resting on his knees, exuding a calm and confident demeanor. The background shows an abandoned, dim factory with light filtering through the windows. There's a noticeable grainy texture. A medium shot with a straight-on close-up of the character.\n"""
    """Directly output the rewritten English text."""
)

SYSTEM_PROMPT_CRITIC = """You are a helpful video analyzer. The goal is to identify artifacts and anomalies in the video.
Analyze the video carefully and answer the question according to the following template:

<think>
<overview>
[Brief description of the video.]
</overview>

<component name="Component 1 Name">
<analysis>
[Analysis or reasoning about this component.]
</analysis>
<anomaly>Yes | No</anomaly>
</component>

<component name="Component 2 Name">
<analysis>
[Analysis or reasoning about this component.]
</analysis>
<anomaly>Yes | No</anomaly>
</component>

<!-- Add more components as needed -->
</think>

<answer>
[Whether the video contains anomalies or artifacts. Answer "Yes" or "No".]
</answer>"""

USER_PROMPT_CRITIC = "Does the video contain any anomalies or artifacts?"

# Generation settings of the reference.
REFINE_MAX_NEW_TOKENS = 512
REFINE_SEED = 0  # ours: the reference does not seed refinement; a fixed seed makes it reproducible
CRITIC_MAX_NEW_TOKENS = 4096
CRITIC_SAMPLING = {
    "do_sample": True,
    "temperature": 0.6,
    "top_p": 0.95,
    "top_k": 50,
    "repetition_penalty": 1.05,
}
CRITIC_FPS = 16
CRITIC_TOTAL_PIXELS = 8192 * 28 * 28

# qwen-vl-utils 0.0.11 sizing, and the processor limits the reference passes to AutoProcessor.
IMAGE_MIN_PIXELS, IMAGE_MAX_PIXELS = 4 * 28 * 28, 16384 * 28 * 28
VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS = 128 * 28 * 28, 768 * 28 * 28
VIDEO_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)
VIDEO_FPS, FRAME_FACTOR, MIN_FRAMES, MAX_FRAMES = 2.0, 2, 4, 768
PROCESSOR_MIN_PIXELS, PROCESSOR_MAX_PIXELS = 256 * 28 * 28, 1280 * 28 * 28
MAX_ASPECT_RATIO = 200


def reason1_dir(checkpoint_dir: Path) -> Path:
    """Where Cosmos-Reason1-7B lives under a checkpoints root."""
    return checkpoint_dir / REASON1_REPO


def is_reason1_checkpoint(folder: Path | None) -> bool:
    return folder is not None and (folder / "config.json").is_file()


# ----------------------------------------------------------------------------------------------------
# Vision input
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionSpec:
    """The checkpoint's patching and normalisation (preprocessor_config.json)."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)  # CLIP's
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @classmethod
    def from_checkpoint(cls, folder: Path) -> VisionSpec:
        path = folder / "preprocessor_config.json"
        config = json.loads(path.read_text()) if path.is_file() else {}
        default = cls()
        return cls(
            patch_size=int(config.get("patch_size", default.patch_size)),
            temporal_patch_size=int(config.get("temporal_patch_size", default.temporal_patch_size)),
            merge_size=int(config.get("merge_size", default.merge_size)),
            mean=tuple(float(v) for v in config.get("image_mean", default.mean)),
            std=tuple(float(v) for v in config.get("image_std", default.std)),
        )


@dataclass
class VisionInput:
    kind: str  # "image" or "video"
    pixel_values: torch.Tensor  # (patches, 3 * temporal_patch * patch * patch)
    grid_thw: tuple[int, int, int]  # patches along time, height, width
    second_per_grid: float | None = None  # video: seconds per temporal patch

    def num_tokens(self, merge_size: int) -> int:
        t, h, w = self.grid_thw
        return t * h * w // merge_size**2


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's sizing: both sides multiples of `factor`, area within [min_pixels, max_pixels], aspect
    ratio kept as closely as possible. Returns (height, width)."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio {width}x{height} is beyond {MAX_ASPECT_RATIO}:1")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def sample_frame_indices(total: int, video_fps: float, fps: float) -> tuple[np.ndarray, float]:
    """qwen-vl-utils' frame sampling: an even number of frames at about `fps` (at least 4, at most 768
    and the video's own count), evenly spaced. Returns (indices, sampled fps)."""
    max_frames = math.floor(min(MAX_FRAMES, total) / FRAME_FACTOR) * FRAME_FACTOR
    count = min(max(total / video_fps * fps, MIN_FRAMES), max_frames, total)
    count = math.floor(count / FRAME_FACTOR) * FRAME_FACTOR
    if count < FRAME_FACTOR:
        raise ValueError(f"a video of {total} frame(s) is too short for the critic (at least {FRAME_FACTOR})")
    indices = np.round(np.linspace(0, total - 1, count)).astype(np.int64)
    return indices, count / total * video_fps


def _normalized(frames: np.ndarray, height: int, width: int, spec: VisionSpec) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, height, width) float32, resized (bicubic, antialiased) and normalised."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255)  # the reference resizes uint8 images (PIL) / rounds before the processor
    x = x / 255.0
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std


def patchify(x: torch.Tensor, spec: VisionSpec) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(T, 3, H, W) -> (t * h * w, 3 * tp * p * p) in the order of the Qwen2-VL processor: merge windows
    of m x m patches contiguous; T padded with its last frame to a multiple of the temporal patch tp."""
    p, tp, m = spec.patch_size, spec.temporal_patch_size, spec.merge_size
    if pad := -x.shape[0] % tp:
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
    frames, channels, height, width = x.shape
    t, h, w = frames // tp, height // p, width // p
    x = x.reshape(t, tp, channels, h // m, m, p, w // m, m, p)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # (t, h/m, w/m, m, m, C, tp, p, p)
    return x.reshape(t * h * w, channels * tp * p * p), (t, h, w)


def image_input(image: np.ndarray, spec: VisionSpec) -> VisionInput:
    """One (H, W, 3) uint8 image, sized as the reference's refiner sizes it."""
    height, width = image.shape[:2]
    height, width = smart_resize(height, width, spec.factor, IMAGE_MIN_PIXELS, IMAGE_MAX_PIXELS)
    height, width = smart_resize(height, width, spec.factor, PROCESSOR_MIN_PIXELS, PROCESSOR_MAX_PIXELS)
    x = _normalized(image[None], height, width, spec)
    x = x.expand(spec.temporal_patch_size, -1, -1, -1)  # an image is a clip of one temporal patch
    pixels, grid = patchify(x, spec)
    return VisionInput("image", pixels, grid)


def video_input(
    frames: np.ndarray,
    video_fps: float,
    spec: VisionSpec,
    fps: float = VIDEO_FPS,
    total_pixels: int = VIDEO_TOTAL_PIXELS,
) -> VisionInput:
    """(T, H, W, 3) uint8 frames at `video_fps`, sampled at `fps` and sized within `total_pixels`."""
    indices, sampled_fps = sample_frame_indices(len(frames), video_fps, fps)
    count = len(indices)
    max_pixels = max(min(VIDEO_MAX_PIXELS, total_pixels / count * FRAME_FACTOR), int(VIDEO_MIN_PIXELS * 1.05))
    height, width = frames.shape[1:3]
    height, width = smart_resize(height, width, spec.factor, VIDEO_MIN_PIXELS, max_pixels)
    height, width = smart_resize(height, width, spec.factor, PROCESSOR_MIN_PIXELS, PROCESSOR_MAX_PIXELS)
    pixels, grid = patchify(_normalized(frames[indices], height, width, spec), spec)
    return VisionInput("video", pixels, grid, spec.temporal_patch_size / sampled_fps)


def read_vision_input(
    path: str, spec: VisionSpec, fps: float = VIDEO_FPS, total_pixels: int = VIDEO_TOTAL_PIXELS
):
    """An image or .mp4 at a path or URL -> VisionInput."""
    if media.is_image(path):
        return image_input(media.read_image(path), spec)
    if media.is_video(path):
        frames, video_fps = media.read_video(path)
        return video_input(frames, video_fps or CRITIC_FPS, spec, fps, total_pixels)
    supported = ", ".join(media.IMAGE_EXTENSIONS + media.VIDEO_EXTENSIONS)
    raise media.MediaError(f"{path}: the prompt refiner and critic read {supported}")


# ----------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------


class AsciiOnly:
    """Logits processor: every token whose text is not pure ASCII gets -inf (special tokens stay allowed).
    Reference: AllowedTokensLogitsProcessor."""

    def __init__(self, allowed: torch.Tensor) -> None:
        self.allowed = allowed  # (vocab,) bool

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        allowed = self.allowed[:vocab]
        if allowed.shape[0] < vocab:  # the model's embedding table may be larger than the tokenizer
            allowed = F.pad(allowed, (0, vocab - allowed.shape[0]), value=False)
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))


def ascii_token_mask(tokenizer) -> torch.Tensor:
    """Tokens of the base vocabulary that decode to ASCII text, plus the special tokens."""
    ids = list(range(tokenizer.vocab_size))
    texts = tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=False)
    allowed = torch.zeros(max(len(tokenizer), tokenizer.vocab_size), dtype=torch.bool)
    allowed[[i for i, text in zip(ids, texts, strict=True) if text.isascii()]] = True
    allowed[list(tokenizer.all_special_ids)] = True
    return allowed


class Reason1:
    """Qwen2.5-VL loaded once; `refine_prompt` and `analyze_video` are the reference's two uses."""

    def __init__(
        self, model, tokenizer, chat_template: str, spec: VisionSpec, placement: Placement, folder: Path
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.spec = spec
        self.placement = placement
        self.folder = folder
        self._ascii: torch.Tensor | None = None
        config = model.config
        self.pad_tokens = {
            "image": tokenizer.convert_ids_to_tokens(config.image_token_id),
            "video": tokenizer.convert_ids_to_tokens(config.video_token_id),
        }
        self.pad_ids = {"image": config.image_token_id, "video": config.video_token_id}

    @classmethod
    def load(cls, folder: Path, device: str | torch.device | None = None, offload: bool = False) -> Reason1:
        """Model, tokenizer, chat template and vision settings from a Hugging Face Qwen2.5-VL folder."""
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        folder = Path(folder)
        if not is_reason1_checkpoint(folder):
            raise FileNotFoundError(f"no Cosmos-Reason1 checkpoint at {folder} (config.json missing)")
        placement = Placement(pick_device(device), offload)
        start = time.perf_counter()
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            folder, dtype=placement.dtype, attn_implementation="sdpa"
        )
        model = model.to(placement.resting).eval().requires_grad_(False)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        reason1 = cls(
            model,
            tokenizer,
            _chat_template(folder, tokenizer),
            VisionSpec.from_checkpoint(folder),
            placement,
            folder,
        )
        log.info(
            "Cosmos-Reason1: loaded %s in %.1f s (%s)", folder, time.perf_counter() - start, placement.device
        )
        return reason1

    def inputs(self, messages: list[dict], vision: VisionInput) -> dict[str, torch.Tensor]:
        """Tokenised chat (the vision pad token repeated once per merged patch) plus pixel inputs."""
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )
        pad = self.pad_tokens[vision.kind]
        if text.count(pad) != 1:
            raise ValueError(
                f"the chat template of {self.folder} placed {text.count(pad)} {pad} tokens for one {vision.kind}"
            )
        text = text.replace(pad, pad * vision.num_tokens(self.spec.merge_size))
        encoded = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        input_ids = encoded["input_ids"]
        token_type = {"image": 1, "video": 2}[vision.kind]
        inputs = {
            "input_ids": input_ids,
            "attention_mask": encoded["attention_mask"],
            "mm_token_type_ids": (input_ids == self.pad_ids[vision.kind]).long() * token_type,
        }
        grid = torch.tensor([vision.grid_thw])
        if vision.kind == "image":
            inputs.update(pixel_values=vision.pixel_values, image_grid_thw=grid)
        else:
            inputs.update(
                pixel_values_videos=vision.pixel_values,
                video_grid_thw=grid,
                second_per_grid_ts=torch.tensor([vision.second_per_grid]),
            )
        return inputs

    @torch.no_grad()
    def generate(self, messages: list[dict], vision: VisionInput, seed: int, **generate_kwargs) -> list[str]:
        """Decoded completions (one per returned sequence), sampled under a fixed seed."""
        device = self.placement.device
        inputs = {k: v.to(device) for k, v in self.inputs(messages, vision).items()}
        devices = [device] if device.type == "cuda" else []
        with self.placement.use(self.model), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            output = self.model.generate(**inputs, **generate_kwargs)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(
            new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def refine_prompt(self, input_path: str, prompt: str, max_new_tokens: int = REFINE_MAX_NEW_TOKENS) -> str:
        """The prompt rewritten from the conditioning image or video, ASCII only."""
        from transformers import LogitsProcessorList

        vision = read_vision_input(input_path, self.spec)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT_REFINE},
            {"role": "user", "content": [{"type": "text", "text": prompt}, {"type": vision.kind}]},
        ]
        if self._ascii is None:
            self._ascii = ascii_token_mask(self.tokenizer)
        processors = LogitsProcessorList([AsciiOnly(self._ascii)])
        (text,) = self.generate(
            messages, vision, REFINE_SEED, max_new_tokens=max_new_tokens, logits_processor=processors
        )
        return text.strip()

    def analyze_video(
        self, video_path: str, num_trials: int, seed: int = 0, max_new_tokens: int = CRITIC_MAX_NEW_TOKENS
    ) -> list[str]:
        """`num_trials` sampled answers to "Does the video contain any anomalies or artifacts?"."""
        vision = read_vision_input(video_path, self.spec, fps=CRITIC_FPS, total_pixels=CRITIC_TOTAL_PIXELS)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT_CRITIC},
            {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": USER_PROMPT_CRITIC}]},
        ]
        return self.generate(
            messages,
            vision,
            seed,
            num_return_sequences=num_trials,
            max_new_tokens=max_new_tokens,
            **CRITIC_SAMPLING,
        )


def _chat_template(folder: Path, tokenizer) -> str:
    """The processor's chat template (chat_template.json or .jinja), else the tokenizer's."""
    if (path := folder / "chat_template.json").is_file():
        return json.loads(path.read_text())["chat_template"]
    if (path := folder / "chat_template.jinja").is_file():
        return path.read_text()
    if tokenizer.chat_template:
        return tokenizer.chat_template
    raise ValueError(
        f"{folder} has no chat template (chat_template.json, chat_template.jinja or tokenizer_config.json)"
    )


# ----------------------------------------------------------------------------------------------------
# The prompt refiner
# ----------------------------------------------------------------------------------------------------


class PromptRefiner:
    """Video2World's prompt refiner: Reason1 rewrites the prompt looking at the conditioning input."""

    def __init__(self, reason1: Reason1) -> None:
        self.reason1 = reason1

    def refine(self, input_path: str, prompt: str) -> str:
        start = time.perf_counter()
        refined = self.reason1.refine_prompt(input_path, prompt)
        if not refined:
            log.warning("prompt refiner: no text came back for %s; the prompt is used as given", input_path)
            return prompt
        shown = refined if len(refined) <= 300 else f"{refined[:300]}..."
        log.info("prompt refiner: %.1f s: %s", time.perf_counter() - start, shown)
        return refined


def load_reason1(
    folder: Path | None, device: str | torch.device | None, offload: bool, purpose: str, fallback: str
) -> Reason1 | None:
    """Reason1 from `folder` if it holds a checkpoint, else None with one log line: `purpose` and what
    happens instead (`fallback`)."""
    if not is_reason1_checkpoint(folder):
        log.info("%s: no Cosmos-Reason1-7B checkpoint at %s; %s", purpose, folder, fallback)
        return None
    return Reason1.load(folder, device, offload)
