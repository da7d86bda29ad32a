"""What every model family's engine shares: the job's run state, progress and cancellation, the input
checks, the sticker cut-out, device and dtype, model-folder checks, and the ``@recipe`` registry.

A family is one module in worker/engine/families/ with a :class:`FamilyEngine` subclass: it names its
``family`` (contract.families), loads its models, and has one method marked ``@recipe(Mode.X)`` for
each mode whose description (contract.modes) lists the family. ``FamilyEngine.generate`` does the
rest the same way for all: inputs checked before any model runs, one generator per image, progress
and cancellation at every step, per-stage timings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import PIL.Image
import torch

from contract.editing import ZOOM_FACTORS, PanDirection
from contract.families import Family, Placement, describe_family
from contract.modes import describe, served_by
from contract.spec import JobSpec, Mode, images_needed
from worker.engine.images import MASK_THRESHOLD, crop_centre, sticker_from_cutout
from worker.engine.loras import LoraAdapters
from worker.engine.preview import PreviewCallback
from worker.engine.settings import EngineSettings, FamilyOptions

if TYPE_CHECKING:
    from worker.engine.animation.encode import EncodedVideo

logger = logging.getLogger(__name__)

MIN_INPUT_SIDE = 64
"""Smaller inputs carry too little for CLIP (224 px) or the depth model to see anything."""

MAX_INPUT_SIDE = 8192
"""Bigger inputs are a decoding accident; the bot normalises photos well below this."""

SEED_MODULUS = 2**32

WARMUP_STEPS = 2
"""Enough to trace and compile every graph once (the prior needs two); the images are discarded."""

WARMUP_PROMPT = "warm-up"

DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
}

ProgressCallback = Callable[[str, int, int], None]
CancelCheck = Callable[[], bool]


class JobCancelled(Exception):
    """``should_cancel()`` turned true; raised at the next denoising step."""


class InputRejected(ValueError):
    """The engine's own input checks refused the job's inputs: the same inputs fail every time, so
    the job is not retried. Any other exception from the engine is an engine error."""


class StyleUnavailable(InputRejected):
    """A job names a LoRA style this worker did not load (removed from the catalogue, or refused at start)."""


class ModelFolderError(FileNotFoundError):
    """A family's model folder is missing or incomplete; the message names what is missing."""


@dataclass
class GenerationOutput:
    images: list[PIL.Image.Image]
    seeds: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    model_ids: dict[str, str] = field(default_factory=dict)
    family: str = ""
    """The family that made the images (contract.families)."""
    prompt_truncated: bool = False
    """The prompt (with its style and mode suffix) was longer than the family's text encoder reads."""
    video: EncodedVideo | None = None
    """An animation's MP4 (worker/engine/animation), encoded as its frames came; None for images."""


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto, {', '.join(DTYPES)}")
    return dtype


def img2img_steps(steps: int, strength: float) -> int:
    """Steps diffusers' img2img pipelines actually run for ``strength`` (their ``get_timesteps``)."""
    return min(int(steps * strength), steps)


LatentsToPixels = Callable[[torch.Tensor], Any]
"""A family's cheap picture of a stage's latents (worker/engine/preview.py): uint8 H×W×3."""


class StepProgress:
    """Counts steps of the current stage, reports them and honours cancellation at each one; every
    ``preview_every`` steps of a stage begun with a ``preview`` it offers ``on_preview`` a picture."""

    def __init__(self, on_progress: ProgressCallback | None, should_cancel: CancelCheck | None,
                 on_preview: PreviewCallback | None = None, preview_every: int = 0) -> None:
        self._on_progress = on_progress
        self._should_cancel = should_cancel
        self._on_preview = on_preview
        self._preview_every = preview_every
        self._preview: LatentsToPixels | None = None
        self.stage = ""
        self.step = 0
        self.total = 0

    def check(self) -> None:
        if self._should_cancel is not None and self._should_cancel():
            raise JobCancelled(f"cancelled during {self.stage or 'setup'} at step {self.step}/{self.total}")

    def begin(self, stage: str, total: int, preview: LatentsToPixels | None = None) -> None:
        """A new stage of ``total`` steps; ``preview``: how to picture its latents (decoders)."""
        self.stage, self.step, self.total = stage, 0, total
        self._preview = preview
        self.check()

    def tick(self) -> None:
        self.step += 1
        self.check()
        if self._on_progress is not None:
            self._on_progress(self.stage, self.step, self.total)

    def offer_preview(self, latents: torch.Tensor | None) -> None:
        """Every ``preview_every`` steps (never at the last: the image follows), hand the sink a
        render of these latents; the sink calls it only if it wants a picture now, so a skipped
        preview costs nothing on the device."""
        preview, sink, every = self._preview, self._on_preview, self._preview_every
        if preview is None or sink is None or every <= 0 or latents is None:
            return
        if self.step % every or self.step >= self.total:
            return

        def render() -> Any:
            return preview(latents)

        sink(self.stage, self.step, self.total, render)

    def on_step_end(
        self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """diffusers' ``callback_on_step_end``: returns the tensors untouched (no host copies but
        the few kilobytes of a preview, when one is due)."""
        self.tick()
        self.offer_preview(callback_kwargs.get("latents"))
        return callback_kwargs

    def legacy_callback(self, step: int, timestep: Any, latents: torch.Tensor) -> None:
        """For pipelines that only take ``callback``/``callback_steps`` (the controlnet img2img one)."""
        self.tick()
        self.offer_preview(latents)


@contextmanager
def count_forward_calls(module: torch.nn.Module, progress: StepProgress) -> Iterator[None]:
    """Tick once per forward of ``module``: for step loops without a step callback in which each
    step is exactly one forward of ``module`` (CFG batched)."""
    handle = module.register_forward_hook(lambda _module, _args, _output: progress.tick())
    try:
        yield
    finally:
        handle.remove()


@dataclass(frozen=True)
class Run:
    """One job's state, built once in ``generate``: every mode recipe needs the same six things,
    and one value keeps their signatures from drifting apart. ``timings`` is filled in place."""

    spec: JobSpec
    images: list[PIL.Image.Image]
    mask: PIL.Image.Image | None
    generators: list[torch.Generator]
    progress: StepProgress
    timings: dict[str, float]
    outputs: dict[str, Any] = field(default_factory=dict)
    """What a recipe makes besides its images: an animation's ``video`` (EncodedVideo)."""
    cropped: list[bool] = field(default_factory=list)
    """Holds True once the pictures were cut to the spec's exact aspect ratio
    (``FamilyEngine.exact_ratio``); a list because the run itself is frozen."""

    @property
    def n(self) -> int:
        """Images in the batch: one generator each."""
        return len(self.generators)


# --- models every family may use -----------------------------------------------------------------


def local_onnx_session(path: Path) -> Any:
    """rembg's custom U2-Net session on an .onnx anywhere on disk.

    rembg >= 2.0.80 only accepts custom models under its own home directory; the bundle lives
    wherever the operator put it, so the path check is replaced by an existence check.
    """
    import onnxruntime as ort
    from rembg.sessions.u2net_custom import U2netCustomSession

    if not path.is_file():
        raise FileNotFoundError(f"rembg model {path} does not exist")

    class BundleSegmentationSession(U2netCustomSession):  # type: ignore[misc]
        @classmethod
        def download_models(cls, *args: Any, **kwargs: Any) -> str:
            return str(Path(kwargs["model_path"]).resolve())

    return BundleSegmentationSession("u2net_custom", ort.SessionOptions(), model_path=str(path))


def rembg_source(settings: EngineSettings) -> str:
    """The background-removal model: the bundle's ``rembg/*.onnx``, or ``rembg_model`` (a name or a path)."""
    if settings.model_dir is None:
        return settings.rembg_model
    root = Path(settings.model_dir)
    onnx_files = sorted((root / "rembg").glob("*.onnx"))
    if not onnx_files:
        raise ModelFolderError(f"model_dir {root} has no rembg/*.onnx segmentation model")
    return str(onnx_files[0])


class SharedModels:
    """Models more than one family uses, loaded once per process (the rembg session of stickers)."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._rembg: Any = None
        self._rembg_source: str | None = None

    @property
    def rembg_source(self) -> str:
        if self._rembg_source is None:
            self._rembg_source = rembg_source(self.settings)
        return self._rembg_source

    @property
    def rembg_loaded(self) -> bool:
        return self._rembg is not None

    def rembg_session(self) -> Any:
        with self._lock:
            if self._rembg is None:
                threads = torch.get_num_threads()
                from rembg import new_session  # heavy import; only sticker workers need it

                # Importing rembg starts numba (through pymatting), which sets torch's thread count
                # to the number of cores, undoing the process's own choice (OMP_NUM_THREADS).
                torch.set_num_threads(threads)
                model = self.rembg_source
                local = model.endswith(".onnx")
                self._rembg = local_onnx_session(Path(model)) if local else new_session(model)
            return self._rembg


# --- model folders ---------------------------------------------------------------------------------

_WEIGHT_NAMES = {"diffusers": "diffusion_pytorch_model", "transformers": "model"}
"""Weight file stem of a model saved by each library."""
_CONFIG_NAMES = {
    "scheduler": "scheduler_config.json",
    "tokenizer": "tokenizer_config.json",
    "tokenizer_2": "tokenizer_config.json",  # SDXL's second CLIP tokenizer
    "image_processor": "preprocessor_config.json",
}
"""Config file of the non-model parts of a pipeline, by component name."""


def _weights_present(folder: Path, stem: str, variant: str | None) -> bool:
    names = [f"{stem}.safetensors", f"{stem}.safetensors.index.json", f"{stem}.bin"]
    if variant:
        names = [f"{stem}.{variant}.safetensors", f"{stem}.{variant}.safetensors.index.json", *names]
    return any((folder / name).is_file() for name in names)


def missing_model_files(folder: Path, *, variant: str | None = None) -> list[str]:
    """What a saved diffusers pipeline (``model_index.json``) or transformers model (``config.json``)
    folder lacks for ``from_pretrained``; empty when complete. Read from the folder's own index, so
    it holds for any family's layout."""
    if not folder.is_dir():
        return [str(folder) + "/"]
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        if not (folder / "config.json").is_file():
            return [str(index_path)]
        stem = _WEIGHT_NAMES["transformers"]
        return [] if _weights_present(folder, stem, variant) else [str(folder / f"{stem}.safetensors")]
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{index_path} (unreadable: {exc})"]
    missing: list[str] = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[0] is None:
            continue
        library = spec[0]
        sub = folder / name
        if name in _CONFIG_NAMES:
            if not (sub / _CONFIG_NAMES[name]).is_file():
                missing.append(str(sub / _CONFIG_NAMES[name]))
            continue
        weights = _WEIGHT_NAMES.get(library)
        if weights is None:
            continue
        stem = weights
        if not (sub / "config.json").is_file():
            missing.append(str(sub / "config.json"))
        if not _weights_present(sub, stem, variant):
            suffix = f".{variant}.safetensors" if variant else ".safetensors"
            missing.append(str(sub / f"{stem}{suffix}"))
    return missing


def require_complete(folder: Path, what: str, *, variant: str | None = None) -> None:
    """ModelFolderError naming every missing file of ``folder`` (``what`` says whose folder it is)."""
    missing = missing_model_files(folder, variant=variant)
    if missing:
        raise ModelFolderError(f"{what}: model folder incomplete, missing {', '.join(missing)}")


def folder_weight_bytes(folder: Path) -> int:
    """Bytes of the weight files under ``folder`` (what the memory check counts for a local bundle)."""
    weights = (p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())
    return sum(p.stat().st_size for p in weights)


# --- the family interface --------------------------------------------------------------------------

Recipe = Callable[[Any, Run], list[PIL.Image.Image]]
_R = TypeVar("_R", bound=Recipe)


def recipe(*modes: Mode) -> Callable[[_R], _R]:
    """Mark a FamilyEngine method as the function that runs ``modes`` (one function per mode)."""

    def mark(function: _R) -> _R:
        function._recipe_modes = modes  # type: ignore[attr-defined]
        return function

    return mark


class FamilyEngine(ABC):
    """One model family's resident models and its mode recipes. Calls are serialised.

    Subclasses set ``family``, implement ``sources`` (where each model comes from; refuse an
    incomplete folder there), ``load_all`` (every model, for a worker that preloads), ``count_tokens``
    (what the family's tokenizer makes of a prompt) and one ``@recipe`` per mode they serve.
    """

    family: ClassVar[Family]
    recipes: ClassVar[dict[Mode, Recipe]] = {}
    """Each mode's function, collected from the ``@recipe`` methods when the class is created."""
    warmup_modes: ClassVar[tuple[Mode, ...]] = (Mode.TEXT2IMAGE,)
    """One job per compiled graph family at start (with ``compile``); the rest reuse their graphs."""
    local_folders: ClassVar[tuple[str, ...]] = ()
    """The folders of a local bundle (``KANDINSKY_MODEL_DIR``) this family reads."""
    options_class: ClassVar[type[FamilyOptions]] = FamilyOptions
    """The family's own settings (its ``KANDINSKY_<FAMILY>_*`` variables)."""

    @classmethod
    def options_of(cls, settings: EngineSettings) -> Any:
        """The family's own settings: its variables, under what ``settings.family_options`` sets for it."""
        return cls.options_class(**settings.family_options.get(cls.family, {}))

    @classmethod
    def placement_of(cls, settings: EngineSettings) -> Placement:
        """Where ``settings`` put this family's models: its options' ``placement``, or the first of
        its placements."""
        placement = getattr(cls.options_of(settings), "placement", None)
        return Placement(placement) if placement else describe_family(cls.family).placements[0]

    @classmethod
    def public_ids(cls, settings: EngineSettings) -> tuple[str, ...]:
        """The hub repositories it loads from (what ``python -m worker prefetch`` downloads)."""
        return ()

    shared_folders: ClassVar[tuple[str, ...]] = ()
    """Folders of its second and later hub repositories that it never reads (it hands those pipelines
    the first one's models): ``python -m worker prefetch`` skips them."""

    @classmethod
    def has_local_folder(cls, root: Path) -> bool:
        """Whether the bundle at ``root`` holds this family at all (any of its folders)."""
        return any((root / name).exists() for name in cls.local_folders)

    @classmethod
    def missing_folder_message(cls, root: Path) -> str:
        return (f"model_dir {root} has no {describe_family(cls.family).title} folder "
                f"({', '.join(cls.local_folders)})")

    @classmethod
    def local_weight_bytes(cls, root: Path) -> int:
        """Bytes of this family's weight files in the bundle at ``root``."""
        return sum(folder_weight_bytes(root / name) for name in cls.local_folders if (root / name).is_dir())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        recipes: dict[Mode, Recipe] = {}
        for klass in reversed(cls.__mro__):
            own: set[Mode] = set()
            for attribute in vars(klass).values():
                for mode in getattr(attribute, "_recipe_modes", ()):
                    if mode in own:
                        raise ValueError(f"mode {mode} has two engine functions in {klass.__name__}")
                    own.add(mode)
                    recipes[mode] = attribute
        cls.recipes = recipes

    @classmethod
    def recipe_gaps(cls) -> tuple[set[Mode], set[Mode]]:
        """(modes the family's description lists without a recipe, recipes of modes it does not list)."""
        served = set(served_by(cls.family))
        return served - set(cls.recipes), set(cls.recipes) - served

    def __init__(self, settings: EngineSettings, shared: SharedModels | None = None) -> None:
        missing, extra = self.recipe_gaps()
        if missing or extra:
            raise TypeError(f"{type(self).__name__}: no recipe for {sorted(missing)}; "
                            f"recipes for modes its family does not serve: {sorted(extra)}")
        self.settings = settings
        self.options = self.options_of(settings)
        self.placement = self.placement_of(settings)
        """Read once: the job path asks it on every job (``_ready``)."""
        self.description = describe_family(self.family)
        self.shared = shared if shared is not None else SharedModels(settings)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self._torch_dtype = DTYPES[self.dtype]
        self._load_lock = threading.RLock()
        self._run_lock = threading.Lock()
        self._offloaded: Any = None
        """With model offload: the pipeline whose hooks are on the shared modules now."""
        self.warmup_timings: dict[str, float] = {}
        """Seconds each warm-up job took at load (compile time when ``compile`` is on)."""
        self.loras = LoraAdapters(self.family)
        """The operator's LoRA styles for this family (offered by the Engine; loaded by a family whose
        description takes them, into its pipeline)."""
        self.model_ids = self.sources()

    # --- what each family provides ---------------------------------------------------------------

    @abstractmethod
    def sources(self) -> dict[str, str]:
        """Where each model comes from (ids or local folders); ModelFolderError when incomplete."""

    @abstractmethod
    def load_all(self) -> None:
        """Load every model this family uses, so no job waits for a load."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the family's text encoder would get for ``text`` (special tokens included)."""

    def warmup_spec(self, mode: Mode, width: int, height: int) -> JobSpec:
        """A small job of ``mode`` for the warm-up (blob keys are never read)."""
        needed, needs = images_needed(mode), describe(mode)
        return JobSpec(
            model=self.family, mode=mode, prompt=WARMUP_PROMPT, width=width, height=height,
            steps=WARMUP_STEPS, prior_steps=WARMUP_STEPS, inputs=(WARMUP_PROMPT,) * needed,
            mask=WARMUP_PROMPT if needs.mask else None, region=WARMUP_PROMPT if needs.region else "",
            zoom=ZOOM_FACTORS[0] if needs.zoom else None, pan=PanDirection.LEFT if needs.pan else None,
        )

    # --- shared behaviour --------------------------------------------------------------------------

    def warmup(self, sizes: Sequence[str], modes: Sequence[Mode] | None = None) -> dict[str, float]:
        """Run one small job per mode and size so compiled graphs exist before the first user.

        Each bucket compiles its own graphs (shapes are fixed); batches of more than one image
        compile on first use. Returns (and keeps in ``warmup_timings``) seconds per job.
        """
        from worker.engine.settings import parse_size

        grey = PIL.Image.new("RGB", (MIN_INPUT_SIDE * 4, MIN_INPUT_SIDE * 4), (128, 128, 128))
        mask = PIL.Image.new("L", grey.size, 0)
        mask.paste(255, (0, 0, grey.width // 2, grey.height // 2))
        for size in sizes:
            width, height = parse_size(size)
            for mode in modes if modes is not None else self.warmup_modes:
                spec = self.warmup_spec(mode, width, height)
                started = time.perf_counter()
                self.generate(spec, [grey] * images_needed(mode), mask if spec.mask else None)
                took = time.perf_counter() - started
                self.warmup_timings[f"{mode} {size}"] = took
                logger.info("engine warm-up: %s %s %s in %.1fs", self.family, mode, size, took)
        return dict(self.warmup_timings)

    def prompt_truncated(self, spec: JobSpec) -> bool:
        """Whether the text encoder cuts the prompt the model sees (style and mode suffix included)."""
        if not describe(spec.mode).prompt:
            return False
        return self.count_tokens(spec.effective_prompt) > self.description.prompt_tokens

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
        """Run one job. Input problems raise InputRejected before any model runs. ``on_preview``
        is offered a picture of the latents every ``preview_every`` decoder steps (0: never)."""
        inputs = self._check_inputs(spec, images, mask)
        if spec.model is not self.family:
            raise InputRejected(f"job {spec.job_id} is for {spec.model}, this engine runs {self.family}")
        missing = self.loras.missing(spec.loras)
        if missing:
            raise StyleUnavailable(f"LoRA style(s) not loaded on this worker: {', '.join(missing)}")
        progress = StepProgress(on_progress, should_cancel, on_preview, preview_every)
        seeds = [(spec.seed + i) % SEED_MODULUS for i in range(spec.num_images)]
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with self._run_lock:
            progress.check()
            # One generator per image on the model device: image i is reproducible alone,
            # and no random numbers cross from host to device inside the step loops.
            generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
            run = Run(spec, inputs, mask, generators, progress, timings)
            result = self.exact_ratio(run, type(self).recipes[spec.mode](self, run))
            truncated = self.prompt_truncated(spec)
        timings["total"] = time.perf_counter() - started
        logger.info(
            "job %s chat %s: %s %s %dx%d x%d seed %d in %.2fs%s",
            spec.job_id,
            spec.chat_id,
            self.family,
            spec.mode,
            spec.width,
            spec.height,
            spec.num_images,
            spec.seed,
            timings["total"],
            " (prompt cut)" if truncated else "",
        )
        return GenerationOutput(images=result, seeds=seeds, timings=timings, model_ids=dict(self.model_ids),
                                family=self.family.value, prompt_truncated=truncated,
                                video=run.outputs.get("video"))

    def _check_inputs(
        self, spec: JobSpec, images: Sequence[PIL.Image.Image], mask: PIL.Image.Image | None
    ) -> list[PIL.Image.Image]:
        if not isinstance(spec, JobSpec):
            raise InputRejected(f"spec must be a contract.spec.JobSpec, got {type(spec).__name__}")
        needed = images_needed(spec.mode)
        if len(images) != needed:
            raise InputRejected(f"mode {spec.mode} needs {needed} input image(s), got {len(images)}")
        rgb: list[PIL.Image.Image] = []
        for i, image in enumerate(images):
            if not isinstance(image, PIL.Image.Image):
                raise InputRejected(f"input image {i} is a {type(image).__name__}, not a PIL image")
            if min(image.size) < MIN_INPUT_SIDE:
                raise InputRejected(
                    f"input image {i} is {image.width}x{image.height}; "
                    f"each side must be at least {MIN_INPUT_SIDE} px"
                )
            if max(image.size) > MAX_INPUT_SIDE:
                raise InputRejected(
                    f"input image {i} is {image.width}x{image.height}; "
                    f"each side must be at most {MAX_INPUT_SIDE} px"
                )
            rgb.append(image.convert("RGB"))
        if describe(spec.mode).mask:
            if mask is None:
                raise InputRejected(f"mode {spec.mode} needs a mask (white = repaint)")
            if not isinstance(mask, PIL.Image.Image):
                raise InputRejected(f"mask is a {type(mask).__name__}, not a PIL image")
            if mask.size != images[0].size:
                raise InputRejected(
                    f"mask is {mask.width}x{mask.height} but the image is "
                    f"{images[0].width}x{images[0].height}; they must match"
                )
            brightest = mask.convert("L").getextrema()[1]
            if not isinstance(brightest, int) or brightest < MASK_THRESHOLD:
                raise InputRejected(
                    "mask has no white pixels: nothing to repaint (white = repaint, black = keep)"
                )
        elif mask is not None:
            raise InputRejected(f"mode {spec.mode} takes no mask")
        # Step counts (prior_steps ≥ 2, steps × strength ≥ 1) are the spec's own checks (contract.spec).
        return rgb

    @contextmanager
    def _stage(self, timings: dict[str, float], name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()  # once per stage, outside the step loops: honest timings
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    def _negative(self, spec: JobSpec) -> str | None:
        return spec.negative_prompt.strip() or None

    # --- loading helpers the families share ----------------------------------------------------------

    def _resident(self, name: str, build: Callable[[], Any]) -> Any:
        """The model kept in ``self.<name>``, made by ``build`` on first use (progress bars off) and
        resident from then on; under the load lock, so two threads never load one model twice."""
        with self._load_lock:
            if getattr(self, name) is None:
                made = build()
                if hasattr(made, "set_progress_bar_config"):
                    made.set_progress_bar_config(disable=True)
                setattr(self, name, made)
            return getattr(self, name)

    def _on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    def _place_or_defer(self, pipe: Any) -> Any:
        """A freshly loaded pipeline on the device, or, with model offload on a GPU, left where it is
        for :meth:`_ready` to hook."""
        if self.placement is Placement.MODEL_OFFLOAD:
            if self._on_gpu():
                return pipe
            logger.warning("%s model offload ignored: models already live on %s", self.family, self.device)
        return pipe.to(self.device)

    def _ready(self, pipe: Any) -> Any:
        """Model offload hooks the shared modules for one pipeline at a time: the one about to run."""
        if self.placement is Placement.MODEL_OFFLOAD and self._on_gpu() and self._offloaded is not pipe:
            pipe.enable_model_cpu_offload(device=self.device)
            self._offloaded = pipe
        return pipe

    @property
    def _cpu_encoder_dtype(self) -> torch.dtype:
        """A text encoder kept on the CPU (``text_encoder_cpu``) runs in bfloat16 where the GPU runs
        float16: CPUs have no fast float16."""
        return torch.bfloat16 if self._torch_dtype is torch.float16 else self._torch_dtype

    def _pretrained_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dtype": self._torch_dtype}
        if self.settings.cache_dir is not None:
            kwargs["cache_dir"] = str(self.settings.cache_dir)
        return kwargs

    def exact_ratio(self, run: Run, pictures: list[PIL.Image.Image]) -> list[PIL.Image.Image]:
        """The generated pictures centre-cropped to the aspect ratio the user chose (the bucket is the
        nearest one at least that large, contract.spec ``bucket_size``), once per job for every
        family: ``generate`` calls it on each recipe's result, stickers before their 512 px rule."""
        if run.cropped:
            return pictures
        run.cropped.append(True)
        return [crop_centre(p, *run.spec.output_size()) for p in pictures]

    def cut_out_stickers(self, run: Run, pictures: list[PIL.Image.Image]) -> list[PIL.Image.Image]:
        """Stickers of any family: rembg's cut-out of each picture, then the 512 px sticker rule."""
        pictures = self.exact_ratio(run, pictures)  # the ratio first: the 512 rule scales what the user chose
        session = self.shared.rembg_session()  # first: rembg's first import resets torch's threads there
        from rembg import remove

        run.progress.check()
        with self._stage(run.timings, "rembg"):
            cutouts = [remove(p, session=session, post_process_mask=True) for p in pictures]
            return [sticker_from_cutout(c) for c in cutouts]
