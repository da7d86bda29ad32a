"""The SDXL family: two CLIP text encoders → the base UNet (→ the refiner UNet) → the VAE.

Text → image and stickers run ``StableDiffusionXLPipeline``; image + text and variations run
``StableDiffusionXLImg2ImgPipeline`` and inpainting ``StableDiffusionXLInpaintPipeline``, both built on
the base's own modules (one copy of the weights). With the refiner on (``KANDINSKY_SDXL_REFINER``) the
two run as an ensemble of experts, as the model card does: the base denoises to
``KANDINSKY_SDXL_REFINER_FRACTION`` of the schedule (``denoising_end``) and hands its latents to the
refiner (``denoising_start``), a ``StableDiffusionXLImg2ImgPipeline`` whose second text encoder and
VAE are the base's (only its UNet is loaded). Inpainting runs the base alone.

float16: the public VAE overflows in float16, so diffusers decodes in float32 (``force_upcast``);
``KANDINSKY_SDXL_VAE_ID=madebyollin/sdxl-vae-fp16-fix`` swaps in a VAE that does not need it, and
``KANDINSKY_SDXL_VAE_UPCAST`` overrides the VAE's own setting.

No image prior, so mix and keep-depth are not served (contract.modes says so, the bot refuses them).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import PIL.Image
import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contract.families import Family, Placement
from contract.loras import styled_prompt
from contract.spec import JobSpec, Mode
from contract.weighting import has_weighting, to_compel
from worker.engine.base import (
    InputRejected,
    ModelFolderError,
    Run,
    SharedModels,
    recipe,
    require_complete,
)
from worker.engine.families.img2img import Img2ImgFamily, local_variant
from worker.engine.images import fit_mask, fit_to_size
from worker.engine.settings import EngineSettings, FamilyOptions

logger = logging.getLogger(__name__)

FOLDER = "sdxl"
"""The base's folder in a local bundle (one saved StableDiffusionXLPipeline)."""
REFINER_FOLDER = "sdxl_refiner"
"""The refiner's folder (one saved StableDiffusionXLImg2ImgPipeline, no first text encoder)."""



class SDXLOptions(FamilyOptions):
    """``KANDINSKY_SDXL_*``."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_SDXL_", extra="ignore")

    id: str = "stabilityai/stable-diffusion-xl-base-1.0"
    """The base checkpoint; ``sdxl/`` in a bundle."""
    refiner_id: str = "stabilityai/stable-diffusion-xl-refiner-1.0"
    """The refiner checkpoint (only its UNet is loaded: the second text encoder and the VAE are the
    base's); ``sdxl_refiner/`` in a bundle."""
    variant: str | None = "fp16"
    """Weight files of both checkpoints to read (the public fp16 ones halve the download)."""
    refiner: bool = True
    """Run the refiner as the second expert: the base denoises to ``refiner_fraction`` of the
    schedule and hands its latents over (diffusers' ``denoising_end``/``denoising_start``)."""
    refiner_fraction: float = Field(default=0.8, gt=0.0, lt=1.0)
    """Where the base hands over to the refiner (the model card's 0.8: the refiner takes the last 20%)."""
    vae_id: str | None = None
    """Another VAE, e.g. ``madebyollin/sdxl-vae-fp16-fix``: the public VAE overflows in float16 and
    is upcast to float32 for every decode; the fixed one is not."""
    vae_upcast: bool | None = None
    """Force (true) or skip (false) the float32 VAE decode; unset: the VAE config's ``force_upcast``."""
    placement: Placement = Placement.GPU
    """``gpu`` (all resident) or ``model_offload`` (each model on the GPU while it runs)."""


STAGE = "unet"
REFINER_STAGE = "refiner"
"""The two experts' stages, as progress and timings name them."""

INPAINT_STRENGTH = 1.0
"""The masked region is redrawn from noise; outside it the base keeps the picture's own latents."""


def expert_steps(timesteps: torch.Tensor, strength: float, fraction: float,
                 train_timesteps: int = 1000) -> tuple[int, int]:
    """(base steps, refiner steps) diffusers runs for a schedule (``timesteps`` of the full
    ``num_inference_steps``), an img2img ``strength`` (1.0: from noise) and the hand-over
    ``fraction``: the base's ``denoising_end`` filter and the refiner's ``denoising_start`` one."""
    steps = len(timesteps)
    init = min(int(steps * strength), steps)
    mine = timesteps[max(steps - init, 0):]
    cutoff = round(train_timesteps - fraction * train_timesteps)
    return int((mine >= cutoff).sum().item()), int((timesteps < cutoff).sum().item())


class SDXLEngine(Img2ImgFamily):
    """Resident SDXL base (and refiner) models and the mode recipes built on them."""

    family: ClassVar[Family] = Family.SDXL
    warmup_modes: ClassVar[tuple[Mode, ...]] = (Mode.TEXT2IMAGE, Mode.VARIATIONS)
    local_folders: ClassVar[tuple[str, ...]] = (FOLDER, REFINER_FOLDER)

    options_class: ClassVar[type[FamilyOptions]] = SDXLOptions
    options: SDXLOptions

    def __init__(self, settings: EngineSettings, shared: SharedModels | None = None) -> None:
        self._variant: str | None = None
        super().__init__(settings, shared)
        self.use_refiner = self.options.refiner
        self.fraction = self.options.refiner_fraction
        self._base: Any = None
        self._img2img: Any = None
        self._inpaint: Any = None
        self._refiner: Any = None

    @classmethod
    def public_ids(cls, settings: EngineSettings) -> tuple[str, ...]:
        options = cls.options_of(settings)
        return (options.id, *((options.refiner_id,) if options.refiner else ()),
                *((options.vae_id,) if options.vae_id else ()))

    shared_folders: ClassVar[tuple[str, ...]] = ("text_encoder_2", "vae")
    """The refiner runs on the base's second text encoder and VAE."""

    @classmethod
    def has_local_folder(cls, root: Path) -> bool:
        return (root / FOLDER).exists()

    def sources(self) -> dict[str, str]:
        sources = {"rembg": self.shared.rembg_source}
        self._variant = self.options.variant
        if self.options.vae_id:
            sources["sdxl_vae"] = self.options.vae_id
        if self.settings.model_dir is None:
            sources["sdxl"] = self.options.id
            if self.options.refiner:
                sources["sdxl_refiner"] = self.options.refiner_id
            return sources
        root = Path(self.settings.model_dir)
        if not (root / FOLDER).is_dir():
            raise ModelFolderError(self.missing_folder_message(root))
        self._variant = local_variant(root / FOLDER, self.options.variant)
        require_complete(root / FOLDER, "SDXL", variant=self._variant)
        sources["sdxl"] = str(root / FOLDER)
        if self.options.refiner:
            if not (root / REFINER_FOLDER).is_dir():
                raise ModelFolderError(f"SDXL: the refiner is on (KANDINSKY_SDXL_REFINER) but model_dir "
                                       f"{root} has no {REFINER_FOLDER}/ folder")
            require_complete(root / REFINER_FOLDER, "SDXL refiner",
                             variant=local_variant(root / REFINER_FOLDER, self.options.variant))
            sources["sdxl_refiner"] = str(root / REFINER_FOLDER)
        return sources

    def load_all(self) -> None:
        started = time.perf_counter()
        self.base_pipeline()
        self.img2img_pipeline()
        self.inpaint_pipeline()
        if self.use_refiner:
            self.refiner_pipeline()
        self.shared.rembg_session()
        logger.info("engine %s loaded on %s/%s (%s, refiner %s) in %.1fs from %s", self.family, self.device,
                    self.dtype, self.placement, "on" if self.use_refiner else "off",
                    time.perf_counter() - started, self.model_ids["sdxl"])

    def count_tokens(self, text: str) -> int:
        """CLIP tokens (start and end included), as the base's first tokenizer makes them."""
        return len(self.base_pipeline().tokenizer(text, verbose=False).input_ids)

    def prompt_truncated(self, spec: JobSpec) -> bool:
        """Never: a prompt longer than 77 tokens goes through compel, in chunks, and is read whole."""
        return False

    # --- loading -------------------------------------------------------------------------------------

    def _vae_kwargs(self) -> dict[str, Any]:
        if not self.options.vae_id:
            return {}
        source, variant = self.options.vae_id, self.options.variant
        # A local VAE folder is read in the variant it has; a hub id (the fp16 fix: one set of files) as is.
        local = Path(source).is_dir() and variant and any(Path(source).glob(f"*.{variant}.safetensors"))
        vae: Any = AutoencoderKL.from_pretrained(source, variant=variant if local else None,
                                                 **self._pretrained_kwargs())
        return {"vae": vae}

    def base_pipeline(self) -> Any:
        def load() -> Any:
            pipe: Any = StableDiffusionXLPipeline.from_pretrained(
                self.model_ids["sdxl"], variant=self._variant, **self._vae_kwargs(),
                **self._pretrained_kwargs())
            if self.options.vae_upcast is not None:
                pipe.vae.register_to_config(force_upcast=self.options.vae_upcast)
            self.loras.load_into(pipe)  # the img2img and inpainting pipelines share its UNet and encoders
            return self._place_or_defer(pipe)

        return self._resident("_base", load)

    def img2img_pipeline(self) -> Any:
        return self._resident("_img2img",
                              lambda: StableDiffusionXLImg2ImgPipeline(**self.base_pipeline().components))

    def inpaint_pipeline(self) -> Any:
        return self._resident("_inpaint",
                              lambda: StableDiffusionXLInpaintPipeline(**self.base_pipeline().components))

    def refiner_pipeline(self) -> Any:
        """The refiner on the base's second text encoder and VAE: only its UNet is read from disk."""
        def load() -> Any:
            base = self.base_pipeline()
            variant = self._variant
            if self.settings.model_dir is not None:
                variant = local_variant(Path(self.model_ids["sdxl_refiner"]), self.options.variant)
            return self._place_or_defer(StableDiffusionXLImg2ImgPipeline.from_pretrained(
                self.model_ids["sdxl_refiner"], variant=variant, text_encoder_2=base.text_encoder_2,
                vae=base.vae, **self._pretrained_kwargs()))

        return self._resident("_refiner", load)

    # --- running -------------------------------------------------------------------------------------

    def _split(self, pipe: Any, steps: int, strength: float) -> tuple[int, int]:
        """(base steps, refiner steps) of this job; refiner steps 0 when the refiner is off or one of
        the experts would get no step at all (then the base runs the whole schedule)."""
        scheduler = copy.deepcopy(pipe.scheduler)
        scheduler.set_timesteps(steps)
        full = min(int(steps * strength), steps) if strength < 1.0 else steps
        if not self.use_refiner:
            return full, 0
        base, refiner = expert_steps(scheduler.timesteps, strength, self.fraction,
                                     scheduler.config.num_train_timesteps)
        if base < 1 or refiner < 1:
            return full, 0
        return base, refiner

    def _styled_prompt(self, run: Run) -> str:
        """Switch the job's LoRA styles on (every other one off) on the base's modules, which every
        base pipeline shares, and put their trigger words in front of the prompt. The refiner's own
        UNet runs without them: they were trained on the base's."""
        styles = self.loras.apply(self.base_pipeline(), run.spec.loras)
        return styled_prompt(run.spec.effective_prompt, styles)

    def needs_compel(self, spec: JobSpec, prompt: str) -> bool:
        """Weighted or over-long prompts go through compel; plain ones through the pipeline's own
        encoder (so they stay bit for bit the model card's)."""
        texts = (prompt, spec.negative_prompt)
        if any(has_weighting(t) for t in texts):
            return True
        return any(self.count_tokens(t) > self.description.prompt_tokens for t in texts if t)

    def _weighted(self, run: Run, pipe: Any, prompt: str, refiner: bool) -> dict[str, Any]:
        """compel's embeddings (weights applied, long prompts in 77-token chunks, the pooled one
        from the second encoder), for the base (both encoders) or the refiner (the second only)."""
        from compel import Compel, ReturnedEmbeddingsType

        if refiner:
            tokenizers: Any = pipe.tokenizer_2
            encoders: Any = pipe.text_encoder_2
            pooled: Any = True
        else:
            tokenizers = [pipe.tokenizer, pipe.tokenizer_2]
            encoders = [pipe.text_encoder, pipe.text_encoder_2]
            pooled = [False, True]
        compel = Compel(tokenizer=tokenizers, text_encoder=encoders, requires_pooled=pooled,
                        returned_embeddings_type=ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED,
                        truncate_long_prompts=False, device=self.device)
        negative = self._negative(run.spec)
        with self._stage(run.timings, "compel"), torch.no_grad():
            embeds, pooled_embeds = compel(to_compel(prompt))
            if negative is None and not refiner:  # the base zeroes an empty negative itself
                return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled_embeds}
            # The refiner encodes an empty negative as "" (its config), padded to the prompt's chunks here.
            negative_embeds, negative_pooled = compel(to_compel(negative or ""))
            embeds, negative_embeds = compel.pad_conditioning_tensors_to_same_length(
                [embeds, negative_embeds])
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled_embeds,
                "negative_prompt_embeds": negative_embeds, "negative_pooled_prompt_embeds": negative_pooled}

    def _prompt_kwargs(self, run: Run, pipe: Any, prompt: str, refiner: bool = False) -> dict[str, Any]:
        if not self.needs_compel(run.spec, prompt):
            return {"prompt": prompt, "negative_prompt": self._negative(run.spec)}
        return self._weighted(run, pipe, prompt, refiner)

    def _run_experts(self, run: Run, pipe: Any, prompt: str, strength: float | None,
                     **inputs: Any) -> list[PIL.Image.Image]:
        """The base (``pipe``, with ``inputs``) and, when it gets steps, the refiner after it."""
        spec = run.spec
        base_steps, refiner_steps = self._split(pipe, spec.steps, 1.0 if strength is None else strength)
        common: dict[str, Any] = {
            **self._prompt_kwargs(run, pipe, prompt), "num_inference_steps": spec.steps,
            "guidance_scale": spec.guidance, "num_images_per_prompt": run.n, "generator": run.generators,
            "callback_on_step_end": run.progress.on_step_end,
        }
        if strength is not None:
            common["strength"] = strength
        handover: dict[str, Any] = {}
        if refiner_steps:
            handover = {"denoising_end": self.fraction, "output_type": "latent"}
        run.progress.begin(STAGE, base_steps)
        with self._stage(run.timings, STAGE):
            out = self._ready(pipe)(**common, **inputs, **handover)
        if not refiner_steps:
            return list(out.images)
        refiner = self.refiner_pipeline()
        run.progress.begin(REFINER_STAGE, refiner_steps)
        with self._stage(run.timings, REFINER_STAGE):
            refined = self._ready(refiner)(
                **self._prompt_kwargs(run, refiner, prompt, refiner=True), image=out.images,
                num_inference_steps=spec.steps,
                denoising_start=self.fraction, guidance_scale=spec.guidance, num_images_per_prompt=run.n,
                generator=run.generators, callback_on_step_end=run.progress.on_step_end)
        return list(refined.images)

    def _text_to_images(self, run: Run) -> list[PIL.Image.Image]:
        spec = run.spec
        return self._run_experts(run, self.base_pipeline(), self._styled_prompt(run), None,
                                 height=spec.height, width=spec.width)

    def _image_to_images(self, run: Run, strength: float) -> list[PIL.Image.Image]:
        spec = run.spec
        init = fit_to_size(run.images[0], spec.width, spec.height)
        return self._run_experts(run, self.img2img_pipeline(), self._styled_prompt(run), strength, image=init)

    # --- modes (text → image, stickers, image + text and variations: Img2ImgFamily) -------------------

    @recipe(Mode.INPAINT)
    def _inpaint_mode(self, run: Run) -> list[PIL.Image.Image]:
        """The base's inpainting pipeline (white = repaint), at the job size; the base alone."""
        if run.mask is None:  # _check_inputs refuses this first; here for the type checker
            raise InputRejected("mode inpaint needs a mask (white = repaint)")
        spec = run.spec
        init = fit_to_size(run.images[0], spec.width, spec.height)
        mask = fit_mask(run.mask, spec.width, spec.height)
        pipe = self.inpaint_pipeline()
        prompt = self._styled_prompt(run)
        run.progress.begin(STAGE, spec.steps)
        with self._stage(run.timings, STAGE):
            out = self._ready(pipe)(
                **self._prompt_kwargs(run, pipe, prompt), image=init,
                mask_image=mask, height=spec.height, width=spec.width, strength=INPAINT_STRENGTH,
                num_inference_steps=spec.steps, guidance_scale=spec.guidance, num_images_per_prompt=run.n,
                generator=run.generators, callback_on_step_end=run.progress.on_step_end)
        return list(out.images)
