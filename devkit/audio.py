"""Voice messages for tests and the demo, made in Python: tones or noise encoded to OGG/Opus by PyAV
(the decoder the worker uses ships its own FFmpeg, encoders included), and the duration a
Telegram client would report for an OGG/Opus file, read from its pages without decoding.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

OPUS_RATE = 48_000
"""Opus always runs at 48 kHz; an OGG/Opus granule position counts 48 kHz samples."""


def make_voice(seconds: float, kind: str = "tone", *, fmt: str = "ogg", seed: int = 0) -> bytes:
    """``seconds`` of a 440 Hz tone (with a little vibrato, speech-like loudness), white noise or
    silence, as OGG/Opus (a Telegram voice note), MP3-free M4A/AAC (``fmt="m4a"``) or MP4 video note."""
    import av

    rate = OPUS_RATE
    n = max(1, int(seconds * rate))
    t = np.arange(n) / rate
    if kind == "tone":
        samples = 0.3 * np.sin(2 * np.pi * (440 + 20 * np.sin(2 * np.pi * 3 * t)) * t)
    elif kind == "noise":
        samples = np.random.default_rng(seed).normal(0.0, 0.1, n)
    elif kind == "silence":
        samples = np.zeros(n)
    else:
        raise ValueError(f"unknown kind {kind!r}: tone, noise or silence")
    pcm = samples.astype(np.float32).reshape(1, -1)
    codec, container_format = {"ogg": ("libopus", "ogg"), "m4a": ("aac", "mp4")}[fmt]
    out = io.BytesIO()
    with av.open(out, mode="w", format=container_format) as container:
        stream: Any = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame_size = 960  # 20 ms, Opus' usual frame
        for start in range(0, pcm.shape[1], frame_size):
            chunk = np.ascontiguousarray(pcm[:, start:start + frame_size])
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def ogg_opus_duration(data: bytes) -> float | None:
    """Seconds of audio in an OGG/Opus file (last granule position less the pre-skip, at 48 kHz), or
    None when ``data`` is not OGG/Opus: what a Telegram client records as a voice note's duration."""
    if not data.startswith(b"OggS"):
        return None
    pre_skip: int | None = None
    last_granule = -1
    pos = 0
    while pos + 27 <= len(data):
        if data[pos:pos + 4] != b"OggS":
            return None
        granule = struct.unpack_from("<q", data, pos + 6)[0]
        segments = data[pos + 26]
        table = data[pos + 27:pos + 27 + segments]
        body_start = pos + 27 + segments
        body_len = sum(table)
        if pre_skip is None:
            head = data[body_start:body_start + body_len]
            if not head.startswith(b"OpusHead") or len(head) < 12:
                return None
            pre_skip = struct.unpack_from("<H", head, 10)[0]
        if granule >= 0:
            last_granule = granule
        pos = body_start + body_len
    if pre_skip is None or last_granule < 0:
        return None
    return max(0.0, (last_granule - pre_skip) / OPUS_RATE)
