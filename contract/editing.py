"""What an edit of a picture asks for, as both sides read it: the zoom factors, the pan directions,
and the ``what -> into what`` request of an edit by words.

The geometry (how far a pan moves, how a zoom shrinks the picture) is the engine's
(worker/engine/editing.py); here is only what a job spec carries and the bot offers.
"""

from __future__ import annotations

import re
from enum import StrEnum

ZOOM_FACTORS: tuple[float, ...] = (1.5, 2.0)
"""Zoom-out factors offered under a result: the picture shrinks to 1/factor of the frame."""

MAX_REGION_CHARS = 200
"""What to change is a few words ("the sky", "his hat"); CLIPSeg reads 77 tokens at most."""


class PanDirection(StrEnum):
    """Where the frame moves (the value travels in specs and callback data: never rename one)."""

    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


EDIT_SEPARATORS = ("->", "→", "=>")
"""Between what to change and what it becomes: ``the sky -> a stormy sky``."""
_SEPARATOR = re.compile("|".join(re.escape(s) for s in EDIT_SEPARATORS))


class EditRequestError(ValueError):
    """The text is not ``what -> into what``; ``key`` names the bot's message for it."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_edit_request(text: str) -> tuple[str, str]:
    """``"the sky -> a stormy sky"`` → ``("the sky", "a stormy sky")``; EditRequestError otherwise
    (no separator, or either side empty, or the region too long)."""
    parts = _SEPARATOR.split(text, maxsplit=1)
    if len(parts) != 2:
        raise EditRequestError("edit-format")
    region, prompt = (" ".join(p.split()) for p in parts)
    if not region or not prompt:
        raise EditRequestError("edit-format")
    if len(region) > MAX_REGION_CHARS:
        raise EditRequestError("edit-region-too-long")
    return region, prompt
