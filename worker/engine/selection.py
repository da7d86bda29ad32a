"""Which model families an engine holds: the ones asked for, or by default every family that fits.

"Fits" is decided in contract.families order (Kandinsky 2.2 first), adding each family's device
memory at its placement (``KANDINSKY_K3_PLACEMENT``, ``KANDINSKY_CPU_OFFLOAD`` for 2.2) to the ones
already taken, and taking it while the sum stays within the GPU's total memory:

* public checkpoints: the memory written in contract.families (their float16 weights counted from
  the public configs, plus ``RUNTIME_ALLOWANCE_GIB``);
* a local bundle (``KANDINSKY_MODEL_DIR``): the weight files of the family's folders as they are
  on disk, scaled to the placement, plus the same allowance. A family whose folder the bundle does
  not have at all is not held (an incomplete folder stops the worker: it names the missing file);
* on the CPU every family fits (development and tests; host memory is not checked).

An explicit list (``WORKER_FAMILIES``, ``--model``) is loaded as asked; one that does not fit is
loaded anyway with a warning, an unknown name or a missing folder is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from contract.families import FAMILIES, GIB, RUNTIME_ALLOWANCE_GIB, Family, describe_family
from worker.engine.base import FamilyEngine, ModelFolderError
from worker.engine.settings import EngineSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    held: tuple[Family, ...]
    """The families to load, in contract.families order."""
    skipped: dict[Family, str] = field(default_factory=dict)
    """Why each other family is not held (one line for the log)."""


def device_memory_gib(device: str) -> float | None:
    """Total memory of the CUDA device ``device``; None for the CPU (no limit applied)."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    index = torch.device(device).index
    return torch.cuda.get_device_properties(0 if index is None else index).total_memory / GIB


def memory_need_gib(engine_class: type[FamilyEngine], settings: EngineSettings) -> float:
    """Device memory the family needs at its configured placement (see the module's docstring)."""
    description = describe_family(engine_class.family)
    placement = engine_class.placement_of(settings)
    if settings.model_dir is None:
        return description.memory_gib(placement)
    on_disk = engine_class.local_weight_bytes(Path(settings.model_dir)) / GIB
    share = description.device_weights_gib(placement) / description.weights_gib
    return round(on_disk * share + RUNTIME_ALLOWANCE_GIB, 2)


def select_families(
    settings: EngineSettings,
    device: str,
    engines: dict[Family, type[FamilyEngine]],
    requested: Sequence[Family] | None = None,
) -> Selection:
    """The families an engine of ``settings`` on ``device`` holds (see the module's docstring)."""
    if settings.model_dir is not None and not Path(settings.model_dir).is_dir():
        raise ModelFolderError(f"model_dir {settings.model_dir} does not exist or is not a directory")
    if requested is not None:
        held = tuple(dict.fromkeys(requested))
        if not held:
            raise ValueError("no model family requested; name at least one (WORKER_FAMILIES, --model)")
        for family in held:
            if family not in engines:
                raise ValueError(f"model family {family} has no engine in this build")
            root = None if settings.model_dir is None else Path(settings.model_dir)
            if root is not None and not engines[family].has_local_folder(root):
                raise ModelFolderError(engines[family].missing_folder_message(root))
        _warn_if_too_big(settings, device, engines, held)
        return Selection(held=held)
    capacity = device_memory_gib(device)
    taken: list[Family] = []
    skipped: dict[Family, str] = {}
    used = 0.0
    for description in FAMILIES:
        family = description.family
        engine_class = engines.get(family)
        if engine_class is None:
            skipped[family] = "no engine in this build"
            continue
        if settings.model_dir is not None and not engine_class.has_local_folder(Path(settings.model_dir)):
            skipped[family] = f"{settings.model_dir} has no folder for it"
            continue
        need = memory_need_gib(engine_class, settings)
        if capacity is not None and used + need > capacity:
            skipped[family] = (f"needs {need:.1f} GiB at {engine_class.placement_of(settings)}, "
                               f"{capacity - used:.1f} of {capacity:.1f} GiB left")
            continue
        used += need
        taken.append(family)
    if not taken:
        reasons = "; ".join(f"{f}: {why}" for f, why in skipped.items())
        raise ModelFolderError(f"no model family fits this worker ({reasons})")
    return Selection(held=tuple(taken), skipped=skipped)


def _warn_if_too_big(settings: EngineSettings, device: str, engines: dict[Family, type[FamilyEngine]],
                     held: tuple[Family, ...]) -> None:
    capacity = device_memory_gib(device)
    if capacity is None:
        return
    need = sum(memory_need_gib(engines[f], settings) for f in held)
    if need > capacity:
        log.warning("families %s need about %.1f GiB, the device has %.1f GiB: loading them as asked",
                    ", ".join(held), need, capacity)
