"""Write the bad-input corpus: files users send that are broken, hostile, odd or huge.

The corpus lives in ``tests/data/bad-inputs/``: every file small enough for git is checked in there,
with ``manifest.json`` (how a Telegram client sends each file and what the bot must do) and
``prompts.json``. Files too big for git (the 25 MB document) are listed in the manifest but built
at test time. ``python -m tests.reliability.make_corpus`` rewrites the folder after a change here;
``python -m tests.reliability.make_corpus DIR`` writes the whole corpus, big files included, to DIR.

What the bot must do: ``refuse`` (a clear message, nothing queued) or ``accept`` (a valid if unusual
image: normalised and processed, so the user gets a result or a clear failure).
"""
from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

BOMB_SIDE = 30_000
"""30 000² pixels = 900 MP: far beyond the bot's 40 MP cap, yet a ~100 KB file."""
BIG_DOCUMENT_BYTES = 25 * 1024 * 1024
"""Above Telegram's 20 MB getFile limit for bots."""
HUGE_EXIF_BYTES = 60_000
"""Close to the 64 KB a JPEG APP1 segment can hold."""
DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "bad-inputs"
"""The checked-in corpus."""
CHECK_IN_LIMIT_BYTES = 1024 * 1024
"""Files above this are built at test time instead of living in git."""
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Sample:
    name: str
    mime: str
    expect: str
    """"refuse" or "accept"."""
    as_photo: bool = False
    """Sent as a compressed photo (only what a client could send so); otherwise as a document."""


def _img(mode: str, size: tuple[int, int], fmt: str, color: object = None, **save: object) -> bytes:
    buf = io.BytesIO()
    default = (30, 120, 200)[: len(mode)] if mode in ("RGB", "RGBA") else 100
    image = Image.new(mode, size, color if color is not None else default)  # type: ignore[arg-type]
    image.save(buf, fmt, **save)
    return buf.getvalue()


def _gradient(size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size)
    image.putdata([((x * 4) % 256, (y * 5) % 256, 90) for y in range(size[1]) for x in range(size[0])])
    return image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A 1-bit greyscale PNG of side² pixels, all zero: tiny on disk, gigabytes once decoded as RGB."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(side)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def gif_bomb(side: int = BOMB_SIDE) -> bytes:
    """A small GIF whose logical screen claims side² pixels."""
    data = bytearray(_img("P", (8, 8), "GIF", color=1))
    data[6:10] = struct.pack("<HH", min(side, 65535), min(side, 65535))
    return bytes(data)


def _jpeg(image: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, **save)
    return buf.getvalue()


def _exif(orientation: int | None = None, comment_bytes: int = 0) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if comment_bytes:
        exif[0x010E] = "x" * comment_bytes  # ImageDescription
    return exif.tobytes()


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), (i * 60, 40, 200 - i * 50)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _palette_transparent() -> bytes:
    image = Image.new("P", (48, 48), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    for x in range(24):
        for y in range(48):
            image.putpixel((x, y), 1)
    buf = io.BytesIO()
    image.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def _png16() -> bytes:
    image = Image.new("I;16", (40, 30))
    image.putdata([(x * 1500) % 65535 for _ in range(30) for x in range(40)])
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def samples() -> list[tuple[Sample, bytes]]:
    """Every corpus file with its bytes; built in memory (the 25 MB one included)."""
    jpeg = _jpeg(_gradient())
    png = _img("RGB", (40, 40), "PNG")
    gif = _img("P", (16, 16), "GIF", color=3)
    svg = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
           b'<script>alert(1)</script><circle cx="50" cy="50" r="40"/></svg>')
    html = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)><b>not an image</b></body></html>"
    heic = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic" + b"\x00" * 200
    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0>>endobj\n" \
          b"trailer<</Root 1 0 R>>\n%%EOF\n"
    out: list[tuple[Sample, bytes]] = [
        (Sample("bomb.png", "image/png", "refuse"), png_bomb()),
        (Sample("bomb.gif", "image/gif", "refuse"), gif_bomb()),
        (Sample("truncated.jpg", "image/jpeg", "refuse"), jpeg[: len(jpeg) // 2]),
        (Sample("truncated.png", "image/png", "refuse"), png[: len(png) - 30]),
        (Sample("only-soi.jpg", "image/jpeg", "refuse"), b"\xff\xd8\xff"),
        (Sample("zero-bytes.jpg", "image/jpeg", "refuse"), b""),
        (Sample("text.jpg", "image/jpeg", "refuse"), b"just some words, not a picture\n" * 20),
        (Sample("page.html", "image/png", "refuse"), html),
        (Sample("animated.gif", "image/gif", "refuse"), _animated("GIF")),
        (Sample("animated.webp", "image/webp", "refuse"), _animated("WEBP")),
        (Sample("big-document.png", "image/png", "refuse"),
         b"\x89PNG\r\n\x1a\n" + b"\x00" * BIG_DOCUMENT_BYTES),
        (Sample("drawing.svg", "image/svg+xml", "refuse"), svg),
        (Sample("photo.heic", "image/heic", "refuse"), heic),
        (Sample("scan.pdf", "application/pdf", "refuse"), pdf),
        (Sample("random.png", "image/png", "refuse"), bytes((i * 7919) % 251 for i in range(4096))),
        (Sample("zip-named.png", "image/png", "refuse"), b"PK\x03\x04" + b"\x00" * 200),
        (Sample("program.jpg", "image/jpeg", "refuse"), b"MZ\x90\x00" + b"\x00" * 300),
        (Sample("bad-crc.png", "image/png", "refuse"), png[:29] + b"\xde\xad\xbe\xef" + png[33:]),
        (Sample("gif-truncated.gif", "image/gif", "refuse"), gif[: len(gif) // 2]),
        (Sample("psd-header.jpg", "image/jpeg", "refuse"), b"8BPS\x00\x01" + b"\x00" * 100),
        (Sample("icon.ico", "image/x-icon", "refuse"), _img("RGB", (16, 16), "ICO")),
        (Sample("wide-10000x10.png", "image/png", "accept"), _img("RGB", (10_000, 10), "PNG")),
        (Sample("tiny-1x1.png", "image/png", "accept"), _img("RGB", (1, 1), "PNG")),
        (Sample("cmyk.jpg", "image/jpeg", "accept"), _jpeg(_gradient().convert("CMYK"))),
        (Sample("sixteen-bit.png", "image/png", "accept"), _png16()),
        (Sample("palette-transparent.png", "image/png", "accept"), _palette_transparent()),
        (Sample("huge-exif.jpg", "image/jpeg", "accept"), _jpeg(_gradient(), exif=_exif(1, HUGE_EXIF_BYTES))),
        (Sample("wrong-orientation.jpg", "image/jpeg", "accept"), _jpeg(_gradient(), exif=_exif(9))),
        (Sample("rotated-orientation.jpg", "image/jpeg", "accept", as_photo=True),
         _jpeg(_gradient(), exif=_exif(6))),
        (Sample("grey-alpha.png", "image/png", "accept"), _img("LA", (32, 32), "PNG", color=(90, 128))),
        (Sample("progressive.jpg", "image/jpeg", "accept", as_photo=True),
         _jpeg(_gradient(), progressive=True)),
    ]
    return out


PROMPTS: dict[str, str] = {
    "empty": "   ",
    "too-long-10000": "a castle on a hill " * 527,
    "client-maximum-4096": ("a lighthouse " * 400)[:4096],
    "only-emoji": "🐱🌈🚀🏰🌊",
    "control-characters": "a red\x00 fox\x07 in\x1b[31m snow\u200b\u202e",
    "right-to-left": "قطة تجلس على سطح القمر \u05d7\u05ea\u05d5\u05dc",
    "html-markup": "<b>bold</i> & <script>alert(1)</script> <a href='x'>unclosed &amp &lt;",
}
"""Prompts that must be refused clearly or delivered with a correctly escaped caption."""


def _write(directory: Path, keep: Callable[[Sample, bytes], bool]) -> list[tuple[Sample, Path]]:
    """Every sample with its path in ``directory``; only those ``keep`` accepts are written there."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for sample, data in samples():
        path = directory / sample.name
        if keep(sample, data):
            path.write_bytes(data)
        out.append((sample, path))
    return out


def _write_prompts(directory: Path) -> None:
    (directory / "prompts.json").write_text(json.dumps(PROMPTS, ensure_ascii=False, indent=1) + "\n")


def build(directory: Path) -> list[tuple[Sample, Path]]:
    """Write every file (and prompts.json) into ``directory``; returns the files with their samples."""
    written = _write(directory, lambda sample, data: True)
    _write_prompts(directory)
    return written


def write_checked_in(directory: Path = DATA_DIR) -> list[tuple[Sample, Path]]:
    """Rewrite the checked-in corpus: the files git can hold, the manifest of all, the prompts."""
    if directory.exists():
        for old in directory.iterdir():
            old.unlink()
    written = _write(directory, lambda sample, data: len(data) <= CHECK_IN_LIMIT_BYTES)
    entries = [asdict(sample) for sample, _ in written]
    (directory / MANIFEST).write_text(json.dumps(entries, indent=1) + "\n")
    _write_prompts(directory)
    return written


def manifest(directory: Path = DATA_DIR) -> list[Sample]:
    return [Sample(**entry) for entry in json.loads((directory / MANIFEST).read_text())]


def load(build_dir: Path, directory: Path = DATA_DIR) -> list[tuple[Sample, Path]]:
    """The corpus for a test run: checked-in files as they are, the big ones built into ``build_dir``."""
    listed = manifest(directory)
    missing = {s.name for s in listed if not (directory / s.name).exists()}
    built = {s.name: path for s, path in _write(build_dir, lambda s, data: s.name in missing)
             if s.name in missing}
    return [(s, built.get(s.name, directory / s.name)) for s in listed]


if __name__ == "__main__":
    files = build(Path(sys.argv[1])) if len(sys.argv) > 1 else write_checked_in()
    for sample, path in files:
        size = f"{path.stat().st_size} B" if path.exists() else "built at test time"
        print(f"{path}  {size}  {sample.mime}  {sample.expect}")
