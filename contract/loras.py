"""LoRA styles: adapters an operator drops in a folder, offered to users as styles of a family.

The operator writes a catalogue (``styles.toml`` beside the ``.safetensors`` files, read by
worker/engine/loras.py); each worker loads the styles of the families it holds once, at start, and
publishes those that loaded (:func:`contract.keys.lora_styles`). The bot offers what is published, a
job names the ones it uses with their weights (``JobSpec.loras``), and the worker switches adapters
per job without reloading the base model.

Both sides import this module; it imports neither torch nor aiogram.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.families import Family

STYLE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
"""A style's id: in callback data (64 bytes in all), job specs and adapter names, so short and plain."""
MAX_LORAS_PER_JOB = 3
"""Past three adapters styles mostly muddy each other, and each adds work to every adapted layer."""
MIN_LORA_WEIGHT = 0.1
MAX_LORA_WEIGHT = 2.0
"""Weights a job may give a style: 0 is the style off, past 2 adapters mostly break the picture."""
LORA_WEIGHT_STEP = 0.1
"""What one press of − or + in /settings moves a weight by."""
MAX_TITLE_CHARS = 40
"""A style's title is a button label: Telegram cuts long ones, and a row holds three buttons."""
MAX_TRIGGER_CHARS = 200
"""Trigger words go in front of the prompt; a long list would push the user's words out of the encoder."""


class LoraChoice(BaseModel):
    """One style a job uses, by name, at a weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=STYLE_NAME_PATTERN)
    weight: float = Field(ge=MIN_LORA_WEIGHT, le=MAX_LORA_WEIGHT)

    @field_validator("weight")
    @classmethod
    def _rounded(cls, value: float) -> float:
        """Weights move in LORA_WEIGHT_STEP steps; rounding keeps 0.1 + 0.2 equal to 0.3 in every key."""
        if not math.isfinite(value):
            raise ValueError("a style's weight must be a number")
        return round(value, 2)


class LoraStyle(BaseModel):
    """One style of the catalogue: what a user sees and what the worker loads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=STYLE_NAME_PATTERN)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    """Shown to users (a proper name, the same in every language)."""
    file: str = Field(min_length=1)
    """The adapter's file name in the catalogue's folder (``.safetensors``)."""
    family: Family
    """The family whose base model the adapter was trained on."""
    triggers: str = Field(default="", max_length=MAX_TRIGGER_CHARS)
    """Words the adapter was trained to answer (put in front of the prompt while it is on)."""
    weight: float = Field(default=1.0, ge=MIN_LORA_WEIGHT, le=MAX_LORA_WEIGHT)
    """The weight a user gets when they pick the style."""

    @field_validator("file")
    @classmethod
    def _plain_safetensors_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(f"{value!r} must be a file name in the catalogue's folder, not a path")
        if not value.endswith(".safetensors"):
            raise ValueError(f"{value!r} is not a .safetensors file (the only adapter format read)")
        return value

    @field_validator("triggers", mode="before")
    @classmethod
    def _joined(cls, value: object) -> object:
        """A list of trigger words reads as one comma-separated phrase."""
        if isinstance(value, list | tuple):
            return ", ".join(str(v).strip() for v in value if str(v).strip())
        return value

    def choice(self) -> LoraChoice:
        """This style at its default weight."""
        return LoraChoice(name=self.name, weight=self.weight)


def check_choices(choices: Sequence[LoraChoice]) -> None:
    """ValueError for more than MAX_LORAS_PER_JOB styles or one style twice."""
    if len(choices) > MAX_LORAS_PER_JOB:
        raise ValueError(f"a job combines at most {MAX_LORAS_PER_JOB} LoRA styles, got {len(choices)}")
    names = [c.name for c in choices]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"LoRA style(s) named twice: {', '.join(twice)}")


def styled_prompt(prompt: str, styles: Iterable[LoraStyle]) -> str:
    """The prompt with the styles' trigger words in front (an adapter answers to them)."""
    words = [s.triggers for s in styles if s.triggers]
    return ", ".join((*words, prompt)) if words else prompt


def encode_published(styles: Iterable[LoraStyle]) -> dict[str, str]:
    """The hash a worker writes under :func:`contract.keys.lora_styles`: name → the style as JSON."""
    return {s.name: s.model_dump_json() for s in styles}


def decode_published(raw: Mapping[bytes | str, bytes | str]) -> dict[str, LoraStyle]:
    """That hash read back, by name, in title order; an entry that does not parse (a newer worker's) is
    left out rather than failing the menu."""
    styles: dict[str, LoraStyle] = {}
    for value in raw.values():
        try:
            style = LoraStyle.model_validate(json.loads(value))
        except (ValidationError, ValueError):
            continue
        styles[style.name] = style
    return dict(sorted(styles.items(), key=lambda item: item[1].title.casefold()))
