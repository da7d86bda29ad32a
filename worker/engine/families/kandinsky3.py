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
from diffusers import Kandinsky3Img2ImgPipeline, Kandinsky3Pipeline
from pydantic_settings import SettingsConfigDict

from contract.families import Family, Placement
from contract.spec import Mode
from worker.engine.base import ModelFolderError, Run, SharedModels, img2img_steps, require_complete
from worker.engine.families.img2img import Img2ImgFamily, local_variant
from worker.engine.images import fit_to_size
from worker.engine.settings import EngineSettings, FamilyOptions

logger = logging.getLogger(__name__)

FOLDER = "kandinsky3"
"""The family's folder in a local bundle (``KANDINSKY_MODEL_DIR``): one saved Kandinsky3Pipeline."""



class Kandinsky3Options(FamilyOptions):
    """``KANDINSKY_K3_*``."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_K3_", extra="ignore")

    id: str = "kandinsky-community/kandinsky-3"
    """The checkpoint (one repo: text encoder, UNet, MoVQ); ``kandinsky3/`` in a bundle."""
    variant: str | None = "fp16"
    """Weight files to read (the public repo's fp16 ones halve the download)."""
    placement: Placement = Placement.GPU
    """``gpu`` (all resident), ``text_encoder_cpu`` (Flan-UL2's encoder on the CPU, the UNet and MoVQ
    on the GPU) or ``model_offload`` (each model on the GPU while it runs)."""


STAGE = "unet"
"""The one denoising stage of this family, as progress and timings name it."""


class Kandinsky3Engine(Img2ImgFamily):
    """Resident Kandinsky 3.0 models and the mode recipes built on them."""

    family: ClassVar[Family] = Family.KANDINSKY3
    warmup_modes: ClassVar[tuple[Mode, ...]] = (Mode.TEXT2IMAGE, Mode.VARIATIONS)
    """The text → image graph, and img2img's (MoVQ encode, a shorter schedule)."""
    local_folders: ClassVar[tuple[str, ...]] = (FOLDER,)
    options_class: ClassVar[type[FamilyOptions]] = Kandinsky3Options
    options: Kandinsky3Options

    def __init__(self, settings: EngineSettings, shared: SharedModels | None = None) -> None:
        self._variant: str | None = None
        super().__init__(settings, shared)
        self._text2image: Any = None
        self._img2img: Any = None
        self._encoder: Any = None
        """With the text encoder on the CPU: a pipeline holding only it (and the tokenizer)."""

    @classmethod
    def public_ids(cls, settings: EngineSettings) -> tuple[str, ...]:
        return (cls.options_of(settings).id,)

    def sources(self) -> dict[str, str]:
        if self.settings.model_dir is None:
            self._variant = self.options.variant
            return {"kandinsky3": self.options.id, "rembg": self.shared.rembg_source}
        folder = Path(self.settings.model_dir) / FOLDER
        if not folder.is_dir():
            raise ModelFolderError(self.missing_folder_message(Path(self.settings.model_dir)))
        self._variant = local_variant(folder, self.options.variant)
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

    def text2image_pipeline(self) -> Any:
        return self._resident("_text2image", lambda: self._place(Kandinsky3Pipeline.from_pretrained(
            self.model_ids["kandinsky3"], variant=self._variant, **self._pretrained_kwargs())))

    def img2img_pipeline(self) -> Any:
        # Same modules (without the text encoder when it lives on the CPU, as text → image).
        return self._resident("_img2img",
                              lambda: Kandinsky3Img2ImgPipeline(**self.text2image_pipeline().components))

    def _place(self, pipe: Any) -> Any:
        """Put the freshly loaded pipeline where the placement says."""
        if self.placement is Placement.TEXT_ENCODER_CPU:
            encoder: Any = Kandinsky3Pipeline(
                tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder.to("cpu", self._cpu_encoder_dtype),
                unet=None, scheduler=pipe.scheduler, movq=None)
            self._encoder = encoder
            # The denoising side has no text encoder: its device is the UNet's, and it is given
            # the prompt's embeddings instead of the prompt.
            pipe = Kandinsky3Pipeline(tokenizer=pipe.tokenizer, text_encoder=None, unet=pipe.unet,
                                      scheduler=pipe.scheduler, movq=pipe.movq)
            return pipe.to(self.device)
        return self._place_or_defer(pipe)

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
        return self._denoise(run, pipe, spec.steps, height=spec.height, width=spec.width)

    def _image_to_images(self, run: Run, strength: float) -> list[PIL.Image.Image]:
        """img2img from the job's input, fitted to the job size (crop to the aspect, then resize)."""
        spec = run.spec
        init = fit_to_size(run.images[0], spec.width, spec.height)
        return self._denoise(run, self.img2img_pipeline(), img2img_steps(spec.steps, strength), image=init,
                             strength=strength)

    def _denoise(self, run: Run, pipe: Any, steps: int, **inputs: Any) -> list[PIL.Image.Image]:
        """One pipeline call of ``steps`` UNet steps on the job's prompt, progress and timing counted."""
        spec = run.spec
        prompt = self._prompt_kwargs(run, spec.effective_prompt)
        run.progress.begin(STAGE, steps)
        with self._stage(run.timings, STAGE):
            out = self._ready(pipe)(**prompt, **inputs, num_inference_steps=spec.steps,
                                    guidance_scale=spec.guidance, num_images_per_prompt=run.n,
                                    generator=run.generators, callback_on_step_end=run.progress.on_step_end)
        return list(out.images)
