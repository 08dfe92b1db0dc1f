"""A small rule-based English lemmatiser for the blocklist: plurals, -ing, -ed, -ies, irregular forms.

The reference lemmatises prompt tokens with NLTK's WordNet lemmatiser (nouns only). Ours covers
nouns and verbs with suffix rules and a table of irregular forms. Rules guess, so `lemma_candidates`
returns every plausible base form ("decapitated" -> decapitated, decapitat, decapitate) and the
blocklist matches if any candidate of a prompt word is a candidate of a listed word; `lemmatize`
returns the single best guess.
"""

from __future__ import annotations

from functools import lru_cache

# Irregular plurals and verb forms -> base form.
IRREGULAR = {
    "children": "child",
    "men": "man",
    "women": "woman",
    "people": "person",
    "mice": "mouse",
    "feet": "foot",
    "teeth": "tooth",
    "geese": "goose",
    "knives": "knife",
    "lives": "life",
    "wives": "wife",
    "wolves": "wolf",
    "leaves": "leaf",
    "halves": "half",
    "selves": "self",
    "thieves": "thief",
    "corpses": "corpse",
    "dying": "die",
    "lying": "lie",
    "tying": "tie",
    "shot": "shoot",
    "bled": "bleed",
    "fled": "flee",
    "slain": "slay",
    "slew": "slay",
    "hung": "hang",
    "stole": "steal",
    "stolen": "steal",
    "fought": "fight",
    "caught": "catch",
    "bought": "buy",
    "made": "make",
    "took": "take",
    "taken": "take",
    "gave": "give",
    "given": "give",
    "ate": "eat",
    "eaten": "eat",
    "went": "go",
    "gone": "go",
    "saw": "see",
    "seen": "see",
    "was": "be",
    "were": "be",
    "is": "be",
    "are": "be",
    "been": "be",
    "had": "have",
    "has": "have",
    "did": "do",
    "done": "do",
    "bit": "bite",
    "bitten": "bite",
    "blew": "blow",
    "blown": "blow",
    "broke": "break",
    "broken": "break",
    "drew": "draw",
    "drawn": "draw",
    "drove": "drive",
    "driven": "drive",
    "fell": "fall",
    "fallen": "fall",
    "froze": "freeze",
    "frozen": "freeze",
    "hid": "hide",
    "hidden": "hide",
    "ran": "run",
    "shook": "shake",
    "shaken": "shake",
    "struck": "strike",
    "threw": "throw",
    "thrown": "throw",
    "tore": "tear",
    "torn": "tear",
    "wrote": "write",
    "written": "write",
}

VOWELS = set("aeiou")
# Porter's step 1b: a stem ending in these takes its 'e' back (decapitat -> decapitate, troubl -> trouble).
E_ENDINGS = ("at", "bl", "iz", "uc", "ag", "iv", "ur", "dg", "rs", "ov")
MIN_STEM = 3


def _undouble(stem: str) -> str | None:
    """'stabb' -> 'stab', 'runn' -> 'run'; None when the stem does not end in a doubled consonant
    (or ends in ll/ss/zz/ff, which English keeps: 'kill', 'kiss')."""
    if len(stem) >= MIN_STEM + 1 and stem[-1] == stem[-2] and stem[-1] not in VOWELS | set("lsfz"):
        return stem[:-1]
    return None


def _with_e(stem: str) -> bool:
    """Whether a stripped stem most likely lost an 'e' (mak-ing -> make, decapitat-ed -> decapitate)."""
    if stem.endswith(E_ENDINGS):
        return True
    # A short consonant-vowel-consonant stem: hop(e), mak(e), us(e); not w, x, y at the end.
    return (
        len(stem) <= 4
        and len(stem) >= 2
        and stem[-1] not in VOWELS | set("wxy")
        and stem[-2] in VOWELS
        and (len(stem) == 2 or stem[-3] not in VOWELS)
    )


def _suffix_stems(word: str) -> list[str]:
    """Base forms by suffix rules, best guess first."""
    if word.endswith("ies") and len(word) > 4:
        return [word[:-3] + "y", word[:-1]]
    if word.endswith("ied") and len(word) > 4:
        return [word[:-3] + "y"]
    if word.endswith("ying") and len(word) > 5:
        return [word[:-4] + "ie", word[:-3]]
    if word.endswith("ves") and len(word) > 4:
        return [word[:-1], word[:-3] + "f", word[:-3] + "fe"]  # nerves; wolves etc. are irregular
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM - 1:
            stem = word[: -len(suffix)]
            undoubled = _undouble(stem)
            if undoubled:
                return [undoubled, stem]
            return [stem + "e", stem] if _with_e(stem) else [stem, stem + "e"]
    if word.endswith(("sses", "shes", "ches", "xes", "zes", "oes")) and len(word) > 4:
        return [word[:-2], word[:-1]]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > MIN_STEM:
        return [word[:-1]]
    return []


def lemmatize(word: str) -> str:
    """The most likely base form of one lower-case word: 'bioweapons' -> 'bioweapon', 'beheaded' ->
    'behead', 'stabbing' -> 'stab', 'making' -> 'make', 'bodies' -> 'body', 'children' -> 'child'."""
    word = word.lower()
    if word in IRREGULAR:
        return IRREGULAR[word]
    stems = [s for s in _suffix_stems(word) if len(s) >= MIN_STEM]
    return stems[0] if stems else word


@lru_cache(maxsize=65536)
def lemma_candidates(word: str) -> frozenset[str]:
    """The word and every base form the rules allow (used for matching, where a guess must not miss)."""
    word = word.lower()
    found = {word}
    if word in IRREGULAR:
        found.add(IRREGULAR[word])
    found.update(s for s in _suffix_stems(word) if len(s) >= MIN_STEM)
    return frozenset(found)
