"""Animation jobs (``/animate``): camera moves and strength as keyframe schedules, prompts by second.

Deforum-style: the first frame is drawn from text, every next one is the previous frame moved by the
camera (2D zoom, rotation, pan, or a pseudo-3D flight over the depth map) and repainted by img2img at
a low strength. What moves and how much is written the way animators write it, as keyframe
schedules: ``"0:(1.02), 24:(1.0)"`` means "zoom 1.02 per frame at frame 0, easing linearly to 1.0 at
frame 24, then 1.0". Several prompts are written with their seconds:
``"0: a quiet forest | 3: the forest on fire"``.

Both sides import this (no torch, no aiogram): the job spec validates an animation with it, the bot
builds one from its buttons, the engine reads each frame's values from it.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

ANIMATION_FPS = 12
"""Frames per second of the bot's animations: smooth enough for a camera flight, and each frame is
a diffusion run, so twice the frames is twice the GPU time."""
MIN_SECONDS = 2
"""Shorter is a twitch, not a flight: the bot offers no less."""
MAX_SECONDS = 8
"""The longest animation a job may be (the operator's ANIMATION_MAX_SECONDS may only lower it)."""
DEFAULT_SECONDS = 4
MAX_FPS = 30
MIN_FRAMES = 2
MAX_FRAMES = MAX_SECONDS * ANIMATION_FPS
"""The most frames a job may render (8 s at 12 frames per second)."""
MAX_CADENCE = 8
"""Render every k-th frame at most this sparsely; past it the blended frames smear."""
MAX_KEYFRAMES = 64
MAX_SCHEDULE_CHARS = 1000
MAX_SCENES = 8
"""Prompts one animation may move through (one every second of an 8 s animation)."""
MAX_ANIMATION_BYTES = 50 * 1024 * 1024
"""Telegram's limit for a file a bot sends (sendAnimation included); the worker refuses to store more."""
FRAME_STAGE = "frame"
"""The progress stage of an animation: the bot shows it as "frame 12/48"."""
FRAME_TIMEOUT_S = 20
"""Job-timeout allowance per frame: a 1024 px frame (img2img at 0.4 of 50 steps, MoVQ both ways)
takes about a second on a GPU; twenty means the job is stuck, not slow."""
TRANSITION_S = 1.0
"""Prompts blend into the next over the last second before its start (or half a short scene)."""


class ScheduleError(ValueError):
    """A keyframe schedule or a prompt list that cannot be read; the message says what to write.

    ``code`` names the problem for a translated message (the bot's ``animate-bad-<code>`` texts),
    ``values`` fill it in."""

    def __init__(self, message: str, code: str = "schedule", **values: str | int | float) -> None:
        super().__init__(message)
        self.code = code
        self.values = values


@dataclass(frozen=True)
class Parameter:
    """One animated quantity: its name, unit, allowed range per frame and what 'still' is."""

    name: str
    low: float
    high: float
    still: float
    unit: str


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("zoom", 0.5, 2.0, 1.0, "scale per frame (1.02 zooms in 2 % a frame, below 1 zooms out)"),
        Parameter("angle", -30.0, 30.0, 0.0, "degrees per frame, counter-clockwise"),
        Parameter("translation_x", -100.0, 100.0, 0.0,
                  "pixels per frame the camera moves right (the picture slides left)"),
        Parameter("translation_y", -100.0, 100.0, 0.0,
                  "pixels per frame the camera moves down (the picture slides up)"),
        Parameter("translation_z", -50.0, 50.0, 0.0,
                  "3D flight over the depth map: per-mille per frame the nearest things grow by "
                  "(negative flies backwards); needs the depth model"),
        Parameter("strength", 0.0, 1.0, 0.0,
                  "img2img strength per frame (diffusers' meaning: 0 keeps the moved frame, 1 repaints it)"),
    )
}
"""Every schedule an animation has, by its JobSpec field name."""

_KEYFRAME = re.compile(r"^\s*(?P<frame>[^:]*?)\s*:\s*(?P<value>.*?)\s*$", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_FRAME = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Schedule:
    """Keyframes (frame, value), ascending; linear in between, held before the first and after the last."""

    name: str
    keyframes: tuple[tuple[int, float], ...]

    def value_at(self, frame: int) -> float:
        points = self.keyframes
        if frame <= points[0][0]:
            return points[0][1]
        for (f0, v0), (f1, v1) in itertools.pairwise(points):
            if frame <= f1:
                return v0 + (v1 - v0) * (frame - f0) / (f1 - f0)
        return points[-1][1]

    def values(self, frames: int) -> list[float]:
        return [self.value_at(i) for i in range(frames)]

    @property
    def last_keyframe(self) -> int:
        return self.keyframes[-1][0]

    @property
    def constant(self) -> float | None:
        """The value when every keyframe has the same one, else None."""
        values = {v for _, v in self.keyframes}
        return values.pop() if len(values) == 1 else None

    def __str__(self) -> str:
        return format_keyframes(self.keyframes)


def _number_text(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_keyframes(keyframes: tuple[tuple[int, float], ...]) -> str:
    """The canonical text of a schedule: ``0:(1.02), 24:(1)``."""
    return ", ".join(f"{frame}:({_number_text(value)})" for frame, value in keyframes)


def _split_keyframes(text: str, name: str) -> list[str]:
    """Split on the commas outside parentheses; unbalanced parentheses are an error."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ScheduleError(f"schedule {name}: a ')' without its '(' in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ScheduleError(f"schedule {name}: a '(' is never closed in {text!r}")
    parts.append("".join(current))
    return parts


def _closing(text: str) -> int:
    """Index of the ')' that closes the '(' at ``text[0]`` (the text's parentheses are balanced)."""
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return i
    return len(text) - 1


def parse_schedule(text: str, name: str) -> Schedule:
    """Read a schedule such as ``"0:(1.02), 24:(1.0)"`` for the parameter ``name`` (PARAMETERS).

    Each keyframe is ``FRAME:(VALUE)`` (the parentheses may be left out); the frame is a whole
    number ≥ 0, the value a plain number in the parameter's range. Keyframes may come in any
    order but a frame only once. Deforum's math expressions (``0:(1+0.002*t)``) are not run: the
    error says so.
    """
    if name not in PARAMETERS:
        raise ScheduleError(f"unknown schedule {name!r}; expected one of {', '.join(PARAMETERS)}")
    parameter = PARAMETERS[name]
    if not isinstance(text, str):
        raise ScheduleError(f"schedule {name} must be text like '0:(1.02), 24:(1.0)', "
                            f"got {type(text).__name__}")
    if len(text) > MAX_SCHEDULE_CHARS:
        raise ScheduleError(f"schedule {name} is {len(text)} characters; at most {MAX_SCHEDULE_CHARS}")
    if not text.strip():
        raise ScheduleError(f"schedule {name} is empty; write keyframes like '0:(1.02), 24:(1.0)'")
    parts = _split_keyframes(text, name)
    if len(parts) > MAX_KEYFRAMES:
        raise ScheduleError(f"schedule {name} has {len(parts)} keyframes; at most {MAX_KEYFRAMES}")
    seen: dict[int, float] = {}
    for raw in parts:
        if not raw.strip():
            raise ScheduleError(f"schedule {name}: an empty keyframe (two commas, or one at the end) "
                                f"in {text!r}")
        match = _KEYFRAME.match(raw)
        if match is None:
            raise ScheduleError(f"schedule {name}: keyframe {raw.strip()!r} is not FRAME:(VALUE), "
                                "e.g. 0:(1.02)")
        frame_text, value_text = match["frame"], match["value"]
        if not _FRAME.match(frame_text):
            raise ScheduleError(
                f"schedule {name}: keyframe {raw.strip()!r}: the frame {frame_text!r} must be "
                "a whole number ≥ 0")
        if value_text.startswith("(") and _closing(value_text) != len(value_text) - 1:
            raise ScheduleError(f"schedule {name}: keyframe {raw.strip()!r} has more after its (value); "
                                "separate keyframes with commas")
        if value_text.startswith("(") and value_text.endswith(")"):
            value_text = value_text[1:-1].strip()
        if "(" in value_text or ")" in value_text:
            raise ScheduleError(f"schedule {name}: keyframe {raw.strip()!r} has stray parentheses")
        if not value_text:
            raise ScheduleError(f"schedule {name}: keyframe {raw.strip()!r} has no value")
        if not _NUMBER.match(value_text):
            raise ScheduleError(
                f"schedule {name}: keyframe {raw.strip()!r}: {value_text!r} is not a number "
                "(math expressions are not supported: write the values at keyframes instead)")
        value = float(value_text)
        if not math.isfinite(value):
            raise ScheduleError(f"schedule {name}: keyframe {raw.strip()!r} is not a finite number")
        if not parameter.low <= value <= parameter.high:
            raise ScheduleError(
                f"schedule {name}: {_number_text(value)} at frame {frame_text} is outside "
                f"{_number_text(parameter.low)}…{_number_text(parameter.high)} ({parameter.unit})")
        frame = int(frame_text)
        if frame in seen:
            raise ScheduleError(f"schedule {name}: frame {frame} has two keyframes")
        seen[frame] = value
    return Schedule(name, tuple(sorted(seen.items())))


def constant_schedule(name: str, value: float) -> str:
    return format_keyframes(((0, value),))


# --- prompts by second ---------------------------------------------------------------------------

_SCENE_TIME = re.compile(r"^\s*(?P<second>\d+(?:\.\d+)?)\s*[:：]\s*(?P<prompt>.*?)\s*$", re.DOTALL)
SCENE_SEPARATOR = "|"


@dataclass(frozen=True)
class Scene:
    """A prompt and the second it takes over at."""

    second: float
    prompt: str


def parse_prompts(text: str) -> tuple[Scene, ...]:
    """``"a quiet forest"`` (one prompt) or ``"0: a quiet forest | 3: the forest on fire"``.

    With several prompts each starts with its second (the first at 0) and they come in order.
    """
    if not text or not text.strip():
        raise ScheduleError("the animation needs a prompt", "no-prompt")
    parts = text.split(SCENE_SEPARATOR)
    if len(parts) > MAX_SCENES:
        raise ScheduleError(f"{len(parts)} prompts; an animation takes at most {MAX_SCENES}", "too-many",
                            limit=MAX_SCENES)
    timed = [_SCENE_TIME.match(part) for part in parts]
    if len(parts) == 1 and timed[0] is None:
        return (Scene(0.0, text.strip()),)
    scenes: list[Scene] = []
    for part, match in zip(parts, timed, strict=True):
        if not part.strip():
            raise ScheduleError("an empty prompt between two '|'; write 'SECOND: prompt' on each side",
                                "empty-part")
        if match is None:
            raise ScheduleError(f"{part.strip()!r} has no second; write each prompt as 'SECOND: prompt', "
                                "e.g. '0: a quiet forest | 3: the forest on fire'", "no-second",
                                part=part.strip()[:40])
        if not match["prompt"]:
            raise ScheduleError(f"the prompt at {match['second']} s is empty", "empty-prompt",
                                second=match["second"])
        second = float(match["second"])
        if scenes and second <= scenes[-1].second:
            raise ScheduleError(f"the prompt at {match['second']} s comes after the one at "
                                f"{_number_text(scenes[-1].second)} s; give the seconds in order",
                                "order", second=match["second"], previous=_number_text(scenes[-1].second))
        scenes.append(Scene(second, match["prompt"]))
    if scenes[0].second != 0:
        raise ScheduleError(f"the first prompt starts at {_number_text(scenes[0].second)} s; "
                            "it must start at 0", "first-not-zero", second=_number_text(scenes[0].second))
    return tuple(scenes)


def scene_weights(scenes: tuple[Scene, ...], frame: int, fps: int) -> list[tuple[int, float]]:
    """Which scenes' embeddings make frame ``frame`` and with what weight (summing to 1): the
    current scene, blending linearly into the next over the TRANSITION_S before the next starts."""
    t = frame / fps
    current = max(i for i, s in enumerate(scenes) if s.second <= t)
    if current + 1 >= len(scenes):
        return [(current, 1.0)]
    start, nxt = scenes[current].second, scenes[current + 1].second
    window = min(TRANSITION_S, (nxt - start) / 2)
    w = (t - (nxt - window)) / window if window > 0 else 0.0
    w = min(max(w, 0.0), 1.0)
    if w <= 0.0:
        return [(current, 1.0)]
    return [(current, 1.0 - w), (current + 1, w)]


# --- camera presets and the job's animation -----------------------------------------------------


class Camera(StrEnum):
    """The bot's camera buttons; CUSTOM: schedules written by hand (CLI)."""

    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    SPIN = "spin"
    FLIGHT_3D = "flight_3d"
    CUSTOM = "custom"


CAMERA_PRESETS: dict[Camera, dict[str, str]] = {
    Camera.ZOOM_IN: {"zoom": "0:(1.03)"},
    Camera.ZOOM_OUT: {"zoom": "0:(0.97)"},
    Camera.PAN_LEFT: {"translation_x": "0:(-6)"},
    Camera.PAN_RIGHT: {"translation_x": "0:(6)"},
    Camera.SPIN: {"angle": "0:(1.5)", "zoom": "0:(1.01)"},
    Camera.FLIGHT_3D: {"translation_z": "0:(15)"},
}
"""Each button's schedules; the rest stay still. Per frame at 12 fps: a 4 s zoom in grows ×4."""

DEFAULT_STRENGTH = "0:(0.4)"
"""Repaint 40 % of each moved frame: enough to heal the warp's smears, little enough to keep the scene."""


def preset(camera: Camera) -> dict[str, str]:
    """Every schedule of a camera button (still values for what it does not move)."""
    schedules = {name: constant_schedule(name, p.still) for name, p in PARAMETERS.items()
                 if name != "strength"}
    schedules.update(CAMERA_PRESETS.get(camera, {}))
    return schedules


class Animation(BaseModel):
    """What an animate job renders besides the prompt(s): length, camera, repaint strength, cadence.

    Schedules are validated when the spec is built (the frames of their keyframes included) and
    kept in their canonical text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    frames: int = Field(default=DEFAULT_SECONDS * ANIMATION_FPS, ge=MIN_FRAMES, le=MAX_FRAMES)
    fps: int = Field(default=ANIMATION_FPS, ge=1, le=MAX_FPS)
    camera: Camera = Camera.CUSTOM
    """The bot's button that made the schedules (captions name it); CUSTOM when written by hand."""
    zoom: str = "0:(1)"
    angle: str = "0:(0)"
    translation_x: str = "0:(0)"
    translation_y: str = "0:(0)"
    translation_z: str = "0:(0)"
    strength: str = DEFAULT_STRENGTH
    cadence: int = Field(default=1, ge=1, le=MAX_CADENCE)
    """Diffuse every ``cadence``-th frame; the frames between are the moved frames, blended."""
    color_match: bool = True
    """Match each repainted frame's colours to the first frame's (keeps them from drifting)."""

    @classmethod
    def for_camera(cls, camera: Camera, *, seconds: int = DEFAULT_SECONDS, fps: int = ANIMATION_FPS,
                   **overrides: object) -> Animation:
        """The animation a camera button makes (``overrides``: any other field)."""
        return cls.model_validate({"camera": camera, "frames": seconds * fps, "fps": fps,
                                   **preset(camera), **overrides})

    @field_validator("zoom", "angle", "translation_x", "translation_y", "translation_z", "strength")
    @classmethod
    def _canonical(cls, value: str, info: ValidationInfo) -> str:
        return str(parse_schedule(value, info.field_name or ""))

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.frames / self.fps > MAX_SECONDS:
            raise ValueError(f"{self.frames} frames at {self.fps} fps last {self.frames / self.fps:.1f} s; "
                             f"an animation lasts at most {MAX_SECONDS} s")
        for name in PARAMETERS:
            last = self.schedule(name).last_keyframe
            if last >= self.frames:
                raise ValueError(f"schedule {name}: keyframe {last} is past the last frame "
                                 f"({self.frames - 1}) of {self.frames} frames")
        return self

    def schedule(self, name: str) -> Schedule:
        return parse_schedule(getattr(self, name), name)

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def uses_depth(self) -> bool:
        """A 3D flight: the depth model moves near things more than far ones."""
        return self.schedule("translation_z").constant != 0.0

    def check_scenes(self, prompt: str) -> tuple[Scene, ...]:
        """The prompt's scenes, each starting before the animation ends."""
        scenes = parse_prompts(prompt)
        for scene in scenes[1:]:
            if scene.second >= self.seconds:
                raise ScheduleError(f"the prompt at {_number_text(scene.second)} s starts after the "
                                    f"{_number_text(self.seconds)} s animation ends", "after-end",
                                    second=_number_text(scene.second), seconds=_number_text(self.seconds))
        return scenes

    def rendered_frames(self) -> int:
        """Frames that run a diffusion (the first, then every ``cadence``-th and the last)."""
        keys = set(range(0, self.frames, self.cadence)) | {self.frames - 1}
        return len(keys)


def job_timeout_s(base_s: int, frames: int) -> int:
    """The job timeout of a job of ``frames`` frames (0 for a still image): ``base_s`` plus an
    allowance per frame, so a long animation is not cut off like a stuck still."""
    return base_s + max(frames, 0) * FRAME_TIMEOUT_S


def max_job_timeout_s(base_s: int) -> int:
    """The longest timeout any job may get: what a worker caps a job's timeout at."""
    return job_timeout_s(base_s, MAX_FRAMES)


def quota_weight(frames: int, frames_per_request: int) -> int:
    """How many requests of the daily quota a job counts for: an animation one per
    ``frames_per_request`` frames begun (at least one), anything else one."""
    if frames <= 0:
        return 1
    return max(1, math.ceil(frames / max(frames_per_request, 1)))
