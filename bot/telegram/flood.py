"""One send path per chat: every Bot API call that targets a chat passes this limiter.

Telegram's flood control is per chat: after a 429 with ``retry_after`` every call to that chat is
refused until the window ends, and calls inside it count against the bot. So the limiter keeps,
for each chat, one line of calls (in order, one at a time) and the chat's state in Redis, shared by
every replica (webhook mode): the retry_after window Telegram imposed, and a pace that keeps the
chat under Telegram's limits before Telegram has to say no (GCRA, on Redis' clock).

Calls come in two kinds:

* **ordinary** (answers, status messages, results, sticker and pack calls, broadcasts): they wait
  their turn, the chat's pace and any retry_after window, and are retried after a 429, a 5xx or
  a network error. None is ever dropped here.
* **cheap** (progress edits, previews, chat actions): marked with :func:`cheap` by the caller
  (chat actions always are). They never wait behind an ordinary call: if the chat is busy they are
  skipped (:class:`CallSkipped`); a progress edit that has to wait for the pace or a window is kept
  as the chat's latest edit of that message, replacing an older one (merged), and sent when the chat
  is free, unless an ordinary call comes first. A cheap call also leaves the chat one message of
  its burst, so the result behind it never waits for it.

Calls with no chat (getUpdates, answerCallbackQuery, getFile, ...) only get the 429/5xx/network
retries. If Redis is unreachable the limiter keeps the same state in this process and carries on:
losing the shared pace is better than losing the user's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import (
    AddStickerToSet,
    CreateNewStickerSet,
    Response,
    SendChatAction,
    TelegramMethod,
    UploadStickerFile,
)
from aiogram.methods.base import TelegramType
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contract import keys

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 60.0
"""Longest window we wait out for one call; Telegram asking for more means a flood ban, better surfaced
(the chat is still held for the whole window, so nothing else hits it meanwhile)."""
SERVER_ERROR_BACKOFF_S = 1.0
"""First wait after a 5xx; doubles per try. Telegram's 5xx are short hiccups."""
MAX_SERVER_ERROR_TRIES = 3
"""A 5xx that persists past this is an outage, not a hiccup."""
NETWORK_RETRY_WINDOW_S = 60.0
"""Resets, refused connections and timeouts are retried until the first of them is this old: a
flapping network or a restarting proxy loses nobody's answer; a minute of it means it is down."""
NETWORK_BACKOFF_CAP_S = 8.0
"""Longest pause between two tries after network errors (they double from SERVER_ERROR_BACKOFF_S)."""
CHEAP_RESERVE = 1
"""Messages of a chat's burst a cheap call leaves unused, so the result right behind it goes at once."""
CHEAP_MAX_WAIT_S = 0.25
"""A cheap call waits out a wait this short (the bot-wide spacing of 33 ms, a slot about to free)
instead of giving way: it delays nothing behind it that an ordinary call would not."""
LOCAL_FALLBACK_LOG_EVERY_S = 60.0
"""While Redis is away the limiter says so at most this often (it runs on local state meanwhile)."""
STICKER_USER_METHODS = (UploadStickerFile, CreateNewStickerSet, AddStickerToSet)
"""Calls that name the user instead of a chat: they count against the user's private chat."""

def _held_lua(first: int) -> str:
    """Lua setting ``now`` (ms, Redis' clock) and ``wait``, the ms left of the longest retry_after hold
    at KEYS[first] and KEYS[first + 1]."""
    return f"""local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local wait = 0
for i = {first}, {first + 1} do
  local held = tonumber(redis.call('GET', KEYS[i]) or '0')
  if held - now > wait then wait = held - now end
end
"""


_TAKE_LUA = _held_lua(3) + """if wait > 0 then return math.ceil(wait) end
local ci, ct = tonumber(ARGV[1]), tonumber(ARGV[2])
local gi, gt = tonumber(ARGV[3]), tonumber(ARGV[4])
local slack = tonumber(ARGV[5])
local ctat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local gtat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
local chat_wait = ctat - now - ct
wait = math.max(chat_wait, gtat - now - gt)
if wait > 0 and (ARGV[6] ~= '1' or chat_wait > 0) then return math.ceil(wait) end
local sent = math.max(ctat, gtat)
redis.call('SET', KEYS[1], tostring(sent + ci), 'PX', math.ceil(sent + ci - now) + slack)
redis.call('SET', KEYS[2], tostring(gtat + gi), 'PX', math.ceil(gtat + gi - now) + slack)
if wait > 0 then return -math.ceil(wait) end
return 0
"""
"""GCRA for the chat and the bot at once, after the retry_after holds: 0 and the slot taken, or the ms
to wait (nothing taken). With ARGV[6] = "1", a call the chat allows but the bot-wide pace holds back
takes its slots for later: minus the ms until then. KEYS: chat pace, global pace, chat hold, global
hold; ARGV: chat interval and tolerance, global interval and tolerance, key slack (ms), "1" to take
the slots for later."""

_HELD_LUA = _held_lua(1) + """return math.ceil(wait)
"""
"""The ms left of the retry_after hold of KEYS[1] (a chat) or KEYS[2] (the bot)."""

_HOLD_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ms = tonumber(ARGV[1])
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + ms > held then
  redis.call('SET', KEYS[1], tostring(now + ms), 'PX', math.ceil(ms))
  return math.ceil(ms)
end
return math.ceil(held - now)
"""
"""Hold a chat for ARGV[1] ms from now (a longer hold already there stays); returns the ms left."""


class CallSkipped(Exception):
    """A cheap call that gave way: nothing was sent now (a merged edit may still go later)."""


@dataclass(frozen=True)
class _Cheap:
    merge_key: str | None
    """Edits with one key replace each other while they wait; None: skipped instead of waiting."""
    reserve: bool = True
    """Leave the chat CHEAP_RESERVE messages of its burst (False for a preview: it is worth the
    chat's last message now, and a skipped one is only retried with the next preview)."""


_cheap: ContextVar[_Cheap | None] = ContextVar("kb_cheap_call", default=None)


@contextlib.contextmanager
def cheap(merge_key: str | None = None, *, reserve: bool = True) -> Iterator[None]:
    """Mark the Bot API calls made inside as cheap (progress edits, previews): they give way.

    With a ``merge_key`` (e.g. the status message) a call that must wait is kept as the latest of
    its key and sent when the chat is free; without one it is skipped. Either way the caller gets
    :class:`CallSkipped` at once instead of waiting. ``reserve``: see :attr:`_Cheap.reserve`.
    """
    token = _cheap.set(_Cheap(merge_key, reserve))
    try:
        yield
    finally:
        _cheap.reset(token)


@contextlib.contextmanager
def ordinary() -> Iterator[None]:
    """Calls made inside are ordinary again, inside a :func:`cheap` block (one that must not be lost)."""
    token = _cheap.set(None)
    try:
        yield
    finally:
        _cheap.reset(token)


@dataclass(frozen=True)
class Pace:
    """How fast the bot writes, from Telegram's FAQ (bot.config holds the settings and reasons)."""

    private_per_s: float = 1.0
    group_per_min: float = 20.0
    global_per_s: float = 30.0
    chat_burst: int = 3

    def chat_interval_ms(self, chat: int | str) -> float:
        """Private chats have positive ids; groups, supergroups and channels negative (or @names)."""
        if isinstance(chat, int) and chat > 0:
            return 1000.0 / self.private_per_s
        return 60_000.0 / self.group_per_min

    def tolerance_ms(self, chat: int | str, *, cheap: bool) -> float:
        burst = self.chat_burst - (CHEAP_RESERVE if cheap else 0)
        return max(0, burst - 1) * self.chat_interval_ms(chat)

    @property
    def global_interval_ms(self) -> float:
        return 1000.0 / self.global_per_s


class FloodState:
    """Each chat's pace and retry_after hold, in Redis (shared by the replicas) or, without Redis or
    while it is away, in this process."""

    def __init__(self, redis: Redis | None, pace: Pace) -> None:
        self.redis = redis
        self.pace = pace
        self._take = redis.register_script(_TAKE_LUA) if redis is not None else None
        self._held_script = redis.register_script(_HELD_LUA) if redis is not None else None
        self._hold = redis.register_script(_HOLD_LUA) if redis is not None else None
        self._tat: dict[int | str, float] = {}
        self._held: dict[int | str, float] = {}
        self._warned_at = -LOCAL_FALLBACK_LOG_EVERY_S

    async def take(self, chat: int | str, *, cheap: bool = False) -> float:
        """0 when a message may go to ``chat`` now (its slot is taken), else the seconds to wait."""
        wait, _ = await self._take_slot(chat, cheap=cheap, for_later=False)
        return wait

    async def take_turn(self, chat: int | str) -> tuple[float, bool]:
        """An ordinary call's turn: (0, _) when it may go now (its slot taken); (s, True) when the chat
        may send but the bot-wide pace holds it back: its slots are taken for s seconds from now, and it
        goes then unless a hold came meanwhile (:meth:`held`); (s, False) when the chat itself must
        wait (its own pace or a hold): nothing taken, ask again after s seconds."""
        return await self._take_slot(chat, cheap=False, for_later=True)

    async def held(self, chat: int | str) -> float:
        """Seconds left of a retry_after hold on ``chat`` or on the whole bot; 0 when none."""
        if self._held_script is not None:
            try:
                wait_ms = await self._held_script(
                    keys=[keys.flood_hold(chat), keys.flood_hold(keys.FLOOD_GLOBAL)])
                return max(0.0, float(wait_ms) / 1000.0)
            except RedisError as exc:
                self._redis_away(exc)
        return self._held_local(chat, time.monotonic() * 1000.0) / 1000.0

    async def _take_slot(self, chat: int | str, *, cheap: bool, for_later: bool) -> tuple[float, bool]:
        tolerance = self.pace.tolerance_ms(chat, cheap=cheap)
        if self._take is not None:
            try:
                wait_ms = float(await self._take(
                    keys=[keys.flood_pace(chat), keys.flood_pace(keys.FLOOD_GLOBAL), keys.flood_hold(chat),
                          keys.flood_hold(keys.FLOOD_GLOBAL)],
                    args=[self.pace.chat_interval_ms(chat), tolerance, self.pace.global_interval_ms, 0,
                          keys.FLOOD_SLACK_MS, "1" if for_later else "0"]))
                return abs(wait_ms) / 1000.0, wait_ms < 0
            except RedisError as exc:
                self._redis_away(exc)
        return self._take_local(chat, tolerance, for_later=for_later)

    async def hold(self, chat: int | str, seconds: float) -> None:
        """Telegram said retry_after for ``chat``: nothing goes to it (from any replica) until then."""
        until = time.monotonic() + seconds
        self._held[chat] = max(until, self._held.get(chat, 0.0))
        if self._hold is not None:
            try:
                await self._hold(keys=[keys.flood_hold(chat)], args=[seconds * 1000.0])
            except RedisError as exc:
                self._redis_away(exc)

    def _held_local(self, chat: int | str, now_ms: float) -> float:
        held = max(self._held.get(chat, 0.0), self._held.get(keys.FLOOD_GLOBAL, 0.0)) * 1000.0
        return max(0.0, held - now_ms)

    def _take_local(self, chat: int | str, tolerance_ms: float, *, for_later: bool) -> tuple[float, bool]:
        """The script's GCRA on this process's own state (see _TAKE_LUA)."""
        now = time.monotonic() * 1000.0
        held = self._held_local(chat, now)
        if held > 0:
            return held / 1000.0, False
        ctat = max(self._tat.get(chat, 0.0), now)
        gtat = max(self._tat.get(keys.FLOOD_GLOBAL, 0.0), now)
        chat_wait = ctat - now - tolerance_ms
        wait = max(chat_wait, gtat - now)
        if wait > 0 and (not for_later or chat_wait > 0):
            return wait / 1000.0, False
        self._tat[chat] = max(ctat, gtat) + self.pace.chat_interval_ms(chat)  # from when it goes
        self._tat[keys.FLOOD_GLOBAL] = gtat + self.pace.global_interval_ms
        if len(self._tat) > MAX_LOCAL_CHATS:
            self._forget_idle(now)
        return max(0.0, wait) / 1000.0, wait > 0

    def _forget_idle(self, now_ms: float) -> None:
        self._tat = {c: t for c, t in self._tat.items() if t > now_ms}
        self._held = {c: t for c, t in self._held.items() if t * 1000.0 > now_ms}

    def _redis_away(self, exc: RedisError) -> None:
        if time.monotonic() - self._warned_at >= LOCAL_FALLBACK_LOG_EVERY_S:
            self._warned_at = time.monotonic()
            log.warning("flood control: Redis unavailable (%s); pacing on this replica's own state",
                        type(exc).__name__)


MAX_LOCAL_CHATS = 10_000
"""Chats the in-process state remembers before idle ones are forgotten (they need no state)."""


@dataclass
class _Waiting:
    """A merged cheap call, kept until the chat is free."""

    make_request: NextRequestMiddlewareType[Any]
    bot: Bot
    method: TelegramMethod[Any]


@dataclass
class _Line:
    """One chat's calls in this process: one at a time, in order; cheap ones give way."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Calls of this chat inside the limiter now (holding or waiting for the lock, or cheap)."""
    waiting: OrderedDict[str, _Waiting] = field(default_factory=OrderedDict)
    """Merged cheap calls by merge key (the latest of each), oldest key first."""
    flusher: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when an ordinary call arrives: a flusher waiting for the pace stops and drops its calls."""

    def give_way(self) -> None:
        if self.waiting:
            self.waiting.clear()
        self.wake.set()

    @property
    def idle(self) -> bool:
        return self.users == 0 and not self.waiting and self.flusher is None


def target_chat(method: TelegramMethod[Any]) -> int | str | None:
    """The chat a call writes to (flood control is per chat), None for reads and chat-less calls."""
    name = type(method).__name__
    if name.startswith("Get"):
        return None
    chat = getattr(method, "chat_id", None)
    if chat is None and isinstance(method, STICKER_USER_METHODS):
        chat = method.user_id
    if isinstance(chat, bool) or not isinstance(chat, int | str):
        return None
    return chat


class _Tries:
    """The retry budgets of one call: each kind of failure has its own (a network flap costs no 429 try)."""

    def __init__(self, max_flood_answers: int, network_window_s: float) -> None:
        self.max_flood_answers = max_flood_answers
        self.network_window_s = network_window_s
        self.flood_answers = 0
        self.server_errors = 0
        self.network_errors = 0
        self.first_network_error = 0.0

    def flood(self, exc: TelegramRetryAfter) -> None:
        """Count a 429; raises it when the call has had enough (or Telegram asks too much)."""
        self.flood_answers += 1
        if self.flood_answers >= self.max_flood_answers or exc.retry_after > MAX_RETRY_AFTER_S:
            raise exc

    def server_error(self, exc: TelegramServerError) -> float:
        self.server_errors += 1
        if self.server_errors >= MAX_SERVER_ERROR_TRIES:
            raise exc
        return SERVER_ERROR_BACKOFF_S * 2 ** (self.server_errors - 1)

    def network_error(self, exc: TelegramNetworkError) -> float:
        now = time.monotonic()
        self.network_errors += 1
        if self.network_errors == 1:
            self.first_network_error = now
        left = self.first_network_error + self.network_window_s - now
        if left <= 0:
            raise exc
        return min(SERVER_ERROR_BACKOFF_S * 2 ** (self.network_errors - 1), NETWORK_BACKOFF_CAP_S, left)


async def _unless_cancelled(make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                            method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
    """The call, except that a failure while its task is being cancelled is the cancellation.

    An HTTP client may close the connection on a cancel and report the close instead (a network
    error); retrying that would swallow the cancel, and a stopping bot would poll on forever."""
    try:
        return await make_request(bot, method)
    except TelegramAPIError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError(f"cancelled during {type(method).__name__}") from exc
        raise


class ChatLimiter(BaseRequestMiddleware):
    """The session middleware every Bot API call of the bot goes through (installed by create_bot)."""

    def __init__(self, state: FloodState, *, max_tries: int = 5,
                 network_window_s: float = NETWORK_RETRY_WINDOW_S) -> None:
        self.state = state
        self.max_tries = max_tries
        self.network_window_s = network_window_s
        self._lines: dict[int | str, _Line] = {}
        self.skipped = 0
        """Cheap calls that gave way (never sent), for tests and logs."""
        self.merged = 0
        """Cheap calls replaced by a newer one of the same key while they waited."""

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        chat = target_chat(method)
        if chat is None:
            return await self._send(make_request, bot, method, None)
        mark = _cheap.get()
        if mark is None and isinstance(method, SendChatAction):
            mark = _Cheap(None)  # "uploading a photo…" is never worth a wait
        line = self._lines.setdefault(chat, _Line())
        line.users += 1
        try:
            if mark is not None:
                return await self._cheap_call(make_request, bot, method, chat, line, mark)
            line.give_way()  # cheap calls of this chat waiting for the pace are dropped
            async with line.lock:
                line.wake.clear()
                return await self._send(make_request, bot, method, chat)
        finally:
            line.users -= 1
            if line.idle and self._lines.get(chat) is line:
                del self._lines[chat]

    async def _send(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                    method: TelegramMethod[TelegramType], chat: int | str | None) -> Response[TelegramType]:
        """Wait for the chat's turn in the pace and any hold, send, and retry what is worth it."""
        tries = _Tries(self.max_tries, self.network_window_s)
        name = type(method).__name__
        while True:
            if chat is not None:
                await self._wait_turn(chat)
            try:
                return await _unless_cancelled(make_request, bot, method)
            except TelegramRetryAfter as exc:
                if chat is not None:
                    await self.state.hold(chat, min(exc.retry_after, MAX_RETRY_AFTER_S))
                tries.flood(exc)
                log.warning("telegram 429 on %s to chat %s: holding it %ss (try %d/%d)", name, chat,
                            exc.retry_after, tries.flood_answers, self.max_tries)
                if chat is None:
                    await asyncio.sleep(exc.retry_after)
            except TelegramServerError as exc:
                delay = tries.server_error(exc)
                log.warning("telegram 5xx on %s to chat %s: retrying in %.1fs", name, chat, delay)
                await asyncio.sleep(delay)
            except TelegramNetworkError as exc:
                # A reset, a refused connection or a timeout: without a retry the answer is lost.
                delay = tries.network_error(exc)
                # Never the message: aiohttp's text can carry the request URL, which holds the token.
                log.warning("telegram unreachable on %s (%s) to chat %s: retrying in %.1fs", name,
                            type(exc.__cause__ or exc).__name__, chat, delay)
                await asyncio.sleep(delay)

    async def _wait_turn(self, chat: int | str) -> None:
        """Wait until a message may go to ``chat``, its slot taken. A call that only the bot-wide pace
        holds back takes its slot for later and sleeps once: the waiting calls of many chats then go
        in turn, instead of all waking and asking again for every slot that frees (hundreds of calls
        asked tens of times a second in a burst). It looks once more for a retry_after that came while
        it slept: then the slot taken went by, and the next turn waits out the hold."""
        while True:
            wait, taken = await self.state.take_turn(chat)
            if wait <= 0:
                return
            await asyncio.sleep(wait)
            if taken and await self.state.held(chat) <= 0:
                return

    async def _cheap_call(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                          method: TelegramMethod[TelegramType], chat: int | str, line: _Line,
                          mark: _Cheap) -> Response[TelegramType]:
        if line.lock.locked():
            self.skipped += 1
            raise CallSkipped(f"chat {chat} is busy")
        wait = await self.state.take(chat, cheap=mark.reserve)
        while 0 < wait <= CHEAP_MAX_WAIT_S and not line.lock.locked():
            await asyncio.sleep(wait)
            wait = await self.state.take(chat, cheap=mark.reserve)
        if wait > 0 or line.lock.locked():
            if mark.merge_key is None or line.lock.locked():
                self.skipped += 1
                raise CallSkipped(f"chat {chat} must wait {wait:.1f}s")
            if line.waiting.pop(mark.merge_key, None) is not None:
                self.merged += 1
            line.waiting[mark.merge_key] = _Waiting(make_request, bot, method)
            if line.flusher is None:
                line.wake.clear()
                line.flusher = asyncio.create_task(self._flush(chat, line), name=f"flood-flush-{chat}")
            raise CallSkipped(f"chat {chat}: kept as the latest edit, sent when the chat is free")
        async with line.lock:
            return await self._once(make_request, bot, method, chat)

    async def _once(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                    method: TelegramMethod[TelegramType], chat: int | str) -> Response[TelegramType]:
        """A cheap call goes once: a 429 holds the chat and skips the call."""
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as exc:
            await self.state.hold(chat, min(exc.retry_after, MAX_RETRY_AFTER_S))
            self.skipped += 1
            log.info("telegram 429 on %s to chat %s: holding it %ss; the update is skipped",
                     type(method).__name__, chat, exc.retry_after)
            raise CallSkipped(f"chat {chat} answered 429") from None

    async def _flush(self, chat: int | str, line: _Line) -> None:
        """Send the chat's merged edits once its pace and hold allow, unless an ordinary call comes."""
        try:
            while line.waiting and not line.lock.locked():
                wait = await self.state.take(chat, cheap=True)
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await line.wake.wait()
                    continue
                if not line.waiting or line.lock.locked():
                    return  # an ordinary call came meanwhile: the edits gave way
                _, call = line.waiting.popitem(last=False)
                async with line.lock:
                    with contextlib.suppress(CallSkipped):
                        try:
                            await self._once(call.make_request, call.bot, call.method, chat)
                        except TelegramAPIError as exc:
                            log.info("chat %s: merged %s not applied: %s", chat, type(call.method).__name__,
                                     exc.message)
        except Exception:
            log.exception("chat %s: sending merged edits failed", chat)
        finally:
            line.waiting.clear()
            line.flusher = None
            if line.idle and self._lines.get(chat) is line:
                del self._lines[chat]

    async def close(self) -> None:
        """Drop the merged edits still waiting (the bot is stopping)."""
        flushers = [line.flusher for line in self._lines.values() if line.flusher is not None]
        for task in flushers:
            task.cancel()
        for task in flushers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def limiter_of(bot: Bot) -> ChatLimiter | None:
    """The send path installed on this bot's session (create_bot puts it there), if any."""
    return next((m for m in bot.session.middleware if isinstance(m, ChatLimiter)), None)
