"""The camera's move between two frames: a 2D zoom/rotation/pan, or a pseudo-3D flight over depth.

Frames are 1×3×H×W float tensors in [0, 1] on the engine's device; a move is one ``grid_sample``
there (no host round trip). Each output pixel samples the previous frame where the camera saw it:
``source = c + R(-angle)·(p + t - c) / scale`` around the centre ``c``, with ``scale`` the zoom (times,
in a 3D flight, a growth that is larger for near pixels). Edges that come into view are filled by
reflection, which the img2img repaint then turns into new scenery. A move that moves nothing returns
the frame itself, bit for bit (tests/worker/test_animation.py holds it to that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from contract.animation import Animation

DEPTH_NEAR_FLOOR = 0.2
"""In a 3D flight the farthest pixels still grow by this share of the nearest ones' growth: the
horizon creeps in instead of standing still, as it would in a wide-angle view."""
PARALLAX_FLOOR = 0.5
"""Likewise for a sideways move during a flight: far things move half as much as near ones."""
FLIGHT_SCALE = 1000.0
"""translation_z is per-mille per frame (contract.animation.PARAMETERS)."""


@dataclass(frozen=True)
class Motion:
    """One frame's move: the schedules' values at that frame."""

    zoom: float = 1.0
    angle: float = 0.0
    translation_x: float = 0.0
    translation_y: float = 0.0
    translation_z: float = 0.0

    @property
    def is_still(self) -> bool:
        return (self.zoom == 1.0 and self.angle == 0.0 and self.translation_x == 0.0
                and self.translation_y == 0.0 and self.translation_z == 0.0)

    @property
    def is_3d(self) -> bool:
        return self.translation_z != 0.0


def motions(animation: Animation) -> list[Motion]:
    """Every frame's move, from the animation's schedules (frame 0 has none: it is drawn)."""
    names = ("zoom", "angle", "translation_x", "translation_y", "translation_z")
    values = {name: animation.schedule(name).values(animation.frames) for name in names}
    return [Motion(**{name: values[name][i] for name in names}) for i in range(animation.frames)]


def _check_frame(frame: torch.Tensor) -> None:
    if frame.ndim != 4 or frame.shape[0] != 1 or frame.shape[1] != 3:
        raise ValueError(f"a frame is a 1×3×H×W tensor, got shape {tuple(frame.shape)}")


@torch.no_grad()
def warp(frame: torch.Tensor, motion: Motion, depth: torch.Tensor | None = None) -> torch.Tensor:
    """``frame`` as the camera sees it after ``motion``; ``depth`` (1×1×H×W, 1 = nearest) is
    required for a 3D flight and unused otherwise."""
    _check_frame(frame)
    if motion.is_still:
        return frame
    if motion.is_3d and depth is None:
        raise ValueError("a 3D flight (translation_z) needs the depth of the frame")
    if motion.zoom <= 0:
        raise ValueError(f"zoom must be positive, got {motion.zoom}")
    _, _, height, width = frame.shape
    device = frame.device
    # Pixel centres in pixel units (x right, y down) and the frame's centre.
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    py, px = torch.meshgrid(ys, xs, indexing="ij")
    cx, cy = width / 2.0, height / 2.0
    scale: torch.Tensor | float = motion.zoom
    tx: torch.Tensor | float = motion.translation_x
    ty: torch.Tensor | float = motion.translation_y
    if motion.is_3d:
        assert depth is not None
        if depth.shape[-2:] != frame.shape[-2:]:
            raise ValueError(f"depth is {tuple(depth.shape[-2:])}, the frame {tuple(frame.shape[-2:])}")
        near = depth[0, 0].to(device=device, dtype=torch.float32).clamp(0.0, 1.0)
        growth = motion.translation_z / FLIGHT_SCALE * (DEPTH_NEAR_FLOOR + (1.0 - DEPTH_NEAR_FLOOR) * near)
        scale = motion.zoom * (1.0 + growth)
        parallax = PARALLAX_FLOOR + (1.0 - PARALLAX_FLOOR) * near
        tx, ty = motion.translation_x * parallax, motion.translation_y * parallax
    # The camera moved by t: this pixel shows what was at p + t before, turned back and unscaled.
    dx, dy = px + tx - cx, py + ty - cy
    theta = math.radians(motion.angle)
    cos, sin = math.cos(theta), math.sin(theta)
    # Counter-clockwise on screen (y down) is the rotation [[cos, sin], [-sin, cos]]; undo it.
    sx = cx + (cos * dx - sin * dy) / scale
    sy = cy + (sin * dx + cos * dy) / scale
    grid = torch.stack((2.0 * sx / width - 1.0, 2.0 * sy / height - 1.0), dim=-1).unsqueeze(0)
    warped = F.grid_sample(frame.float(), grid, mode="bilinear", padding_mode="reflection",
                           align_corners=False)
    return warped.to(frame.dtype)
