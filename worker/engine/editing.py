"""Editing a picture: the region named in words (a text-prompted mask), and the canvases of zoom out
and pan, each with the mask the inpainting decoder repaints (white = repaint).

Every builder here keeps the original's pixels where it does not ask for a repaint, and says where
(``Canvas.keep``): the recipes paste those pixels back after the decoder, so they come out exact.

The words become a mask through CLIPSeg (``CLIPSegForImageSegmentation`` in transformers; the public
``CIDAS/clipseg-rd64-refined``, or the bundle's ``segment/``): its probabilities are thresholded,
the region grown a little (so the repaint covers the object's edge, not just its inside) and
feathered (so the repaint fades into the picture instead of ending at a hard edge). Pixels outside
the feathered edge are the original's, bit for bit. A region that covers almost nothing is refused
(:class:`RegionNotFound`) instead of repainting a speck or, worse, the whole picture.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from PIL import ImageFilter

from contract.editing import ZOOM_FACTORS, PanDirection
from worker.engine.base import InputRejected

MIN_REGION_FRACTION = 0.005
"""A region under 0.5 % of the picture is "not found": CLIPSeg's stray pixels, not the object."""
GROW_FRACTION = 0.02
"""The region grows by 2 % of the picture's short side (10 px at 512, 20 at 1024): the repaint
must cover the object's outline, which CLIPSeg's low-resolution map cuts short."""
FEATHER_FRACTION = 0.015
"""Gaussian feather radius, as a fraction of the short side: the repaint fades out over a band of
about three radii instead of ending at a visible seam."""
LATENT_CELL = 8
"""MoVQ's downsampling factor: canvas boxes on this grid line up with latent cells, so no latent
mixes kept and generated pixels."""
PAN_FRACTION = 1 / 3
"""How far one pan moves the frame: a third of new picture per press, two thirds kept exactly."""


class RegionNotFound(InputRejected):
    """The words name nothing the segmentation model finds in the picture (mask nearly empty)."""


@dataclass(frozen=True)
class Canvas:
    """The picture the inpainting decoder starts from, its mask (white = repaint), and the box
    ``(left, top, right, bottom)`` where the canvas holds the original's pixels unchanged."""

    image: PIL.Image.Image
    mask: PIL.Image.Image
    keep: tuple[int, int, int, int]


def _on_grid(value: float) -> int:
    return max(LATENT_CELL, round(value / LATENT_CELL) * LATENT_CELL)


def _fill_colour(image: PIL.Image.Image) -> tuple[int, int, int]:
    """The picture's mean colour: what the new area starts from (the decoder repaints it all)."""
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return (int(mean[0]), int(mean[1]), int(mean[2]))


def zoom_out_canvas(image: PIL.Image.Image, factor: float, width: int, height: int) -> Canvas:
    """The picture shrunk by ``factor`` in the middle of a width×height canvas; the new border is
    white in the mask. The shrunk picture is kept exactly (it is what the frame showed, smaller)."""
    if factor not in ZOOM_FACTORS:
        raise InputRejected(f"zoom factor {factor} is not one of {ZOOM_FACTORS}")
    inner_w, inner_h = _on_grid(width / factor), _on_grid(height / factor)
    inner = image.convert("RGB")
    if inner.size != (inner_w, inner_h):
        inner = inner.resize((inner_w, inner_h), PIL.Image.Resampling.LANCZOS)
    left = _on_grid((width - inner_w) / 2) if width > inner_w else 0
    top = _on_grid((height - inner_h) / 2) if height > inner_h else 0
    left, top = min(left, width - inner_w), min(top, height - inner_h)
    canvas = PIL.Image.new("RGB", (width, height), _fill_colour(inner))
    canvas.paste(inner, (left, top))
    mask = PIL.Image.new("L", (width, height), 255)
    keep = (left, top, left + inner_w, top + inner_h)
    mask.paste(0, keep)
    return Canvas(canvas, mask, keep)


def pan_canvas(image: PIL.Image.Image, direction: PanDirection, width: int, height: int) -> Canvas:
    """The frame moved by ``PAN_FRACTION`` towards ``direction``: the picture slides the other way at
    full scale (its far edge leaves the frame) and the strip it uncovers is white in the mask."""
    rgb = image.convert("RGB")
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), PIL.Image.Resampling.LANCZOS)
    horizontal = direction in (PanDirection.LEFT, PanDirection.RIGHT)
    shift = _on_grid((width if horizontal else height) * PAN_FRACTION)
    dx = {PanDirection.LEFT: shift, PanDirection.RIGHT: -shift}.get(direction, 0)
    dy = {PanDirection.UP: shift, PanDirection.DOWN: -shift}.get(direction, 0)
    canvas = PIL.Image.new("RGB", (width, height), _fill_colour(rgb))
    canvas.paste(rgb, (dx, dy))
    keep = (max(0, dx), max(0, dy), min(width, width + dx), min(height, height + dy))
    mask = PIL.Image.new("L", (width, height), 255)
    mask.paste(0, keep)
    return Canvas(canvas, mask, keep)


@dataclass(frozen=True)
class RegionMask:
    """What the words select: ``repaint`` (binary, what the decoder repaints) and ``alpha`` (the
    feathered weight of the repaint in the result; 0 = the original pixel, untouched)."""

    repaint: PIL.Image.Image
    alpha: PIL.Image.Image
    coverage: float
    """Fraction of the picture the thresholded region covered, before growing."""


def region_mask(probabilities: np.ndarray, size: tuple[int, int], *, words: str,
                threshold: float) -> RegionMask:
    """Threshold (at ``EngineSettings.edit_threshold``), grow and feather a probability map (any
    resolution, values 0..1) into masks of ``size`` (width, height). Nearly empty: RegionNotFound."""
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D map, got shape {probabilities.shape}")
    width, height = size
    probs = torch.from_numpy(np.ascontiguousarray(probabilities, dtype=np.float32))[None, None]
    probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
    region = (probs >= threshold).float()
    coverage = float(region.mean())
    if coverage < MIN_REGION_FRACTION:
        raise RegionNotFound(
            f"no region matching {words!r} found (it covers {coverage:.2%} of the picture, "
            f"under {MIN_REGION_FRACTION:.1%})"
        )
    grow = max(1, round(min(width, height) * GROW_FRACTION))
    grown = F.max_pool2d(region, kernel_size=2 * grow + 1, stride=1, padding=grow)
    core = PIL.Image.fromarray((grown[0, 0].numpy() * 255).astype(np.uint8), "L")
    radius = max(1.0, min(width, height) * FEATHER_FRACTION)
    alpha = core.filter(ImageFilter.GaussianBlur(radius))
    repaint = alpha.point(lambda v: 255 if v > 0 else 0)
    return RegionMask(repaint=repaint, alpha=alpha, coverage=coverage)


def blend_feathered(generated: PIL.Image.Image, original: PIL.Image.Image,
                    alpha: PIL.Image.Image) -> PIL.Image.Image:
    """The repaint faded in by ``alpha``: where alpha is 0 the original pixel, exactly."""
    gen = np.asarray(generated.convert("RGB"), dtype=np.float32)
    orig = np.asarray(original.convert("RGB"), dtype=np.float32)
    weight = np.asarray(alpha.convert("L"), dtype=np.float32)[..., None] / 255.0
    mixed = np.rint(orig + (gen - orig) * weight).clip(0, 255).astype(np.uint8)
    out = np.where(weight > 0, mixed, np.asarray(original.convert("RGB")))
    return PIL.Image.fromarray(out, "RGB")


class Segmenter:
    """CLIPSeg, resident once loaded: text + picture → a probability map of the named region."""

    def __init__(self, source: str, device: str, dtype: torch.dtype, cache_dir: Path | None = None) -> None:
        self.source = source
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor, ViTImageProcessorPil

            cache = str(self.cache_dir) if self.cache_dir is not None else None
            # The PIL image processor: the same preprocessing without transformers' torchvision notice.
            images = ViTImageProcessorPil.from_pretrained(self.source, cache_dir=cache)
            self._processor = CLIPSegProcessor.from_pretrained(self.source, image_processor=images,
                                                               cache_dir=cache)
            model: Any = CLIPSegForImageSegmentation.from_pretrained(self.source, dtype=self.dtype,
                                                                     cache_dir=cache)
            self._model = model.to(self.device).eval()

    @torch.no_grad()
    def probabilities(self, image: PIL.Image.Image, words: str) -> np.ndarray:
        """Per-pixel probability (CLIPSeg's resolution, e.g. 352²) that it shows ``words``."""
        if not words.strip():
            raise InputRejected("the region to edit is empty: name what to change")
        self.load()
        inputs = self._processor(text=[words.strip()], images=[image.convert("RGB")], padding=True,
                                 return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        logits = self._model(**inputs).logits
        probs = torch.sigmoid(logits.float()).reshape(logits.shape[-2:])
        return probs.cpu().numpy()

    def region(self, image: PIL.Image.Image, words: str, threshold: float) -> RegionMask:
        """The grown, feathered mask of ``words`` at the picture's size (RegionNotFound if none)."""
        return region_mask(self.probabilities(image, words), image.size, words=words, threshold=threshold)
