"""The generation engine: a JobSpec in, images out, for every mode, with diffusers' own pipelines.

A plain library (no Redis, no Telegram): the worker, the CLI and the tests all call
``Engine.load(settings).generate(spec, images, mask)``. Every model is loaded once and stays
resident; pipelines share modules (one prior with its encoders, one MoVQ) instead of copies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import PIL.Image
import torch
from diffusers import (
    KandinskyV22ControlnetImg2ImgPipeline,
    KandinskyV22InpaintPipeline,
    KandinskyV22Pipeline,
    UNet2DConditionModel,
)
from transformers import CLIPImageProcessorPil, DPTForDepthEstimation, DPTImageProcessorPil

from contract.modes import KANDINSKY22
from contract.spec import JobSpec, Mode, images_needed
from worker.engine.depth import depth_map, make_hint
from worker.engine.images import (
    MASK_THRESHOLD,
    fit_mask,
    fit_to_size,
    keep_unmasked,
    outpaint_canvas,
    sticker_from_cutout,
)
from worker.engine.pipelines import CachedPriorEmb2EmbPipeline, CachedPriorPipeline, ZeroEmbedCache
from worker.engine.settings import EngineSettings, parse_size
from worker.engine.speed import (
    allow_recompiles,
    compile_forward,
    compile_movq_decode,
    decoder_scheduler,
    prior_compile_mode,
    to_channels_last,
)

logger = logging.getLogger(__name__)

DEPTH_PRIOR_STRENGTH = 0.85
"""How far the prior may move the reference's CLIP embedding towards the prompt (model card value)."""

NEGATIVE_DEPTH_PRIOR_STRENGTH = 1.0
"""The model card embeds a negative prompt for depth mode with the prior at full strength."""


MIN_INPUT_SIDE = 64
"""Smaller inputs carry too little for CLIP (224 px) or the depth model to see anything."""

MAX_INPUT_SIDE = 8192
"""Bigger inputs are a decoding accident; the bot normalises photos well below this."""

SEED_MODULUS = 2**32

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


@dataclass
class GenerationOutput:
    images: list[PIL.Image.Image]
    seeds: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    model_ids: dict[str, str] = field(default_factory=dict)


class _Progress:
    """Counts steps of the current stage, reports them and honours cancellation at each one."""

    def __init__(self, on_progress: ProgressCallback | None, should_cancel: CancelCheck | None) -> None:
        self._on_progress = on_progress
        self._should_cancel = should_cancel
        self.stage = ""
        self.step = 0
        self.total = 0

    def check(self) -> None:
        if self._should_cancel is not None and self._should_cancel():
            raise JobCancelled(f"cancelled during {self.stage or 'setup'} at step {self.step}/{self.total}")

    def begin(self, stage: str, total: int) -> None:
        self.stage, self.step, self.total = stage, 0, total
        self.check()

    def tick(self) -> None:
        self.step += 1
        self.check()
        if self._on_progress is not None:
            self._on_progress(self.stage, self.step, self.total)

    def on_step_end(
        self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        """diffusers' ``callback_on_step_end``: returns the tensors untouched (no host copies)."""
        self.tick()
        return callback_kwargs

    def legacy_callback(self, step: int, timestep: Any, latents: torch.Tensor) -> None:
        """For pipelines that only take ``callback``/``callback_steps`` (the controlnet img2img one)."""
        self.tick()


@contextmanager
def _count_forward_calls(module: torch.nn.Module, progress: _Progress) -> Iterator[None]:
    """Tick once per forward of ``module``: the prior pipelines' step loops (``interpolate``,
    emb2emb) have no step callback, but each step is exactly one prior forward (CFG is batched)."""
    handle = module.register_forward_hook(lambda _module, _args, _output: progress.tick())
    try:
        yield
    finally:
        handle.remove()


WARMUP_MODES: tuple[Mode, ...] = (Mode.TEXT2IMAGE, Mode.INPAINT, Mode.DEPTH)
"""One per compiled graph family: the decoder UNet with the prior and MoVQ decode, the inpaint
UNet, the depth ControlNet UNet (every other mode reuses one of these)."""

WARMUP_STEPS = 2
"""Enough to trace and compile every graph once (the prior needs two); the images are discarded."""

WARMUP_PROMPT = "warm-up"


def img2img_steps(steps: int, strength: float) -> int:
    """Steps diffusers' img2img pipelines actually run for ``strength`` (their ``get_timesteps``)."""
    return min(int(steps * strength), steps)


@dataclass(frozen=True)
class _Run:
    """One job's state, built once in ``generate``: every mode recipe needs the same six things,
    and one value keeps their signatures from drifting apart. ``timings`` is filled in place."""

    spec: JobSpec
    images: list[PIL.Image.Image]
    mask: PIL.Image.Image | None
    generators: list[torch.Generator]
    progress: _Progress
    timings: dict[str, float]

    @property
    def n(self) -> int:
        """Images in the batch: one generator each."""
        return len(self.generators)


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


def model_sources(settings: EngineSettings) -> dict[str, str]:
    """Where each model comes from: the bundle's subfolders, or the public ids. One code path after this."""
    if settings.model_dir is None:
        return {
            "prior": settings.prior_id,
            "decoder": settings.decoder_id,
            "inpaint": settings.inpaint_id,
            "controlnet": settings.controlnet_id,
            "depth": settings.depth_id,
            "rembg": settings.rembg_model,
        }
    root = Path(settings.model_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"model_dir {root} does not exist or is not a directory")
    sources = {
        "prior": root / "prior",
        "decoder": root / "decoder",
        "inpaint": root / "decoder_inpaint",
        "controlnet": root / "controlnet_depth",
        "depth": root / "depth",
    }
    missing = [str(p) for p in sources.values() if not p.is_dir()]
    if missing:
        raise FileNotFoundError(f"model_dir {root} lacks {', '.join(missing)}")
    onnx_files = sorted((root / "rembg").glob("*.onnx"))
    if not onnx_files:
        raise FileNotFoundError(f"model_dir {root} has no rembg/*.onnx segmentation model")
    result = {name: str(path) for name, path in sources.items()}
    result["rembg"] = str(onnx_files[0])
    return result


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


ENGINE_FAMILY = KANDINSKY22
"""The model family this engine runs: every mode whose description (contract.modes) lists it."""

Recipe = Callable[["Engine", _Run], list[PIL.Image.Image]]
_R = TypeVar("_R", bound=Recipe)
RECIPES: dict[Mode, Recipe] = {}
"""Each mode's engine function, filled once at import by ``@recipe`` on the Engine methods."""


def recipe(*modes: Mode) -> Callable[[_R], _R]:
    """Register an Engine method as the function that runs ``modes`` (one function per mode)."""

    def register(function: _R) -> _R:
        for mode in modes:
            if mode in RECIPES:
                raise ValueError(f"mode {mode} has two engine functions")
            RECIPES[mode] = function
        return function

    return register


class Engine:
    """Resident Kandinsky 2.2 models and the mode recipes built on them. Calls are serialised."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        self.model_ids = model_sources(settings)
        self._torch_dtype = DTYPES[self.dtype]
        self._zero_embed_cache: ZeroEmbedCache = {}
        self._load_lock = threading.RLock()
        self._run_lock = threading.Lock()
        # Typed Any: diffusers' lazily exported pipeline classes are opaque to mypy.
        self._prior: Any = None
        self._emb2emb: Any = None
        self._decoder: Any = None
        self._inpaint: Any = None
        self._controlnet: Any = None
        self._depth: tuple[Any, Any] | None = None
        self._rembg: Any = None
        self.warmup_timings: dict[str, float] = {}
        """Seconds each warm-up job took at load (compile time when ``compile`` is on)."""
        if settings.compile:
            allow_recompiles()

    @classmethod
    def load(cls, settings: EngineSettings) -> Engine:
        engine = cls(settings)
        if settings.preload:
            started = time.perf_counter()
            engine.prior_pipeline()
            engine.emb2emb_pipeline()
            engine.decoder_pipeline()
            engine.inpaint_pipeline()
            engine.controlnet_pipeline()
            engine.depth_model()
            engine.rembg_session()
            logger.info(
                "engine loaded on %s/%s in %.1fs from %s",
                engine.device,
                engine.dtype,
                time.perf_counter() - started,
                settings.model_dir or "public ids",
            )
            if settings.compile:
                engine.warmup(settings.warmup_sizes)
        return engine

    def warmup(self, sizes: Sequence[str], modes: Sequence[Mode] = WARMUP_MODES) -> dict[str, float]:
        """Run one small job per mode and size so compiled graphs exist before the first user.

        Each bucket compiles its own graphs (shapes are fixed); batches of more than one image
        compile on first use. Returns (and keeps in ``warmup_timings``) seconds per job.
        """
        grey = PIL.Image.new("RGB", (MIN_INPUT_SIDE * 4, MIN_INPUT_SIDE * 4), (128, 128, 128))
        mask = PIL.Image.new("L", grey.size, 0)
        mask.paste(255, (0, 0, grey.width // 2, grey.height // 2))
        for size in sizes:
            width, height = parse_size(size)
            for mode in modes:
                needed, masked = images_needed(mode), mode is Mode.INPAINT
                spec = JobSpec(
                    mode=mode,
                    prompt=WARMUP_PROMPT,
                    width=width,
                    height=height,
                    steps=WARMUP_STEPS,
                    prior_steps=WARMUP_STEPS,
                    inputs=(WARMUP_PROMPT,) * needed,  # blob keys: never read here
                    mask=WARMUP_PROMPT if masked else None,
                )
                started = time.perf_counter()
                self.generate(spec, [grey] * needed, mask if masked else None)
                took = time.perf_counter() - started
                self.warmup_timings[f"{mode} {size}"] = took
                logger.info("engine warm-up: %s %s in %.1fs", mode, size, took)
        return dict(self.warmup_timings)

    # --- loading: each group once, then resident -------------------------------------------------

    def _pretrained_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dtype": self._torch_dtype}
        if self.settings.cache_dir is not None:
            kwargs["cache_dir"] = str(self.settings.cache_dir)
        return kwargs

    def _place(self, pipe: Any) -> Any:
        pipe.set_progress_bar_config(disable=True)
        if self.settings.cpu_offload and self.device.startswith("cuda"):
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            if self.settings.cpu_offload:
                logger.warning("cpu_offload ignored: models already live on %s", self.device)
            pipe.to(self.device)
        self._speed_up(pipe)
        return pipe

    def _speed_up(self, pipe: Any) -> None:
        """The opt-in speed settings (worker/engine/speed.py), applied to each placed pipeline."""
        settings = self.settings
        convolutional = [getattr(pipe, name) for name in ("unet", "movq") if hasattr(pipe, name)]
        if settings.channels_last:
            to_channels_last(*convolutional)
        if not settings.compile:
            return
        mode, backend = settings.compile_mode, settings.compile_backend
        if hasattr(pipe, "prior"):
            compile_forward(pipe.prior, prior_compile_mode(mode, self.device), backend)
        if hasattr(pipe, "unet"):
            compile_forward(pipe.unet, mode, backend)
        if hasattr(pipe, "movq"):
            compile_movq_decode(pipe.movq, mode, backend)

    def prior_pipeline(self) -> Any:
        with self._load_lock:
            if self._prior is None:
                kwargs = self._pretrained_kwargs()
                source = self.model_ids["prior"]
                # The PIL processor is what transformers falls back to without torchvision (the worker
                # image has none); naming it keeps the same preprocessing without its notice at start.
                processor = CLIPImageProcessorPil.from_pretrained(
                    source, subfolder="image_processor", cache_dir=kwargs.get("cache_dir"))
                prior = CachedPriorPipeline.from_pretrained(source, image_processor=processor, **kwargs)
                prior.attach_zero_embed_cache(self._zero_embed_cache)
                self._prior = self._place(prior)
            return self._prior

    def emb2emb_pipeline(self) -> Any:
        with self._load_lock:
            if self._emb2emb is None:
                prior = self.prior_pipeline()
                emb2emb: Any = CachedPriorEmb2EmbPipeline(**prior.components)  # same modules, no copy
                emb2emb.attach_zero_embed_cache(self._zero_embed_cache)
                emb2emb.set_progress_bar_config(disable=True)
                self._emb2emb = emb2emb
            return self._emb2emb

    def decoder_pipeline(self) -> Any:
        with self._load_lock:
            if self._decoder is None:
                kwargs = self._pretrained_kwargs()
                decoder = KandinskyV22Pipeline.from_pretrained(self.model_ids["decoder"], **kwargs)
                if self.settings.scheduler != "ddpm":  # the public decoder ships DDPM: keep it as loaded
                    decoder.scheduler = decoder_scheduler(self.settings.scheduler, decoder.scheduler.config)
                self._decoder = self._place(decoder)
            return self._decoder

    def _shared_decoder_parts(self, source: str) -> dict[str, Any]:
        """A UNet from ``source``; the MoVQ and scheduler config come from the decoder (one copy)."""
        decoder = self.decoder_pipeline()
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **self._pretrained_kwargs())
        scheduler = type(decoder.scheduler).from_config(decoder.scheduler.config)
        return {"unet": unet, "scheduler": scheduler, "movq": decoder.movq}

    def inpaint_pipeline(self) -> Any:
        with self._load_lock:
            if self._inpaint is None:
                parts = self._shared_decoder_parts(self.model_ids["inpaint"])
                self._inpaint = self._place(KandinskyV22InpaintPipeline(**parts))
            return self._inpaint

    def controlnet_pipeline(self) -> Any:
        with self._load_lock:
            if self._controlnet is None:
                parts = self._shared_decoder_parts(self.model_ids["controlnet"])
                self._controlnet = self._place(KandinskyV22ControlnetImg2ImgPipeline(**parts))
            return self._controlnet

    def depth_model(self) -> tuple[Any, Any]:
        with self._load_lock:
            if self._depth is None:
                source = self.model_ids["depth"]
                kwargs = self._pretrained_kwargs()
                model: Any = DPTForDepthEstimation.from_pretrained(source, **kwargs)
                kwargs.pop("dtype")
                processor = DPTImageProcessorPil.from_pretrained(source, **kwargs)
                self._depth = (model.to(self.device).eval(), processor)
            return self._depth

    def rembg_session(self) -> Any:
        with self._load_lock:
            if self._rembg is None:
                from rembg import new_session  # heavy import; only sticker workers need it

                model = self.model_ids["rembg"]
                if model.endswith(".onnx"):
                    self._rembg = local_onnx_session(Path(model))
                else:
                    self._rembg = new_session(model)
            return self._rembg

    # --- generation -------------------------------------------------------------------------------

    def generate(
        self,
        spec: JobSpec,
        images: Sequence[PIL.Image.Image] = (),
        mask: PIL.Image.Image | None = None,
        on_progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> GenerationOutput:
        """Run one job. Input problems raise InputRejected before any model runs."""
        inputs = self._check_inputs(spec, images, mask)
        progress = _Progress(on_progress, should_cancel)
        seeds = [(spec.seed + i) % SEED_MODULUS for i in range(spec.num_images)]
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with self._run_lock:
            progress.check()
            # One generator per image on the model device: image i is reproducible alone,
            # and no random numbers cross from host to device inside the step loops.
            generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
            run = _Run(spec, inputs, mask, generators, progress, timings)
            result = RECIPES[spec.mode](self, run)
        timings["total"] = time.perf_counter() - started
        logger.info(
            "job %s chat %s: %s %dx%d x%d seed %d in %.2fs",
            spec.job_id,
            spec.chat_id,
            spec.mode,
            spec.width,
            spec.height,
            spec.num_images,
            spec.seed,
            timings["total"],
        )
        return GenerationOutput(images=result, seeds=seeds, timings=timings, model_ids=dict(self.model_ids))

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
        if spec.mode is Mode.INPAINT:
            if mask is None:
                raise InputRejected("mode inpaint needs a mask (white = repaint)")
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
        # prior_steps ≥ 2 and depth's steps × strength ≥ 1 are the spec's own checks (contract.spec).
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

    # --- prior ------------------------------------------------------------------------------------

    def _negative(self, spec: JobSpec) -> str | None:
        return spec.negative_prompt.strip() or None

    def _prior_call(self, run: _Run, prior: Any, prompt: str, negative_prompt: str | None = None) -> Any:
        """Model-card prior call, one step counted per prior forward.

        A negative prompt rides in the same batch: [prompt × n, negative × n], so generator i draws
        its prompt row, then its negative row, in the same order whatever n is.
        """
        generators = run.generators + run.generators if negative_prompt else run.generators
        run.progress.begin("prior", run.spec.prior_steps)
        with _count_forward_calls(prior.prior, run.progress):
            return prior(
                prompt,
                negative_prompt=negative_prompt,
                num_images_per_prompt=run.n,
                num_inference_steps=run.spec.prior_steps,
                generator=generators,
                guidance_scale=run.spec.prior_guidance,
            )

    def _text_embeds(self, run: _Run) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt's image embedding and its negative (the negative prompt's, or the zero embed)."""
        prior = self.prior_pipeline()
        with self._stage(run.timings, "prior"):
            out = self._prior_call(run, prior, run.spec.effective_prompt, self._negative(run.spec))
        return out.image_embeds, out.negative_image_embeds

    @torch.no_grad()
    def _reference_embeds(self, run: _Run, prior: Any) -> torch.Tensor:
        """CLIP image embedding of the reference, once per image of the batch."""
        pixels = prior.image_processor(run.images[0], return_tensors="pt").pixel_values
        pixels = pixels.to(device=self.device, dtype=prior.image_encoder.dtype)
        embeds: torch.Tensor = prior.image_encoder(pixels)["image_embeds"]
        return embeds.repeat(run.n, 1)

    # --- decoders ---------------------------------------------------------------------------------

    def _decode(
        self,
        run: _Run,
        image_embeds: torch.Tensor,
        negative_embeds: torch.Tensor,
        pipe: Any = None,
        **inputs: Any,
    ) -> list[PIL.Image.Image]:
        """Embeddings → images with the text2image decoder, or with ``pipe`` (the inpaint decoder,
        which takes the same arguments plus its ``inputs``: image and mask)."""
        decoder = self.decoder_pipeline() if pipe is None else pipe
        run.progress.begin("decoder", run.spec.steps)
        with self._stage(run.timings, "decoder"):
            out = decoder(
                **inputs,
                image_embeds=image_embeds,
                negative_image_embeds=negative_embeds,
                height=run.spec.height,
                width=run.spec.width,
                num_inference_steps=run.spec.steps,
                guidance_scale=run.spec.guidance,
                generator=run.generators,
                callback_on_step_end=run.progress.on_step_end,
            )
        return list(out.images)

    # --- modes ------------------------------------------------------------------------------------

    @recipe(Mode.TEXT2IMAGE)
    def _text2image(self, run: _Run) -> list[PIL.Image.Image]:
        embeds, negative = self._text_embeds(run)
        return self._decode(run, embeds, negative)

    @recipe(Mode.STICKER)
    def _sticker(self, run: _Run) -> list[PIL.Image.Image]:
        from rembg import remove

        pictures = self._text2image(run)
        session = self.rembg_session()
        run.progress.check()
        with self._stage(run.timings, "rembg"):
            cutouts = [remove(p, session=session, post_process_mask=True) for p in pictures]
            return [sticker_from_cutout(c) for c in cutouts]

    @recipe(Mode.MIX, Mode.BLEND)
    def _interpolate(self, run: _Run) -> list[PIL.Image.Image]:
        """mix (two images) and blend (image + prompt): the prior's ``interpolate``."""
        spec = run.spec
        prior = self.prior_pipeline()
        conditions: list[Any] = list(run.images)
        if spec.mode is Mode.BLEND:
            conditions.append(spec.effective_prompt)
        # interpolate runs the prior once per text condition and once for the negative branch.
        prior_runs = 1 + sum(isinstance(c, str) for c in conditions)
        run.progress.begin("prior", spec.prior_steps * prior_runs)
        with self._stage(run.timings, "prior"), _count_forward_calls(prior.prior, run.progress):
            out = prior.interpolate(
                conditions,
                list(spec.weights),
                num_images_per_prompt=run.n,
                num_inference_steps=spec.prior_steps,
                generator=run.generators,
                negative_prior_prompt=None,
                negative_prompt=spec.negative_prompt.strip(),
                guidance_scale=spec.prior_guidance,
            )
        return self._decode(run, out.image_embeds, out.negative_image_embeds)

    @recipe(Mode.VARIATIONS)
    def _variations(self, run: _Run) -> list[PIL.Image.Image]:
        """The reference's own CLIP image embedding, decoded with new seeds."""
        prior = self.prior_pipeline()
        negative = self._negative(run.spec)
        with self._stage(run.timings, "prior"):
            embeds = self._reference_embeds(run, prior)
            if negative:
                negative_embeds = self._prior_call(run, prior, negative).image_embeds
            else:
                negative_embeds = prior.get_zero_embed(run.n, device=self.device)
        return self._decode(run, embeds, negative_embeds)

    @recipe(Mode.DEPTH)
    def _depth_mode(self, run: _Run) -> list[PIL.Image.Image]:
        """Keep depth, change look: DPT depth → hint → emb2emb prior → controlnet img2img."""
        spec, n = run.spec, run.n
        init = fit_to_size(run.images[0], spec.width, spec.height)
        model, processor = self.depth_model()
        with self._stage(run.timings, "depth"):
            hint = make_hint(depth_map(model, processor, init), self.device, self._torch_dtype)
        emb2emb = self.emb2emb_pipeline()
        negative = self._negative(spec)

        def embed(prompt: str, strength: float) -> Any:
            return emb2emb(
                prompt,
                image=init,
                strength=strength,
                num_images_per_prompt=n,
                num_inference_steps=spec.prior_steps,
                generator=run.generators,
                guidance_scale=spec.prior_guidance,
            )

        prior_total = img2img_steps(spec.prior_steps, DEPTH_PRIOR_STRENGTH)
        if negative:
            prior_total += img2img_steps(spec.prior_steps, NEGATIVE_DEPTH_PRIOR_STRENGTH)
        run.progress.begin("prior", prior_total)
        with self._stage(run.timings, "prior"), _count_forward_calls(emb2emb.prior, run.progress):
            out = embed(spec.effective_prompt, DEPTH_PRIOR_STRENGTH)
            embeds, negative_embeds = out.image_embeds, out.negative_image_embeds
            if negative:
                negative_embeds = embed(negative, NEGATIVE_DEPTH_PRIOR_STRENGTH).image_embeds
        controlnet = self.controlnet_pipeline()
        run.progress.begin("decoder", img2img_steps(spec.steps, spec.strength))
        with self._stage(run.timings, "decoder"):
            result = controlnet(
                image_embeds=embeds,
                image=[init] * n,
                negative_image_embeds=negative_embeds,
                hint=hint.repeat(n, 1, 1, 1),
                # diffusers 0.42 passes (width, height) into preprocess(image, height, width),
                # swapping them; ``init`` is already the job size, so let preprocess keep its size.
                height=None,
                width=None,
                num_inference_steps=spec.steps,
                guidance_scale=spec.guidance,
                strength=spec.strength,
                generator=run.generators,
                callback=run.progress.legacy_callback,
                callback_steps=1,
            )
        return list(result.images)

    def _repaint(self, run: _Run, init: PIL.Image.Image, mask: PIL.Image.Image) -> list[PIL.Image.Image]:
        """Inpaint ``init`` where ``mask`` is white; black-mask pixels come back bit-exact."""
        embeds, negative = self._text_embeds(run)
        inpaint = self.inpaint_pipeline()
        # diffusers >= 0.19: white = repaint, black = keep — our convention, passed as is.
        images = self._decode(
            run, embeds, negative, pipe=inpaint, image=[init] * run.n, mask_image=[mask] * run.n
        )
        return [keep_unmasked(image, init, mask) for image in images]

    @recipe(Mode.INPAINT)
    def _inpaint_mode(self, run: _Run) -> list[PIL.Image.Image]:
        if run.mask is None:  # _check_inputs refuses this first; here for the type checker
            raise InputRejected("mode inpaint needs a mask (white = repaint)")
        spec = run.spec
        init = fit_to_size(run.images[0], spec.width, spec.height)
        return self._repaint(run, init, fit_mask(run.mask, spec.width, spec.height))

    @recipe(Mode.OUTPAINT)
    def _outpaint_mode(self, run: _Run) -> list[PIL.Image.Image]:
        canvas, border = outpaint_canvas(run.images[0], run.spec.width, run.spec.height)
        return self._repaint(run, canvas, border)
