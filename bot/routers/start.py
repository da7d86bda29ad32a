"""/start, /help and the inline menu."""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.ui import keyboards
from bot.ui.i18n import Translator


async def cmd_start(message: Message, state: FSMContext, t: Translator) -> None:
    await state.clear()
    name = escape(message.from_user.first_name if message.from_user else "")
    await message.answer(t("start-greeting", name=name), reply_markup=keyboards.main_menu(t))


async def cmd_help(message: Message, t: Translator) -> None:
    await message.answer(t("help-text"), reply_markup=keyboards.main_menu(t))


def make_router() -> Router:
    router = Router(name="start")
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_help, Command("help"))
    return router
