"""LoRA styles as the bot sees them: what live workers published (contract.loras), and a user's picks.

Workers publish the styles they loaded per family (``contract.keys.lora_styles``); /settings offers
those of the user's family, a request takes the user's picks that some worker still holds, and a
caption names them by title.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from contract import keys
from contract.families import Family, describe_family
from contract.loras import (
    LORA_WEIGHT_STEP,
    MAX_LORA_WEIGHT,
    MAX_LORAS_PER_JOB,
    MIN_LORA_WEIGHT,
    LoraChoice,
    LoraStyle,
    decode_published,
)


class TooManyStyles(ValueError):
    """A pick past MAX_LORAS_PER_JOB: the user is told to drop one first."""


class StyleCatalogue:
    """The published styles of each family. Read when asked (one HGETALL, only for a family that
    takes styles): a cache would offer a style after its last worker is gone."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def published(self, family: Family) -> dict[str, LoraStyle]:
        """Name -> style of what live workers of ``family`` loaded, by title; {} for a family that
        takes no styles."""
        if not describe_family(family).lora_styles:
            return {}
        return decode_published(await self.redis.hgetall(keys.lora_styles(family)))  # type: ignore[misc]

    async def usable(self, family: Family, picks: tuple[LoraChoice, ...]) -> tuple[LoraChoice, ...]:
        """The picks a job of ``family`` carries: those some worker still holds (none for a family
        that takes no styles)."""
        if not picks:
            return ()
        held = await self.published(family)  # {} for a family that takes no styles
        return tuple(p for p in picks if p.name in held)


def toggle(picks: tuple[LoraChoice, ...], name: str,
           styles: Mapping[str, LoraStyle]) -> tuple[LoraChoice, ...]:
    """The style ``name`` off when picked (published or not), else on at its default weight from
    ``styles``; TooManyStyles past the limit."""
    if any(p.name == name for p in picks):
        return tuple(p for p in picks if p.name != name)
    if len(picks) >= MAX_LORAS_PER_JOB:
        raise TooManyStyles(name)
    return (*picks, styles[name].choice())


def reweigh(picks: tuple[LoraChoice, ...], name: str, steps: int) -> tuple[LoraChoice, ...]:
    """The pick ``name`` moved by ``steps`` × LORA_WEIGHT_STEP, kept within the weights a job takes."""
    def moved(p: LoraChoice) -> LoraChoice:
        weight = min(MAX_LORA_WEIGHT, max(MIN_LORA_WEIGHT, p.weight + steps * LORA_WEIGHT_STEP))
        return LoraChoice(name=p.name, weight=weight)

    return tuple(moved(p) if p.name == name else p for p in picks)


def describe_picks(picks: tuple[LoraChoice, ...], styles: Mapping[str, LoraStyle]) -> str:
    """"Ink sketch 0.8, Neon glow 0.5": the picks by title (by name for a style no longer published)."""
    return ", ".join(f"{styles[p.name].title if p.name in styles else p.name} {p.weight:g}" for p in picks)
