"""/mix: two photos (one by one or as an album), optional weights."""

from __future__ import annotations

from aiogram import Router

from bot.routers.image_modes import ImageMode, image_mode_router
from bot.states import Mix
from contract.spec import Mode

MODE = ImageMode(
    mode=Mode.MIX, command="mix", state=Mix.collect, ask_photo="mix-ask-first",
    ask_next_photo="mix-ask-second", ask_photo_after_text="mix-ask-first", ask_text="mix-ask-second",
    weights=True,
)


def make_router() -> Router:
    return image_mode_router(MODE)
