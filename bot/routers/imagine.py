"""Text to image: /imagine, the menu button, and any plain text outside a dialog."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import StateFilter
from aiogram.types import Message

from bot.filters import HasText
from bot.i18n import Translator
from bot.routers.prompt_modes import prompt_mode_router, run_prompt
from bot.services import Services
from bot.states import Imagine
from bot.user_settings import UserSettings
from contract.spec import Mode


def make_router() -> Router:
    return prompt_mode_router(name="imagine", command="imagine", mode=Mode.TEXT2IMAGE,
                              ask_key="ask-prompt", waiting=Imagine.prompt)


async def plain_text(message: Message, bot: Bot, services: Services, t: Translator, locale: str,
                     user_settings: UserSettings) -> None:
    await run_prompt(message, message.text, Mode.TEXT2IMAGE, bot=bot, services=services, t=t, locale=locale,
                     user_settings=user_settings)


def make_plain_text_router() -> Router:
    """Included last: only text that no dialog and no other feature claimed becomes a prompt."""
    router = Router(name="plain-text")
    # Only in private chats: in a group, people talk to each other, not to the bot.
    router.message.register(plain_text, StateFilter(None), HasText(), F.chat.type == ChatType.PRIVATE)
    return router
