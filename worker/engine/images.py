"""Pixel work around the models: fitting inputs, outpaint canvases, sticker cut-outs, encoding."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from contract.events import FileKind
from contract.modes import Output, describe
from contract.spec import Mode, crop_box

STICKER_SIDE = 512
"""Telegram static stickers: one side exactly 512 px, the other at most 512."""

STICKER_ALPHA_FLOOR = 16
"""Alpha below this is matting haze, not subject: cleared so the trim box hugs the subject."""

STICKER_PAD_FRACTION = 0.04
"""Transparent margin around the trimmed subject, as a fraction of its longer side."""

OUTPAINT_FILL = 0.75
"""How much of the new canvas (per side, at most) the original picture keeps; the rest is generated."""

MASK_THRESHOLD = 128
"""Mask pixels at or above this are repainted (white = repaint), below are kept."""

WEBP_QUALITY = 95
"""High enough that sticker edges do not ring; Telegram limits static stickers to 512 KB."""
PNG_COMPRESS_LEVEL = 1
"""zlib level 1: a 1024² photo-like PNG encodes in ~90 ms instead of ~535 ms at level 6, for
~17% more bytes (measured, bench/NOTES.md); the worker's CPU is the bottleneck, not the network."""
JPEG_QUALITY = 95
"""Visually lossless, with full-resolution colour (4:4:4): a 1024² photo-like image encodes in ~5 ms
instead of PNG's ~80 ms and is ~3x smaller to upload (bench/NOTES.md); Telegram re-encodes photos anyway."""
PHOTO_FORMATS = ("JPEG", "PNG")
"""Formats a non-sticker result may be stored in (stickers keep alpha: PNG + WEBP)."""


@dataclass
class EncodedImage:
    """One output file: format name as PIL spells it ("JPEG", "PNG", "WEBP"), bytes and size, what it
    is for and which image of the job it shows (the result's ResultFile says the same to the bot)."""

    format: str
    data: bytes
    width: int
    height: int
    kind: FileKind
    index: int


def crop_centre(image: Image.Image, width: int, height: int) -> Image.Image:
    """The centred ``width`` x ``height`` part of a picture at least that large (exact aspect ratios:
    the engine generates the next larger bucket and cuts the margins off evenly)."""
    if image.size == (width, height):
        return image
    if image.width < width or image.height < height:
        raise ValueError(f"cannot crop {image.width}x{image.height} to a larger {width}x{height}")
    return image.crop(crop_box(image.width, image.height, width, height))


def on_bucket(image: Image.Image, bucket: tuple[int, int], *, fill: int | None = None) -> Image.Image:
    """``image`` (the size the user gets) placed where the exact-ratio crop will take it from a
    generated ``bucket``: a canvas built at the exact size comes back pixel for pixel. The margin is
    the edge's own pixels, or ``fill`` (a mask's value); the crop removes it."""
    if image.size == bucket:
        return image
    left, top, right, bottom = crop_box(*bucket, *image.size)
    if left < 0 or top < 0:
        raise ValueError(f"a {image.width}x{image.height} picture does not fit a "
                         f"{bucket[0]}x{bucket[1]} bucket")
    pixels = np.asarray(image)
    pad = [(top, bucket[1] - bottom), (left, bucket[0] - right)] + [(0, 0)] * (pixels.ndim - 2)
    if fill is None:
        return Image.fromarray(np.pad(pixels, pad, mode="edge"), mode=image.mode)
    return Image.fromarray(np.pad(pixels, pad, mode="constant", constant_values=fill), mode=image.mode)


def fit_to_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """Center-crop to the target aspect, then resize: the job size wins, nothing is stretched."""
    rgb = image.convert("RGB")
    if rgb.size == (width, height):
        return rgb
    return ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)


def fit_mask(mask: Image.Image, width: int, height: int) -> Image.Image:
    """Same crop as ``fit_to_size``, binarised so the paste-back and the model agree on every pixel."""
    gray = mask.convert("L")
    if gray.size != (width, height):
        gray = ImageOps.fit(gray, (width, height), method=Image.Resampling.NEAREST)
    return gray.point(lambda v: 255 if v >= MASK_THRESHOLD else 0)


def outpaint_canvas(image: Image.Image, width: int, height: int) -> tuple[Image.Image, Image.Image]:
    """The input centred on a width×height canvas, and a mask that is white on the new border only."""
    rgb = image.convert("RGB")
    scale = min(width * OUTPAINT_FILL / rgb.width, height * OUTPAINT_FILL / rgb.height)
    new_w = max(1, round(rgb.width * scale))
    new_h = max(1, round(rgb.height * scale))
    placed = rgb.resize((new_w, new_h), Image.Resampling.LANCZOS)
    mean = tuple(int(c) for c in np.asarray(placed).reshape(-1, 3).mean(axis=0))
    canvas = Image.new("RGB", (width, height), mean)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    canvas.paste(placed, (left, top))
    mask = Image.new("L", (width, height), 255)
    mask.paste(0, (left, top, left + new_w, top + new_h))
    return canvas, mask


def keep_unmasked(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """Put the original pixels back wherever the mask is black, so kept areas are bit-exact."""
    keep = mask.point(lambda v: 255 if v < MASK_THRESHOLD else 0)
    result = generated.convert("RGB").copy()
    result.paste(original.convert("RGB"), (0, 0), keep)
    return result


def sticker_from_cutout(cutout: Image.Image) -> Image.Image:
    """Clean alpha, trim to the subject, pad, scale so the longer side is exactly 512."""
    rgba = cutout.convert("RGBA")
    arr = np.array(rgba)
    alpha = arr[..., 3]
    alpha[alpha < STICKER_ALPHA_FLOOR] = 0
    arr[..., 3] = alpha
    # Fully transparent pixels carry no colour; zero them so encoders do not keep background halos.
    arr[alpha == 0, :3] = 0
    rgba = Image.fromarray(arr, "RGBA")
    bbox = rgba.getchannel("A").getbbox()
    if bbox is not None:
        rgba = rgba.crop(bbox)
    pad = max(1, round(max(rgba.size) * STICKER_PAD_FRACTION))
    padded = Image.new("RGBA", (rgba.width + 2 * pad, rgba.height + 2 * pad), (0, 0, 0, 0))
    padded.paste(rgba, (pad, pad))
    scale = STICKER_SIDE / max(padded.size)
    size = (
        min(STICKER_SIDE, max(1, round(padded.width * scale))),
        min(STICKER_SIDE, max(1, round(padded.height * scale))),
    )
    size = (STICKER_SIDE, size[1]) if padded.width >= padded.height else (size[0], STICKER_SIDE)
    return padded.resize(size, Image.Resampling.LANCZOS)


def _encode(image: Image.Image, fmt: str, kind: FileKind, index: int) -> EncodedImage:
    buf = io.BytesIO()
    if fmt == "WEBP":
        image.save(buf, format="WEBP", quality=WEBP_QUALITY, method=4, exact=True)
    elif fmt == "JPEG":
        image.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        image.save(buf, format="PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    return EncodedImage(format=fmt, data=buf.getvalue(), width=image.width, height=image.height, kind=kind,
                        index=index)


def encode_image_list(images: list[Image.Image], mode: Mode, photo_format: str = "PNG") -> list[EncodedImage]:
    """Stickers: PNG then WEBP per image (both keep alpha); every other mode: one ``photo_format`` file
    per image (the worker stores JPEG; local files from the CLI stay lossless PNG)."""
    if photo_format not in PHOTO_FORMATS:
        raise ValueError(f"photo_format must be one of {PHOTO_FORMATS}, got {photo_format!r}")
    out: list[EncodedImage] = []
    sticker = describe(mode).output is Output.STICKER
    for index, image in enumerate(images):
        if sticker:
            out += [_encode(image, "PNG", FileKind.STICKER_PNG, index),
                    _encode(image, "WEBP", FileKind.STICKER_WEBP, index)]
        else:
            out.append(_encode(image, photo_format, FileKind.PHOTO, index))
    return out
