"""Llama Guard 3 (meta-llama/Llama-Guard-3-8B) as a text check, through transformers.

Reference: cosmos_predict2/auxiliary/guardrail/llamaGuard3/llamaGuard3.py. The prompt goes in as a
one-turn user conversation through the checkpoint's chat template (with the reference's category
table), up to 100 new tokens are generated, and an output containing "unsafe" blocks; the lines after
it name the violated categories (S1..S14). Like the reference, an exception inside the model lets the
prompt through (logged as an error). Unlike it, decoding is greedy (do_sample=False), so a verdict does
not depend on a random state.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from cosmos_core.device import Placement
from cosmos_core.guardrail.verdict import Verdict

log = logging.getLogger("cosmos_core")

LLAMA_GUARD_REPO = Path("meta-llama/Llama-Guard-3-8B")
MAX_NEW_TOKENS = 100

UNSAFE_CATEGORIES = {
    "S1": "Violent Crimes.",
    "S2": "Non-Violent Crimes.",
    "S3": "Sex Crimes.",
    "S4": "Child Exploitation.",
    "S5": "Defamation.",
    "S6": "Specialized Advice.",
    "S7": "Privacy.",
    "S8": "Intellectual Property.",
    "S9": "Indiscriminate Weapons.",
    "S10": "Hate.",
    "S11": "Self-Harm.",
    "S12": "Sexual Content.",
    "S13": "Elections.",
    "S14": "Code Interpreter Abuse.",
}


def present(checkpoint_dir: Path | None) -> Path | None:
    """The Llama Guard 3 folder under the checkpoints root, if it holds a model."""
    if checkpoint_dir is None:
        return None
    folder = checkpoint_dir / LLAMA_GUARD_REPO
    return folder if (folder / "config.json").is_file() else None


class LlamaGuard3:
    name = "llama-guard-3"

    def __init__(self, model, tokenizer, placement: Placement) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.placement = placement

    @classmethod
    def load(cls, folder: Path, device: torch.device, offload: bool) -> LlamaGuard3:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        placement = Placement(device, offload)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=placement.dtype)
        model = model.to(placement.resting).eval().requires_grad_(False)
        return cls(model, AutoTokenizer.from_pretrained(folder), placement)

    def describe(self) -> str:
        return "Llama-Guard-3-8B"

    def check(self, prompt: str) -> Verdict:
        try:
            output = self.moderate(prompt)
        except Exception as error:  # the reference lets the prompt through when the model fails
            log.error(
                "guardrail: Llama Guard 3 failed (%s: %s); the prompt is let through",
                type(error).__name__,
                error,
            )
            return Verdict(True)
        if "unsafe" in output.lower():
            return Verdict(False, self.name, block_reason(output))
        return Verdict(True)

    @torch.no_grad()
    def moderate(self, prompt: str) -> str:
        """Llama Guard's raw answer for one user prompt ("safe", or "unsafe\\nS1,S9")."""
        conversation = [{"role": "user", "content": prompt}]
        inputs = self.tokenizer.apply_chat_template(
            conversation, categories=UNSAFE_CATEGORIES, return_tensors="pt", return_dict=True
        )
        with self.placement.use(self.model):
            device = self.placement.device
            input_ids = inputs["input_ids"].to(device)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=inputs["attention_mask"].to(device),
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                pad_token_id=0,
            )
        return self.tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=False).strip()


def block_reason(output: str) -> str:
    """'unsafe\\nS1,S9' -> 'unsafe: Violent Crimes, Indiscriminate Weapons'."""
    names = []
    for line in output.splitlines()[1:]:
        for code in line.split("<|eot_id|>")[0].split(","):
            code = code.strip().upper()
            if code in UNSAFE_CATEGORIES:
                names.append(UNSAFE_CATEGORIES[code].rstrip("."))
    return f"unsafe: {', '.join(names)}" if names else "unsafe"
