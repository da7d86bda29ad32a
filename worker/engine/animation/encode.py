"""Frames → H.264 MP4 as they come, in process, with the encoder the wheel brings.

Why PyAV and not imageio-ffmpeg (both are maintained and both bundle an FFmpeg, so neither needs a
system ffmpeg):
- PyAV's wheels carry FFmpeg's libraries (libavcodec with libx264; ``'libx264' in
  av.codecs_available``) and encode in this process: a uint8 array becomes a frame
  (``VideoFrame.from_ndarray``) and packets are muxed into any file-like object, here a BytesIO,
  so no temporary file and no second process per video.
- imageio-ffmpeg bundles a static ``ffmpeg`` executable and pipes raw RGB frames to it through a
  subprocess's stdin: a process per video, one more copy of every frame through the pipe, output
  to a path on disk, and errors as the subprocess's stderr text.
- The worker already depends on PyAV to decode voice messages (worker/language): one FFmpeg in
  the image, not two.

Telegram's sendAnimation takes an MP4 of H.264 video without sound: even sides, yuv420p (the
pixel format every player decodes), at most 50 MB. Each frame is converted and handed to the
encoder when the loop makes it, so memory holds the compressed bytes and x264's few lookahead
frames, never the whole animation.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.animation import MAX_ANIMATION_BYTES

CODEC = "libx264"
PIX_FMT = "yuv420p"
CRF = 20
"""x264's constant quality: visually clean for generated frames, a few MB for 8 s at 768 px."""
PRESET = "veryfast"
"""x264's speed preset: 'medium' spends about twice the CPU per frame for a few percent fewer
bytes, which an 8 s clip far under the 50 MB limit does not need (bench/bench_animation.py)."""


class VideoTooLarge(RuntimeError):
    """The MP4 came out over Telegram's limit for sendAnimation."""


@dataclass
class EncodedVideo:
    """An animation's MP4 and what it holds."""

    data: bytes
    width: int
    height: int
    frames: int
    fps: int
    frame_hashes: list[str] = field(default_factory=list)
    """SHA-256 of each frame's RGB bytes as it went into the encoder: what the engine made, before
    H.264's loss (tests compare runs with it)."""
    encode_s: float = 0.0
    """Seconds spent converting and encoding (the frame loop's share)."""

    @property
    def format(self) -> str:
        return "mp4"


def even(side: int) -> int:
    """yuv420p halves the chroma planes, so both sides must be even."""
    return side - side % 2


class Mp4Writer:
    """Encode frames one by one into an in-memory MP4 (``add``), then ``close`` for the bytes."""

    def __init__(self, width: int, height: int, fps: int, *, crf: int = CRF, preset: str = PRESET,
                 max_bytes: int = MAX_ANIMATION_BYTES) -> None:
        import av  # the worker extra's; imported here so the contract-only paths never load FFmpeg

        if width < 2 or height < 2:
            raise ValueError(f"an MP4 frame needs at least 2×2 pixels, got {width}×{height}")
        if not 1 <= fps <= 120:
            raise ValueError(f"fps must be between 1 and 120, got {fps}")
        self.width, self.height, self.fps = even(width), even(height), fps
        self._buffer = io.BytesIO()
        self._container: Any = av.open(self._buffer, mode="w", format="mp4")
        stream: Any = self._container.add_stream(CODEC, rate=fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, PIX_FMT
        stream.codec_context.options = {"crf": str(crf), "preset": preset}
        self._stream = stream
        self._frame_cls: Any = av.VideoFrame
        self._hashes: list[str] = []
        self._max_bytes = max_bytes
        self._closed = False

    @property
    def frames(self) -> int:
        return len(self._hashes)

    def add(self, frame: np.ndarray) -> None:
        """One H×W×3 uint8 RGB frame of the writer's size (an odd side is cropped by one pixel)."""
        if self._closed:
            raise RuntimeError("the MP4 is already closed")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"a frame is H×W×3 uint8, got {frame.shape} {frame.dtype}")
        frame = np.ascontiguousarray(frame[: self.height, : self.width])
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {frame.shape[1]}×{frame.shape[0]}, "
                             f"the video {self.width}×{self.height}")
        self._hashes.append(hashlib.sha256(frame.tobytes()).hexdigest())
        video_frame = self._frame_cls.from_ndarray(frame, format="rgb24")
        video_frame.pts = len(self._hashes) - 1
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)

    def close(self) -> EncodedVideo:
        """Flush the encoder and finish the file; VideoTooLarge past Telegram's limit."""
        if not self._closed:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._closed = True
        data = self._buffer.getvalue()
        if len(data) > self._max_bytes:
            raise VideoTooLarge(f"the MP4 is {len(data)} bytes, over the {self._max_bytes} bytes "
                                "sendAnimation takes")
        return EncodedVideo(data=data, width=self.width, height=self.height, frames=self.frames,
                            fps=self.fps, frame_hashes=list(self._hashes))

    def abort(self) -> None:
        """Drop a half-written video (a cancelled or failed job)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # nothing to keep from a video being thrown away
                self._container.close()


RETRY_CRFS = (28, 34, 40)
"""Qualities tried, in order, when a clip comes out over the limit: each step about halves the bytes."""


def encode_frames(frames: np.ndarray, fps: int, *, max_bytes: int = MAX_ANIMATION_BYTES) -> EncodedVideo:
    """A whole clip (F×H×W×3 uint8) as an MP4; over ``max_bytes`` it is encoded again at a lower
    quality (RETRY_CRFS) rather than dropped: a softer video beats none."""
    started = time.perf_counter()
    for crf in (CRF, *RETRY_CRFS):
        writer = Mp4Writer(frames.shape[2], frames.shape[1], fps, crf=crf, max_bytes=max_bytes)
        try:
            for frame in frames:
                writer.add(frame)
            video = writer.close()
        except VideoTooLarge:
            continue
        except BaseException:
            writer.abort()
            raise
        video.encode_s = time.perf_counter() - started
        return video
    raise VideoTooLarge(f"{len(frames)} frames do not fit {max_bytes} bytes even at crf {RETRY_CRFS[-1]}")


@dataclass(frozen=True)
class VideoInfo:
    """What a decoder finds in an MP4 (tests, the local Bot API server's checks)."""

    codec: str
    width: int
    height: int
    fps: float
    frames: int
    pix_fmt: str
    has_audio: bool


def probe(data: bytes, *, count_frames: bool = True) -> VideoInfo:
    """Open an MP4 with PyAV and read its video stream (decoding every frame to count them)."""
    import av

    container: Any
    with av.open(io.BytesIO(data), mode="r") as container:
        stream: Any = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0)) if count_frames else int(stream.frames)
        return VideoInfo(codec=stream.codec_context.name, width=stream.width, height=stream.height,
                         fps=float(stream.average_rate or 0), frames=frames,
                         pix_fmt=str(stream.codec_context.pix_fmt), has_audio=bool(container.streams.audio))


def decode_frames(data: bytes) -> list[np.ndarray]:
    """Every frame of an MP4 as H×W×3 uint8 RGB (tests only: it holds them all)."""
    import av

    container: Any
    with av.open(io.BytesIO(data), mode="r") as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
