"""Telegram's flood control, as the local Bot API server enforces it.

* **Per chat:** more than ``max_calls`` writes to one chat within ``per_seconds`` answer 429 with
  the ``retry_after`` until the oldest of them leaves the window (a limit for every chat, and
  chats of their own, e.g. a group limited to two messages per ten seconds).
* **Per bot:** more than a global limit of writes over all chats answer 429 the same way.
* **The window holds the whole chat:** after a 429 (from a limit or injected), every call to that
  chat is refused with the time left until the window ends; such a call extends nothing, but it
  counts against the bot: it is listed in ``early`` (``LocalBotAPI.early_retries``).

Every window imposed is kept (:attr:`FloodControl.windows`), so a test can compare the time the
bot took with the waits Telegram imposed (:meth:`FloodControl.held_s`).
"""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass

from devkit.botapi.models import ApiError

FLOOD_TOLERANCE_S = 0.1
"""A write this close to the end of a retry_after window is on time (clocks and scheduling jitter)."""


class FloodWait(ApiError):
    """The 429 of a call inside a window: it tells the time left and extends nothing."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


@dataclass(frozen=True)
class Window:
    """A retry_after window Telegram imposed on a chat (monotonic seconds)."""

    chat_id: int
    start: float
    end: float


class _Sliding:
    """At most ``max_calls`` within ``per_seconds``: the times of the writes let through."""

    def __init__(self, max_calls: int, per_seconds: float) -> None:
        if max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        if per_seconds <= 0:
            raise ValueError("per_seconds must be positive")
        self.max_calls = max_calls
        self.per_seconds = per_seconds
        self.times: collections.deque[float] = collections.deque()

    def wait(self, now: float) -> int:
        """0 when a write may go now (then it is counted), else Telegram's retry_after for it."""
        while self.times and self.times[0] <= now - self.per_seconds:
            self.times.popleft()
        if len(self.times) >= self.max_calls:
            return max(1, math.ceil(self.times[0] + self.per_seconds - now))
        self.times.append(now)
        return 0


class FloodControl:
    """The flood state of one server; :class:`~devkit.botapi.server.LocalBotAPI` calls it per write."""

    def __init__(self, early: list[str]) -> None:
        self.early = early
        """Calls that came inside a window (the server's ``early_retries`` list)."""
        self.windows: list[Window] = []
        self.answers = 0
        """429 answers given by the limits and windows (injected ones not included)."""
        self._until: dict[int, float] = {}
        self._every_chat: tuple[int, float] | None = None
        self._chat_limits: dict[int, tuple[int, float]] = {}
        self._sliding: dict[int, _Sliding] = {}
        self._global: _Sliding | None = None

    def reset(self) -> None:
        self.early.clear()
        self.windows.clear()
        self.answers = 0
        self._until.clear()
        self._every_chat = None
        self._chat_limits.clear()
        self._sliding.clear()
        self._global = None

    # --- configuration ---------------------------------------------------------------------------

    def limit_chats(self, max_calls: int | None, per_seconds: float, chat_id: int | None) -> None:
        if max_calls is not None:
            _Sliding(max_calls, per_seconds)  # the same checks
        if chat_id is None:
            self._every_chat = None if max_calls is None else (max_calls, per_seconds)
            self._sliding = {c: s for c, s in self._sliding.items() if c in self._chat_limits}
        elif max_calls is None:
            self._chat_limits.pop(chat_id, None)
            self._sliding.pop(chat_id, None)
        else:
            self._chat_limits[chat_id] = (max_calls, per_seconds)
            self._sliding.pop(chat_id, None)

    def limit_bot(self, max_calls: int | None, per_seconds: float) -> None:
        self._global = None if max_calls is None else _Sliding(max_calls, per_seconds)

    # --- per call --------------------------------------------------------------------------------

    def check_window(self, method: str, chat_id: int | None) -> None:
        """A call inside a window: recorded, and answered 429 with the time left."""
        if chat_id is None:
            return
        left = self._until.get(chat_id, 0.0) - time.monotonic()
        if left > FLOOD_TOLERANCE_S:
            self.early.append(f"{method} to chat {chat_id} {left:.2f} s before the retry_after of a 429 "
                              "ended")
            self.answers += 1
            raise FloodWait(max(1, math.ceil(left)))

    def admit(self, chat_id: int | None) -> None:
        """Count a write against its chat's limit and the bot's; 429 when either is spent."""
        if chat_id is None:
            return
        now = time.monotonic()
        limit = self._chat_limits.get(chat_id, self._every_chat)
        if limit is not None:
            sliding = self._sliding.get(chat_id)
            if sliding is None:
                sliding = self._sliding[chat_id] = _Sliding(*limit)
            wait = sliding.wait(now)
            if wait:
                self.answers += 1
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if self._global is not None:
            wait = self._global.wait(now)
            if wait:
                self.answers += 1
                if limit is not None:
                    self._sliding[chat_id].times.pop()  # refused after all: it did not count
                raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    def impose(self, chat_id: int, retry_after: int, error: ApiError) -> None:
        """After a 429 to ``chat_id`` (not one for a call inside a window): the chat is held."""
        if isinstance(error, FloodWait):
            return
        now = time.monotonic()
        end = now + retry_after
        if end > self._until.get(chat_id, 0.0):
            self._until[chat_id] = end
        self.windows.append(Window(chat_id, now, end))

    # --- figures ---------------------------------------------------------------------------------

    def held_s(self, chat_id: int, start: float = 0.0, end: float = math.inf) -> float:
        """Seconds the chat was held between ``start`` and ``end`` (overlapping windows counted once)."""
        spans = sorted((max(w.start, start), min(w.end, end)) for w in self.windows if w.chat_id == chat_id)
        total = 0.0
        cur_start, cur_end = -math.inf, -math.inf
        for s, e in spans:
            if e <= s:
                continue
            if s > cur_end:
                total += max(0.0, cur_end - cur_start) if cur_end > cur_start else 0.0
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        if cur_end > cur_start:
            total += cur_end - cur_start
        return total
