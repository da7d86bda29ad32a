"""Validation and normalisation of what users send, before anything is stored or queued.

Every refusal is an InputError carrying an i18n message key, so the handler can answer in
the user's language; every accepted image leaves as an RGB PNG of at most MAX_SIDE a side.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from contract.spec import MAX_PROMPT_CHARS

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
"""Telegram's getFile limit for bots: larger files cannot be downloaded at all."""
MAX_INPUT_PIXELS = 40_000_000
"""Largest decoded image accepted (a 40 MP photo is ~120 MB of RGB); beyond it is a bomb."""
MAX_SIDE = 1024
"""Inputs are downscaled to the largest generation tier; more pixels only cost memory."""
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})
"""Formats photos and image documents realistically come in; anything else is refused."""
MULTI_FRAME_STILL_FORMATS = frozenset({"MPO", "TIFF"})
"""Multi-frame formats that are still photos (phone MPO, multi-page TIFF): the first frame is used."""


@dataclass
class InputError(Exception):
    """A refusal to show the user; ``key`` is a Fluent message id, ``args`` its variables."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.key} {self.params}" if self.params else self.key


@dataclass(frozen=True)
class NormalizedImage:
    png: bytes
    width: int
    height: int


def check_file_size(size: int | None) -> None:
    """Refuse a file Telegram would not let us download, before asking for it."""
    if size is not None and size > MAX_DOWNLOAD_BYTES:
        raise InputError("input-too-large", {"limit_mb": MAX_DOWNLOAD_BYTES // (1024 * 1024)})


def validate_prompt(text: str | None) -> str:
    """A prompt the job spec accepts: stripped, not empty, not longer than the model reads."""
    prompt = (text or "").strip()
    if not prompt:
        raise InputError("prompt-empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError("prompt-too-long", {"limit": MAX_PROMPT_CHARS, "length": len(prompt)})
    return prompt


def normalize_image(data: bytes) -> NormalizedImage:
    """Decode by content (not by name), apply EXIF orientation, convert to 8-bit RGB PNG."""
    check_file_size(len(data))
    if not data:
        raise InputError("input-not-image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("input-too-many-pixels", {"limit_mp": MAX_INPUT_PIXELS // 1_000_000}) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InputError("input-not-image") from None
    if img.format not in ALLOWED_FORMATS:
        raise InputError("input-unsupported-format", {"format": img.format or "?"})
    # Header check first: the size is known without decoding a single pixel.
    width, height = img.size
    if width < 1 or height < 1:
        raise InputError("input-not-image")
    if width * height > MAX_INPUT_PIXELS:
        raise InputError("input-too-many-pixels", {"limit_mp": MAX_INPUT_PIXELS // 1_000_000})
    if getattr(img, "is_animated", False) and img.format not in MULTI_FRAME_STILL_FORMATS:
        raise InputError("input-animated")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.seek(0)
            img.load()
            upright: Image.Image = ImageOps.exif_transpose(img) or img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("input-too-many-pixels", {"limit_mp": MAX_INPUT_PIXELS // 1_000_000}) from None
    except (OSError, ValueError, SyntaxError):
        raise InputError("input-corrupt") from None
    rgb = _to_rgb(upright)
    if max(rgb.size) > MAX_SIDE:
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return NormalizedImage(out.getvalue(), rgb.width, rgb.height)


def _to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode Pillow decodes: CMYK, 16/32-bit, float, palette, alpha."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        img = img.convert("I")
        mode = "I"
    if mode == "I":
        extrema: Any = img.getextrema()
        scale = 255.0 / 65535.0 if extrema[1] > 255 else 1.0
        img = img.point(lambda v: v * scale).convert("L")
        mode = "L"
    elif mode == "F":
        img = img.point(lambda v: v * 255.0 if v <= 1.0 else v).convert("L")
        mode = "L"
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        # Transparent areas become white, the background a user would see in the chat.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        return img.convert("RGB")
    return img.convert("RGB") if mode != "RGB" else img.copy()
