"""The model families, side by side: one module each (``<family value>.py``), registered here.

A family module has one ``FamilyEngine`` subclass (worker/engine/base.py) naming its
``contract.families.Family``; adding a family is that module and one line in ``ENGINE_CLASSES``.
"""

from __future__ import annotations

from contract.families import Family, parse_family
from worker.engine.base import FamilyEngine
from worker.engine.families.kandinsky3 import Kandinsky3Engine
from worker.engine.families.kandinsky5 import Kandinsky5Engine
from worker.engine.families.kandinsky5_image import Kandinsky5ImageEngine
from worker.engine.families.kandinsky22 import Kandinsky22Engine
from worker.engine.families.sdxl import SDXLEngine

ENGINE_CLASSES: tuple[type[FamilyEngine], ...] = (Kandinsky22Engine, Kandinsky3Engine, SDXLEngine,
                                                  Kandinsky5Engine, Kandinsky5ImageEngine)
"""Every family engine of this build."""

FAMILY_ENGINES: dict[Family, type[FamilyEngine]] = {cls.family: cls for cls in ENGINE_CLASSES}


def engine_class(family: Family | str) -> type[FamilyEngine]:
    """The engine class of ``family``; ValueError naming the known ones for anything else."""
    parsed = parse_family(family)
    if parsed not in FAMILY_ENGINES:
        raise ValueError(f"model family {parsed} has no engine in this build; "
                         f"it has {', '.join(FAMILY_ENGINES)}")
    return FAMILY_ENGINES[parsed]


__all__ = [
    "ENGINE_CLASSES",
    "FAMILY_ENGINES",
    "FamilyEngine",
    "Kandinsky3Engine",
    "Kandinsky5Engine",
    "Kandinsky5ImageEngine",
    "Kandinsky22Engine",
    "SDXLEngine",
    "engine_class",
]
