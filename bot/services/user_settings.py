"""Per-user settings and the "blocked the bot" mark, both in Redis so they survive restarts."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis.asyncio import Redis

from contract import keys
from contract.families import DEFAULT_FAMILY, Family
from contract.loras import LoraChoice, check_choices
from contract.spec import ASPECT_RATIOS, DEFAULT_ASPECT, MAX_IMAGES_PER_JOB, MAX_PROMPT_CHARS, Style

log = logging.getLogger(__name__)



class UserSettings(BaseModel):
    """What a user chose in /settings; every field reaches the job spec."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    style: Style = Style.NONE
    aspect: str = DEFAULT_ASPECT
    num_images: int = Field(default=1, ge=1, le=MAX_IMAGES_PER_JOB)
    negative_prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    locale: str | None = None
    """None: follow the user's Telegram language."""
    model: Family = DEFAULT_FAMILY
    """The model family that draws the user's requests (/model, /settings); contract.families."""
    loras: tuple[LoraChoice, ...] = ()
    """LoRA styles picked in /settings (contract.loras), used by a family that takes them."""

    @field_validator("loras")
    @classmethod
    def _few_and_distinct(cls, value: tuple[LoraChoice, ...]) -> tuple[LoraChoice, ...]:
        check_choices(value)
        return value

    @field_validator("model", mode="before")
    @classmethod
    def _known_family(cls, value: object) -> object:
        """A family this release does not know (stored by a newer bot) falls back to the default
        instead of costing the user every other setting."""
        if isinstance(value, str) and value not in set(Family):
            log.warning("unknown model family %r in stored settings; using %s", value, DEFAULT_FAMILY)
            return DEFAULT_FAMILY
        return value

    def with_aspect(self, aspect: str) -> UserSettings:
        if aspect not in ASPECT_RATIOS:
            raise ValueError(f"unknown aspect ratio {aspect!r}")
        return self.model_copy(update={"aspect": aspect})


class SettingsStore:
    """Reads and writes UserSettings as JSON under one key per user."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, user_id: int) -> UserSettings:
        """The user's settings (defaults when none or unreadable); reading renews their TTL."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.user_settings(user_id))
            pipe.expire(keys.user_settings(user_id), keys.USER_SETTINGS_TTL)  # a missing key: no-op
            raw = (await pipe.execute())[0]
        return self.parse(user_id, raw)

    @staticmethod
    def parse(user_id: int, raw: bytes | str | None) -> UserSettings:
        """Stored settings as a model: the defaults when there are none or they do not validate."""
        return UserSettings() if raw is None else _parse(user_id, raw)

    async def save(self, user_id: int, settings: UserSettings) -> None:
        await self.redis.set(keys.user_settings(user_id), settings.model_dump_json(),
                             ex=keys.USER_SETTINGS_TTL)

    async def mark_blocked(self, user_id: int) -> None:
        await self.redis.set(keys.blocked(user_id), "1", ex=keys.BLOCKED_TTL)

    async def unmark_blocked(self, user_id: int) -> None:
        await self.redis.delete(keys.blocked(user_id))

    async def is_blocked(self, user_id: int) -> bool:
        return bool(await self.redis.exists(keys.blocked(user_id)))


def _parse(user_id: int, raw: bytes | str) -> UserSettings:
    try:
        return UserSettings.model_validate_json(raw)
    except ValidationError:
        log.warning("user %s: unreadable settings, using defaults", user_id)
        return UserSettings()
