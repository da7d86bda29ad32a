"""Live previews: a cheap picture of the current latents while the decoder runs.

A full MoVQ decode per preview would cost about a tenth of a step at 1024² and more in memory;
instead each latent cell (8×8 pixels) is mapped to a colour by one fixed linear map, fitted once per
MoVQ: a few synthetic pictures are encoded by that MoVQ's own encoder and the map is the least-squares
fit from their latents to the pictures' mean colour per cell. It holds for any weights (the public
ones, the tiny bundle's) without a table of magic numbers, takes milliseconds to fit, and a preview
is then one small matrix product on the device plus a copy of a few kilobytes
(bench/bench_preview.py measures both against a decoder step).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CALIBRATION_IMAGES = 48
"""Synthetic pictures the fit sees: enough to pin 5 numbers per colour channel many times over."""
CALIBRATION_SIDE = 64
"""Their side in pixels (8×8 latent cells each): tiny, so fitting costs one small MoVQ encode."""
CALIBRATION_SEED = 20240229
"""The fit is the same for the same MoVQ, run after run."""
DEFAULT_PREVIEW_EVERY = 5
"""Steps between two previews: at 50 steps ten pictures forming, each costing a fraction of a step."""
PREVIEW_LONG_SIDE = 256
"""A preview's longer side: big enough to see the picture forming in a chat, a few KB as JPEG."""
PREVIEW_JPEG_QUALITY = 80
"""A preview is a glimpse, replaced within seconds: small files over fidelity."""

PreviewRender = Callable[[], np.ndarray]
"""Makes the preview of the step just taken (uint8 H×W×3); called on the step thread, only when wanted."""
PreviewCallback = Callable[[str, int, int, PreviewRender], None]
"""``(stage, step, total, render)`` every ``preview_every`` steps of a stage that has latents."""


def calibration_pictures(n: int = CALIBRATION_IMAGES, side: int = CALIBRATION_SIDE,
                         seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """Pictures in [-1, 1] (n×3×side×side) spanning the colour cube: flat colours, gradients between
    two colours, and blocks, so every colour and some structure is seen."""
    gen = torch.Generator().manual_seed(seed)
    colours = torch.rand(n, 2, 3, generator=gen) * 2 - 1
    ramp = torch.linspace(0, 1, side)
    out = torch.empty(n, 3, side, side)
    for i in range(n):
        a, b = colours[i, 0][:, None, None], colours[i, 1][:, None, None]
        kind = i % 3
        if kind == 0:
            out[i] = a.expand(3, side, side)
        elif kind == 1:
            t = ramp[None, :].expand(side, side) if i % 2 else ramp[:, None].expand(side, side)
            out[i] = a + (b - a) * t[None]
        else:
            cells = (torch.rand(side // 16, side // 16, generator=gen) > 0.5).float()
            t = cells.repeat_interleave(16, 0).repeat_interleave(16, 1)
            out[i] = a + (b - a) * t[None]
    return out


@dataclass(frozen=True)
class LatentPreview:
    """latent (C channels) → RGB in [-1, 1]: ``rgb = latent @ weight + bias``, per cell."""

    weight: torch.Tensor
    """C×3, on the device the latents live on."""
    bias: torch.Tensor
    """3."""

    @torch.no_grad()
    def pixels(self, latents: torch.Tensor) -> np.ndarray:
        """The first image of a batch of latents as uint8 H×W×3 (one pixel per latent cell)."""
        if latents.ndim != 4 or latents.shape[1] != self.weight.shape[0]:
            raise ValueError(f"latents must be N×{self.weight.shape[0]}×H×W, got {tuple(latents.shape)}")
        first = latents[0].to(self.weight.dtype)
        rgb = torch.einsum("chw,cr->hwr", first, self.weight) + self.bias
        out = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return out.cpu().numpy()


@torch.no_grad()
def fit_latent_preview(movq: Any) -> LatentPreview:
    """The least-squares latent → colour map of this MoVQ (its encoder's latents, before quantising,
    are what the decoders denoise)."""
    param = next(movq.parameters())
    pictures = calibration_pictures()
    latents = movq.encode(pictures.to(device=param.device, dtype=param.dtype)).latents.float().cpu()
    return _least_squares(latents, pictures, param.device)


@torch.no_grad()
def fit_video_latent_preview(vae: Any) -> LatentPreview:
    """The same map for a video VAE (HunyuanVideo's): each picture encoded as a one-frame video, its
    latents scaled as the pipelines scale the latents they denoise."""
    param = next(vae.parameters())
    pictures = calibration_pictures()
    clips = pictures[:, :, None].to(device=param.device, dtype=param.dtype)  # N×3×1×H×W
    latents = vae.encode(clips).latent_dist.mode()[:, :, 0].float().cpu() * float(vae.config.scaling_factor)
    return _least_squares(latents, pictures, param.device)


def _least_squares(latents: torch.Tensor, pictures: torch.Tensor, device: torch.device) -> LatentPreview:
    factor = pictures.shape[-1] // latents.shape[-1]
    targets = F.avg_pool2d(pictures, factor)  # mean colour of each latent cell
    x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
    y = targets.permute(0, 2, 3, 1).reshape(-1, 3)
    design = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution  # (C + 1) × 3
    weight, bias = solution[:-1], solution[-1]
    return LatentPreview(weight=weight.to(device), bias=bias.to(device))


def preview_jpeg(pixels: np.ndarray) -> bytes:
    """One pixel per latent cell, scaled up to ``PREVIEW_LONG_SIDE`` (bilinear) and encoded as JPEG."""
    image = Image.fromarray(pixels, "RGB")
    scale = PREVIEW_LONG_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    buf = io.BytesIO()
    image.resize(size, Image.Resampling.BILINEAR).save(buf, format="JPEG", quality=PREVIEW_JPEG_QUALITY)
    return buf.getvalue()


class PreviewCache:
    """One fitted map per MoVQ, made on first use (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fitted: dict[int, LatentPreview] = {}

    def for_movq(self, movq: Any) -> LatentPreview:
        return self._fit(movq, fit_latent_preview)

    def for_video_vae(self, vae: Any) -> LatentPreview:
        return self._fit(vae, fit_video_latent_preview)

    def _fit(self, model: Any, fit: Callable[[Any], LatentPreview]) -> LatentPreview:
        key = id(model)
        with self._lock:
            if key not in self._fitted:
                self._fitted[key] = fit(model)
            return self._fitted[key]
