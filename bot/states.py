"""FSM states of every dialog (stored in Redis by aiogram's RedisStorage)."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.redis import RedisStorage


class Imagine(StatesGroup):
    prompt = State()


class Sticker(StatesGroup):
    prompt = State()


class Mix(StatesGroup):
    collect = State()


class Blend(StatesGroup):
    collect = State()


class Variations(StatesGroup):
    collect = State()


class Depth(StatesGroup):
    collect = State()


class SettingsDialog(StatesGroup):
    negative = State()


async def clear_dialog(state: FSMContext) -> None:
    """``state.clear()`` in one Redis round trip instead of two (aiogram deletes state, then data).

    Every /imagine and /sticker with a prompt clears the dialog first, so this is on the hot path.
    """
    storage = state.storage
    if not isinstance(storage, RedisStorage):
        await state.clear()
        return
    await storage.redis.delete(storage.key_builder.build(state.key, "state"),
                               storage.key_builder.build(state.key, "data"))
