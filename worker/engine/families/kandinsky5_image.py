"""The Kandinsky 5.0 Image family: Qwen2.5-VL and CLIP → a 6B flow-matching DiT → FLUX.1's VAE.

Text → image and stickers run ``Kandinsky5T2IPipeline`` (Image Lite); image + text and variations
run ``Kandinsky5I2IPipeline`` (I2I Lite), an editing model: it reads the photo twice, as latents
beside the noise and through Qwen2.5-VL's vision tower, and follows the words as an instruction.
It has no strength to set: in image + text the text's weight sets how strongly the words are
followed (its guidance, :func:`edit_guidance`), and a variation is the picture redrawn by
VARIATION_PROMPT. Qwen2.5-VL reads Russian itself, so the worker sends this family's prompts
untranslated (contract.language).

Both pipelines draw at the sizes they were trained at (``pipe.resolutions``, 1K: 1024², 1280×768,
1408×640, 1152×896 and their transposes); the engine picks the one closest to the user's aspect
ratio, then cuts the picture to that exact ratio and scales it to the job's tier.

Placements (``KANDINSKY_K5_IMAGE_PLACEMENT``, contract.families.Placement):

* ``gpu``: every model resident; the pipelines run as the model card does (bit for bit:
  tests/worker/test_kandinsky5_image.py holds them to plain diffusers);
* ``text_encoder_cpu``: Qwen2.5-VL's 8.3B and CLIP stay on the CPU (bfloat16 when the GPU runs
  float16), the prompt (and the photo, for image → image) is encoded there once per job;
* ``model_offload``: accelerate's model offload, on the pipeline about to run.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import PIL.Image
from diffusers import Kandinsky5I2IPipeline, Kandinsky5T2IPipeline
from pydantic_settings import SettingsConfigDict
from transformers import AutoTokenizer, Qwen2VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from contract.families import Family, Placement
from contract.spec import Mode
from worker.engine.base import ModelFolderError, Run, SharedModels, recipe, require_complete
from worker.engine.families.img2img import TextToImageFamily
from worker.engine.families.kandinsky5 import encoded_on_cpu, split_text_encoders
from worker.engine.images import fit_to_size
from worker.engine.settings import DiTOptions, EngineSettings, FamilyOptions
from worker.engine.speed import speed_up_dit

logger = logging.getLogger(__name__)

IMAGE_FOLDER = "kandinsky5_image"
"""Text → image in a local bundle (``KANDINSKY_MODEL_DIR``): one saved Kandinsky5T2IPipeline."""
EDIT_FOLDER = "kandinsky5_image_edit"
"""Image → image in a local bundle: one saved Kandinsky5I2IPipeline."""
STAGE = "transformer"
"""The one denoising stage of this family, as progress and timings name it."""
VARIATION_PROMPT = "the same picture redrawn with small changes in its details, same composition and colours"
"""What the editing model reads for a variation (the photo came without words)."""


class Kandinsky5ImageOptions(DiTOptions):
    """``KANDINSKY_K5_IMAGE_*``."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_K5_IMAGE_", extra="ignore")

    id: str = "kandinskylab/Kandinsky-5.0-T2I-Lite-sft-Diffusers"
    """Text → image (``kandinsky5_image/`` in a bundle); the pretrain checkpoint is the other public one."""
    edit_id: str = "kandinskylab/Kandinsky-5.0-I2I-Lite-sft-Diffusers"
    """Image → image (``kandinsky5_image_edit/`` in a bundle)."""
    placement: Placement = Placement.GPU
    """``gpu`` (all resident), ``text_encoder_cpu`` (Qwen2.5-VL and CLIP on the CPU) or
    ``model_offload`` (each model on the GPU while it runs)."""


class ImageTextProcessor(Qwen2VLProcessor):
    """Qwen2.5-VL's processor for text and pictures. The pipelines never pass videos, and the public
    processor's video half needs torchvision, so this one is built without it (the public
    ``tokenizer/`` folder's tokenizer and image processor, the latter's PIL backend)."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


def closest_resolution(resolutions: list[tuple[int, int]], width: int, height: int) -> tuple[int, int]:
    """The (width, height) of ``resolutions`` nearest the shape ``width`` × ``height`` (in log ratio,
    so 2:1 and 1:2 are equally far from 1:1)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"a size must be positive, got {width}x{height}")
    return min(resolutions, key=lambda r: abs(math.log(r[0] * height / (r[1] * width))))


def edit_guidance(guidance: float, text_weight: float) -> float:
    """Image + text's guidance: the job's at equal weights, rising to twice its pull (from 1, no
    guidance) when the text weighs everything, and falling to 1 when the photo does."""
    if not 0.0 <= text_weight <= 1.0:
        raise ValueError(f"a weight is between 0 and 1, got {text_weight}")
    return 1.0 + (guidance - 1.0) * 2.0 * text_weight


class Kandinsky5ImageEngine(TextToImageFamily):
    """Resident Image Lite pipelines (text → image, image → image) sharing their text encoders."""

    family: ClassVar[Family] = Family.KANDINSKY5_IMAGE
    local_folders: ClassVar[tuple[str, ...]] = (IMAGE_FOLDER, EDIT_FOLDER)
    options_class: ClassVar[type[FamilyOptions]] = Kandinsky5ImageOptions
    shared_folders: ClassVar[tuple[str, ...]] = ("text_encoder", "text_encoder_2", "tokenizer_2")
    """Image → image is handed text → image's encoders (its own tokenizer/ is the processor)."""
    options: Kandinsky5ImageOptions

    def __init__(self, settings: EngineSettings, shared: SharedModels | None = None) -> None:
        super().__init__(settings, shared)
        self._text2image: Any = None
        self._edit: Any = None
        self._encoders: dict[type, Any] = {}
        """With the text encoders on the CPU: a pipeline of each kind holding only them."""

    @classmethod
    def public_ids(cls, settings: EngineSettings) -> tuple[str, ...]:
        options = cls.options_of(settings)
        return options.id, options.edit_id

    def sources(self) -> dict[str, str]:
        if self.settings.model_dir is None:
            return {"text2image": self.options.id, "edit": self.options.edit_id,
                    "rembg": self.shared.rembg_source}
        root = Path(self.settings.model_dir)
        sources = {}
        for name, folder_name in (("text2image", IMAGE_FOLDER), ("edit", EDIT_FOLDER)):
            folder = root / folder_name
            if not folder.is_dir():
                raise ModelFolderError(self.missing_folder_message(root))
            require_complete(folder, f"Kandinsky 5.0 Image {name}")
            sources[name] = str(folder)
        return {**sources, "rembg": self.shared.rembg_source}

    def load_all(self) -> None:
        started = time.perf_counter()
        self.text2image_pipeline()
        self.edit_pipeline()
        self.shared.rembg_session()
        logger.info("engine %s loaded on %s/%s (%s) in %.1fs from %s", self.family, self.device, self.dtype,
                    self.placement, time.perf_counter() - started, self.model_ids["text2image"])

    def count_tokens(self, text: str) -> int:
        """Qwen2.5-VL tokens of the prompt itself (the pipeline's template around it is not counted)."""
        return len(self._encoder_of(self.text2image_pipeline()).tokenizer(text).input_ids)

    # --- loading ---------------------------------------------------------------------------------

    def text2image_pipeline(self) -> Any:
        return self._resident("_text2image", lambda: self._place(Kandinsky5T2IPipeline.from_pretrained(
            self.model_ids["text2image"], **self._pretrained_kwargs())))

    def edit_pipeline(self) -> Any:
        """Image → image: its own DiT; the text encoders are text → image's, its tokenizer the
        processor that also reads the photo."""
        def load() -> Any:
            first = self.text2image_pipeline()
            shared = {name: getattr(self._encoder_of(first), name) for name in self.shared_folders}
            return self._place(Kandinsky5I2IPipeline.from_pretrained(
                self.model_ids["edit"], tokenizer=self._processor(), **shared, **self._pretrained_kwargs()))

        return self._resident("_edit", load)

    def _processor(self) -> ImageTextProcessor:
        source = self.model_ids["edit"]
        kwargs: dict[str, Any] = {"subfolder": "tokenizer"}
        if self.settings.cache_dir is not None:
            kwargs["cache_dir"] = str(self.settings.cache_dir)
        return ImageTextProcessor(image_processor=Qwen2VLImageProcessorPil.from_pretrained(source, **kwargs),
                                  tokenizer=AutoTokenizer.from_pretrained(source, **kwargs))

    def _encoder_of(self, pipe: Any) -> Any:
        """The pipeline that encodes ``pipe``'s prompts: itself, or its CPU twin."""
        return self._encoders.get(type(pipe), pipe)

    def _place(self, pipe: Any) -> Any:
        """Put a freshly loaded pipeline where the placement says, its DiT sped up as the options say."""
        speed_up_dit(pipe.transformer, self.options.attention_backend, self.settings)
        if self.placement is Placement.TEXT_ENCODER_CPU:
            self._encoders[type(pipe)], denoiser = split_text_encoders(pipe, self._cpu_encoder_dtype)
            return denoiser.to(self.device)
        return self._place_or_defer(pipe)

    # --- running -----------------------------------------------------------------------------------

    def _prompt_kwargs(self, run: Run, pipe: Any, prompt: str, guidance: float,
                       **image: Any) -> dict[str, Any]:
        """The prompt as the pipeline takes it: the text itself, or (text encoders on the CPU) its
        embeddings, encoded there (with the photo, for image → image) and moved to the device, one
        copy per picture of the call (image → image draws one picture per call)."""
        negative = self._negative(run.spec) or ""
        encoder = self._encoders.get(type(pipe))
        copies = 1 if image else run.n
        if encoder is None:
            return {"prompt": prompt, "negative_prompt": negative, "num_images_per_prompt": copies}
        texts = {"": prompt, "negative_": negative} if guidance > 1.0 else {"": prompt}
        with self._stage(run.timings, "text_encoder"):
            kwargs: dict[str, Any] = {"prompt": None, "num_images_per_prompt": 1}
            for prefix, text in texts.items():
                kwargs |= encoded_on_cpu(encoder, text, prefix, self.device, self._torch_dtype, **image,
                                         num_images_per_prompt=copies)
        return kwargs

    def _size(self, run: Run, pipe: Any) -> tuple[int, int]:
        """The trained size the pipeline draws this job at: the one closest to the user's ratio."""
        return closest_resolution(pipe.resolutions, *run.spec.output_size())

    def _to_job_size(self, run: Run, pictures: list[PIL.Image.Image]) -> list[PIL.Image.Image]:
        """Cut to the exact ratio and scaled to the tier (the crop ``generate`` then makes is a no-op)."""
        return [fit_to_size(p, *run.spec.output_size()) for p in pictures]

    def _denoise(self, run: Run, pipe: Any, guidance: float, **inputs: Any) -> list[PIL.Image.Image]:
        """One pipeline call of the job's steps (counted in the progress its caller began)."""
        with self._stage(run.timings, STAGE):
            out = self._ready(pipe)(**inputs, num_inference_steps=run.spec.steps, guidance_scale=guidance,
                                    callback_on_step_end=run.progress.on_step_end)
        return list(out.image)

    def _text_to_images(self, run: Run) -> list[PIL.Image.Image]:
        pipe = self.text2image_pipeline()
        width, height = self._size(run, pipe)
        prompt_kwargs = self._prompt_kwargs(run, pipe, run.spec.effective_prompt, run.spec.guidance)
        run.progress.begin(STAGE, run.spec.steps)
        pictures = self._denoise(run, pipe, run.spec.guidance, **prompt_kwargs, width=width, height=height,
                                 generator=run.generators)
        return self._to_job_size(run, pictures)

    def _edited(self, run: Run, prompt: str, guidance: float) -> list[PIL.Image.Image]:
        """The photo (fitted to the trained size) edited by ``prompt``, one pipeline call per image: the
        pipeline's photo latents have a batch of one."""
        pipe = self.edit_pipeline()
        width, height = self._size(run, pipe)
        photo = fit_to_size(run.images[0], width, height)
        prompt_kwargs = self._prompt_kwargs(run, pipe, prompt, guidance, image=photo)
        run.progress.begin(STAGE, run.spec.steps * run.n)
        pictures = []
        for generator in run.generators:
            pictures += self._denoise(run, pipe, guidance, **prompt_kwargs, image=photo, width=width,
                                      height=height, generator=generator)
        return self._to_job_size(run, pictures)

    @recipe(Mode.BLEND)
    def _blend(self, run: Run) -> list[PIL.Image.Image]:
        """Image + text: the photo edited as the words say, as strongly as the text's weight asks."""
        guidance = edit_guidance(run.spec.guidance, run.spec.weights[1])
        return self._edited(run, run.spec.effective_prompt, guidance)

    @recipe(Mode.VARIATIONS)
    def _variations(self, run: Run) -> list[PIL.Image.Image]:
        """The photo redrawn by VARIATION_PROMPT (and the style's words), a new seed per image."""
        return self._edited(run, f"{VARIATION_PROMPT}{run.spec.effective_prompt}", run.spec.guidance)
