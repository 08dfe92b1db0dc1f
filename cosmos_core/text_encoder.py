"""T5 text encoder wrapper (transformers), as the reference uses it.

Prompts are tokenised to exactly 512 tokens (max-length padding, truncation), run through the T5
encoder with the attention mask, and positions past each prompt's length are zeroed; the DiT then gets
no attention mask. Output (B, 512, d_model): 1024 for google-t5/t5-11b.
Reference: imaginaire/auxiliary/text_encoder.py.

Embeddings are cached per prompt (LRU), so the negative prompt, used by every row of a batch, is
encoded once per process.

The reference's two T5 flags (TextEncoderOptions): `--downcast_text_encoder` runs T5 in the pipeline's
dtype (bf16 on a GPU) instead of the checkpoint's precision (float32 for google-t5/t5-11b: about 22 GB
of GPU memory for its encoder, 11 GB in bf16); `--offload_text_encoder` keeps its weights on the CPU
and moves them to the GPU only to encode prompts not yet cached.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from cosmos_core.checkpoints import CheckpointError
from cosmos_core.device import Placement
from cosmos_core.small_t5 import WordTokenizer

MAX_TOKENS = 512


@dataclass(frozen=True)
class TextEncoderOptions:
    """How T5 is held; the defaults are the reference's (no flag given)."""

    offload: bool = False  # weights on the CPU between encodes (--offload_text_encoder)
    downcast: bool = False  # the pipeline's dtype instead of the checkpoint's (--downcast_text_encoder)


class T5TextEncoder:
    def __init__(self, model, tokenizer, cache_size: int = 64) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._placement: Placement | None = None  # set while offloaded: parked on the CPU

    @property
    def device(self) -> torch.device:
        """Where prompts are encoded (and embeddings returned)."""
        return self._placement.device if self._placement else next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def offloaded(self) -> bool:
        return self._placement is not None

    def offload(self) -> None:
        """Keep the weights on the CPU; each encode of new prompts moves them to the device and back
        (nothing to do on a CPU)."""
        if self.device.type != "cpu":
            self._placement = Placement(self.device, offload=True)
            self.model.to(self._placement.resting)

    @property
    def dim(self) -> int:
        return self.model.config.d_model

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = torch.float32
    ) -> T5TextEncoder:
        """From a transformers folder (`google-t5/t5-11b/`) or a diffusers repo root (`text_encoder/`,
        `tokenizer/`). dtype None: the checkpoint's own precision."""
        from transformers import AutoTokenizer, T5EncoderModel  # heavy: only when a T5 folder is loaded

        path = Path(path)
        model_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
        tokenizer_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else path
        if not (model_dir / "config.json").is_file():
            raise CheckpointError(
                f"T5 encoder not found: {model_dir} has no config.json (expected google-t5/t5-11b)"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
            model = T5EncoderModel.from_pretrained(
                model_dir, local_files_only=True, torch_dtype=dtype or "auto"
            )
        except (OSError, ValueError) as error:
            raise CheckpointError(f"T5 encoder at {path} could not be loaded: {error}") from error
        return cls(model.to(device), tokenizer)

    @torch.no_grad()
    def encode(self, prompts: str | list[str]) -> torch.Tensor:
        """(B, 512, d_model) embeddings in the model's dtype, zero past each prompt's tokens."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            for prompt, emb in zip(missing, self._encode_uncached(missing), strict=True):
                self._cache[prompt] = emb
        for prompt in prompts:
            self._cache.move_to_end(prompt)
        out = torch.stack([self._cache[p] for p in prompts])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def count_tokens(self, prompt: str) -> int:
        """Tokens the prompt has (end-of-sequence included); encode() keeps the first MAX_TOKENS."""
        if isinstance(self.tokenizer, WordTokenizer):  # the embedded T5's
            return self.tokenizer.count_tokens(prompt)
        return len(self.tokenizer(prompt, truncation=False, verbose=False)["input_ids"])

    def _encode_uncached(self, prompts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=MAX_TOKENS,
            truncation=True,
            return_tensors="pt",
            return_attention_mask=True,
        )
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        with self._placement.use(self.model) if self._placement else contextlib.nullcontext():
            out = self.model(input_ids=ids, attention_mask=mask)
        # (B, 512, d_model); transformers returns an output object, cosmos_core.small_t5 the tensor
        hidden = out if isinstance(out, torch.Tensor) else out.last_hidden_state
        return hidden * mask[..., None].to(hidden.dtype)


def word_level_tokenizer(words: list[str]):
    """A small T5-style tokenizer (pad 0, eos 1, unk 2; whitespace words; </s> appended) over `words`.

    Used for the embedded small model, whose vocabulary is its captions' words, and by tests.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(words) - set(specials)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
