"""How a handler becomes a Bot API method: ``@bot_method("sendMessage")`` on it, in its area.

The server's method table is collected from these marks (:func:`method_table`), so no central
list has to be kept in step with the areas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from devkit.botapi.params import Handler

_NAMES_ATTR = "__bot_api_methods__"
"""Attribute on a marked function: the Bot API method names it answers."""

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def bot_method(*names: str) -> Callable[[F], F]:
    """Mark an ``async def _x(self, params: Params)`` as the handler of these Bot API methods."""
    if not names:
        raise ValueError("bot_method needs at least one Bot API method name")

    def mark(fn: F) -> F:
        setattr(fn, _NAMES_ATTR, names)
        return fn

    return mark


def method_table(api: object) -> dict[str, Handler]:
    """Lowercased method name -> bound handler, for every marked method of ``api``'s class.

    Telegram's method names are case-insensitive, hence the lowercase keys. A subclass that
    overrides a marked function keeps its names; two functions claiming one name is a bug.
    """
    names_by_attr: dict[str, tuple[str, ...]] = {}
    for cls in reversed(type(api).__mro__):
        for attr, value in vars(cls).items():
            names = getattr(value, _NAMES_ATTR, None)
            if names is not None:
                names_by_attr[attr] = names
    table: dict[str, Handler] = {}
    owner: dict[str, str] = {}
    for attr, names in names_by_attr.items():
        for name in names:
            key = name.lower()
            if key in owner:
                raise TypeError(f"Bot API method {name} is registered twice: {owner[key]} and {attr}")
            owner[key] = attr
            table[key] = getattr(api, attr)
    return table
