"""The generation engine: a JobSpec in, images out, for every mode of every family it holds.

A plain library (no Redis, no Telegram): the worker, the CLI and the tests all call
``Engine.load(settings).generate(spec, images, mask)``. Each family (worker/engine/families/) has
its own resident models; the job's ``spec.model`` picks the one that runs it. Which families an
engine holds is worker/engine/selection.py's decision (asked for, or every one that fits).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import PIL.Image

from contract.families import DEFAULT_FAMILY, Family, describe_family, parse_family
from contract.loras import LoraStyle
from contract.spec import JobSpec, Mode
from worker.engine.base import (
    CancelCheck,
    FamilyEngine,
    GenerationOutput,
    InputRejected,
    JobCancelled,
    ProgressCallback,
    SharedModels,
    img2img_steps,
    resolve_device,
    resolve_dtype,
)
from worker.engine.families import FAMILY_ENGINES
from worker.engine.loras import offer_catalogue
from worker.engine.preview import PreviewCallback
from worker.engine.selection import Selection, select_families
from worker.engine.settings import EngineSettings

logger = logging.getLogger(__name__)

__all__ = [
    "Engine",
    "FamilyNotHeld",
    "GenerationOutput",
    "InputRejected",
    "JobCancelled",
    "img2img_steps",
]


class FamilyNotHeld(LookupError):
    """A job for a family this engine does not hold: a routing mistake (queues are per family), not
    bad input, so it is an engine error (retried, then reported) and never a silent fallback."""


class Engine:
    """The families one worker holds, behind one ``generate``. Calls are serialised."""

    def __init__(self, settings: EngineSettings, families: Sequence[Family | str] | None = None) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        requested = None if families is None else [parse_family(f) for f in families]
        self.selection: Selection = select_families(settings, self.device, FAMILY_ENGINES, requested)
        self.shared = SharedModels(settings)
        self.families: dict[Family, FamilyEngine] = {
            family: FAMILY_ENGINES[family](settings, self.shared) for family in self.selection.held
        }
        self._run_lock = threading.Lock()
        for family, why in self.selection.skipped.items():
            logger.info("engine: %s not held: %s", describe_family(family).title, why)
        if settings.lora_dir is not None:
            offer_catalogue(settings.lora_dir, self.families)

    @classmethod
    def load(cls, settings: EngineSettings, families: Sequence[Family | str] | None = None) -> Engine:
        """The engine, with every model of every held family loaded first when ``preload`` is on
        (then the warm-up jobs when ``compile`` is on)."""
        engine = cls(settings, families)
        if settings.preload:
            for family_engine in engine.families.values():
                family_engine.load_all()
            if settings.compile:
                for family_engine in engine.families.values():
                    family_engine.warmup(settings.warmup_sizes)
        return engine

    @property
    def held(self) -> tuple[Family, ...]:
        """The families this engine runs, in contract.families order."""
        return tuple(self.families)

    def __getitem__(self, family: Family | str) -> FamilyEngine:
        parsed = parse_family(family)
        if parsed not in self.families:
            raise FamilyNotHeld(f"this engine holds {', '.join(self.families)}, not {parsed}")
        return self.families[parsed]

    @property
    def warmup_timings(self) -> dict[str, float]:
        """Seconds of each start-up warm-up job, "<mode> <WxH>" (prefixed by the family but for 2.2)."""
        out: dict[str, float] = {}
        for family, family_engine in self.families.items():
            prefix = "" if family is DEFAULT_FAMILY else f"{family}:"
            out.update({prefix + key: seconds for key, seconds in family_engine.warmup_timings.items()})
        return out

    def lora_styles(self) -> dict[Family, tuple[LoraStyle, ...]]:
        """The LoRA styles each held family loaded (what this worker publishes for /settings)."""
        return {family: tuple(e.loras.loaded.values()) for family, e in self.families.items()
                if e.loras.loaded}

    def lora_refused(self) -> list[str]:
        """The adapter files this worker refused (their reasons are in its log), for /workers."""
        return [file for e in self.families.values() for file in e.loras.refused]

    @property
    def model_ids(self) -> dict[str, dict[str, str]]:
        """Where each held family's models come from."""
        return {family: dict(e.model_ids) for family, e in self.families.items()}

    def warmup(self, sizes: Sequence[str], modes: Sequence[Mode] | None = None) -> dict[str, float]:
        for family_engine in self.families.values():
            family_modes = None if modes is None else [m for m in modes if m in family_engine.recipes]
            family_engine.warmup(sizes, family_modes)
        return self.warmup_timings

    def generate(
        self,
        spec: JobSpec,
        images: Sequence[PIL.Image.Image] = (),
        mask: PIL.Image.Image | None = None,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        on_preview: PreviewCallback | None = None,
        preview_every: int = 0,
    ) -> GenerationOutput:
        """Run one job on its family's models. Input problems raise InputRejected before any model runs.
        ``on_preview``: offered a live preview every ``preview_every`` decoder steps (0: none)."""
        if not isinstance(spec, JobSpec):
            raise InputRejected(f"spec must be a contract.spec.JobSpec, got {type(spec).__name__}")
        family_engine = self[spec.model]
        with self._run_lock:
            return family_engine.generate(spec, images, mask, on_progress=on_progress,
                                          should_cancel=should_cancel, on_preview=on_preview,
                                          preview_every=preview_every)
