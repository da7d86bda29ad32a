"""The user blocked or unblocked the bot (my_chat_member): mark them so delivery stops sending."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated

from bot.services import Services

log = logging.getLogger(__name__)


async def blocked(event: ChatMemberUpdated, services: Services) -> None:
    await services.store.mark_blocked(event.from_user.id)
    log.info("user %s blocked the bot (chat %s)", event.from_user.id, event.chat.id)


async def unblocked(event: ChatMemberUpdated, services: Services) -> None:
    await services.store.unmark_blocked(event.from_user.id)
    log.info("user %s unblocked the bot (chat %s)", event.from_user.id, event.chat.id)


def make_router() -> Router:
    router = Router(name="membership")
    router.my_chat_member.register(blocked, ChatMemberUpdatedFilter(member_status_changed=KICKED))
    router.my_chat_member.register(unblocked, ChatMemberUpdatedFilter(member_status_changed=MEMBER))
    return router
