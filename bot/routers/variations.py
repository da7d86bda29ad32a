"""/variations: new images from the image embedding of one photo."""

from __future__ import annotations

from aiogram import Router

from bot.routers.image_modes import ImageMode, image_mode_router
from bot.states import Variations
from contract.spec import Mode

MODE = ImageMode(
    mode=Mode.VARIATIONS, command="variations", state=Variations.collect,
    ask_photo="variations-ask-photo", ask_next_photo="variations-ask-photo",
    ask_photo_after_text="variations-ask-photo", ask_text="variations-ask-photo", weights=False,
)


def make_router() -> Router:
    return image_mode_router(MODE)
