"""FSM states of every dialog (stored in Redis by aiogram's RedisStorage)."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage

from contract.modes import ModeDescription


def mode_state(mode: ModeDescription) -> State:
    """A mode's dialog state, made from its description instead of a StatesGroup per mode.

    The name (``Imagine:prompt``, ``Mix:collect``…) is what RedisStorage holds for a dialog in
    progress, so it stays the name the old per-mode StatesGroups had.
    """
    group, leaf = mode.state_name.split(":")
    return State(leaf, group_name=group)


class SettingsDialog(StatesGroup):
    negative = State()


async def clear_dialog(state: FSMContext) -> None:
    """``state.clear()`` in one Redis round trip instead of two (aiogram deletes state, then data),
    or none for a dialog the update's read found empty (bot.middlewares.update_read.ReadDialog).

    Every /imagine and /sticker with a prompt clears the dialog first, so this is on the hot path.
    """
    storage = state.storage
    if not isinstance(storage, RedisStorage) or type(state) is not FSMContext:
        await state.clear()
        return
    await delete_dialog(storage, state.key)


async def delete_dialog(storage: RedisStorage, key: StorageKey) -> None:
    """A dialog's state and data, deleted in one call."""
    build = storage.key_builder.build
    await storage.redis.delete(build(key, "state"), build(key, "data"))
