"""The services of one bot process, in one typed container, and the answers every handler shares.

``bot.app.create_services`` builds the container once per process (the production bot, the
end-to-end tests and the demo alike); ``bot.app.create_dispatcher`` hands it to the handlers
through the dispatcher's workflow data, set once from :meth:`Services.workflow_data`.

The modules of this package are the services (what the bot knows and does, on Redis);
``bot.routers`` holds the handlers that use them:

| module                     | what                                                         |
|----------------------------|--------------------------------------------------------------|
| ``bot.services.admission`` | the one admission gate: a request becomes a job or a refusal |
| ``bot.services.quotas``    | limits, bans, maintenance, the audience (who wrote, when)    |
| ``bot.services.admin``     | /stats numbers, broadcasts, the admin action log             |
| ``bot.services.packs``     | users' sticker packs                                         |
| ``bot.services.voice``     | voice messages: transcription jobs and their "I heard" answer |
| ``bot.services.styles``    | the LoRA styles workers published, and a user's picks        |

Environment (read by bot.config.BotSettings) for these services:

| variable          | default | meaning                                                         |
|-------------------|---------|-----------------------------------------------------------------|
| `ADMIN_IDS`       | empty   | numeric Telegram user ids, comma-separated: admin commands, no limits |
| `RATE_PER_MINUTE` | 5       | new requests (jobs) per user per sliding minute                 |
| `RATE_PER_DAY`    | 100     | new requests per user per UTC day                               |
| `MAX_INFLIGHT`    | 2       | jobs a user may have queued or running at once                  |
| `BROADCAST_RATE`  | 25      | broadcast messages per second (at most 30)                      |
| `HEALTH_PORT`     | 0 (off) | port of `/metrics` (Prometheus) and `/healthz`                  |

Admins change one user's limits at run time with ``/limits <id> <per minute> <per day> <in flight>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import redis as redis_sync
from aiogram import Bot
from aiogram.types import Message, ReplyParameters
from redis.asyncio import Redis

from bot.config import BotSettings
from bot.infra.metrics import BotMetrics, HealthEndpoint, TelegramErrorMetrics
from bot.queue import JobQueue
from bot.services.admin import AdminLog, BroadcastService, StatsService
from bot.services.admission import Admission
from bot.services.inputs import InputError
from bot.services.packs import PackService
from bot.services.quotas import QuotaService
from bot.services.styles import StyleCatalogue
from bot.services.switches import SwitchStore
from bot.services.user_settings import SettingsStore
from bot.services.voice import VoiceService
from bot.ui.i18n import I18n, Translator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """Every long-lived dependency of one bot process; ``redis`` belongs to the caller, the rest to it."""

    config: BotSettings
    redis: Redis
    queue: JobQueue
    i18n: I18n
    store: SettingsStore
    quotas: QuotaService
    admission: Admission
    """The only way handlers queue a job: every limit checked, the job recorded, in one step."""
    packs: PackService
    stats: StatsService
    admin_log: AdminLog
    broadcasts: BroadcastService
    metrics: BotMetrics
    health: HealthEndpoint
    sync_redis: redis_sync.Redis
    """A small blocking client: RQ's registries for /stats, and the metrics endpoint's thread."""
    voice: VoiceService
    """Voice messages as prompts: transcription jobs on the high queue, and their answers."""
    switches: SwitchStore
    """Requests the user's model family could not run, kept for the "run it with" button."""
    styles: StyleCatalogue
    """The LoRA styles workers published, for /settings, requests and captions."""

    def workflow_data(self) -> dict[str, Any]:
        """What handlers, filters and middlewares take by name (the dispatcher's workflow data): the
        container itself, one injection style for every handler (``services.quotas``, ``services.packs``)."""
        return {"services": self}

    async def start(self, bot: Bot) -> None:
        """Call once before polling or the webhook starts: Telegram errors counted, the health
        endpoint up, and broadcasts a stopped replica left unfinished resumed."""
        bot.session.middleware(TelegramErrorMetrics(self.metrics))
        self.health.start()
        resumed = await self.broadcasts.resume_all(bot)
        if resumed:
            log.info("resuming %d unfinished broadcast(s)", len(resumed))

    async def close(self) -> None:
        """Stop what :meth:`start` started and close what was opened for this container."""
        await self.broadcasts.stop()
        self.health.stop()
        await self.queue.close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.sync_redis.close)


def reply_to(message_id: int | None) -> ReplyParameters | None:
    """Reply to the request if it still exists; a deleted request must not block the answer."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def refuse(message: Message, t: Translator, error: InputError) -> None:
    """Tell the user what was wrong with what they sent; nothing was stored or queued."""
    await message.answer(t(error.key, **error.params), reply_parameters=reply_to(message.message_id))
