"""What the engine tests mean by "the same picture", and the small family jobs they compare."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from contract.families import Family
from contract.spec import JobSpec, Mode, bucket_size

if TYPE_CHECKING:
    from worker.engine import Engine

_F = TypeVar("_F")

MAX_MEAN_DIFF = 0.5
"""Mean absolute difference in 8-bit levels; identical math on the CPU gives ~0."""
MAX_PIXEL_DIFF = 3
"""Largest single-pixel difference allowed: float reassociation may flip a rounding step or two."""
WIDE = bucket_size("16:9", 512)
FAMILY_STEPS = 4
"""Steps of a family's comparison job: enough for a schedule, few enough for the CPU."""


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def assert_same_image(ours: Image.Image, theirs: Image.Image) -> None:
    """Same size, and the pixels of the engine's picture and the plain recipe's all but equal."""
    assert ours.size == theirs.size
    diff = np.abs(as_array(ours) - as_array(theirs))
    assert diff.mean() <= MAX_MEAN_DIFF, f"mean diff {diff.mean():.3f}"
    assert diff.max() <= MAX_PIXEL_DIFF, f"max diff {diff.max()}"


def family_engine(engine: Engine, family: Family, kind: type[_F]) -> _F:
    """The engine's part that runs ``family``, as its class."""
    part = engine[family]
    assert isinstance(part, kind)
    return part


def family_spec(family: Family, mode: Mode, seed: int = 11, size: tuple[int, int] = WIDE,
                **fields: Any) -> JobSpec:
    """A job of ``family`` in ``mode`` with the inputs that mode needs (input keys are placeholders)."""
    inputs: dict[str, Any] = {
        Mode.TEXT2IMAGE: {"prompt": "a red fox in the snow"},
        Mode.STICKER: {"prompt": "a happy cat"},
        Mode.BLEND: {"prompt": "a lighthouse in a storm", "inputs": ("a",), "weights": (0.4, 0.6)},
        Mode.VARIATIONS: {"inputs": ("a",)},
        Mode.INPAINT: {"prompt": "a red hat", "inputs": ("a",), "mask": "m"},
    }[mode]
    return JobSpec(**{"model": family, "mode": mode, "width": size[0], "height": size[1], "seed": seed,
                      "steps": FAMILY_STEPS, **inputs, **fields})
