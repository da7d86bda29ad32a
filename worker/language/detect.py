"""Which language a prompt is in, told by its script: cheap, deterministic, and right where it matters.

Kandinsky's text encoders read English. Prompts in Latin script are read as English: telling
English from German or Spanish needs a language-identification model, and an English prompt with
"café" or a painter's name must never be touched. Any other script's letters mean the prompt is
not English; the script names the language (Cyrillic is refined by the letters each language
has and Russian lacks: Ukrainian і ї є ґ, Belarusian ў, Serbian ђ ћ џ, Kazakh ә ғ қ …).
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from contract.language import ENGLISH, UNDETERMINED

MIN_SCRIPT_LETTERS = 2
"""Letters of a non-Latin script that make a prompt non-English: one stray symbol (π, µ) does not."""

_SCRIPTS: tuple[tuple[str, int, int], ...] = (
    ("Cyrl", 0x0400, 0x052F),
    ("Grek", 0x0370, 0x03FF),
    ("Armn", 0x0530, 0x058F),
    ("Hebr", 0x0590, 0x05FF),
    ("Arab", 0x0600, 0x06FF),
    ("Arab", 0x0750, 0x077F),
    ("Deva", 0x0900, 0x097F),
    ("Thai", 0x0E00, 0x0E7F),
    ("Geor", 0x10A0, 0x10FF),
    ("Hang", 0x1100, 0x11FF),
    ("Kana", 0x3040, 0x30FF),
    ("Hani", 0x3400, 0x4DBF),
    ("Hani", 0x4E00, 0x9FFF),
    ("Hang", 0xAC00, 0xD7AF),
)
_SCRIPT_LANGUAGE = {
    "Grek": "el", "Armn": "hy", "Hebr": "he", "Arab": "ar", "Deva": "hi", "Thai": "th", "Geor": "ka",
    "Hang": "ko", "Kana": "ja", "Hani": "zh",
}
_KAZAKH = frozenset("әғқңөұүһӘҒҚҢӨҰҮҺ")
_MACEDONIAN = frozenset("ѓќѕЃЌЅ")
_SERBIAN = frozenset("ђћџљњјЂЋЏЉЊЈ")
_BELARUSIAN = frozenset("ўЎ")
_UKRAINIAN = frozenset("ґєїҐЄЇ")
_RUSSIAN_ONLY = frozenset("ыэъёЫЭЪЁ")


def _script(ch: str) -> str | None:
    code = ord(ch)
    for name, start, end in _SCRIPTS:
        if start <= code <= end:
            return name
    if unicodedata.category(ch).startswith("L"):
        return "Latn"  # Latin and the rest of the alphabetic letters read as Latin here
    return None


def _cyrillic_language(letters: set[str]) -> str:
    if letters & _KAZAKH:
        return "kk"
    if letters & _MACEDONIAN:
        return "mk"
    if letters & _SERBIAN:
        return "sr"
    if letters & _BELARUSIAN or ({"і", "І"} & letters and {"ы", "Ы"} & letters):
        return "be"
    if letters & _UKRAINIAN or ({"і", "І"} & letters and not letters & _RUSSIAN_ONLY):
        return "uk"
    return "ru"


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language: "en" for Latin script, "und" without letters."""
    counts: Counter[str] = Counter()
    for ch in text:
        script = _script(ch)
        if script is not None:
            counts[script] += 1
    if not counts:
        return UNDETERMINED
    others = [(n, s) for s, n in counts.items() if s != "Latn"]
    if not others:
        return ENGLISH
    n, script = max(others)
    if n < MIN_SCRIPT_LETTERS and n < counts.get("Latn", 0):
        return ENGLISH
    if script == "Cyrl":
        return _cyrillic_language(set(text))
    if script == "Hani" and counts.get("Kana"):
        return "ja"  # Japanese mixes kanji with kana; Chinese has no kana
    return _SCRIPT_LANGUAGE[script]
