"""Whatever no dialog claimed: a photo outside any dialog gets the menu, an unknown command a hint.

Admin commands from non-admins end up here too, so they get exactly the unknown-command answer.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import StateFilter
from aiogram.types import Message

from bot.ui import keyboards
from bot.ui.filters import HasImage, Matches
from bot.ui.i18n import Translator


async def photo_outside_dialog(message: Message, t: Translator) -> None:
    await message.answer(t("photo-outside-dialog"), reply_markup=keyboards.main_menu(t))


async def unknown_command(message: Message, t: Translator) -> None:
    await message.answer(t("unknown-command"), reply_markup=keyboards.main_menu(t))


def make_router() -> Router:
    router = Router(name="fallback")
    router.message.register(photo_outside_dialog, StateFilter(None), HasImage(),
                            Matches(F.chat.type == ChatType.PRIVATE))
    # Only in private chats: in a group, a command may be meant for another bot.
    router.message.register(unknown_command, StateFilter(None), Matches(F.text.startswith("/")),
                            Matches(F.chat.type == ChatType.PRIVATE))
    return router
