"""The job spec: the one schema the bot writes and the worker reads.

It imports neither torch nor aiogram, so both sides (and tests, and the CLI) can use it.
A spec is validated completely when it is built; a worker never half-runs a bad one.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.animation import Animation, Scene
from contract.editing import MAX_REGION_CHARS, ZOOM_FACTORS, PanDirection
from contract.families import DEFAULT_FAMILY, Family, describe_family
from contract.language import PromptTranslation
from contract.loras import LoraChoice, check_choices

# Mode and STICKER_SUFFIX live with the mode descriptions; importing them from here keeps working.
from contract.modes import STICKER_SUFFIX as STICKER_SUFFIX
from contract.modes import Button, Mode, Output, describe
from contract.weighting import check_weighting

SPEC_VERSION = 1
"""Bump when a field changes meaning; workers reject versions they do not know."""

MAX_PROMPT_CHARS = 1000
"""Kandinsky's text encoder reads 77 tokens; past this a prompt is a paste accident, not a prompt."""

MAX_IMAGES_PER_JOB = 4
MAX_STEPS = 150
MAX_SEED = 2**32 - 1


class SpecError(ValueError):
    """A job spec that must not run; the message is safe to show to an operator."""


class UnsupportedSpecVersion(SpecError):
    pass


class Style(StrEnum):
    NONE = "none"
    ARTSTATION = "artstation"
    UHD = "4k"
    ANIME = "anime"


STYLE_SUFFIXES: dict[Style, str] = {
    Style.NONE: "",
    Style.ARTSTATION: ", trending on artstation, concept art, highly detailed, digital painting",
    Style.UHD: ", 4k, ultra high definition, highly detailed, sharp focus, professional photo",
    Style.ANIME: ", anime style, cel shading, vibrant colors, studio ghibli, detailed illustration",
}
"""One table for every style: the bot shows the keys, the engine appends the suffix."""

class Priority(StrEnum):
    HIGH = "high"  # admins
    NORMAL = "normal"


# Aspect ratios users pick, as (width, height) proportions.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "16:9": (16, 9),
    "9:16": (9, 16),
    "4:3": (4, 3),
    "3:4": (3, 4),
    "3:2": (3, 2),
    "2:3": (2, 3),
}
LONG_SIDES: tuple[int, ...] = (512, 768, 1024)
"""Resolution tiers. A fixed set keeps compiled graphs and cuDNN plans reusable."""
SIDE_MULTIPLE = 64
DEFAULT_ASPECT = "1:1"
DEFAULT_LONG_SIDE = 1024


def bucket_size(aspect: str, long_side: int = DEFAULT_LONG_SIDE) -> tuple[int, int]:
    """(width, height) the models generate for an aspect ratio at a tier: the nearest bucket at least
    as large as the exact ratio (each side a multiple of 64, as the UNets need), which the engine then
    centre-crops to ``exact_size``. Rounding the short side to the nearest multiple instead turned
    16:9 at 512 into 512x256 (2:1)."""
    rw, rh = _ratio(aspect, long_side)
    short = long_side * min(rw, rh) / max(rw, rh)
    short_px = max(SIDE_MULTIPLE, math.ceil(short / SIDE_MULTIPLE - 1e-9) * SIDE_MULTIPLE)
    return (long_side, short_px) if rw >= rh else (short_px, long_side)


def exact_size(aspect: str, long_side: int = DEFAULT_LONG_SIDE, *, even: bool = False) -> tuple[int, int]:
    """(width, height) the user gets: the long side of the tier and the short side that makes the exact
    ratio, within a pixel. ``even``: both sides even (H.264 in yuv420p needs that for animations)."""
    rw, rh = _ratio(aspect, long_side)
    short = long_side * min(rw, rh) / max(rw, rh)
    short_px = 2 * round(short / 2) if even else round(short)
    return (long_side, short_px) if rw >= rh else (short_px, long_side)


def crop_box(width: int, height: int, out_width: int, out_height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred ``out_width`` x ``out_height`` box in a picture of
    ``width`` x ``height`` (PIL's crop box)."""
    left = (width - out_width) // 2
    top = (height - out_height) // 2
    return left, top, left + out_width, top + out_height


def nearest_aspect(width: int, height: int) -> str:
    """The aspect ratio (of ASPECT_RATIOS) closest to a picture's shape."""
    def off(aspect: str) -> float:
        rw, rh = ASPECT_RATIOS[aspect]
        return abs(math.log(rw * height / (rh * width)))

    return min(ASPECT_RATIOS, key=off)


def _ratio(aspect: str, long_side: int) -> tuple[int, int]:
    if aspect not in ASPECT_RATIOS:
        raise SpecError(f"unknown aspect ratio {aspect!r}; expected one of {', '.join(ASPECT_RATIOS)}")
    if long_side not in LONG_SIDES:
        raise SpecError(f"unknown long side {long_side}; expected one of {LONG_SIDES}")
    return ASPECT_RATIOS[aspect]


SIZE_BUCKETS: frozenset[tuple[int, int]] = frozenset(
    bucket_size(a, s) for a in ASPECT_RATIOS for s in LONG_SIDES
)
"""Every size the models generate at (compiled graphs and cuDNN plans are made for these)."""
LEGACY_BUCKETS: frozenset[tuple[int, int]] = frozenset({(512, 256), (256, 512)})
"""Sizes the round-to-nearest rule made before exact ratios (16:9 at 512); a spec written then (a
queued job, a result's "again") still runs, uncropped."""


def images_needed(mode: Mode) -> int:
    return describe(mode).images


def prompt_needed(mode: Mode) -> bool:
    return describe(mode).prompt


def new_job_id() -> str:
    return secrets.token_hex(8)


SEEDS: random.Random = secrets.SystemRandom()
"""Where a request without a seed gets one: the OS's randomness. Tests that depend on generated
pixels put a seeded ``random.Random`` here, so their results are the same on every run."""


def new_seed() -> int:
    """A fresh seed for a request the user gave none (shown in the caption, reusable)."""
    return SEEDS.randint(0, MAX_SEED)


class JobSpec(BaseModel):
    """Everything a worker needs to run one request; inputs are Redis blob keys, never bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = SPEC_VERSION
    job_id: str = Field(default_factory=new_job_id, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    mode: Mode
    model: Family = DEFAULT_FAMILY
    """The model family that runs the job (contract.families); specs written before families were
    Kandinsky 2.2's. ``steps`` and ``guidance`` left out of a spec are this family's defaults."""
    prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    style: Style = Style.NONE
    loras: tuple[LoraChoice, ...] = ()
    """LoRA styles (contract.loras) and their weights, for a family that takes them; the worker puts
    their trigger words in front of the prompt."""
    width: int = 1024
    height: int = 1024
    """The size the models generate at, one of ``SIZE_BUCKETS`` (sides multiples of 64)."""
    aspect: str | None = None
    """The ratio the user chose: the engine centre-crops the generated picture to it exactly
    (``output_size``). None: the picture as generated (specs from before exact ratios, a CLI run)."""
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    steps: int = Field(default=50, ge=1, le=MAX_STEPS)
    prior_steps: int = Field(default=25, ge=2, le=MAX_STEPS)
    """The prior's UnCLIP scheduler needs at least two steps (it divides by steps - 1)."""
    guidance: float = Field(default=4.0, ge=1.0, le=20.0)
    prior_guidance: float = Field(default=4.0, ge=1.0, le=20.0)
    num_images: int = Field(default=1, ge=1, le=MAX_IMAGES_PER_JOB)
    strength: float = Field(default=0.6, gt=0.0, le=1.0)
    """How far depth mode may move from the input (img2img strength)."""
    inputs: tuple[str, ...] = ()
    mask: str | None = None
    weights: tuple[float, ...] = ()
    animation: Animation | None = None
    """An animate job's frames, camera and strength schedules (contract.animation); no other mode
    takes one. Its ``prompt`` may hold several prompts by second (``0: a forest | 3: on fire``)."""
    seconds: int = 0
    """A video's length (contract.video.VIDEO_SECONDS); 0 for every other mode."""
    region: str = Field(default="", max_length=MAX_REGION_CHARS)
    """Edit by words: what to repaint ("the sky"); the prompt says what it becomes."""
    zoom: float | None = None
    """Zoom out: the factor the picture shrinks by (contract.editing.ZOOM_FACTORS)."""
    pan: PanDirection | None = None
    """Pan: where the frame moves."""
    user_id: int = 0
    chat_id: int = 0
    reply_to: int | None = None
    locale: str = Field(default="en", pattern=r"^[a-z]{2}$")
    priority: Priority = Priority.NORMAL
    created_at: float = Field(default_factory=time.time)
    translation: PromptTranslation | None = None
    """What the model read for the prompt fields, when known: the worker fills the job record's
    and the result's on the first run, and the bot copies it here when it rebuilds a spec ("again",
    "same seed"), so the model reads the same English. The worker uses a field's translation only
    if it was made from that field's text. Specs without it (older ones) still parse."""

    @model_validator(mode="before")
    @classmethod
    def _check_version_first(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("version", SPEC_VERSION)
            if version != SPEC_VERSION:
                raise UnsupportedSpecVersion(
                    f"job spec version {version!r} is not supported (this build reads {SPEC_VERSION})"
                )
        return data

    @model_validator(mode="before")
    @classmethod
    def _family_defaults(cls, data: Any) -> Any:
        """Steps and guidance a spec does not name are its family's (contract.families)."""
        if not isinstance(data, dict):
            return data
        try:
            family = describe_family(data.get("model", DEFAULT_FAMILY))
        except ValueError:
            return data  # the field's own check names the unknown family
        defaults: dict[str, Any] = {"steps": family.default_steps, "guidance": family.default_guidance}
        if family.default_prior_steps is not None:
            defaults["prior_steps"] = family.default_prior_steps
        if family.default_prior_guidance is not None:
            defaults["prior_guidance"] = family.default_prior_guidance
        missing = {k: v for k, v in defaults.items() if k not in data}
        return {**data, **missing} if missing else data

    @model_validator(mode="after")
    def _check_mode_inputs(self) -> Self:
        """What the job carries must be what its mode's description (contract.modes) asks for, and
        its family (contract.families) must serve that mode at that size."""
        needs = describe(self.mode)
        family = describe_family(self.model)
        if self.model not in needs.families:
            serving = ", ".join(sorted(needs.families))
            raise ValueError(f"mode {self.mode} is not served by {family.title} ({self.model}); "
                             f"it is by {serving}")
        if family.long_sides is not None and max(self.width, self.height) not in family.long_sides:
            raise ValueError(f"{family.title} renders long sides {family.long_sides}, "
                             f"not {self.width}x{self.height}")
        if self.aspect is not None and (self.width, self.height) != bucket_size(
                self.aspect, max(self.width, self.height)):
            raise ValueError(f"size {self.width}x{self.height} is not the {self.aspect} bucket; "
                             f"use contract.spec.bucket_size(aspect, long_side)")
        if (self.width, self.height) not in SIZE_BUCKETS | LEGACY_BUCKETS:
            raise ValueError(
                f"size {self.width}x{self.height} is not one of the buckets; "
                f"use contract.spec.bucket_size(aspect, long_side)"
            )
        if needs.prompt and not self.prompt.strip():
            raise ValueError(f"mode {self.mode} needs a prompt")
        if self.loras:
            if not family.lora_styles:
                raise ValueError(f"{family.title} takes no LoRA styles")
            check_choices(self.loras)
        if describe_family(self.model).weighted_prompts:  # a malformed weighting is refused, not drawn
            for text in (self.prompt, self.negative_prompt):
                check_weighting(text)
        if len(self.inputs) != needs.images:
            raise ValueError(f"mode {self.mode} needs {needs.images} input image(s), got {len(self.inputs)}")
        if needs.mask and not self.mask:
            raise ValueError(f"mode {self.mode} needs a mask")
        if not needs.mask and self.mask:
            raise ValueError(f"mode {self.mode} takes no mask")
        if needs.weights:
            if len(self.weights) != 2:
                raise ValueError(f"mode {self.mode} needs 2 weights, got {len(self.weights)}")
            if any(not math.isfinite(w) or w < 0 or w > 1 for w in self.weights):
                raise ValueError("weights must each be between 0 and 1")
            if abs(sum(self.weights) - 1.0) > 1e-3:
                raise ValueError(f"weights must sum to 1, got {sum(self.weights):.3f}")
        elif self.weights:
            raise ValueError(f"mode {self.mode} takes no weights")
        if needs.region and not self.region.strip():
            raise ValueError(f"mode {self.mode} needs the region to repaint (region)")
        if not needs.region and self.region:
            raise ValueError(f"mode {self.mode} takes no region")
        if needs.zoom and self.zoom not in ZOOM_FACTORS:
            raise ValueError(f"mode {self.mode} needs a zoom factor, one of {ZOOM_FACTORS}; got {self.zoom}")
        if not needs.zoom and self.zoom is not None:
            raise ValueError(f"mode {self.mode} takes no zoom factor")
        if needs.pan and self.pan is None:
            raise ValueError(f"mode {self.mode} needs a pan direction ({', '.join(PanDirection)})")
        if not needs.pan and self.pan is not None:
            raise ValueError(f"mode {self.mode} takes no pan direction")
        if needs.animation:
            if self.animation is None:
                raise ValueError(f"mode {self.mode} needs an animation (frames, camera, schedules)")
            if self.num_images != 1:
                raise ValueError(f"an animation is one video: num_images must be 1, got {self.num_images}")
            self.animation.check_scenes(self.prompt)
        elif self.animation is not None:
            raise ValueError(f"mode {self.mode} takes no animation")
        if needs.video:
            if self.seconds not in needs.lengths:
                raise ValueError(f"a video of mode {self.mode} is {' or '.join(map(str, needs.lengths))} "
                                 f"seconds long, not {self.seconds}")
            if self.num_images != 1:
                raise ValueError(f"a video is one video: num_images must be 1, got {self.num_images}")
        elif self.seconds:
            raise ValueError(f"mode {self.mode} takes no length in seconds")
        if needs.max_long_side is not None and max(self.width, self.height) > needs.max_long_side:
            raise ValueError(f"mode {self.mode} renders at most at the {needs.max_long_side} tier, "
                             f"not {self.width}x{self.height}")
        if needs.strength and int(self.steps * self.strength) < 1:
            raise ValueError(
                f"steps × strength must leave at least one step, got {self.steps} × {self.strength}"
            )
        return self

    @field_validator("aspect")
    @classmethod
    def _known_aspect(cls, value: str | None) -> str | None:
        if value is not None and value not in ASPECT_RATIOS:
            raise ValueError(f"unknown aspect ratio {value!r}; expected one of {', '.join(ASPECT_RATIOS)}")
        return value

    def output_size(self, *, even: bool = False) -> tuple[int, int]:
        """(width, height) of what the user gets: the exact ``aspect`` at this long side, or the
        generated size when the spec names no aspect. ``even``: for an animation's H.264 frames."""
        if self.aspect is None:
            return self.width, self.height
        return exact_size(self.aspect, max(self.width, self.height), even=even)

    @property
    def effective_prompt(self) -> str:
        """The prompt the model sees: the user's words, the style, and the mode's suffix (sticker)."""
        return self.prompt.strip() + STYLE_SUFFIXES[self.style] + describe(self.mode).prompt_suffix

    @property
    def frames(self) -> int:
        """Frames an animate job renders; 0 for a still image."""
        return self.animation.frames if self.animation is not None else 0

    @property
    def output(self) -> Output:
        """What the job produces (its mode's description says): how it is stored and delivered."""
        return describe(self.mode).output

    @property
    def buttons(self) -> tuple[Button, ...]:
        """The buttons under its result (its mode's description says)."""
        return describe(self.mode).result_buttons

    def quota_weight(self, frames_per_request: int) -> int:
        """Requests of the daily quota it counts for (an animation by its frames, a video by its seconds)."""
        return describe(self.mode).quota_weight(self.frames, frames_per_request, self.seconds)

    def job_timeout_s(self, base_s: int) -> int:
        """Its time limit on a worker (an animation's grows with its frames, a video's with its seconds)."""
        return describe(self.mode).job_timeout_s(base_s, self.frames, self.seconds)

    def scenes(self) -> tuple[Scene, ...]:
        """An animate job's prompts by second, each as the model sees it (style and mode suffix)."""
        if self.animation is None:
            raise ValueError(f"mode {self.mode} has no animation, so no scenes")
        suffix = STYLE_SUFFIXES[self.style] + describe(self.mode).prompt_suffix
        return tuple(Scene(s.second, s.prompt + suffix) for s in self.animation.check_scenes(self.prompt))

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobSpec:
        """Parse and validate; every problem becomes a SpecError with a readable reason."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"job spec is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SpecError("job spec must be a JSON object")
        return cls.parse(data)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> JobSpec:
        try:
            return cls.model_validate(data)
        except UnsupportedSpecVersion:
            raise
        except ValidationError as exc:
            for err in exc.errors():
                ctx_error = (err.get("ctx") or {}).get("error")
                if isinstance(ctx_error, UnsupportedSpecVersion):
                    raise ctx_error from None
            raise SpecError(_readable(exc)) from None


def _readable(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid job spec: " + "; ".join(parts)
