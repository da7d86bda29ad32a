"""What an aiogram middleware is handed: the next step of the chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import TelegramObject

NextHandler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
