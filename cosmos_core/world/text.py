"""The embedded model's text encoder: a small T5 encoder over the caption vocabulary, random and frozen.

Like the real T5-11B it is never trained: the DiTs learn to read it. Being fixed, it gives the
unconditional branch's embeddings (zeros, or the encoded negative prompt) one value for training and
inference, and Text2World's two stages can share it. Its width is the embedded DiTs' crossattn_dim.
Words outside the captions map to <unk>.
"""

from __future__ import annotations

import torch

from cosmos_core.text_encoder import T5TextEncoder, word_level_tokenizer
from cosmos_core.world.scene import caption_words

# T5 encoder size: d_model is the embedded DiT presets' crossattn_dim.
T5_SIZE = {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4}
T5_SEED = 20260112  # the shipped encoder's initialisation; the untrained fallback uses it too


def embedded_text_encoder(seed: int = T5_SEED) -> T5TextEncoder:
    """The T5 encoder of the embedded model, initialised from `seed` (the global RNG is left untouched)."""
    from transformers import T5Config, T5EncoderModel

    tokenizer = word_level_tokenizer(caption_words())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5EncoderModel(T5Config(vocab_size=len(tokenizer), **T5_SIZE))
    return T5TextEncoder(model, tokenizer)
