"""sendAnimation on the local Bot API server: what Telegram plays as an animation, and what it refuses."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from devkit.botapi import LocalBotAPI
from devkit.botapi.limits import MAX_UPLOAD_BYTES
from devkit.botapi.models import UploadedFile
from worker.engine.animation.encode import Mp4Writer

USER = 4242


def mp4(width: int = 64, height: int = 48, frames: int = 12, fps: int = 12) -> bytes:
    writer = Mp4Writer(width, height, fps)
    for i in range(frames):
        writer.add(np.full((height, width, 3), i * 20, dtype=np.uint8))
    return writer.close().data


def other_video(codec: str = "libx264", pix_fmt: str = "yuv420p", audio: bool = False) -> bytes:
    """An MP4 Telegram would not play as an animation: another codec, pixel format, or a sound track."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video: Any = container.add_stream(codec, rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, pix_fmt
        sound: Any = container.add_stream("aac", rate=16000) if audio else None
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 30, dtype=np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            silence = np.zeros((1, 1024), dtype=np.float32)
            samples = av.AudioFrame.from_ndarray(silence, format="fltp", layout="mono")
            samples.sample_rate, samples.pts, samples.time_base = 16000, 0, Fraction(1, 16000)
            for packet in [*sound.encode(samples), *sound.encode(None)]:
                container.mux(packet)
    return buffer.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    frames = [Image.new("RGB", (40, 30), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


async def send(api: LocalBotAPI, data: bytes, name: str = "a.mp4", **extra: Any) -> dict[str, Any]:
    api.user(USER)
    upload = UploadedFile("animation", name, "video/mp4", data)
    return await api.call("sendAnimation", {"chat_id": USER, "animation": "attach://animation", **extra},
                          {"animation": upload})


async def test_an_h264_mp4_without_sound_is_an_animation() -> None:
    api = LocalBotAPI()
    body = await send(api, mp4(), caption="<b>seed</b> 7", parse_mode="HTML")
    assert body["ok"], body
    message = body["result"]
    animation = message["animation"]
    assert (animation["width"], animation["height"], animation["duration"]) == (64, 48, 1)
    assert animation["mime_type"] == "video/mp4" and message["document"]["file_id"] == animation["file_id"]
    assert message["caption"] == "seed 7"
    sent = api.messages_to(USER)[-1]
    assert sent.kind == "animation" and sent.method == "sendAnimation" and sent.file is not None
    assert not api.violations


async def test_a_gif_is_an_animation_too() -> None:
    api = LocalBotAPI()
    body = await send(api, gif(), name="a.gif")
    assert body["ok"], body
    assert (body["result"]["animation"]["width"], body["result"]["animation"]["height"]) == (40, 30)


@pytest.mark.parametrize(("data", "says"), [
    (b"", "file must be non-empty"),
    (b"\x00" * 1000, "not a GIF or an MP4"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not an MP4"),
])
async def test_what_is_no_video_is_refused(data: bytes, says: str) -> None:
    api = LocalBotAPI()
    body = await send(api, data)
    assert body["error_code"] == 400 and says in body["description"], body
    assert api.violations and not api.messages_to(USER)


@pytest.mark.parametrize(("data", "says"), [
    (lambda: other_video(audio=True), "an animation has no sound"),
    (lambda: other_video(codec="mpeg4"), "video codec mpeg4, not H.264"),
    (lambda: other_video(pix_fmt="yuv444p"), "pixel format yuv444p, not yuv420p"),
])
async def test_a_video_telegram_would_not_loop_is_refused(data: Any, says: str) -> None:
    api = LocalBotAPI()
    body = await send(api, data())
    assert body["error_code"] == 400 and says in body["description"], body


async def test_more_than_50_mb_is_too_large() -> None:
    api = LocalBotAPI()
    body = await send(api, mp4() + b"\x00" * MAX_UPLOAD_BYTES)
    assert body["error_code"] == 413, body
