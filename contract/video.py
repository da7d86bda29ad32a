"""Video jobs (``/video``): Kandinsky 5.0 Video Lite's checkpoints as their model cards run them.

Each checkpoint is trained for one length and one recipe, so the steps and guidance come with it
and cannot be paired wrongly: the distilled one takes 16 steps without guidance, the SFT one 50 with
guidance 5, the no-CFG one 50 without. An operator picks the kind (``KANDINSKY_K5_VIDEO_KIND``) and
the bot the length; the worker loads the checkpoint of that kind and length.

Both sides import this (no torch, no aiogram): the spec checks a video's length with it, the bot
offers the lengths and counts a video against the quota by its seconds, the worker picks the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

VIDEO_FPS = 24
"""Frames per second Kandinsky 5.0 Video was trained at: 5 s are 121 frames (4k + 1, as its VAE
packs four frames into one latent after the first)."""
VIDEO_SECONDS: tuple[int, ...] = (5, 10)
"""The lengths the public checkpoints make (one checkpoint each)."""
DEFAULT_VIDEO_SECONDS = 5
MIN_IMAGE_TO_VIDEO_FRAMES = 17
"""Kandinsky5I2VPipeline matches the picture's latent frames to the next ones' statistics, which needs
five latent frames (17 frames); fewer give NaN. 24 frames a second make 121, so only a lower rate
(the tiny bundle's) meets this."""
VIDEO_LONG_SIDE = 768
"""Video Lite's training size is 512×768: a video is rendered at most at the 768 tier."""
SECOND_TIMEOUT_S = 30
"""Job-timeout allowance per second of video: 5 s take about 35 s on an H100 with the distilled
checkpoint and ten times that with SFT's 50 guided steps on a smaller GPU; thirty per second is
room for that, and a stuck job still ends."""
MAX_VIDEO_BYTES = 50 * 1024 * 1024
"""Telegram's limit for a file a bot sends: a video over it is encoded again at a lower bitrate."""
VIDEO_STAGE = "transformer"
"""The progress stage of a video: the bot shows it as denoising steps."""


class VideoKind(StrEnum):
    """The training recipe of a Video Lite checkpoint (``KANDINSKY_K5_VIDEO_KIND``)."""

    DISTILLED = "distilled16steps"
    """16 steps without guidance: the fastest, close to SFT's quality (the default)."""
    SFT = "sft"
    """50 guided steps: the best quality, about six times the distilled one's time."""
    NOCFG = "nocfg"
    """50 steps without guidance: half SFT's time."""


@dataclass(frozen=True)
class VideoCheckpoint:
    """One public Video Lite checkpoint and the recipe its model card gives."""

    kind: VideoKind
    seconds: int
    steps: int
    guidance: float
    from_image: bool = False
    """Image → video (``Kandinsky5I2VPipeline``): the picture is the first frame."""

    @property
    def repo(self) -> str:
        if self.from_image:
            return f"kandinskylab/Kandinsky-5.0-I2V-Lite-{self.seconds}s-Diffusers"
        return f"kandinskylab/Kandinsky-5.0-T2V-Lite-{self.kind.value}-{self.seconds}s-Diffusers"

    @property
    def folder(self) -> str:
        """Its folder in a local bundle (``KANDINSKY_MODEL_DIR``)."""
        return f"kandinsky5_{'i2v' if self.from_image else 'video'}_{self.seconds}s"

    def frames(self, fps: int = VIDEO_FPS) -> int:
        """Frames of a video of its length at ``fps``: four per latent frame after the first (image →
        video at least MIN_IMAGE_TO_VIDEO_FRAMES)."""
        frames = (self.seconds * fps) // 4 * 4 + 1
        return max(frames, MIN_IMAGE_TO_VIDEO_FRAMES) if self.from_image else frames


_RECIPES: dict[VideoKind, tuple[int, float]] = {
    VideoKind.DISTILLED: (16, 1.0),
    VideoKind.SFT: (50, 5.0),
    VideoKind.NOCFG: (50, 1.0),
}
"""Steps and guidance from each kind's model card."""


def video_checkpoint(kind: VideoKind | str, seconds: int) -> VideoCheckpoint:
    """The checkpoint of ``kind`` for ``seconds``; ValueError naming the lengths there are."""
    if seconds not in VIDEO_SECONDS:
        raise ValueError(f"a video is {' or '.join(map(str, VIDEO_SECONDS))} seconds long, not {seconds}")
    steps, guidance = _RECIPES[VideoKind(kind)]
    return VideoCheckpoint(VideoKind(kind), seconds, steps, guidance)


IMAGE_TO_VIDEO_SECONDS: tuple[int, ...] = (5,)
"""The lengths image → video makes: the public I2V Lite checkpoint is a 5 s one."""
IMAGE_TO_VIDEO = VideoCheckpoint(VideoKind.SFT, 5, steps=50, guidance=5.0, from_image=True)
"""The I2V Lite checkpoint: SFT, 50 guided steps (its model card)."""


def quota_weight(seconds: int) -> int:
    """Requests of the daily quota a video counts for: one per second."""
    return max(1, seconds)


def job_timeout_s(base_s: int, seconds: int) -> int:
    """A video job's time limit: the usual one plus an allowance per second of video."""
    return base_s + SECOND_TIMEOUT_S * seconds
