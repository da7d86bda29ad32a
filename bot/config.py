"""Bot configuration from environment variables (pydantic-settings); secrets stay SecretStr."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contract.animation import MAX_SECONDS, MIN_SECONDS
from contract.families import DEFAULT_FAMILY, Family, describe_family
from contract.language import DEFAULT_VOICE_MAX_S
from contract.queue import DEFAULT_MAX_BACKLOG
from contract.redisconn import RedisSettings
from contract.spec import DEFAULT_LONG_SIDE, LONG_SIDES, MAX_STEPS
from contract.video import DEFAULT_VIDEO_SECONDS, VIDEO_SECONDS

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Hosts a Mini App may be served from over plain http: this machine, for development and tests."""


def is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


class BotMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class BotSettings(RedisSettings, BaseSettings):
    """Everything the bot process reads from its environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    bot_token: SecretStr = Field(alias="BOT_TOKEN")
    telegram_api_url: str = Field(default="https://api.telegram.org", alias="TELEGRAM_API_URL")
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(default=frozenset(), alias="ADMIN_IDS")
    bot_mode: BotMode = Field(default=BotMode.POLLING, alias="BOT_MODE")
    webhook_url: str = Field(default="", alias="WEBHOOK_URL")
    """Public URL Telegram posts updates to (including the path)."""
    webhook_path: str = Field(default="/webhook", alias="WEBHOOK_PATH")
    webhook_secret: SecretStr = Field(default=SecretStr(""), alias="WEBHOOK_SECRET")
    webhook_host: str = Field(default="0.0.0.0", alias="WEBHOOK_HOST")
    webhook_port: int = Field(default=8080, alias="WEBHOOK_PORT")
    default_locale: str = Field(default="en", alias="DEFAULT_LOCALE")
    long_side: int = Field(default=DEFAULT_LONG_SIDE, alias="BOT_LONG_SIDE")
    """Resolution tier of every job (1024 in production; tests pick 512)."""
    steps: dict[Family, Annotated[int, Field(ge=1, le=MAX_STEPS)]] = Field(default_factory=dict,
                                                                          alias="BOT_STEPS")
    """Denoising steps per job, keyed by family (``{"kandinsky22": 50, "sdxl": 30}``); a family left
    out gets its model card's (contract.families), and a bare number is the default family's."""
    prior_steps: int = Field(default=25, ge=2, le=MAX_STEPS, alias="BOT_PRIOR_STEPS")
    progress_edit_interval_s: float = Field(default=2.0, ge=0.0, alias="BOT_PROGRESS_EDIT_INTERVAL")
    """Minimum gap between two edits of one status message (Telegram allows ~1 edit/s per chat)."""
    retry_after_max_tries: int = Field(default=5, ge=1, alias="BOT_RETRY_AFTER_MAX_TRIES")
    """How many 429 answers one request may get before the error is raised (each one's retry_after
    is waited out first, for the whole chat: bot.telegram.flood)."""
    # --- the send path's pace (bot.telegram.flood), before Telegram has to say no ---
    private_chat_rate: float = Field(default=1.0, gt=0, le=30, alias="BOT_PRIVATE_CHAT_RATE")
    """Messages a second to one private chat: Telegram's FAQ asks bots to avoid more than one."""
    group_chat_rate: float = Field(default=20.0, gt=0, le=600, alias="BOT_GROUP_CHAT_RATE")
    """Messages a minute to one group or channel: Telegram allows bots no more than 20."""
    global_rate: float = Field(default=30.0, gt=0, le=1000, alias="BOT_GLOBAL_RATE")
    """Messages a second over all chats: Telegram's bulk limit is about 30 (paid broadcasts aside)."""
    chat_burst: int = Field(default=3, ge=1, le=20, alias="BOT_CHAT_BURST")
    """Messages a quiet chat may get at once before the pace applies: an answer, its status and a
    result go without delay, as Telegram tolerates short bursts."""
    request_timeout_s: float = Field(default=60.0, gt=0, le=600, alias="BOT_REQUEST_TIMEOUT_S")
    """One Bot API call, 10 MB photo uploads included; past it the call counts as a network error
    and is retried (the request never reached Telegram, or its answer never came back)."""
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    consumer_name: str = Field(default="bot-1", alias="BOT_CONSUMER_NAME")
    """Name of this replica in the events consumer group (one per replica)."""
    # --- operations (issue 5): quotas, broadcasts, metrics ---
    rate_per_minute: int = Field(default=5, ge=0, alias="RATE_PER_MINUTE")
    """New requests (jobs) a user may start per sliding minute; admins are exempt."""
    rate_per_day: int = Field(default=100, ge=0, alias="RATE_PER_DAY")
    """New requests a user may start per UTC day."""
    max_inflight: int = Field(default=2, ge=0, alias="MAX_INFLIGHT")
    """Jobs a user may have queued or running at once."""
    max_backlog: int = Field(default=DEFAULT_MAX_BACKLOG, ge=0, alias="QUEUE_MAX_BACKLOG")
    """Jobs that may wait for one model family before new requests are refused; 0: no cap."""
    broadcast_rate: float = Field(default=25.0, gt=0, le=30, alias="BROADCAST_RATE")
    """Broadcast messages per second (Telegram allows bots about 30/s in total)."""
    health_port: int = Field(default=0, ge=0, le=65535, alias="HEALTH_PORT")
    """Port of /metrics and /healthz; 0 = do not serve them (tests, local runs)."""
    # --- editing (issue 16): the brush editor's web page and live previews ---
    webapp_url: str = Field(default="", alias="WEBAPP_URL")
    """Public base URL of the bot's web server (https; e.g. https://bot.example.com), where Telegram
    opens the brush editor (``/webapp/edit``); empty: no "🖌 Paint" button and no page served."""
    webapp_host: str = Field(default="0.0.0.0", alias="WEBAPP_HOST")
    """Polling mode: where the bot serves the page (webhook mode serves it on the webhook's server)."""
    webapp_port: int = Field(default=8081, ge=0, le=65535, alias="WEBAPP_PORT")
    live_previews: bool = Field(default=True, alias="BOT_LIVE_PREVIEWS")
    """Show the workers' live previews in the status message (off: the text progress only)."""
    voice_max_s: int = Field(default=DEFAULT_VOICE_MAX_S, ge=1, le=600, alias="VOICE_MAX_SECONDS")
    """Longest voice message passed on for transcription; longer ones are refused before download
    (the worker applies the same variable to the decoded audio)."""
    # --- animation (issue 14) ---
    animation_max_seconds: int = Field(default=MAX_SECONDS, ge=MIN_SECONDS, le=MAX_SECONDS,
                                       alias="ANIMATION_MAX_SECONDS")
    """Longest animation /animate offers (2-8 s): every second is 12 diffusion runs on a GPU."""
    animation_frames_per_request: int = Field(default=12, ge=1, le=1000, alias="ANIMATION_FRAMES_PER_REQUEST")
    """An animation counts one request of the daily quota (RATE_PER_DAY) per this many frames begun."""
    animation_long_side: int = Field(default=768, alias="ANIMATION_LONG_SIDE")
    """Resolution tier of animations (at most BOT_LONG_SIDE): 768 is Kandinsky 2.2's native size and
    half the GPU time of 1024 per frame."""
    # --- video (Kandinsky 5.0) ---
    video_seconds: int = Field(default=DEFAULT_VIDEO_SECONDS, alias="VIDEO_SECONDS")
    """The longest /video clip offered: 5, or 10 where the workers hold the 10 s checkpoint
    (KANDINSKY_K5_VIDEO_SECONDS), and /video then asks 5 or 10 s; a clip counts a request of the daily
    quota per second."""

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = value.strip().strip("[]").replace(";", ",").split(",")
            return frozenset(int(part) for part in parts if part.strip())
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("webapp_url")
    @classmethod
    def _webapp_url_is_https(cls, value: str) -> str:
        """Telegram opens Mini Apps over HTTPS only; plain http is for this machine (development)."""
        url = value.strip().rstrip("/")
        if url and not (url.startswith("https://") or is_loopback_http(url)):
            raise ValueError("WEBAPP_URL must be an https:// URL (http only for localhost)")
        return url

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_by_family(cls, value: object) -> object:
        if isinstance(value, int | str) and str(value).strip().isdigit():
            return {DEFAULT_FAMILY: int(value)}
        if isinstance(value, str):  # given directly rather than from the environment
            return json.loads(value)
        return value

    @property
    def has_replicas(self) -> bool:
        """Webhook mode may run several replicas behind a load balancer, which then share each chat's
        lock and send pace in Redis; a polling bot is the only process Telegram hands updates to."""
        return self.bot_mode is BotMode.WEBHOOK

    def steps_for(self, family: Family) -> int:
        """Denoising steps of a job of ``family``: BOT_STEPS's, else its model card's."""
        return self.steps.get(family) or describe_family(family).default_steps

    @field_validator("long_side", "animation_long_side", "video_seconds")
    @classmethod
    def _one_of_the_choices(cls, value: int, info: ValidationInfo) -> int:
        """Tiers and lengths are fixed sets (compiled graphs, the checkpoints' lengths)."""
        field = info.field_name or ""
        choices = VIDEO_SECONDS if field == "video_seconds" else LONG_SIDES
        if value not in choices:
            alias = cls.model_fields[field].alias or field.upper()
            raise ValueError(f"{alias} must be one of {choices}")
        return value

    @field_validator("default_locale")
    @classmethod
    def _short_locale(cls, value: str) -> str:
        return value.strip().lower()[:2] or "en"
