"""The bundle of dependencies handlers need, injected through the dispatcher's workflow data."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import Message, ReplyParameters
from redis.asyncio import Redis

from bot.config import BotSettings
from bot.i18n import I18n, Translator
from bot.inputs import InputError
from bot.queue import JobQueue
from bot.user_settings import SettingsStore


@dataclass(frozen=True)
class Services:
    config: BotSettings
    redis: Redis
    queue: JobQueue
    i18n: I18n
    store: SettingsStore


def reply_to(message_id: int | None) -> ReplyParameters | None:
    """Reply to the request if it still exists; a deleted request must not block the answer."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def refuse(message: Message, t: Translator, error: InputError) -> None:
    """Tell the user what was wrong with what they sent; nothing was stored or queued."""
    await message.answer(t(error.key, **error.params), reply_parameters=reply_to(message.message_id))

