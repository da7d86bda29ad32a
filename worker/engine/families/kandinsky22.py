"""The Kandinsky 2.2 family: prior + decoder (+ inpaint and depth ControlNet decoders), every mode.

Every model is loaded once and stays resident; pipelines share modules (one prior with its encoders,
one MoVQ) instead of copies. Images are the model card's recipes, bit for bit
(tests/worker/test_engine_equivalence.py holds it to plain diffusers).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import PIL.Image
import torch
from diffusers import (
    KandinskyV22ControlnetImg2ImgPipeline,
    KandinskyV22Img2ImgPipeline,
    KandinskyV22InpaintPipeline,
    KandinskyV22Pipeline,
    UNet2DConditionModel,
)
from pydantic_settings import SettingsConfigDict
from transformers import CLIPImageProcessorPil, DPTForDepthEstimation, DPTImageProcessorPil

from contract.families import Family, Placement
from contract.spec import Mode
from worker.engine.base import (
    FamilyEngine,
    InputRejected,
    ModelFolderError,
    Run,
    SharedModels,
    count_forward_calls,
    img2img_steps,
    recipe,
    require_complete,
)
from worker.engine.depth import depth_map, make_hint
from worker.engine.editing import Segmenter, blend_feathered, pan_canvas, zoom_out_canvas
from worker.engine.images import fit_mask, fit_to_size, keep_unmasked, on_bucket, outpaint_canvas
from worker.engine.pipelines import CachedPriorEmb2EmbPipeline, CachedPriorPipeline, ZeroEmbedCache
from worker.engine.preview import PreviewCache
from worker.engine.settings import EngineSettings, FamilyOptions
from worker.engine.speed import (
    allow_recompiles,
    compile_forward,
    compile_movq_decode,
    decoder_scheduler,
    prior_compile_mode,
    to_channels_last,
)

logger = logging.getLogger(__name__)



class Kandinsky22Options(FamilyOptions):
    """``KANDINSKY_*``: the first family's variables kept their names (no family infix)."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_", extra="ignore")

    prior_id: str = "kandinsky-community/kandinsky-2-2-prior"
    decoder_id: str = "kandinsky-community/kandinsky-2-2-decoder"
    inpaint_id: str = "kandinsky-community/kandinsky-2-2-decoder-inpaint"
    controlnet_id: str = "kandinsky-community/kandinsky-2-2-controlnet-depth"
    depth_id: str = "Intel/dpt-hybrid-midas"
    cpu_offload: bool = False
    """Model offload: each model on the GPU only while it runs."""


DEPTH_PRIOR_STRENGTH = 0.85
"""How far the prior may move the reference's CLIP embedding towards the prompt (model card value)."""

NEGATIVE_DEPTH_PRIOR_STRENGTH = 1.0
"""The model card embeds a negative prompt for depth mode with the prior at full strength."""

SUBFOLDERS: dict[str, str] = {
    "prior": "prior",
    "decoder": "decoder",
    "inpaint": "decoder_inpaint",
    "controlnet": "controlnet_depth",
    "depth": "depth",
    "segment": "segment",
}
"""Model → folder of a local bundle (``KANDINSKY_MODEL_DIR``); rembg/ is shared with every family."""


def model_sources(settings: EngineSettings, options: Kandinsky22Options) -> dict[str, str]:
    """Where each model comes from: the bundle's subfolders (each complete), or the public ids.
    One code path after this."""
    if settings.model_dir is None:
        return {
            "prior": options.prior_id,
            "decoder": options.decoder_id,
            "inpaint": options.inpaint_id,
            "controlnet": options.controlnet_id,
            "depth": options.depth_id,
            "segment": settings.segment_id,
        }
    root = Path(settings.model_dir)
    if not root.is_dir():
        raise ModelFolderError(f"model_dir {root} does not exist or is not a directory")
    sources = {name: root / folder for name, folder in SUBFOLDERS.items()}
    missing = [str(p) for p in sources.values() if not p.is_dir()]
    if missing:
        raise ModelFolderError(f"model_dir {root} lacks {', '.join(missing)}")
    for path in sources.values():
        require_complete(path, "Kandinsky 2.2")
    return {name: str(path) for name, path in sources.items()}



class Kandinsky22Engine(FamilyEngine):
    """Resident Kandinsky 2.2 models and the mode recipes built on them. Calls are serialised."""

    family: ClassVar[Family] = Family.KANDINSKY22
    warmup_modes: ClassVar[tuple[Mode, ...]] = (Mode.TEXT2IMAGE, Mode.INPAINT, Mode.DEPTH)
    """One per compiled graph family: the decoder UNet with the prior and MoVQ decode, the inpaint
    UNet, the depth ControlNet UNet (every other mode reuses one of these)."""

    def __init__(self, settings: EngineSettings, shared: SharedModels | None = None) -> None:
        super().__init__(settings, shared)
        self._zero_embed_cache: ZeroEmbedCache = {}
        # Typed Any: diffusers' lazily exported pipeline classes are opaque to mypy.
        self._prior: Any = None
        self._emb2emb: Any = None
        self._decoder: Any = None
        self._inpaint: Any = None
        self._controlnet: Any = None
        self._img2img: Any = None
        self._depth: tuple[Any, Any] | None = None
        self._segmenter: Segmenter | None = None
        self._previews = PreviewCache()
        if settings.compile:
            allow_recompiles()

    local_folders: ClassVar[tuple[str, ...]] = tuple(SUBFOLDERS.values())

    options_class: ClassVar[type[FamilyOptions]] = Kandinsky22Options
    options: Kandinsky22Options

    @classmethod
    def placement_of(cls, settings: EngineSettings) -> Placement:
        return Placement.MODEL_OFFLOAD if cls.options_of(settings).cpu_offload else Placement.GPU

    @classmethod
    def public_ids(cls, settings: EngineSettings) -> tuple[str, ...]:
        options = cls.options_of(settings)
        return (options.prior_id, options.decoder_id, options.inpaint_id, options.controlnet_id,
                options.depth_id, settings.segment_id)

    def sources(self) -> dict[str, str]:
        return {**model_sources(self.settings, self.options), "rembg": self.shared.rembg_source}

    def load_all(self) -> None:
        started = time.perf_counter()
        self.prior_pipeline()
        self.emb2emb_pipeline()
        self.decoder_pipeline()
        self.inpaint_pipeline()
        self.controlnet_pipeline()
        self.img2img_pipeline()
        self.depth_model()
        self.segmenter().load()
        self.shared.rembg_session()
        logger.info(
            "engine %s loaded on %s/%s in %.1fs from %s",
            self.family,
            self.device,
            self.dtype,
            time.perf_counter() - started,
            self.settings.model_dir or "public ids",
        )

    def count_tokens(self, text: str) -> int:
        """CLIP tokens of the prior's tokenizer (start and end tokens included)."""
        return len(self.prior_pipeline().tokenizer(text, verbose=False).input_ids)

    def rembg_session(self) -> Any:
        return self.shared.rembg_session()

    # --- loading: each group once, then resident -------------------------------------------------

    def _place(self, pipe: Any) -> Any:
        if self.options.cpu_offload and self._on_gpu():
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            if self.options.cpu_offload:
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
        def load() -> Any:
            kwargs = self._pretrained_kwargs()
            source = self.model_ids["prior"]
            # The PIL processor is what transformers falls back to without torchvision (the worker
            # image has none); naming it keeps the same preprocessing without its notice at start.
            processor = CLIPImageProcessorPil.from_pretrained(
                source, subfolder="image_processor", cache_dir=kwargs.get("cache_dir"))
            prior = CachedPriorPipeline.from_pretrained(source, image_processor=processor, **kwargs)
            prior.attach_zero_embed_cache(self._zero_embed_cache)
            return self._place(prior)

        return self._resident("_prior", load)

    def emb2emb_pipeline(self) -> Any:
        def make() -> Any:
            emb2emb: Any = CachedPriorEmb2EmbPipeline(**self.prior_pipeline().components)  # same modules
            emb2emb.attach_zero_embed_cache(self._zero_embed_cache)
            return emb2emb

        return self._resident("_emb2emb", make)

    def decoder_pipeline(self) -> Any:
        def load() -> Any:
            kwargs = self._pretrained_kwargs()
            decoder = KandinskyV22Pipeline.from_pretrained(self.model_ids["decoder"], **kwargs)
            if self.settings.scheduler != "ddpm":  # the public decoder ships DDPM: keep it as loaded
                decoder.scheduler = decoder_scheduler(self.settings.scheduler, decoder.scheduler.config)
            return self._place(decoder)

        return self._resident("_decoder", load)

    def _shared_decoder_parts(self, source: str) -> dict[str, Any]:
        """A UNet from ``source``; the MoVQ and scheduler config come from the decoder (one copy)."""
        decoder = self.decoder_pipeline()
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", **self._pretrained_kwargs())
        scheduler = type(decoder.scheduler).from_config(decoder.scheduler.config)
        return {"unet": unet, "scheduler": scheduler, "movq": decoder.movq}

    def inpaint_pipeline(self) -> Any:
        return self._resident("_inpaint", lambda: self._place(
            KandinskyV22InpaintPipeline(**self._shared_decoder_parts(self.model_ids["inpaint"]))))

    def controlnet_pipeline(self) -> Any:
        return self._resident("_controlnet", lambda: self._place(
            KandinskyV22ControlnetImg2ImgPipeline(**self._shared_decoder_parts(self.model_ids["controlnet"]))))

    def img2img_pipeline(self) -> Any:
        """``KandinskyV22Img2ImgPipeline`` on the decoder's own UNet and MoVQ (animation frames):
        the modules are already placed and sped up, so nothing is loaded, moved or compiled again."""
        def make() -> Any:
            decoder = self.decoder_pipeline()
            scheduler = type(decoder.scheduler).from_config(decoder.scheduler.config)
            return KandinskyV22Img2ImgPipeline(unet=decoder.unet, scheduler=scheduler, movq=decoder.movq)

        return self._resident("_img2img", make)

    def depth_model(self) -> tuple[Any, Any]:
        def load() -> tuple[Any, Any]:
            source = self.model_ids["depth"]
            kwargs = self._pretrained_kwargs()
            model: Any = DPTForDepthEstimation.from_pretrained(source, **kwargs)
            kwargs.pop("dtype")
            return model.to(self.device).eval(), DPTImageProcessorPil.from_pretrained(source, **kwargs)

        return self._resident("_depth", load)

    def segmenter(self) -> Segmenter:
        """CLIPSeg for edits by words (loaded on first use unless ``load_all`` ran)."""
        return self._resident("_segmenter", lambda: Segmenter(
            self.model_ids["segment"], self.device, self._torch_dtype, self.settings.cache_dir))

    def _latent_preview(self, pipe: Any) -> Any:
        """The live preview of ``pipe``'s latents: its MoVQ's linear colour map (fitted on first use)."""
        return self._previews.for_movq(pipe.movq).pixels

    # --- prior ------------------------------------------------------------------------------------

    def _prior_call(self, run: Run, prior: Any, prompt: str, negative_prompt: str | None = None) -> Any:
        """Model-card prior call, one step counted per prior forward.

        A negative prompt rides in the same batch: [prompt × n, negative × n], so generator i draws
        its prompt row, then its negative row, in the same order whatever n is.
        """
        generators = run.generators + run.generators if negative_prompt else run.generators
        run.progress.begin("prior", run.spec.prior_steps)
        with count_forward_calls(prior.prior, run.progress):
            return prior(
                prompt,
                negative_prompt=negative_prompt,
                num_images_per_prompt=run.n,
                num_inference_steps=run.spec.prior_steps,
                generator=generators,
                guidance_scale=run.spec.prior_guidance,
            )

    def _text_embeds(self, run: Run) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt's image embedding and its negative (the negative prompt's, or the zero embed)."""
        prior = self.prior_pipeline()
        with self._stage(run.timings, "prior"):
            out = self._prior_call(run, prior, run.spec.effective_prompt, self._negative(run.spec))
        return out.image_embeds, out.negative_image_embeds

    @torch.no_grad()
    def _reference_embeds(self, run: Run, prior: Any) -> torch.Tensor:
        """CLIP image embedding of the reference, once per image of the batch."""
        pixels = prior.image_processor(run.images[0], return_tensors="pt").pixel_values
        pixels = pixels.to(device=self.device, dtype=prior.image_encoder.dtype)
        embeds: torch.Tensor = prior.image_encoder(pixels)["image_embeds"]
        return embeds.repeat(run.n, 1)

    # --- decoders ---------------------------------------------------------------------------------

    def _decode(
        self,
        run: Run,
        image_embeds: torch.Tensor,
        negative_embeds: torch.Tensor,
        pipe: Any = None,
        **inputs: Any,
    ) -> list[PIL.Image.Image]:
        """Embeddings → images with the text2image decoder, or with ``pipe`` (the inpaint decoder,
        which takes the same arguments plus its ``inputs``: image and mask)."""
        decoder = self.decoder_pipeline() if pipe is None else pipe
        run.progress.begin("decoder", run.spec.steps, preview=self._latent_preview(decoder))
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
    def _text2image(self, run: Run) -> list[PIL.Image.Image]:
        embeds, negative = self._text_embeds(run)
        return self._decode(run, embeds, negative)

    @recipe(Mode.STICKER)
    def _sticker(self, run: Run) -> list[PIL.Image.Image]:
        return self.cut_out_stickers(run, self._text2image(run))

    @recipe(Mode.MIX, Mode.BLEND)
    def _interpolate(self, run: Run) -> list[PIL.Image.Image]:
        """mix (two images) and blend (image + prompt): the prior's ``interpolate``."""
        spec = run.spec
        prior = self.prior_pipeline()
        conditions: list[Any] = list(run.images)
        if spec.mode is Mode.BLEND:
            conditions.append(spec.effective_prompt)
        # interpolate runs the prior once per text condition and once for the negative branch.
        prior_runs = 1 + sum(isinstance(c, str) for c in conditions)
        run.progress.begin("prior", spec.prior_steps * prior_runs)
        with self._stage(run.timings, "prior"), count_forward_calls(prior.prior, run.progress):
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
    def _variations(self, run: Run) -> list[PIL.Image.Image]:
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
    def _depth_mode(self, run: Run) -> list[PIL.Image.Image]:
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
        with self._stage(run.timings, "prior"), count_forward_calls(emb2emb.prior, run.progress):
            out = embed(spec.effective_prompt, DEPTH_PRIOR_STRENGTH)
            embeds, negative_embeds = out.image_embeds, out.negative_image_embeds
            if negative:
                negative_embeds = embed(negative, NEGATIVE_DEPTH_PRIOR_STRENGTH).image_embeds
        controlnet = self.controlnet_pipeline()
        run.progress.begin("decoder", img2img_steps(spec.steps, spec.strength),
                           preview=self._latent_preview(controlnet))
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

    def _repaint(self, run: Run, init: PIL.Image.Image, mask: PIL.Image.Image) -> list[PIL.Image.Image]:
        """Inpaint ``init`` where ``mask`` is white; black-mask pixels come back bit-exact. ``init``
        and ``mask`` are at the size the user gets (``spec.output_size``): placed on the generated
        bucket where the exact-ratio crop takes them back, with a margin that is repainted."""
        bucket = (run.spec.width, run.spec.height)
        init, mask = on_bucket(init, bucket), on_bucket(mask, bucket, fill=255)
        embeds, negative = self._text_embeds(run)
        inpaint = self.inpaint_pipeline()
        # diffusers >= 0.19: white = repaint, black = keep — our convention, passed as is.
        images = self._decode(
            run, embeds, negative, pipe=inpaint, image=[init] * run.n, mask_image=[mask] * run.n
        )
        return [keep_unmasked(image, init, mask) for image in images]

    @recipe(Mode.ANIMATE)
    def _animate(self, run: Run) -> list[PIL.Image.Image]:
        """Deforum-style camera flight (worker/engine/animation): frame 0 from the prompt, then each
        frame the previous one moved by the camera and repainted by img2img at a low strength. The
        MP4 is the run's ``video`` output; there are no still images."""
        from worker.engine.animation.kandinsky22 import animate  # PyAV loads with the first animation

        run.outputs["video"] = animate(self, run)
        return []

    @recipe(Mode.INPAINT)
    def _inpaint_mode(self, run: Run) -> list[PIL.Image.Image]:
        if run.mask is None:  # _check_inputs refuses this first; here for the type checker
            raise InputRejected("mode inpaint needs a mask (white = repaint)")
        size = run.spec.output_size()
        return self._repaint(run, fit_to_size(run.images[0], *size), fit_mask(run.mask, *size))

    @recipe(Mode.OUTPAINT)
    def _outpaint_mode(self, run: Run) -> list[PIL.Image.Image]:
        canvas, border = outpaint_canvas(run.images[0], *run.spec.output_size())
        return self._repaint(run, canvas, border)

    @recipe(Mode.EDIT)
    def _edit_mode(self, run: Run) -> list[PIL.Image.Image]:
        """Edit by words: CLIPSeg's mask of ``spec.region``, grown and feathered; the inpaint decoder
        repaints it with the prompt and the repaint fades in; outside the feather, the original."""
        spec = run.spec
        init = fit_to_size(run.images[0], *spec.output_size())
        with self._stage(run.timings, "segment"):
            region = self.segmenter().region(init, spec.region, self.settings.edit_threshold)
        logger.info("job %s chat %s: region %r covers %.1f%% of the picture", spec.job_id, spec.chat_id,
                    spec.region, 100 * region.coverage)
        # On the generated bucket, as _repaint does: the margin is repainted, then cropped away.
        bucket = (spec.width, spec.height)
        init, repaint, alpha = on_bucket(init, bucket), on_bucket(region.repaint, bucket, fill=255), \
            on_bucket(region.alpha, bucket)
        embeds, negative = self._text_embeds(run)
        images = self._decode(run, embeds, negative, pipe=self.inpaint_pipeline(), image=[init] * run.n,
                              mask_image=[repaint] * run.n)
        return [blend_feathered(image, init, alpha) for image in images]

    @recipe(Mode.ZOOM_OUT)
    def _zoom_out_mode(self, run: Run) -> list[PIL.Image.Image]:
        """The picture shrunk in the middle (kept exactly), the frame around it painted to match."""
        spec = run.spec
        if spec.zoom is None:  # the spec's own check refuses this first; here for the type checker
            raise InputRejected("mode zoom_out needs a zoom factor")
        canvas = zoom_out_canvas(run.images[0], spec.zoom, *spec.output_size())
        return self._repaint(run, canvas.image, canvas.mask)

    @recipe(Mode.PAN)
    def _pan_mode(self, run: Run) -> list[PIL.Image.Image]:
        """The frame moved to one side: the picture slides over (kept exactly), the strip it uncovers
        is painted to match."""
        spec = run.spec
        if spec.pan is None:  # the spec's own check refuses this first; here for the type checker
            raise InputRejected("mode pan needs a direction")
        canvas = pan_canvas(run.images[0], spec.pan, *spec.output_size())
        return self._repaint(run, canvas.image, canvas.mask)
