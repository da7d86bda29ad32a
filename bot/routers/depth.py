"""/depth: keep the shapes of a photo (its depth map), change the look to a text."""

from __future__ import annotations

from aiogram import Router

from bot.routers.image_modes import ImageMode, image_mode_router
from bot.states import Depth
from contract.spec import Mode

MODE = ImageMode(
    mode=Mode.DEPTH, command="depth", state=Depth.collect, ask_photo="depth-ask-photo",
    ask_next_photo="depth-ask-photo", ask_photo_after_text="depth-ask-photo",
    ask_text="depth-ask-text", weights=False,
)


def make_router() -> Router:
    return image_mode_router(MODE)
