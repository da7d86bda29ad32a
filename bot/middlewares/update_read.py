"""One Redis call per update, before any handler: the dialog, the user's settings and the ban check.

aiogram's FSM middleware reads the dialog state on every update with a chat or a user; the bot
then read the user's settings, recorded the user for /stats and checked the ban in a second round
trip, and a handler that starts a mode cleared the (mostly empty) dialog in a third. This middleware
takes the FSM middleware's place and does all of it in one script call. The dialog it hands to
handlers (:class:`ReadDialog`) knows what that call found, so clearing an empty dialog costs nothing.
"""

from __future__ import annotations

import time
from typing import Any, cast

from aiogram import Bot
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation, StateType, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import TelegramObject, Update, User
from redis.asyncio import Redis

from bot.middlewares.types import NextHandler
from bot.services.user_settings import SettingsStore
from bot.ui.states import delete_dialog
from contract import keys
from contract.stats import utc_day

BANNED = "user_banned"
"""Handler data: whether the user is banned (the quota middleware stops them)."""
USER_SETTINGS = "user_settings"
"""Handler data: the user's :class:`bot.services.user_settings.UserSettings`."""
RECORDED_UPDATES = frozenset({"message", "callback_query"})
"""Updates that are the user writing to the bot: they record the user for /stats and broadcasts
and clear the "blocked the bot" mark. A my_chat_member update saying the user blocked us must not."""

# KEYS: 1 dialog state, 2 dialog data, 3 settings, 4 blocked mark, 5 every user, 6 today's users,
#       7 banned users
# ARGV: 1 user id, 2 settings TTL, 3 today's set TTL, 4 "1" to record the user (a person writing)
# Returns {state or nil, dialog data exists (0/1), settings JSON or nil, banned (0/1)}.
# EXPIRE of a missing key does nothing, so renewing the settings needs no read first.
UPDATE_READ_LUA = """
local state = redis.call('GET', KEYS[1])
local has_data = redis.call('EXISTS', KEYS[2])
local settings = redis.call('GET', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
local banned = 0
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[4])
  redis.call('SADD', KEYS[5], ARGV[1])
  redis.call('SADD', KEYS[6], ARGV[1])
  redis.call('EXPIRE', KEYS[6], ARGV[3])
  banned = redis.call('SISMEMBER', KEYS[7], ARGV[1])
end
return {state, has_data, settings, banned}
"""


class ReadDialog(FSMContext):
    """The dialog as this update's read found it: ``clear()`` of a dialog with neither a state nor
    data makes no call, and otherwise deletes both keys in one call (aiogram's makes two)."""

    def __init__(self, storage: RedisStorage, key: StorageKey, *, empty: bool) -> None:
        super().__init__(storage, key)
        self.redis_storage = storage
        self.empty = empty

    async def set_state(self, state: StateType = None) -> None:
        self.empty = False
        await super().set_state(state)

    async def set_data(self, data: Any) -> None:
        self.empty = False
        await super().set_data(data)

    async def update_data(self, data: Any = None, **kwargs: Any) -> dict[str, Any]:
        self.empty = False
        return await super().update_data(data, **kwargs)

    async def clear(self) -> None:
        if self.empty:
            return
        await delete_dialog(self.redis_storage, self.key)
        self.empty = True


class UpdateReadMiddleware(FSMContextMiddleware):
    """aiogram's FSM middleware (same per-chat lock, same ``state`` and ``raw_state``), whose state
    read also brings ``user_settings`` and the ban check (``BANNED``) and records the user."""

    def __init__(self, storage: RedisStorage, events_isolation: BaseEventIsolation, redis: Redis) -> None:
        super().__init__(storage=storage, events_isolation=events_isolation)
        self.redis_storage = storage
        self._read = redis.register_script(UPDATE_READ_LUA)

    async def __call__(self, handler: NextHandler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context = self.resolve_event_context(cast(Bot, data["bot"]), data)
        user: User | None = data.get("event_from_user")
        if context is None or user is None:  # no user to read for: aiogram's own way
            return await super().__call__(handler, event, data)
        data["fsm_storage"] = self.storage
        # As aiogram does: the state is read inside the chat's lock, after the update before it.
        async with self.events_isolation.lock(key=context.key):
            record = not user.is_bot and isinstance(event, Update) and event.event_type in RECORDED_UPDATES
            build = self.redis_storage.key_builder.build
            state, has_data, settings, banned = await self._read(
                keys=[build(context.key, "state"), build(context.key, "data"), keys.user_settings(user.id),
                      keys.blocked(user.id), keys.USERS, keys.active_users(utc_day(time.time())),
                      keys.BANNED],
                args=[user.id, keys.USER_SETTINGS_TTL, keys.ACTIVE_DAY_TTL, "1" if record else "0"])
            raw_state = state.decode() if isinstance(state, bytes) else state
            empty = raw_state is None and not has_data
            data.update({
                "state": ReadDialog(self.redis_storage, context.key, empty=empty),
                "raw_state": raw_state,
                USER_SETTINGS: SettingsStore.parse(user.id, settings),
                BANNED: bool(banned),
            })
            return await handler(event, data)
