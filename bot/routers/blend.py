"""/blend: a photo and a text (a photo with a caption does it in one message), optional weights."""

from __future__ import annotations

from aiogram import Router

from bot.routers.image_modes import ImageMode, image_mode_router
from bot.states import Blend
from contract.spec import Mode

MODE = ImageMode(
    mode=Mode.BLEND, command="blend", state=Blend.collect, ask_photo="blend-ask-photo",
    ask_next_photo="blend-ask-photo", ask_photo_after_text="blend-ask-photo-after-text",
    ask_text="blend-ask-text", weights=True,
)


def make_router() -> Router:
    return image_mode_router(MODE)
