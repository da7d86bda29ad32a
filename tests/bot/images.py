"""Real images for tests, generated with Pillow (no files on disk, nothing downloaded)."""

from __future__ import annotations

import io

from PIL import Image


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def photo(width: int = 320, height: int = 240, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A JPEG with a gradient, so it is not a trivially compressible flat colour."""
    img = Image.new("RGB", (width, height), color)
    for x in range(0, width, 8):
        img.paste((x % 256, (2 * x) % 256, 255 - x % 256), (x, 0, min(x + 4, width), height))
    return encode(img, "JPEG", quality=90)


def png(width: int = 64, height: int = 48, mode: str = "RGB") -> bytes:
    color: object = {"RGB": (10, 200, 30), "RGBA": (10, 200, 30, 128), "L": 128, "LA": (128, 60)}.get(mode, 0)
    return encode(Image.new(mode, (width, height), color), "PNG")  # type: ignore[arg-type]


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
