"""The blocklist text check: listed words and phrases, matched exactly and through their lemmas.

Reference: cosmos_predict2/auxiliary/guardrail/blocklist/blocklist.py. Lists:
- worldmill's bundled default (default_blocklist.txt in this package), always checked;
- Cosmos-Guardrail1's, when present: <checkpoints>/nvidia/Cosmos-Guardrail1/blocklist/ with folders
  `custom/` (blocked words and phrases), `exact_match/` (whole-word matches plus the reference's
  near-miss check for words of 6+ characters) and `whitelist/` (words never blocked), each holding text
  files of one entry a line. The reference's `nltk_data/` folder is not needed: our lemmatiser is
  rule-based (cosmos_core/guardrail/lemmatize.py), and better-profanity's fuzzy variants are reduced to
  common character substitutions (0 -> o, 3 -> e, @ -> a, ...).

An empty prompt is rejected, as in the reference.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from cosmos_core.guardrail.lemmatize import lemma_candidates
from cosmos_core.guardrail.verdict import Verdict

log = logging.getLogger("cosmos_core")

DEFAULT_BLOCKLIST = Path(__file__).with_name("default_blocklist.txt")
GUARDRAIL1_BLOCKLIST = Path("nvidia/Cosmos-Guardrail1/blocklist")

# The reference's partial-match parameters: words of >= 6 characters, up to 0.4 characters different.
PARTIAL_MATCH_MIN_CHARS = 6
PARTIAL_MATCH_LETTER_COUNT = 0.4

# Character substitutions that hide a word from a plain match (a small part of better-profanity's).
SUBSTITUTIONS = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
WORD = re.compile(r"[a-z0-9@$]+")


def to_ascii(text: str) -> str:
    """Non-ASCII runs become a space (the reference's `to_ascii`)."""
    return re.sub(r"[^\x00-\x7F]+", " ", text)


def words_of(text: str) -> list[str]:
    """Lower-case words of a text, with look-alike characters substituted ('b0mb' -> 'bomb')."""
    return [w.translate(SUBSTITUTIONS) for w in WORD.findall(to_ascii(text).lower())]


def read_keyword_dir(folder: Path) -> list[str]:
    """Every non-empty, non-comment line of every file in `folder` (the reference's list layout)."""
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        entries.extend(read_keyword_file(path))
    return entries


def read_keyword_file(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@dataclass
class Blocklist:
    """Blocked terms (lemmatised matching), exact-match terms (whole words) and a whitelist."""

    terms: list[str]
    exact_terms: list[str] = field(default_factory=list)
    whitelist: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    name: str = "blocklist"

    def __post_init__(self) -> None:
        # first word's lemma candidates -> the terms (as word lists) starting with it
        self._index: dict[str, list[list[str]]] = {}
        for term in self.terms:
            words = words_of(term)
            if words:
                for candidate in lemma_candidates(words[0]):
                    self._index.setdefault(candidate, []).append(words)
        self._allowed = {w for entry in self.whitelist for w in words_of(entry)}

    @classmethod
    def load(cls, checkpoint_dir: Path | None) -> Blocklist:
        """The bundled list, plus Cosmos-Guardrail1's lists when they are under `checkpoint_dir`."""
        terms = read_keyword_file(DEFAULT_BLOCKLIST)
        exact, whitelist, sources = [], [], [f"bundled ({len(terms)} terms)"]
        folder = checkpoint_dir / GUARDRAIL1_BLOCKLIST if checkpoint_dir is not None else None
        if folder is not None and folder.is_dir():
            parts = {name: folder / name for name in ("custom", "exact_match", "whitelist")}
            custom = read_keyword_dir(parts["custom"]) if parts["custom"].is_dir() else []
            exact = read_keyword_dir(parts["exact_match"]) if parts["exact_match"].is_dir() else []
            whitelist = read_keyword_dir(parts["whitelist"]) if parts["whitelist"].is_dir() else []
            terms += custom
            sources.append(
                f"Cosmos-Guardrail1 ({len(custom)} terms, {len(exact)} exact, {len(whitelist)} whitelisted)"
            )
        return cls(terms, exact, whitelist, sources)

    def describe(self) -> str:
        return f"blocklist: {' + '.join(self.sources)}"

    def check(self, prompt: str) -> Verdict:
        if not prompt.strip():
            return Verdict(False, "empty prompt", "the prompt is empty")
        words = [w if w not in self._allowed else "" for w in words_of(prompt)]
        if (term := self._match_terms(words)) is not None:
            return Verdict(False, self.name, f"matched {term!r}")
        if (term := self._match_exact(" ".join(w for w in words if w))) is not None:
            return Verdict(False, self.name, f"matched {term!r}")
        return Verdict(True)

    def _match_terms(self, words: list[str]) -> str | None:
        """A listed term whose words match consecutive prompt words, each through its lemmas."""
        for start, word in enumerate(words):
            if not word:
                continue
            for candidate in lemma_candidates(word):
                for term in self._index.get(candidate, ()):
                    window = words[start : start + len(term)]
                    if len(window) == len(term) and all(
                        w and lemma_candidates(w) & lemma_candidates(t)
                        for w, t in zip(window, term, strict=True)
                    ):
                        return " ".join(term)
        return None

    def _match_exact(self, normalized: str) -> str | None:
        """The reference's exact-match list: whole words, or near misses of long words."""
        for entry in self.exact_terms:
            term = " ".join(words_of(entry))
            if not term:
                continue
            if re.search(rf"\b{re.escape(term)}\b", normalized):
                return term
            if len(term) >= PARTIAL_MATCH_MIN_CHARS and _near_miss(normalized, term):
                return term
        return None


def _near_miss(normalized: str, term: str) -> bool:
    """Reference `check_partial_match`: a window of as many words whose similarity ratio is at least
    (len(term) - 0.4) / len(term)."""
    prompt_words = normalized.split()
    n = len(term.split())
    threshold = (len(term) - PARTIAL_MATCH_LETTER_COUNT) / len(term)
    for i in range(len(prompt_words) - n + 1):
        if SequenceMatcher(None, " ".join(prompt_words[i : i + n]), term).ratio() >= threshold:
            return True
    return False
