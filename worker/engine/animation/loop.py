"""The frame loop of an animation, whatever family paints it.

Frame 0 is drawn from the first prompt. Then, for every rendered frame (every ``cadence``-th and
the last), the previous rendered frame is moved by the camera once per frame in between (warp.py)
and the moved frame is repainted by img2img at that frame's strength with that frame's blend of
prompt embeddings; colours are matched to frame 0 (color.py). The frames in between are the moved
frames cross-faded into the next rendered one. Every frame goes to the encoder the moment it
exists (encode.py), then counts as progress ("frame 12/48") and the cancel flag is looked at.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import numpy as np
import torch

from contract.animation import FRAME_STAGE, Animation, Scene, scene_weights
from contract.spec import crop_box
from worker.engine.animation.color import ColorReference
from worker.engine.animation.encode import EncodedVideo, Mp4Writer
from worker.engine.animation.warp import motions, warp


class Painter(Protocol):
    """What a family gives the loop: frames are 1×3×H×W float tensors in [0, 1] on its device."""

    def first_frame(self, embeds: torch.Tensor) -> torch.Tensor: ...

    def repaint(self, frame: torch.Tensor, strength: float, embeds: torch.Tensor) -> torch.Tensor: ...

    def repaints(self, strength: float) -> bool:
        """Whether ``strength`` leaves at least one denoising step (else the moved frame is kept)."""
        ...

    def depth(self, frame: torch.Tensor) -> torch.Tensor:
        """1×1×H×W in [0, 1], 1 = nearest."""
        ...


class Progress(Protocol):
    def begin(self, stage: str, total: int) -> None: ...

    def tick(self) -> None: ...


Stage = Callable[[str], AbstractContextManager[None]]


def to_uint8(frame: torch.Tensor) -> np.ndarray:
    """1×3×H×W in [0, 1] → H×W×3 uint8 on the host (the one device → host copy of a frame)."""
    pixels = (frame[0].float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).contiguous().cpu().numpy()


def from_uint8(pixels: np.ndarray, device: torch.device | str) -> torch.Tensor:
    return torch.from_numpy(pixels).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def embeds_at(scenes: tuple[Scene, ...], scene_embeds: list[torch.Tensor], frame: int,
              fps: int) -> torch.Tensor:
    """The frame's image embedding: its scene's, blended into the next one's near the boundary."""
    weights = scene_weights(scenes, frame, fps)
    if len(weights) == 1:
        return scene_embeds[weights[0][0]]
    return sum((scene_embeds[i] * w for i, w in weights), torch.zeros_like(scene_embeds[0]))


def rendered_indices(animation: Animation) -> list[int]:
    """Frames that are repainted: 0, every ``cadence``-th, and the last."""
    return sorted(set(range(0, animation.frames, animation.cadence)) | {animation.frames - 1})


def render(animation: Animation, scenes: tuple[Scene, ...], scene_embeds: list[torch.Tensor],
           painter: Painter, progress: Progress, stage: Stage, device: torch.device | str,
           size: tuple[int, int] | None = None) -> EncodedVideo:
    """Run the loop and return the finished MP4 (the writer is dropped if anything raises).
    ``size``: (width, height) each frame is centre-cropped to on its way to the encoder (the exact
    aspect ratio, contract.spec ``output_size``); the loop itself runs on the generated frames."""
    if len(scene_embeds) != len(scenes):
        raise ValueError(f"{len(scenes)} scenes but {len(scene_embeds)} embeddings")
    moves = motions(animation)
    strengths = animation.schedule("strength").values(animation.frames)
    fps = animation.fps
    progress.begin(FRAME_STAGE, animation.frames)
    with stage("decoder"):
        first = painter.first_frame(embeds_at(scenes, scene_embeds, 0, fps))
    first_pixels = to_uint8(first)
    height, width = first_pixels.shape[:2]
    left, top, right, bottom = crop_box(width, height, *(size or (width, height)))
    writer = Mp4Writer(right - left, bottom - top, fps)
    encode_s = 0.0

    @contextmanager
    def encoding() -> Iterator[None]:
        nonlocal encode_s
        started = time.perf_counter()
        with stage("mp4"):
            yield
        encode_s += time.perf_counter() - started

    def emit(pixels: np.ndarray) -> None:
        with encoding():
            writer.add(pixels[top:bottom, left:right])
        progress.tick()

    try:
        reference = ColorReference(first_pixels) if animation.color_match else None
        emit(first_pixels)
        previous, previous_index = from_uint8(first_pixels, device), 0
        for index in rendered_indices(animation)[1:]:
            depth = None
            if animation.uses_depth:
                with stage("depth"):
                    depth = painter.depth(previous)
            moved: list[torch.Tensor] = []
            current = previous
            with stage("warp"):
                for j in range(previous_index + 1, index + 1):
                    current = warp(current, moves[j], depth)
                    moved.append(current)
            strength = strengths[index]
            if painter.repaints(strength):
                key = painter.repaint(current, strength, embeds_at(scenes, scene_embeds, index, fps))
                key_pixels = to_uint8(key)
                if reference is not None:
                    with stage("color"):
                        key_pixels = reference.match(key_pixels)
            else:
                key_pixels = to_uint8(current)  # nothing repainted: nothing drifted, nothing to match
            key = from_uint8(key_pixels, device)
            span = index - previous_index
            for offset, between in enumerate(moved[:-1], start=1):
                tween = offset / span
                emit(to_uint8(between * (1.0 - tween) + key * tween))
            emit(key_pixels)
            previous, previous_index = key, index
        video = writer.close()
    except BaseException:
        writer.abort()
        raise
    video.encode_s = encode_s
    return video
