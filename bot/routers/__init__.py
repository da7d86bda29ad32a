"""All routers, composed in one place.

Order matters where filters overlap: /cancel first (it must work inside any dialog), the
feature routers next, then extra routers (sticker packs, quotas, admin commands), and the
catch-alls last (plain text becomes a prompt, a stray photo gets the menu). Every module
exposes ``make_router()``: a router can belong to one dispatcher only, and tests build many.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import Router

from bot.routers import (
    blend,
    cancel,
    depth,
    fallback,
    imagine,
    membership,
    mix,
    results,
    settings,
    start,
    sticker,
    variations,
)


def feature_routers() -> list[Router]:
    return [
        cancel.make_router(),
        membership.make_router(),
        start.make_router(),
        settings.make_router(),
        imagine.make_router(),
        sticker.make_router(),
        mix.make_router(),
        blend.make_router(),
        variations.make_router(),
        depth.make_router(),
        results.make_router(),
    ]


def catch_all_routers() -> list[Router]:
    return [imagine.make_plain_text_router(), fallback.make_router()]


def build_root_router(extra: Sequence[Router] = ()) -> Router:
    """One root router; ``extra`` routers go after the features and before the catch-alls."""
    root = Router(name="root")
    root.include_routers(*feature_routers(), *extra, *catch_all_routers())
    return root
