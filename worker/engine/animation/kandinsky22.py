"""Kandinsky 2.2 paints the animation: its resident prior, decoder, img2img decoder and depth model.

The img2img decoder (``KandinskyV22Img2ImgPipeline``) is built from the text-to-image decoder's own
UNet and MoVQ (Kandinsky22Engine.img2img_pipeline): no second copy of any weights. Each prompt is
embedded once by the prior; frame 0 is the decoder's text-to-image picture of the first prompt;
every repaint is the img2img decoder at the frame's strength. The step callbacks only look at the
cancel flag: progress counts frames (worker/engine/animation/loop.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch

from contract.animation import Scene, ScheduleError
from worker.engine.animation.encode import EncodedVideo
from worker.engine.animation.loop import render, to_uint8
from worker.engine.base import Run, img2img_steps
from worker.engine.depth import depth_map

if TYPE_CHECKING:
    from worker.engine.families.kandinsky22 import Kandinsky22Engine

logger = logging.getLogger(__name__)


@contextmanager
def timed_methods(module: Any, names: tuple[str, ...], timings: dict[str, float], key: str,
                  synchronize: bool) -> Iterator[None]:
    """Add the seconds each call of ``module.<name>`` takes to ``timings[key]`` while inside (the
    MoVQ's encode and decode run inside the img2img pipeline, where no callback reaches)."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if synchronize:
                torch.cuda.synchronize()
            started = time.perf_counter()
            out = function(*args, **kwargs)
            if synchronize:
                torch.cuda.synchronize()
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - started
            return out

        return timed

    for name, function in originals.items():
        object.__setattr__(module, name, wrap(function))
    try:
        yield
    finally:
        for name in originals:
            object.__delattr__(module, name)  # the class's method shows through again


class Kandinsky22Painter:
    """The loop's Painter (loop.Painter) on one job's run."""

    def __init__(self, engine: Kandinsky22Engine, run: Run, negative_embeds: torch.Tensor) -> None:
        self.engine = engine
        self.run = run
        self.spec = run.spec
        self.negative = negative_embeds
        self.decoder = engine.decoder_pipeline()
        self.img2img = engine.img2img_pipeline()

    def _cancel_only(self, pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.run.progress.check()
        return kwargs

    def repaints(self, strength: float) -> bool:
        return img2img_steps(self.spec.steps, strength) >= 1

    @torch.no_grad()
    def first_frame(self, embeds: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        out = self.decoder(
            image_embeds=embeds, negative_image_embeds=self.negative, height=spec.height, width=spec.width,
            num_inference_steps=spec.steps, guidance_scale=spec.guidance, generator=self.run.generators,
            output_type="pt", callback_on_step_end=self._cancel_only,
        )
        # The text-to-image decoder's "pt" output is the MoVQ's own [-1, 1] (its "pil" path maps it to
        # [0, 1] exactly so, then rounds: frame 0 is the picture text to image gives for the seed).
        frame: torch.Tensor = (out.images * 0.5 + 0.5).clamp(0.0, 1.0)
        return frame

    @torch.no_grad()
    def repaint(self, frame: torch.Tensor, strength: float, embeds: torch.Tensor) -> torch.Tensor:
        spec, timings = self.spec, self.run.timings
        movq_before = timings.get("movq", 0.0)
        synchronize = self.engine.device.startswith("cuda")
        with self.engine._stage(timings, "img2img"), \
                timed_methods(self.img2img.movq, ("encode", "decode"), timings, "movq", synchronize):
            out = self.img2img(
                image_embeds=embeds, image=frame, negative_image_embeds=self.negative,
                # diffusers 0.42 passes (width, height) into preprocess(image, height, width),
                # swapping them; the frame is already the job's size, so let preprocess keep it.
                height=None, width=None, num_inference_steps=spec.steps,
                guidance_scale=spec.guidance, strength=strength, generator=self.run.generators,
                output_type="pt", callback_on_step_end=self._cancel_only,
            )
        # "img2img" is the denoising alone; the MoVQ's encode and decode of the frame are "movq".
        timings["img2img"] -= timings.get("movq", 0.0) - movq_before
        repainted: torch.Tensor = out.images
        return repainted

    @torch.no_grad()
    def depth(self, frame: torch.Tensor) -> torch.Tensor:
        model, processor = self.engine.depth_model()
        near = depth_map(model, processor, PIL.Image.fromarray(to_uint8(frame)))
        return torch.from_numpy(np.asarray(near, dtype=np.float32) / 255.0)[None, None].to(frame.device)


def scenes_of(run: Run) -> tuple[Scene, ...]:
    """The job's prompts by second. The engine reads the translated spec: if a translation lost
    the ``second:`` marks, the whole text is one prompt rather than a failed job."""
    try:
        return run.spec.scenes()
    except ScheduleError as exc:
        logger.warning("job %s chat %s: the prompt's scenes no longer read after translation (%s); "
                       "animating it as one prompt", run.spec.job_id, run.spec.chat_id, exc)
        return (Scene(0.0, run.spec.effective_prompt),)


def animate(engine: Kandinsky22Engine, run: Run) -> EncodedVideo:
    """Render the job's animation on the engine's resident models; the MP4 of its frames."""
    spec, animation = run.spec, run.spec.animation
    if animation is None:  # the spec's own check refuses this first; here for the type checker
        raise ValueError(f"job {spec.job_id}: mode animate needs an animation")
    if run.n != 1:
        raise ValueError(f"job {spec.job_id}: an animation is one video, not {run.n}")
    scenes = scenes_of(run)
    prior = engine.prior_pipeline()
    embeds: list[torch.Tensor] = []
    negative: torch.Tensor | None = None
    with engine._stage(run.timings, "prior"):
        for scene in scenes:
            out = engine._prior_call(run, prior, scene.prompt, engine._negative(spec))
            embeds.append(out.image_embeds)
            negative = out.negative_image_embeds if negative is None else negative
    assert negative is not None
    painter = Kandinsky22Painter(engine, run, negative)
    video = render(animation, scenes, embeds, painter, run.progress,
                   lambda name: engine._stage(run.timings, name), engine.device,
                   size=spec.output_size(even=True))
    logger.info("job %s chat %s: %d frames (%d rendered) %dx%d at %d fps, %d bytes", spec.job_id,
                spec.chat_id, video.frames, animation.rendered_frames(), video.width, video.height,
                video.fps, len(video.data))
    return video
