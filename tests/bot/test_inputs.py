"""bot.services.inputs on real generated images: every bad kind is refused with its message key."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from bot.services.inputs import (
    MAX_DOWNLOAD_BYTES,
    MAX_INPUT_PIXELS,
    MAX_SIDE,
    InputError,
    check_file_size,
    normalize_image,
    validate_prompt,
)
from contract.spec import MAX_PROMPT_CHARS
from tests.bot.images import encode, open_image, photo, png


def refused(data: bytes) -> InputError:
    with pytest.raises(InputError) as info:
        normalize_image(data)
    return info.value


def test_jpeg_becomes_rgb_png_of_same_size() -> None:
    out = normalize_image(photo(320, 240))
    img = open_image(out.png)
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (320, 240) == (out.width, out.height)


def test_large_image_downscaled_to_max_side() -> None:
    out = normalize_image(encode(Image.new("RGB", (3000, 1500), (1, 2, 3)), "JPEG"))
    assert (out.width, out.height) == (MAX_SIDE, MAX_SIDE // 2)


def test_exif_orientation_applied() -> None:
    img = Image.new("RGB", (200, 100), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = normalize_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert (out.width, out.height) == (100, 200)


def test_cmyk_converted() -> None:
    cmyk = encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG")
    img = open_image(normalize_image(cmyk).png)
    assert img.mode == "RGB"
    r, g, b = img.getpixel((20, 15))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60  # cyan-free, magenta+yellow = red


def test_16_bit_grey_converted_with_its_brightness() -> None:
    img16 = Image.new("I;16", (32, 32))
    img16.putdata([40000] * (32 * 32))
    out = open_image(normalize_image(encode(img16, "PNG")).png)
    assert out.mode == "RGB"
    value = out.getpixel((0, 0))[0]  # type: ignore[index]
    assert abs(value - 40000 * 255 // 65535) <= 2


def test_palette_with_transparency_flattened_on_white() -> None:
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    out = open_image(normalize_image(encode(pal, "PNG", transparency=0)).png)
    assert out.mode == "RGB" and out.getpixel((5, 5)) == (255, 255, 255)


def test_alpha_flattened() -> None:
    img = open_image(normalize_image(png(30, 30, "RGBA")).png)
    assert img.mode == "RGB"
    r, g, b = img.getpixel((1, 1))  # type: ignore[misc]
    assert r > 100 and g > 200 and b > 100  # half-transparent green over white


def test_animated_gif_refused() -> None:
    frames = [Image.new("RGB", (16, 16), (80 * i, 0, 0)) for i in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    assert refused(gif.getvalue()).key == "input-animated"


def test_not_an_image_refused_whatever_its_name() -> None:
    assert refused(b"%PDF-1.4 not an image at all" * 10).key == "input-not-image"
    assert refused(b"").key == "input-not-image"


def test_unsupported_format_refused() -> None:
    ico = encode(Image.new("RGB", (32, 32)), "ICO")
    err = refused(ico)
    assert err.key == "input-unsupported-format" and err.params["format"] == "ICO"


def test_truncated_image_refused() -> None:
    data = photo(400, 300)
    assert refused(data[: len(data) // 3]).key == "input-corrupt"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size in its header (a decompression bomb's first bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(
        b"IEND", b"")


def test_decompression_bomb_refused_before_decoding() -> None:
    err = refused(_png_header_only(10_000, 10_000))
    assert err.key == "input-too-many-pixels" and err.params["limit_mp"] == MAX_INPUT_PIXELS // 1_000_000
    assert refused(_png_header_only(30_000, 30_000)).key == "input-too-many-pixels"  # past Pillow's own guard


def test_file_size_limit() -> None:
    check_file_size(MAX_DOWNLOAD_BYTES)
    check_file_size(None)
    with pytest.raises(InputError) as info:
        check_file_size(MAX_DOWNLOAD_BYTES + 1)
    assert info.value.key == "input-too-large" and info.value.params == {"limit_mb": 20}


def test_prompts() -> None:
    assert validate_prompt("  a cat  ") == "a cat"
    for empty in ("", "   \n", None):
        with pytest.raises(InputError) as info:
            validate_prompt(empty)
        assert info.value.key == "prompt-empty"
    assert validate_prompt("x" * MAX_PROMPT_CHARS) == "x" * MAX_PROMPT_CHARS
    with pytest.raises(InputError) as info:
        validate_prompt("x" * (MAX_PROMPT_CHARS + 1))
    assert info.value.key == "prompt-too-long"
    assert info.value.params == {"limit": MAX_PROMPT_CHARS, "length": MAX_PROMPT_CHARS + 1}
