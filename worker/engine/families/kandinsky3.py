"""The Kandinsky 3.0 family: Flan-UL2's encoder → a 3B UNet → MoVQ, with no image prior.

Text → image and stickers run ``Kandinsky3Pipeline``; image + text and variations run
``Kandinsky3Img2ImgPipeline`` built on the same modules (one text encoder, one UNet, one MoVQ).
Without a prior there is no image embedding to mix or to steer, so mix and keep-depth are not
served (contract.modes says so and the bot refuses them before queueing).

Placements (``KANDINSKY_K3_PLACEMENT``, contract.families.Placement):

* ``gpu``: every model resident; the pipelines run as the model card does (bit for bit:
  tests/worker/test_kandinsky3.py holds it to plain diffusers);
* ``text_encoder_cpu``: the 8.6B text encoder stays on the CPU (bfloat16 when the GPU runs float16:
  CPUs have no fast float16), the prompt is encoded there once per job and only its embeddings go
  to the GPU, where the UNet and MoVQ are resident;
* ``model_offload``: accelerate's model offload, on the pipeline about to run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import PIL.Image
import torch
from diffusers import Kandinsky3Img2ImgPipeline, Kandinsky3Pipeline

from contract.families import Family, Placement
from contract.spec import Mode
from worker.engine.base import (
    FamilyEngine,
    ModelFolderError,
    Run,
    SharedModels,
    img2img_steps,
    recipe,
    require_complete,
)
from worker.engine.images import fit_to_size
from worker.engine.settings import EngineSettings

logger = logging.getLogger(__name__)

FOLDER = "kandinsky3"
"""The family's folder in a local bundle (``KANDINSKY_MODEL_DIR``): one saved Kandinsky3Pipeline."""

VARIATIONS_STRENGTH = 0.5
"""Variations are img2img from the reference at this strength: half the schedule is redrawn, so
the composition and colours stay while the details change with each seed."""

BLEND_MIN_STRENGTH = 0.3
"""Image + text: the prompt's weight is the img2img strength, but never below this, or the prompt
would barely show (the photo's weight can keep at most 70% of it)."""

STAGE = "unet"
"""The one denoising stage of this family, as progress and timings name it."""


def blend_strength(text_weight: float, steps: int) -> float:
    """Image + text's img2img strength: the text's weight, at least BLEND_MIN_STRENGTH, and never
    so low that ``steps`` × strength rounds to no step at all."""
    strength = min(1.0, max(text_weight, BLEND_MIN_STRENGTH))
    if img2img_steps(steps, strength) < 1:
        strength = min(1.0, 1.0 / steps + 1e-6)
    return strength


def variations_strength(steps: int) -> float:
    """VARIATIONS_STRENGTH, raised where ``steps`` is too small for it to leave a step."""
    return blend_strength(VARIATIONS_STRENGTH, steps)


def local_variant(folder: Path, variant: str | None) -> str | None:
    """``variant`` when the folder has weight files of that variant (the public fp16 layout), else none."""
    if variant and any(folder.glob(f"*/*.{variant}.safetensors*")):
        return variant
    return None


class Kandinsky3Engine(FamilyEngine):
    """Resident Kandinsky 3.0 models and the mode recipes built on them."""

    family: ClassVar[Family] = Family.KANDINSKY3
    warmup_modes: ClassVar[tuple[Mode, ...]] = (Mode.TEXT2IMAGE, Mode.VARIATIONS)
    """The text → image graph, and img2img's (MoVQ encode, a shorter schedule)."""
    local_folders: ClassVar[tuple[str, ...]] = (FOLDER,)

    def __init__(self, settings: EngineSettings, shared: SharedModels | None = None) -> None:
        self._variant: str | None = settings.k3_variant
        super().__init__(settings, shared)
        self.placement = self.placement_of(settings)
        self._text2image: Any = None
        self._img2img: Any = None
        self._encoder: Any = None
        """With the text encoder on the CPU: a pipeline holding only it (and the tokenizer)."""
        self._offloaded: Any = None
        """With model offload: the pipeline whose hooks are on the shared modules now."""

    @classmethod
    def placement_of(cls, settings: EngineSettings) -> Placement:
        return settings.k3_placement

    def sources(self) -> dict[str, str]:
        if self.settings.model_dir is None:
            return {"kandinsky3": self.settings.k3_id, "rembg": self.shared.rembg_source}
        folder = Path(self.settings.model_dir) / FOLDER
        if not folder.is_dir():
            raise ModelFolderError(self.missing_folder_message(Path(self.settings.model_dir)))
        self._variant = local_variant(folder, self.settings.k3_variant)
        require_complete(folder, "Kandinsky 3.0", variant=self._variant)
        return {"kandinsky3": str(folder), "rembg": self.shared.rembg_source}

    def load_all(self) -> None:
        started = time.perf_counter()
        self.text2image_pipeline()
        self.img2img_pipeline()
        self.shared.rembg_session()
        logger.info("engine %s loaded on %s/%s (%s) in %.1fs from %s", self.family, self.device, self.dtype,
                    self.placement, time.perf_counter() - started, self.model_ids["kandinsky3"])

    def count_tokens(self, text: str) -> int:
        """T5 tokens (the end token included), as the pipelines' tokenizer makes them."""
        return len(self.text2image_pipeline().tokenizer(text, verbose=False).input_ids)

    # --- loading ---------------------------------------------------------------------------------

    def _on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    def text2image_pipeline(self) -> Any:
        with self._load_lock:
            if self._text2image is None:
                kwargs = self._pretrained_kwargs()
                pipe: Any = Kandinsky3Pipeline.from_pretrained(
                    self.model_ids["kandinsky3"], variant=self._variant, **kwargs)
                pipe.set_progress_bar_config(disable=True)
                self._text2image = self._place(pipe)
            return self._text2image

    def img2img_pipeline(self) -> Any:
        with self._load_lock:
            if self._img2img is None:
                # Same modules (without the text encoder when it lives on the CPU, as text → image).
                pipe: Any = Kandinsky3Img2ImgPipeline(**self.text2image_pipeline().components)
                pipe.set_progress_bar_config(disable=True)
                self._img2img = pipe
            return self._img2img

    def _place(self, pipe: Any) -> Any:
        """Put the freshly loaded pipeline where the placement says."""
        if self.placement is Placement.TEXT_ENCODER_CPU:
            encoder_dtype = torch.bfloat16 if self._torch_dtype is torch.float16 else self._torch_dtype
            encoder: Any = Kandinsky3Pipeline(
                tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder.to("cpu", encoder_dtype),
                unet=None, scheduler=pipe.scheduler, movq=None)
            self._encoder = encoder
            # The denoising side has no text encoder: its device is the UNet's, and it is given
            # the prompt's embeddings instead of the prompt.
            pipe = Kandinsky3Pipeline(tokenizer=pipe.tokenizer, text_encoder=None, unet=pipe.unet,
                                      scheduler=pipe.scheduler, movq=pipe.movq)
            pipe.set_progress_bar_config(disable=True)
            return pipe.to(self.device)
        if self.placement is Placement.MODEL_OFFLOAD:
            if self._on_gpu():
                return pipe  # hooked by _ready, on the pipeline about to run
            logger.warning("K3 model offload ignored: models already live on %s", self.device)
        return pipe.to(self.device)

    def _ready(self, pipe: Any) -> Any:
        """Model offload hooks the shared modules for one pipeline at a time: the one about to run."""
        if self.placement is Placement.MODEL_OFFLOAD and self._on_gpu() and self._offloaded is not pipe:
            pipe.enable_model_cpu_offload(device=self.device)
            self._offloaded = pipe
        return pipe

    # --- running -----------------------------------------------------------------------------------

    def _prompt_kwargs(self, run: Run, prompt: str) -> dict[str, Any]:
        """The prompt as the pipeline takes it: the text itself, or (text encoder on the CPU) its
        embeddings and masks, encoded there and moved to the device."""
        negative = self._negative(run.spec)
        if self._encoder is None:
            return {"prompt": prompt, "negative_prompt": negative}
        with self._stage(run.timings, "text_encoder"):
            embeds, negative_embeds, mask, negative_mask = self._encoder.encode_prompt(
                prompt, True, num_images_per_prompt=1, device="cpu", negative_prompt=negative,
                _cut_context=True)
        unet_dtype = self._torch_dtype
        return {
            "prompt": None,
            "prompt_embeds": embeds.to(self.device, unet_dtype),
            "negative_prompt_embeds": negative_embeds.to(self.device, unet_dtype),
            "attention_mask": mask.to(self.device),
            "negative_attention_mask": negative_mask.to(self.device),
        }

    def _text_to_images(self, run: Run) -> list[PIL.Image.Image]:
        spec = run.spec
        pipe = self.text2image_pipeline()
        prompt = self._prompt_kwargs(run, spec.effective_prompt)
        run.progress.begin(STAGE, spec.steps)
        with self._stage(run.timings, STAGE):
            out = self._ready(pipe)(
                **prompt,
                num_inference_steps=spec.steps,
                guidance_scale=spec.guidance,
                num_images_per_prompt=run.n,
                height=spec.height,
                width=spec.width,
                generator=run.generators,
                callback_on_step_end=run.progress.on_step_end,
            )
        return list(out.images)

    def _image_to_images(self, run: Run, prompt: str, strength: float) -> list[PIL.Image.Image]:
        """img2img from the job's input, fitted to the job size (crop to the aspect, then resize)."""
        spec = run.spec
        init = fit_to_size(run.images[0], spec.width, spec.height)
        pipe = self.img2img_pipeline()
        prompt_kwargs = self._prompt_kwargs(run, prompt)
        run.progress.begin(STAGE, img2img_steps(spec.steps, strength))
        with self._stage(run.timings, STAGE):
            out = self._ready(pipe)(
                **prompt_kwargs,
                image=init,
                strength=strength,
                num_inference_steps=spec.steps,
                guidance_scale=spec.guidance,
                num_images_per_prompt=run.n,
                generator=run.generators,
                callback_on_step_end=run.progress.on_step_end,
            )
        return list(out.images)

    # --- modes ------------------------------------------------------------------------------------

    @recipe(Mode.TEXT2IMAGE)
    def _text2image_mode(self, run: Run) -> list[PIL.Image.Image]:
        return self._text_to_images(run)

    @recipe(Mode.STICKER)
    def _sticker(self, run: Run) -> list[PIL.Image.Image]:
        return self.cut_out_stickers(run, self._text_to_images(run))

    @recipe(Mode.BLEND)
    def _blend(self, run: Run) -> list[PIL.Image.Image]:
        """Image + text: img2img from the photo with the prompt; the text's weight is the strength."""
        strength = blend_strength(run.spec.weights[1], run.spec.steps)
        return self._image_to_images(run, run.spec.effective_prompt, strength)

    @recipe(Mode.VARIATIONS)
    def _variations(self, run: Run) -> list[PIL.Image.Image]:
        """img2img from the reference with no prompt but the style's, a new seed per image."""
        return self._image_to_images(run, run.spec.effective_prompt, variations_strength(run.spec.steps))
