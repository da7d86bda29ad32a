"""Event isolation that keeps a chat's updates in order and serialised across replicas.

aiogram handles updates as concurrent tasks. Redis' lock alone serialises them but not in
arrival order (waiters poll), so "/mix" and the photo right after it could swap. A FIFO
asyncio lock per chat, taken before the Redis lock, restores the order inside a process;
the Redis lock still keeps two replicas from editing one dialog at once. Only webhook mode has
replicas: Telegram hands updates to one getUpdates caller, so a polling bot is one process and
takes no Redis lock (two round trips per update saved).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation


class OrderedEventIsolation(BaseEventIsolation):
    def __init__(self, cross_process: RedisEventIsolation | None) -> None:
        """``cross_process``: the lock replicas share (webhook mode); None for a polling bot."""
        self.cross_process = cross_process
        self._locks: dict[StorageKey, asyncio.Lock] = {}
        self._users: dict[StorageKey, int] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncGenerator[None, None]:
        local = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with local:
                if self.cross_process is None:
                    yield None
                else:
                    async with self.cross_process.lock(key):
                        yield None
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # nobody holds or waits: drop it, the table stays small
                del self._users[key]
                del self._locks[key]

    async def close(self) -> None:
        if self.cross_process is not None:
            await self.cross_process.close()
