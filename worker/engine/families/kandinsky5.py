"""The Kandinsky 5.0 family: Qwen2.5-VL and CLIP → a flow-matching DiT → HunyuanVideo's 3D VAE.

``/video`` runs ``Kandinsky5T2VPipeline`` on the Video Lite checkpoint of the job's length
(contract.video: the kind, ``KANDINSKY_K5_VIDEO_KIND``, fixes its steps and guidance). The frames
are cut to the user's exact aspect ratio and encoded as one H.264 MP4 (worker/engine/animation/encode.py,
the encoder ``/animate`` uses), the run's ``video`` output. Qwen2.5-VL reads Russian itself, so the
worker sends this family's prompts untranslated (contract.language).

Placements (``KANDINSKY_K5_PLACEMENT``, contract.families.Placement):

* ``gpu``: every model resident; the pipeline runs as its model card does (bit for bit:
  tests/worker/test_kandinsky5.py holds it to plain diffusers);
* ``text_encoder_cpu``: Qwen2.5-VL's 8.3B and CLIP stay on the CPU (bfloat16 when the GPU runs
  float16), the prompt is encoded there once per job and only its embeddings go to the GPU;
* ``model_offload``: accelerate's model offload, on the pipeline about to run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import PIL.Image
import torch
from diffusers import Kandinsky5I2VPipeline, Kandinsky5T2VPipeline
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contract.families import Family, Placement
from contract.spec import Mode, crop_box
from contract.video import (
    DEFAULT_VIDEO_SECONDS,
    IMAGE_TO_VIDEO,
    MAX_VIDEO_BYTES,
    VIDEO_FPS,
    VIDEO_SECONDS,
    VIDEO_STAGE,
    VideoCheckpoint,
    VideoKind,
    video_checkpoint,
)
from worker.engine.base import (
    FamilyEngine,
    InputRejected,
    ModelFolderError,
    Run,
    SharedModels,
    recipe,
    require_complete,
)
from worker.engine.images import fit_to_size
from worker.engine.preview import PreviewCache
from worker.engine.settings import DiTOptions, EngineSettings, FamilyOptions
from worker.engine.speed import speed_up_dit

logger = logging.getLogger(__name__)


class Kandinsky5Options(DiTOptions):
    """``KANDINSKY_K5_*``."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_K5_", extra="ignore")

    video_kind: VideoKind = VideoKind.DISTILLED
    """Which Video Lite checkpoints to run: ``distilled16steps`` (16 steps, no guidance), ``sft``
    (50 guided steps, the best quality) or ``nocfg`` (50 steps); the steps come with the checkpoint."""
    video_seconds: tuple[int, ...] = (DEFAULT_VIDEO_SECONDS,)
    """The lengths this worker makes, one checkpoint each (JSON list, e.g. ``[5, 10]``)."""
    video_fps: int = Field(default=VIDEO_FPS, ge=1, le=VIDEO_FPS)
    """Frames per second; the checkpoints are trained at 24 (fewer only for the tiny test bundle)."""
    placement: Placement = Placement.GPU
    """``gpu`` (all resident), ``text_encoder_cpu`` (Qwen2.5-VL and CLIP on the CPU) or
    ``model_offload`` (each model on the GPU while it runs)."""


class Kandinsky5Engine(FamilyEngine):
    """Resident Kandinsky 5.0 Video Lite pipelines (one per length, sharing their text encoders)."""

    family: ClassVar[Family] = Family.KANDINSKY5
    warmup_modes: ClassVar[tuple[Mode, ...]] = ()
    """No warm-up job: nothing is compiled, and a warm-up video would cost as much as a user's."""
    local_folders: ClassVar[tuple[str, ...]] = (
        *(video_checkpoint(VideoKind.DISTILLED, s).folder for s in VIDEO_SECONDS), IMAGE_TO_VIDEO.folder)
    options_class: ClassVar[type[FamilyOptions]] = Kandinsky5Options
    shared_folders: ClassVar[tuple[str, ...]] = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
    """Every pipeline after the first is handed the first one's encoders and tokenizers (Qwen2.5-VL:
    16 GB a copy)."""
    options: Kandinsky5Options

    def __init__(self, settings: EngineSettings, shared: SharedModels | None = None) -> None:
        super().__init__(settings, shared)
        self._videos: dict[int, Any] = {}
        self._from_image: Any = None
        self._previews = PreviewCache()
        self._encoder: Any = None
        """With the text encoders on the CPU: a pipeline holding only them (and the tokenizers)."""

    def _checkpoint(self, seconds: int) -> VideoCheckpoint:
        return video_checkpoint(self.options.video_kind, seconds)

    @classmethod
    def public_ids(cls, settings: EngineSettings) -> tuple[str, ...]:
        options = cls.options_of(settings)
        return (*(video_checkpoint(options.video_kind, s).repo for s in options.video_seconds),
                IMAGE_TO_VIDEO.repo)

    def sources(self) -> dict[str, str]:
        # ValueError (from video_checkpoint) for a length there is no checkpoint of
        wanted = {f"video_{s}s": self._checkpoint(s) for s in self.options.video_seconds}
        wanted["image_to_video"] = IMAGE_TO_VIDEO
        if self.settings.model_dir is None:
            return {name: checkpoint.repo for name, checkpoint in wanted.items()}
        root = Path(self.settings.model_dir)
        sources = {}
        for name, checkpoint in wanted.items():
            folder = root / checkpoint.folder
            if not folder.is_dir():
                what = "image → video" if checkpoint.from_image else \
                    f"{checkpoint.seconds} s videos (KANDINSKY_K5_VIDEO_SECONDS)"
                raise ModelFolderError(f"Kandinsky 5.0: model_dir {root} has no {folder.name}/ folder "
                                       f"for {what}")
            require_complete(folder, f"Kandinsky 5.0 {name}")
            sources[name] = str(folder)
        return sources

    def load_all(self) -> None:
        started = time.perf_counter()
        for seconds in self.options.video_seconds:
            self.video_pipeline(seconds)
        self.image_to_video_pipeline()
        logger.info("engine %s loaded on %s/%s (%s, %s videos of %s s) in %.1fs", self.family, self.device,
                    self.dtype, self.placement, self.options.video_kind,
                    "/".join(map(str, self.options.video_seconds)), time.perf_counter() - started)

    def count_tokens(self, text: str) -> int:
        """Qwen2.5-VL tokens of the prompt itself (the pipeline's template around it is not counted)."""
        pipe = self.video_pipeline(self.options.video_seconds[0])
        return len((self._encoder or pipe).tokenizer(text).input_ids)

    # --- loading ---------------------------------------------------------------------------------

    def video_pipeline(self, seconds: int) -> Any:
        """The text → video pipeline for ``seconds``; a second length shares the first one's encoders."""
        if seconds not in self.options.video_seconds:
            raise InputRejected(f"this worker makes videos of {self.options.video_seconds} s, "
                                f"not {seconds} s (KANDINSKY_K5_VIDEO_SECONDS)")
        with self._load_lock:
            if seconds not in self._videos:
                source = self.model_ids[f"video_{seconds}s"]
                pipe = Kandinsky5T2VPipeline.from_pretrained(source, **self._shared_encoders(),
                                                             **self._pretrained_kwargs())
                pipe = self._place(pipe)
                pipe.set_progress_bar_config(disable=True)
                self._videos[seconds] = pipe
            return self._videos[seconds]

    def image_to_video_pipeline(self) -> Any:
        """The image → video pipeline (its own DiT; the text encoders are the text → video ones)."""
        def load() -> Any:
            self.video_pipeline(self.options.video_seconds[0])  # the encoders it shares
            return self._place(Kandinsky5I2VPipeline.from_pretrained(
                self.model_ids["image_to_video"], **self._shared_encoders(), **self._pretrained_kwargs()))

        return self._resident("_from_image", load)

    def _shared_encoders(self) -> dict[str, Any]:
        """The text encoders and tokenizers of a pipeline already loaded (none yet: empty)."""
        if not self._videos:
            return {}
        first = next(iter(self._videos.values()))
        source = self._encoder if self._encoder is not None else first
        return {name: getattr(source, name) for name in self.shared_folders}

    def _place(self, pipe: Any) -> Any:
        """Put a freshly loaded pipeline where the placement says, its DiT sped up as the options say."""
        speed_up_dit(pipe.transformer, self.options.attention_backend, self.settings)
        if self.placement is Placement.TEXT_ENCODER_CPU:
            encoder, denoiser = split_text_encoders(pipe, self._cpu_encoder_dtype)
            if self._encoder is None:
                self._encoder = encoder
            return denoiser.to(self.device)
        return self._place_or_defer(pipe)

    # --- running -----------------------------------------------------------------------------------

    def _prompt_kwargs(self, run: Run, checkpoint: VideoCheckpoint) -> dict[str, Any]:
        """The prompt as the pipeline takes it: the text itself, or (text encoders on the CPU) its
        embeddings, encoded there and moved to the device. A picture without words moves by MOTION_PROMPT."""
        prompt, negative = run.spec.effective_prompt.strip() or MOTION_PROMPT, self._negative(run.spec)
        if self._encoder is None:
            return {"prompt": prompt, "negative_prompt": negative}
        with self._stage(run.timings, "text_encoder"):
            kwargs: dict[str, Any] = {"prompt": None}
            texts = {"": prompt, "negative_": negative or NEGATIVE_PROMPT} if checkpoint.guidance > 1.0 \
                else {"": prompt}
            for prefix, text in texts.items():
                kwargs |= encoded_on_cpu(self._encoder, text, prefix, self.device, self._torch_dtype,
                                         max_sequence_length=self.description.prompt_tokens)
        return kwargs

    @torch.no_grad()
    def frames(self, run: Run, **image: Any) -> np.ndarray:
        """The job's clip as F×H×W×3 uint8, at the generated size (the pipeline call and its steps);
        with ``image``, from that first frame."""
        spec = run.spec
        if image:
            checkpoint, pipe = IMAGE_TO_VIDEO, self.image_to_video_pipeline()
        else:
            checkpoint, pipe = self._checkpoint(spec.seconds), self.video_pipeline(spec.seconds)
        inputs = {**self._prompt_kwargs(run, checkpoint), **image}
        run.progress.begin(VIDEO_STAGE, checkpoint.steps, preview=self._first_frame_preview(pipe))
        frames = checkpoint.frames(self.options.video_fps)
        with self._stage(run.timings, VIDEO_STAGE):
            out = self._ready(pipe)(
                **inputs, height=spec.height, width=spec.width, num_frames=frames,
                num_inference_steps=checkpoint.steps, guidance_scale=checkpoint.guidance,
                generator=run.generators[0], output_type="np", callback_on_step_end=run.progress.on_step_end,
                max_sequence_length=self.description.prompt_tokens)
        clip = np.asarray(out.frames[0])
        return np.clip(np.rint(clip * 255.0), 0, 255).astype(np.uint8)

    def _first_frame_preview(self, pipe: Any) -> Any:
        """The clip's first latent frame as a picture (the pipelines' latents are N×F×H×W×C), by the
        least-squares colour map of this VAE (worker/engine/preview.py): no VAE decode per preview."""
        colours = self._previews.for_video_vae(pipe.vae)

        def pixels(latents: torch.Tensor) -> np.ndarray:
            channels = colours.weight.shape[0]
            return colours.pixels(latents[:1, 0, ..., :channels].permute(0, 3, 1, 2))

        return pixels

    @recipe(Mode.VIDEO)
    def _video(self, run: Run) -> list[PIL.Image.Image]:
        """A text → video clip, cut to the exact aspect ratio and encoded as the run's ``video`` output;
        there are no still images."""
        return self._as_mp4(run, self.frames(run))

    @recipe(Mode.IMAGE2VIDEO)
    def _image_to_video(self, run: Run) -> list[PIL.Image.Image]:
        """The picture (fitted to the job's bucket: cut to its shape, resized) as the first frame of
        a clip, encoded as the run's ``video`` output."""
        first = fit_to_size(run.images[0], run.spec.width, run.spec.height)
        return self._as_mp4(run, self.frames(run, image=first))

    def _as_mp4(self, run: Run, clip: np.ndarray) -> list[PIL.Image.Image]:
        from worker.engine.animation.encode import encode_frames  # PyAV loads with the first video

        left, top, right, bottom = crop_box(clip.shape[2], clip.shape[1], *run.spec.output_size(even=True))
        run.progress.check()
        with self._stage(run.timings, "mp4"):
            run.outputs["video"] = encode_frames(clip[:, top:bottom, left:right], self.options.video_fps,
                                                 max_bytes=MAX_VIDEO_BYTES)
        return []


def split_text_encoders(pipe: Any, encoder_dtype: torch.dtype) -> tuple[Any, Any]:
    """A Kandinsky 5.0 pipeline as two of its kind: one holding only its text encoders (and
    tokenizers), moved to the CPU in ``encoder_dtype``, and one holding the rest (``text_encoder_cpu``)."""
    kind = type(pipe)
    encoder = kind(transformer=None, vae=None, scheduler=pipe.scheduler, tokenizer=pipe.tokenizer,
                   text_encoder=pipe.text_encoder.to("cpu", encoder_dtype), tokenizer_2=pipe.tokenizer_2,
                   text_encoder_2=pipe.text_encoder_2.to("cpu", encoder_dtype))
    encoder.set_progress_bar_config(disable=True)
    denoiser = kind(transformer=pipe.transformer, vae=pipe.vae, scheduler=pipe.scheduler, tokenizer=None,
                    text_encoder=None, tokenizer_2=None, text_encoder_2=None)
    return encoder, denoiser


def encoded_on_cpu(encoder: Any, text: str, prefix: str, device: str, dtype: torch.dtype,
                   **options: Any) -> dict[str, Any]:
    """``text`` encoded by a Kandinsky 5.0 pipeline holding only its text encoders (on the CPU), as
    another pipeline's ``<prefix>prompt_embeds_*`` arguments on ``device``; ``options`` go to
    ``encode_prompt`` (the photo of image → image, copies per prompt)."""
    qwen, clip, seqlens = encoder.encode_prompt(text, device="cpu", **options)
    return {f"{prefix}prompt_embeds_qwen": qwen.to(device, dtype),
            f"{prefix}prompt_embeds_clip": clip.to(device, dtype),
            f"{prefix}prompt_cu_seqlens": seqlens.to(device)}


MOTION_PROMPT = "the scene comes to life with gentle natural motion, the camera slowly moves"
"""What image → video reads when the picture came without words (a variation, an edited photo)."""
NEGATIVE_PROMPT = ("Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, "
                   "low quality, ugly, deformed, walking backwards")
"""The pipeline's own negative prompt for guided checkpoints (used when the user gave none)."""
