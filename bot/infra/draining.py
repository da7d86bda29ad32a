"""A dispatcher that lets the updates it is handling finish before the bot shuts down.

aiogram handles each polled (or background webhook) update as a task and forgets it: stopping
polling does not wait for them, and its shutdown closes the FSM storage under them. Their offsets
are already confirmed to Telegram, so those updates were lost half done (a job queued, no reply).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

log = logging.getLogger(__name__)


class DrainingDispatcher(Dispatcher):
    """Counts the updates inside :meth:`feed_update`, the one entry both polling and webhooks use,
    and waits for them (at most ``drain_timeout`` seconds) when shutdown is emitted."""

    def __init__(self, *, drain_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drain_timeout = drain_timeout
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        self._in_flight += 1
        self._idle.clear()
        try:
            return await super().feed_update(bot, update, **kwargs)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def emit_shutdown(self, *args: Any, **kwargs: Any) -> None:
        await self.drain(self.drain_timeout)
        await super().emit_shutdown(*args, **kwargs)

    async def drain(self, timeout: float) -> None:
        """Wait for the updates being handled; a warning if some outlast ``timeout``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("shutdown: %d update(s) still being handled after %.0f s; stopping anyway",
                        self._in_flight, timeout)
