"""The three ways of running a job that the bench times, on the same inputs:

* ``EngineRecipe``  — ``worker.engine.Engine.generate`` (the service's code path; also each variant);
* ``PlainRecipe``   — the model-card code: stock diffusers pipelines resident on the device, the same
  steps as ours (b);
* ``OffloadRecipe`` — the combined pipelines with ``enable_model_cpu_offload()`` and their default
  steps, as the seed ran them (a).

Each ``run`` returns what it measured itself (prior, depth, rembg) and the images; the bench's
``Probe`` clocks the decoder steps and the MoVQ decode the same way for all three.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from bench.engine_gpu.measure import Probe, free_device_memory, sync
from bench.engine_gpu.models import Size
from contract.families import Family, describe_family
from contract.spec import JobSpec, Mode, images_needed
from worker.engine.base import img2img_steps
from worker.engine.depth import depth_map, make_hint
from worker.engine.families.kandinsky22 import DEPTH_PRIOR_STRENGTH
from worker.engine.images import fit_mask, fit_to_size, keep_unmasked, outpaint_canvas

PROMPT = "red cat, 4k photo"
SEED = 42
INPUT_SIDE = 768
"""Input photos are 768² (a typical Telegram photo side); the engine fits them to the job size."""
MASK_BOX = (0.25, 0.25, 0.75, 0.75)
"""Inpaint repaints the centre quarter of the picture (white = repaint)."""
MIX_WEIGHTS = (0.5, 0.5)

REPAINT_MODES = (Mode.INPAINT, Mode.OUTPAINT)
BENCH_MODES = (
    Mode.TEXT2IMAGE, Mode.MIX, Mode.BLEND, Mode.VARIATIONS, Mode.STICKER, Mode.DEPTH, *REPAINT_MODES,
)
"""The modes timed here against plain diffusers. Edits (edit, zoom out, pan) run the inpaint row's
pipeline and animation the img2img decoder frame by frame: bench_preview and bench_animation time them."""


@dataclass
class Inputs:
    images: list[PIL.Image.Image]
    mask: PIL.Image.Image | None


def synthetic_image(seed: int) -> PIL.Image.Image:
    """A fixed photo stand-in: a colour gradient with seeded noise (the same in every run)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, INPUT_SIDE, dtype=np.float32)
    base = np.stack(
        [
            ramp[None, :].repeat(INPUT_SIDE, 0),
            ramp[:, None].repeat(INPUT_SIDE, 1),
            np.full((INPUT_SIDE, INPUT_SIDE), 128.0, dtype=np.float32),
        ],
        axis=2,
    )
    noisy = base + rng.normal(0, 24, size=base.shape)
    return PIL.Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def synthetic_mask() -> PIL.Image.Image:
    mask = np.zeros((INPUT_SIDE, INPUT_SIDE), dtype=np.uint8)
    x0, y0, x1, y1 = (int(v * INPUT_SIDE) for v in MASK_BOX)
    mask[y0:y1, x0:x1] = 255
    return PIL.Image.fromarray(mask)


def mode_inputs(mode: Mode) -> Inputs:
    images = [synthetic_image(seed) for seed in range(images_needed(mode))]
    return Inputs(images, synthetic_mask() if mode is Mode.INPAINT else None)


def job_spec(
    mode: Mode, size: Size, batch: int, steps: int, prior_steps: int, family: Family = Family.KANDINSKY22
) -> JobSpec:
    n_images = images_needed(mode)
    return JobSpec(
        mode=mode,
        model=family,
        guidance=describe_family(family).default_guidance,
        prompt="" if mode in (Mode.MIX, Mode.VARIATIONS) else PROMPT,
        width=size[0],
        height=size[1],
        seed=SEED,
        steps=steps,
        prior_steps=prior_steps,
        num_images=batch,
        inputs=tuple(f"input-{i}" for i in range(n_images)),
        mask="mask" if mode is Mode.INPAINT else None,
        weights=MIX_WEIGHTS if mode in (Mode.MIX, Mode.BLEND) else (),
    )


def decoder_steps_for(spec: JobSpec) -> int:
    return img2img_steps(spec.steps, spec.strength) if spec.mode is Mode.DEPTH else spec.steps


@dataclass
class RunOutput:
    prior: float
    depth: float
    rembg: float
    images: list[np.ndarray]


class _Clock:
    """Synchronised stamps for the stages a recipe times itself."""

    def __init__(self, device: str) -> None:
        self.device = device

    def now(self) -> float:
        sync(self.device)
        return time.perf_counter()


# --- the engine ------------------------------------------------------------------------------------


class EngineRecipe:
    """``Engine.generate``, the service's path; ``name`` is "engine" or a variant's name."""

    def __init__(self, name: str, engine: Any, spec_overrides: dict[str, Any] | None = None) -> None:
        self.name = name
        self.engine = engine
        self.device: str = engine.device
        self.spec_overrides = dict(spec_overrides or {})
        """JobSpec fields this variant changes (a faster scheduler runs fewer ``steps``)."""

    def _spec(self, spec: JobSpec) -> JobSpec:
        if not self.spec_overrides:
            return spec
        return JobSpec.model_validate({**spec.model_dump(), **self.spec_overrides})  # checked again

    def skip_reason(self, mode: Mode) -> str | None:
        return None

    def _decoder(self, mode: Mode) -> Any:
        if mode in REPAINT_MODES:
            return self.engine.inpaint_pipeline()
        if mode is Mode.DEPTH:
            return self.engine.controlnet_pipeline()
        return self.engine.decoder_pipeline()

    def prepare(self, mode: Mode) -> None:
        """Load what ``mode`` needs (once; then resident), so the warm-up run times no loading."""
        self.engine.prior_pipeline()
        if mode is Mode.DEPTH:
            self.engine.emb2emb_pipeline()
            self.engine.depth_model()
        if mode is Mode.STICKER:
            self.engine.rembg_session()
        self._decoder(mode)

    def weights(self, mode: Mode) -> list[Any]:
        prior, decoder = self.engine.prior_pipeline(), self._decoder(mode)
        modules = [prior.prior, prior.text_encoder, prior.image_encoder, decoder.unet, decoder.movq]
        if mode is Mode.DEPTH:
            modules.append(self.engine.depth_model()[0])
        return modules

    def probe(self, spec: JobSpec) -> Probe:
        decoder = self._decoder(spec.mode)
        prior = self.engine.prior_pipeline().prior
        # A compiled MoVQ decode would trace the probe's hooks on its decoder in as graph breaks
        # (slowing what is measured): compiled engines report no decode split instead.
        movq = None if self.engine.settings.compile else decoder.movq.decoder
        return Probe(self.device, decoder.unet, movq, prior, decoder_steps_for(self._spec(spec)))

    def run(self, spec: JobSpec, inputs: Inputs, probe: Probe) -> RunOutput:
        def on_progress(stage: str, step: int, total: int) -> None:
            if stage == "decoder":
                probe.tick()

        spec = self._spec(spec)
        out = self.engine.generate(spec, inputs.images, inputs.mask, on_progress=on_progress)
        t = out.timings
        images = [np.asarray(image) for image in out.images]
        return RunOutput(t.get("prior", 0.0), t.get("depth", 0.0), t.get("rembg", 0.0), images)

    def free(self) -> None:
        self.engine = None
        free_device_memory(self.device)


# --- plain diffusers, resident ---------------------------------------------------------------------


PLAIN_SKIPS: dict[Mode, str] = {
    Mode.STICKER: "sticker = text2image + rembg: the text2image row is the plain comparison "
    "(rembg runs the same onnx session in every recipe)",
}


class PlainRecipe:
    """The model-card recipe with stock pipelines, its own copies of every model, resident on the
    device, and one generator carried from the prior to the decoder (as the model card does)."""

    name = "plain"

    def __init__(self, bundle: Path, device: str, dtype: torch.dtype) -> None:
        self.bundle, self.device, self.dtype = bundle, device, dtype
        self._pipes: dict[str, Any] = {}

    def skip_reason(self, mode: Mode) -> str | None:
        return PLAIN_SKIPS.get(mode)

    def _load(self, key: str) -> Any:
        if key in self._pipes:
            return self._pipes[key]
        from diffusers import (
            KandinskyV22ControlnetImg2ImgPipeline,
            KandinskyV22InpaintPipeline,
            KandinskyV22Pipeline,
            KandinskyV22PriorEmb2EmbPipeline,
            KandinskyV22PriorPipeline,
        )

        pipe: Any
        if key == "emb2emb":  # the prior's modules (the model card loads the same repo twice)
            pipe = KandinskyV22PriorEmb2EmbPipeline(**self._load("prior").components)
        elif key == "depth":
            from transformers import AutoImageProcessor, DPTForDepthEstimation

            model: Any = DPTForDepthEstimation.from_pretrained(self.bundle / "depth", dtype=self.dtype)
            processor = AutoImageProcessor.from_pretrained(self.bundle / "depth")
            self._pipes[key] = (model.to(self.device).eval(), processor)
            return self._pipes[key]
        else:
            cls, folder = {
                "prior": (KandinskyV22PriorPipeline, "prior"),
                "decoder": (KandinskyV22Pipeline, "decoder"),
                "inpaint": (KandinskyV22InpaintPipeline, "decoder_inpaint"),
                "controlnet": (KandinskyV22ControlnetImg2ImgPipeline, "controlnet_depth"),
            }[key]
            pipe = cls.from_pretrained(self.bundle / folder, torch_dtype=self.dtype).to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self._pipes[key] = pipe
        return pipe

    def _decoder_key(self, mode: Mode) -> str:
        return "inpaint" if mode in REPAINT_MODES else "controlnet" if mode is Mode.DEPTH else "decoder"

    def prepare(self, mode: Mode) -> None:
        self._load("prior")
        self._load(self._decoder_key(mode))
        if mode is Mode.DEPTH:
            self._load("emb2emb")
            self._load("depth")

    def weights(self, mode: Mode) -> list[Any]:
        prior, decoder = self._load("prior"), self._load(self._decoder_key(mode))
        modules = [prior.prior, prior.text_encoder, prior.image_encoder, decoder.unet, decoder.movq]
        if mode is Mode.DEPTH:
            modules.append(self._load("depth")[0])
        return modules

    def probe(self, spec: JobSpec) -> Probe:
        decoder = self._load(self._decoder_key(spec.mode))
        prior = self._load("prior").prior
        return Probe(self.device, decoder.unet, decoder.movq.decoder, prior, decoder_steps_for(spec))

    def run(self, spec: JobSpec, inputs: Inputs, probe: Probe) -> RunOutput:
        clock = _Clock(self.device)
        generator = torch.Generator(device=self.device).manual_seed(spec.seed)
        prior = self._load("prior")
        mode, size = spec.mode, (spec.width, spec.height)
        depth_s = 0.0

        def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            probe.tick()
            return kwargs

        decoder_args: dict[str, Any] = {
            "height": spec.height,
            "width": spec.width,
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance,
            "generator": generator,
        }
        started = clock.now()
        if mode in (Mode.MIX, Mode.BLEND):
            conditions: list[Any] = list(inputs.images)
            if mode is Mode.BLEND:
                conditions.append(spec.effective_prompt)
            embeds = prior.interpolate(
                conditions,
                list(spec.weights),
                num_inference_steps=spec.prior_steps,
                generator=generator,
                guidance_scale=spec.prior_guidance,
            )
            image_embeds, negative = embeds.image_embeds, embeds.negative_image_embeds
        elif mode is Mode.VARIATIONS:
            with torch.no_grad():
                pixels = prior.image_processor(inputs.images[0], return_tensors="pt").pixel_values
                pixels = pixels.to(device=self.device, dtype=prior.image_encoder.dtype)
                image_embeds = prior.image_encoder(pixels)["image_embeds"]
                negative = prior.get_zero_embed(1, device=self.device)
        elif mode is Mode.DEPTH:
            init = fit_to_size(inputs.images[0], *size)
            model, processor = self._load("depth")
            hint = make_hint(depth_map(model, processor, init), self.device, self.dtype)
            depth_done = clock.now()
            depth_s = depth_done - started
            out = self._load("emb2emb")(
                spec.effective_prompt,
                image=init,
                strength=DEPTH_PRIOR_STRENGTH,
                num_inference_steps=spec.prior_steps,
                generator=generator,
                guidance_scale=spec.prior_guidance,
            )
            image_embeds, negative = out.image_embeds, out.negative_image_embeds
        else:
            out = prior(
                spec.effective_prompt,
                num_inference_steps=spec.prior_steps,
                guidance_scale=spec.prior_guidance,
                generator=generator,
            )
            image_embeds, negative = out.image_embeds, out.negative_image_embeds
        prior_s = clock.now() - started - depth_s
        decoder = self._load(self._decoder_key(mode))
        if mode is Mode.DEPTH:
            # As the engine does: height/width None, because diffusers 0.42's controlnet img2img
            # swaps them before preprocess; ``init`` already has the job size.
            images = decoder(
                image_embeds=image_embeds,
                image=init,
                negative_image_embeds=negative,
                hint=hint,
                strength=spec.strength,
                callback=lambda step, t, latents: probe.tick(),
                callback_steps=1,
                **{**decoder_args, "height": None, "width": None},
            ).images
        elif mode in REPAINT_MODES:
            if mode is Mode.INPAINT:
                assert inputs.mask is not None
                init, mask = fit_to_size(inputs.images[0], *size), fit_mask(inputs.mask, *size)
            else:
                init, mask = outpaint_canvas(inputs.images[0], *size)
            images = decoder(
                image=init,
                mask_image=mask,
                image_embeds=image_embeds,
                negative_image_embeds=negative,
                callback_on_step_end=on_step_end,
                **decoder_args,
            ).images
            # The engine pastes the kept pixels back; so does this, so the two images compare.
            images = [keep_unmasked(image, init, mask) for image in images]
        else:
            images = decoder(
                image_embeds=image_embeds,
                negative_image_embeds=negative,
                callback_on_step_end=on_step_end,
                **decoder_args,
            ).images
        return RunOutput(prior_s, depth_s, 0.0, [np.asarray(image) for image in images])

    def free(self) -> None:
        self._pipes.clear()
        free_device_memory(self.device)


# --- the seed's recipe: combined pipelines with CPU offload ------------------------------------------


OFFLOAD_SKIPS: dict[Mode, str] = {
    Mode.STICKER: "no combined pipeline removes backgrounds; the text2image row is the comparison",
    Mode.MIX: "diffusers has no combined pipeline for prior.interpolate (two images)",
    Mode.BLEND: "diffusers has no combined pipeline for prior.interpolate (image + text)",
    Mode.VARIATIONS: "diffusers has no combined pipeline for variations; KandinskyV22Img2ImgCombinedPipeline "
    "is img2img from pixels, a different job",
    Mode.DEPTH: "diffusers has no combined pipeline for the depth controlnet",
}


def combined_defaults() -> dict[str, int]:
    """The combined pipelines' default steps, read from the installed diffusers (100 and 25 in 0.42)."""
    from diffusers import KandinskyV22CombinedPipeline

    params = inspect.signature(KandinskyV22CombinedPipeline.__call__).parameters
    return {
        "steps": int(params["num_inference_steps"].default),
        "prior_steps": int(params["prior_num_inference_steps"].default),
    }


class OffloadRecipe:
    """``KandinskyV22CombinedPipeline`` / ``KandinskyV22InpaintCombinedPipeline`` with
    ``enable_model_cpu_offload()`` and their default steps; CUDA only."""

    name = "offload"

    def __init__(self, bundle: Path, device: str, dtype: torch.dtype) -> None:
        self.bundle, self.device, self.dtype = bundle, device, dtype
        self.defaults = combined_defaults()
        self._pipes: dict[str, Any] = {}

    def skip_reason(self, mode: Mode) -> str | None:
        if not self.device.startswith("cuda"):
            return "enable_model_cpu_offload needs a CUDA device"
        return OFFLOAD_SKIPS.get(mode)

    def _key(self, mode: Mode) -> str:
        return "inpaint" if mode in REPAINT_MODES else "text2image"

    def _load(self, key: str) -> Any:
        if key not in self._pipes:
            from diffusers import (
                KandinskyV22CombinedPipeline,
                KandinskyV22InpaintCombinedPipeline,
                KandinskyV22InpaintPipeline,
                KandinskyV22Pipeline,
                KandinskyV22PriorPipeline,
            )

            # Fresh CPU copies per pipeline: offload hooks must not touch any other recipe's modules.
            prior: Any = KandinskyV22PriorPipeline.from_pretrained(
                self.bundle / "prior", torch_dtype=self.dtype
            )
            prior_parts = {f"prior_{k}": v for k, v in prior.components.items()}
            if key == "inpaint":
                decoder: Any = KandinskyV22InpaintPipeline.from_pretrained(
                    self.bundle / "decoder_inpaint", torch_dtype=self.dtype
                )
                pipe: Any = KandinskyV22InpaintCombinedPipeline(**decoder.components, **prior_parts)
            else:
                decoder = KandinskyV22Pipeline.from_pretrained(
                    self.bundle / "decoder", torch_dtype=self.dtype
                )
                pipe = KandinskyV22CombinedPipeline(**decoder.components, **prior_parts)
            pipe.enable_model_cpu_offload()
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    def prepare(self, mode: Mode) -> None:
        self._load(self._key(mode))

    def weights(self, mode: Mode) -> list[Any]:
        return []  # offloaded: nothing of it stays on the device between runs

    def probe(self, spec: JobSpec) -> Probe:
        pipe = self._load(self._key(spec.mode))
        decoder = pipe.decoder_pipe
        return Probe(
            self.device, decoder.unet, decoder.movq.decoder, pipe.prior_pipe.prior, self.defaults["steps"]
        )

    def run(self, spec: JobSpec, inputs: Inputs, probe: Probe) -> RunOutput:
        clock = _Clock(self.device)
        pipe = self._load(self._key(spec.mode))
        marks: dict[str, float] = {}
        prior_steps = self.defaults["prior_steps"]

        def prior_end(p: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if step + 1 == prior_steps:
                marks["prior"] = clock.now()
            return kwargs

        def decoder_end(p: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            probe.tick()
            return kwargs

        size = (spec.width, spec.height)
        extra: dict[str, Any] = {}
        init = mask = None
        if spec.mode is Mode.INPAINT:
            assert inputs.mask is not None
            init, mask = fit_to_size(inputs.images[0], *size), fit_mask(inputs.mask, *size)
        elif spec.mode is Mode.OUTPAINT:
            init, mask = outpaint_canvas(inputs.images[0], *size)
        if init is not None:
            extra = {"image": init, "mask_image": mask}
        generator = torch.Generator(device="cpu").manual_seed(spec.seed)  # offload runs start on the CPU
        started = clock.now()
        images = pipe(
            prompt=spec.effective_prompt,
            height=spec.height,
            width=spec.width,
            guidance_scale=spec.guidance,
            prior_guidance_scale=spec.prior_guidance,
            generator=generator,
            prior_callback_on_step_end=prior_end,
            callback_on_step_end=decoder_end,
            **extra,
        ).images
        return RunOutput(marks["prior"] - started, 0.0, 0.0, [np.asarray(image) for image in images])

    def free(self) -> None:
        self._pipes.clear()
        free_device_memory(self.device)
