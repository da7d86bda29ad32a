"""FSM states of every dialog (stored in Redis by aiogram's RedisStorage)."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


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
