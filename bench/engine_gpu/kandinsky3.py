"""Kandinsky 3.0's two recipes in the GPU bench, on the bundle's ``kandinsky3/`` folder:

* ``K3EngineRecipe`` — ``Engine.generate`` on the Kandinsky 3.0 family (the service's code path);
* ``K3PlainRecipe``  — the model card's ``Kandinsky3Pipeline`` / ``Kandinsky3Img2ImgPipeline``, fp16,
  resident, its own copies of the models, the same steps, strength and seed as the engine.

Both are named "engine" and "plain" so that a K3 cell's ratios and pixel differences come out as
the 2.2 cells' do; the cell's ``family`` says which family it timed. The family has no prior: the
``prior`` stage is 0 and the text encoder's time is in ``total`` before the first UNet call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.engine_gpu.measure import Probe, free_device_memory
from bench.engine_gpu.models import K3_FOLDER
from bench.engine_gpu.recipes import PLAIN_SKIPS, Inputs, RunOutput
from contract.families import Family
from contract.spec import JobSpec, Mode
from worker.engine.base import img2img_steps
from worker.engine.families.img2img import blend_strength, variations_strength
from worker.engine.images import fit_to_size

K3_BENCH_MODES: tuple[Mode, ...] = (Mode.TEXT2IMAGE, Mode.BLEND, Mode.VARIATIONS, Mode.STICKER)
"""Every mode the family serves (contract.modes), timed against plain diffusers but stickers
(text → image + rembg: the text2image row is their comparison, as for 2.2)."""

IMG2IMG_MODES = (Mode.BLEND, Mode.VARIATIONS)


def img2img_strength(spec: JobSpec) -> float:
    """The strength the family's recipe uses for ``spec`` (worker/engine/families/kandinsky3.py)."""
    if spec.mode is Mode.BLEND:
        return blend_strength(spec.weights[1], spec.steps)
    return variations_strength(spec.steps)


def unet_steps(spec: JobSpec) -> int:
    if spec.mode in IMG2IMG_MODES:
        return img2img_steps(spec.steps, img2img_strength(spec))
    return spec.steps


class K3EngineRecipe:
    """The service's Kandinsky 3.0 family engine."""

    name = "engine"

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.family: Any = engine[Family.KANDINSKY3]
        self.device: str = self.family.device

    def skip_reason(self, mode: Mode) -> str | None:
        return None if mode in K3_BENCH_MODES else f"Kandinsky 3.0 does not serve {mode}"

    def prepare(self, mode: Mode) -> None:
        self.family.text2image_pipeline()
        if mode in IMG2IMG_MODES:
            self.family.img2img_pipeline()
        if mode is Mode.STICKER:
            self.family.shared.rembg_session()

    def weights(self, mode: Mode) -> list[Any]:
        pipe = self.family.text2image_pipeline()
        encoder = self.family._encoder.text_encoder if self.family._encoder is not None else pipe.text_encoder
        return [encoder, pipe.unet, pipe.movq]

    def probe(self, spec: JobSpec) -> Probe:
        pipe = self.family.text2image_pipeline()
        return Probe(self.device, pipe.unet, pipe.movq.decoder, None, unet_steps(spec))

    def run(self, spec: JobSpec, inputs: Inputs, probe: Probe) -> RunOutput:
        def on_progress(stage: str, step: int, total: int) -> None:
            if stage == "unet":
                probe.tick()

        out = self.engine.generate(spec, inputs.images, inputs.mask, on_progress=on_progress)
        t = out.timings
        return RunOutput(0.0, 0.0, t.get("rembg", 0.0), [np.asarray(image) for image in out.images])

    def free(self) -> None:
        self.engine = self.family = None
        free_device_memory(self.device)


class K3PlainRecipe:
    """The model card's code: ``Kandinsky3Pipeline.from_pretrained(..., variant, torch_dtype)``
    resident on the device, and the img2img pipeline on the same modules."""

    name = "plain"

    def __init__(self, bundle: Path, device: str, dtype: torch.dtype) -> None:
        self.bundle, self.device, self.dtype = bundle, device, dtype
        self._pipes: dict[str, Any] = {}

    def skip_reason(self, mode: Mode) -> str | None:
        if mode not in K3_BENCH_MODES:
            return f"Kandinsky 3.0 does not serve {mode}"
        return PLAIN_SKIPS.get(mode)

    def _load(self, key: str) -> Any:
        if key not in self._pipes:
            from diffusers import Kandinsky3Img2ImgPipeline, Kandinsky3Pipeline

            if key == "text2image":
                pipe: Any = Kandinsky3Pipeline.from_pretrained(
                    self.bundle / K3_FOLDER, torch_dtype=self.dtype
                ).to(self.device)
            else:
                pipe = Kandinsky3Img2ImgPipeline(**self._load("text2image").components)
            pipe.set_progress_bar_config(disable=True)
            self._pipes[key] = pipe
        return self._pipes[key]

    def _key(self, mode: Mode) -> str:
        return "img2img" if mode in IMG2IMG_MODES else "text2image"

    def prepare(self, mode: Mode) -> None:
        self._load(self._key(mode))

    def weights(self, mode: Mode) -> list[Any]:
        pipe = self._load("text2image")
        return [pipe.text_encoder, pipe.unet, pipe.movq]

    def probe(self, spec: JobSpec) -> Probe:
        pipe = self._load("text2image")
        return Probe(self.device, pipe.unet, pipe.movq.decoder, None, unet_steps(spec))

    def run(self, spec: JobSpec, inputs: Inputs, probe: Probe) -> RunOutput:
        def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            probe.tick()
            return kwargs

        # The engine's seeding: one generator per image on the model's device (batch 1 here).
        generator = torch.Generator(device=self.device).manual_seed(spec.seed)
        common: dict[str, Any] = {
            "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance,
            "generator": generator,
            "num_images_per_prompt": spec.num_images,
            "callback_on_step_end": on_step_end,
        }
        if spec.mode in IMG2IMG_MODES:
            init = fit_to_size(inputs.images[0], spec.width, spec.height)
            images = self._load("img2img")(
                spec.effective_prompt, image=init, strength=img2img_strength(spec), **common
            ).images
        else:
            images = self._load("text2image")(
                spec.effective_prompt, height=spec.height, width=spec.width, **common
            ).images
        return RunOutput(0.0, 0.0, 0.0, [np.asarray(image) for image in images])

    def free(self) -> None:
        self._pipes.clear()
        free_device_memory(self.device)
