"""Weighted prompts (SDXL): ``(red car:1.4)``, ``(fog)0.6``, ``word++`` / ``word--``.

Both sides import this: the bot refuses a malformed weighting before anything is queued (the same
words fail every time) and says what to fix; the worker turns the user's syntax into compel's
(``(red car:1.4)`` → ``(red car)1.4``, the rest is compel's own) and runs compel only for prompts that
weight something or are longer than the text encoder reads, so plain prompts stay the pipeline's own.
"""

from __future__ import annotations

import re
from enum import StrEnum

MIN_WEIGHT = 0.0
MAX_WEIGHT = 2.0
"""Weights outside 0-2 make the model draw noise or nothing of the word; refused with a message."""

_COLON_WEIGHT = re.compile(r"\(([^()]*?):\s*([-+]?\d*\.?\d+)\s*\)")
"""``(words:1.4)``, the AUTOMATIC1111 form users know."""
_PAREN_WEIGHT = re.compile(r"\)([-+]?\d*\.?\d+)")
"""``(words)1.4``, compel's form."""
_PLUS_MINUS = re.compile(r"(?:\w|\))([+]+|[-]+)(?=[\s,.;:!?)]|$)")
"""``word++`` / ``(words)--``: 1.1 per plus, 0.9 per minus (compel)."""
_ESCAPED = re.compile(r"\\[()]")


class WeightingProblem(StrEnum):
    """What is wrong; the bot's message key is ``weighting-<value>`` (en + ru)."""

    UNBALANCED = "unbalanced"
    WEIGHT = "weight"


class WeightingError(ValueError):
    def __init__(self, problem: WeightingProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def has_weighting(text: str) -> bool:
    """Whether ``text`` weights anything (what makes the worker use compel)."""
    plain = _ESCAPED.sub("", text)
    return bool(_COLON_WEIGHT.search(plain) or _PAREN_WEIGHT.search(plain) or _PLUS_MINUS.search(plain))


def check_weighting(text: str) -> None:
    """WeightingError for unbalanced brackets or a weight outside 0-2; nothing for a sound prompt."""
    plain = _ESCAPED.sub("", text)
    depth = 0
    for char in plain:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise WeightingError(WeightingProblem.UNBALANCED, "a ')' closes a bracket never opened")
    if depth:
        raise WeightingError(WeightingProblem.UNBALANCED, f"{depth} '(' never closed")
    for match in (*_COLON_WEIGHT.finditer(plain), *_PAREN_WEIGHT.finditer(plain)):
        weight = float(match.group(match.lastindex or 1))
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise WeightingError(WeightingProblem.WEIGHT,
                                 f"weight {weight:g} is outside {MIN_WEIGHT:g}-{MAX_WEIGHT:g}")
    for match in _PLUS_MINUS.finditer(plain):
        signs = match.group(1)
        weight = (1.1 if signs[0] == "+" else 0.9) ** len(signs)
        if weight > MAX_WEIGHT:
            raise WeightingError(WeightingProblem.WEIGHT,
                                 f"{signs} weighs {weight:.2f}, over {MAX_WEIGHT:g}")


def to_compel(text: str) -> str:
    """The user's syntax in compel's: ``(words:1.4)`` → ``(words)1.4``; the rest is compel's already."""
    return _COLON_WEIGHT.sub(lambda m: f"({m.group(1)}){m.group(2)}", text)
