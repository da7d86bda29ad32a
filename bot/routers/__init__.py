"""All routers, composed in one place.

Order matters where filters overlap: /cancel first (it must work inside any dialog), the
feature routers next, then the operations routers (sticker packs, admin commands), then any
extra routers a test or the demo adds, and the catch-alls last (plain text becomes a prompt,
a stray photo gets the menu). Every module exposes ``make_router()``: a router can belong to
one dispatcher only, and tests build many.
The modes' routers are built from their descriptions (contract.modes), one per bot mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import Router

from bot.routers import (
    admin,
    cancel,
    fallback,
    membership,
    model,
    move,
    packs,
    results,
    settings,
    start,
    voice,
)
from bot.routers import editing as editing_router
from bot.routers.animate import animation_router
from bot.routers.image_modes import image_mode_router
from bot.routers.prompt_modes import plain_text_router, prompt_mode_router
from contract.modes import ModeDescription, bot_modes, plain_text_mode


def mode_router(mode: ModeDescription) -> Router:
    """A prompt-only mode gets the prompt dialog, a mode with input images the photo dialog, an
    animation the prompt dialog with its camera and length buttons."""
    if mode.animation:
        return animation_router(mode)
    return image_mode_router(mode) if mode.images else prompt_mode_router(mode)


def mode_routers() -> list[Router]:
    """One router per mode the bot offers, straight from the descriptions."""
    return [mode_router(mode) for mode in bot_modes()]


def feature_routers() -> list[Router]:
    return [
        cancel.make_router(),
        membership.make_router(),
        start.make_router(),
        settings.make_router(),
        model.make_router(),
        voice.make_router(),  # before the modes: their dialogs would answer a recording "I need a text"
        *mode_routers(),
        editing_router.make_router(),  # edit, zoom and pan buttons; the "what -> into what" dialog
        results.make_router(),
        move.make_router(),
    ]


def operations_routers() -> list[Router]:
    """Sticker packs, and the admin commands (filtered on ADMIN_IDS; others fall through)."""
    return [packs.make_router(), admin.make_router()]


def catch_all_routers() -> list[Router]:
    routers = [fallback.make_router()]
    plain_text = plain_text_mode()
    if plain_text is not None:
        routers.insert(0, plain_text_router(plain_text))
    return routers


def build_root_router(extra: Sequence[Router] = ()) -> Router:
    """Every router of the bot under one root; ``extra`` ones go just before the catch-alls."""
    root = Router(name="root")
    root.include_routers(*feature_routers(), *operations_routers(), *extra, *catch_all_routers())
    return root
