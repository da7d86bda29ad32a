"""/sticker: a prompt becomes a sticker (the worker cuts out the background)."""

from __future__ import annotations

from aiogram import Router

from bot.routers.prompt_modes import prompt_mode_router
from bot.states import Sticker
from contract.spec import Mode


def make_router() -> Router:
    return prompt_mode_router(name="sticker", command="sticker", mode=Mode.STICKER,
                              ask_key="ask-sticker-prompt", waiting=Sticker.prompt)
