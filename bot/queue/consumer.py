"""Read worker events from the Redis stream through a consumer group and hand them to the bot.

Terminal events (DONE, FAILED, CANCELLED) are delivered at least once overall and at most once
per job: the dedupe marker ``keys.delivered(job_id)`` and the XACK are written in one MULTI
right after the handler returned, and a short per-job lease keeps two consumers from sending the
same job at the same time. A handler that raises leaves the entry pending; it is retried with
backoff, re-read by this consumer after a restart, or claimed by another consumer (XAUTOCLAIM)
when its owner died. Progress events are transient: acked whatever happens, and only the newest
per job in a batch reaches the handler.

Each chat has its own lane: its events are handled one at a time and in stream order, while other
chats' lanes run beside it, so a chat that Telegram holds for a retry_after window (bot.telegram.flood waits
it out inside the handler) delays nobody else's results. A lane drops its queued progress of a job
whose terminal event arrived, and keeps only a job's newest queued progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis

from contract import keys, redisconn
from contract.events import Event, EventType, parse_event
from contract.redisconn import RedisTarget

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]

DEFAULT_BLOCK_MS = 1000
"""Longest wait for new entries in one read; also bounds how long stop() takes."""
DEFAULT_BATCH = 64
"""Entries per read: enough to coalesce a burst of progress events, small enough to stay fair."""
DEFAULT_HANDLER_TIMEOUT_S = 90.0
"""A handler uploads a result to Telegram; past this it is hung, and the entry is retried later."""
DEFAULT_CLAIM_IDLE_MS = 120_000
"""Entries pending this long on another consumer are taken over: longer than any live handler
(handler timeout plus margin), so a slow but alive consumer is never robbed."""
DEFAULT_CLAIM_EVERY_S = 10.0
"""How often to look for entries left behind by dead consumers."""
DEFAULT_RETRY_BASE_S = 0.5
"""First wait before retrying a handler that raised; doubles each time."""
DEFAULT_RETRY_MAX_S = 30.0
"""Backoff cap: Telegram outages are usually short; stay below the claim idle time."""
DEAD_CONSUMER_IDLE_MS = 24 * 3600 * 1000
"""Consumers silent this long with nothing pending are removed from the group (old replicas)."""
LANE_STOP_GRACE_S = 5.0
"""On stop, how long a chat's lane may take to finish the event in hand (an upload, a short pace
wait) before it is cancelled; its event stays pending for the next run."""
RECENTLY_FINISHED_KEEP = 10_000
"""Job ids whose terminal event this process has seen, to drop their late progress cheaply."""

_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class EventConsumer:
    """One per bot replica; each replica needs a distinct, stable ``consumer`` name."""

    def __init__(
        self,
        redis_client: aioredis.Redis,
        handler: Handler,
        consumer: str,
        *,
        group: str = keys.EVENTS_GROUP,
        stream: str = keys.EVENTS_STREAM,
        block_ms: int = DEFAULT_BLOCK_MS,
        batch_size: int = DEFAULT_BATCH,
        handler_timeout_s: float = DEFAULT_HANDLER_TIMEOUT_S,
        claim_idle_ms: int = DEFAULT_CLAIM_IDLE_MS,
        claim_every_s: float = DEFAULT_CLAIM_EVERY_S,
        retry_base_s: float = DEFAULT_RETRY_BASE_S,
        retry_max_s: float = DEFAULT_RETRY_MAX_S,
        target: RedisTarget | None = None,
    ) -> None:
        """``target``: where ``redis_client`` connects; under Sentinel each delivery's dedupe marker
        and ack are waited onto a replica, or a failover could bring the event back and the chat
        would get the result twice (contract.redisconn.replicate)."""
        if claim_idle_ms <= handler_timeout_s * 1000:
            raise ValueError(
                f"claim_idle_ms ({claim_idle_ms}) must exceed the handler timeout ({handler_timeout_s} s), "
                "or a live consumer's entry could be claimed and sent twice"
            )
        if not consumer:
            raise ValueError("consumer name must not be empty")
        self._redis = redis_client
        self._target = target
        self._handler = handler
        self.consumer = consumer
        self.group = group
        self.stream = stream
        self._block_ms = block_ms
        self._batch = batch_size
        self._handler_timeout_s = handler_timeout_s
        self._claim_idle_ms = claim_idle_ms
        self._claim_every_s = claim_every_s
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._lease_ms = int(claim_idle_ms)
        self._token = f"{consumer}:{secrets.token_hex(6)}"
        self._retry: dict[str, tuple[int, float]] = {}  # entry id -> (failures, due at, monotonic)
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._lanes: dict[int, deque[tuple[str, Event]]] = {}
        """Events waiting in each chat's lane, in stream order."""
        self._lane_tasks: dict[int, asyncio.Task[None]] = {}
        self._queued: set[str] = set()
        """Entry ids in a lane (waiting or being handled): a re-read or a claim does not queue them twice."""
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._release = self._redis.register_script(_RELEASE_LEASE)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Consume until stop(); own pending entries (from a previous run) come first."""
        self._stop.clear()
        self._stopped.clear()
        cancelled = False
        try:
            await self.ensure_group()
            await self._pending_pass(only_due=False)
            next_claim = time.monotonic()
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    if now >= next_claim:
                        await self._claim_abandoned()
                        next_claim = now + self._claim_every_s
                    if any(due <= now for _, due in self._retry.values()):
                        await self._pending_pass(only_due=True)
                    block = self._block_ms
                    if self._retry:
                        soonest = min(due for _, due in self._retry.values())
                        block = max(1, min(block, int((soonest - now) * 1000)))
                    reply: Any = await self._redis.xreadgroup(
                        self.group, self.consumer, {self.stream: ">"}, count=self._batch, block=block
                    )
                    for _stream, entries in reply or []:
                        await self._process(entries)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.warning("event consumer %s: redis unavailable (%s); retrying", self.consumer, exc)
                    await self._sleep(self._retry_base_s)
                except redis.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    await self.ensure_group()  # the stream was deleted (e.g. FLUSHALL): start over
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            # stop(): each lane finishes the event in hand (the rest stays pending for the next run);
            # a cancelled consumer (a killed process) takes its lanes down with it.
            # One still waiting past LANE_STOP_GRACE_S (a chat Telegram holds for a minute) is
            # cancelled in its wait: its event stays pending and is delivered after the restart.
            lanes = list(self._lane_tasks.values())
            if cancelled:
                for task in lanes:
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                if lanes and not cancelled:
                    _, late = await asyncio.wait(lanes, timeout=LANE_STOP_GRACE_S)
                    for task in late:
                        task.cancel()
                await asyncio.gather(*lanes, return_exceptions=True)
            self._stopped.set()

    async def stop(self) -> None:
        self._stop.set()
        await self._stopped.wait()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    async def _pending_pass(self, *, only_due: bool) -> None:
        """Re-read this consumer's own pending entries (after a restart, or for a due retry)."""
        last = "0"
        now = time.monotonic()
        seen: set[str] = set()
        while not self._stop.is_set():
            reply: Any = await self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: last}, count=self._batch
            )
            entries = reply[0][1] if reply else []
            if not entries:
                break
            last = _text(entries[-1][0])
            seen.update(_text(e[0]) for e in entries)
            todo = [
                e for e in entries
                if not only_due or self._retry.get(_text(e[0]), (0, 0.0))[1] <= now
            ]
            await self._process(todo)
        else:
            return
        for eid in list(self._retry):
            if eid not in seen:  # claimed by another consumer meanwhile: not ours to retry
                del self._retry[eid]

    async def _claim_abandoned(self) -> None:
        """Take over entries whose consumer died before acking them."""
        start = "0-0"
        while True:
            reply: Any = await self._redis.xautoclaim(
                self.stream, self.group, self.consumer, self._claim_idle_ms, start_id=start, count=self._batch
            )
            start = _text(reply[0])
            entries = [e for e in reply[1] if e and e[1]]
            if entries:
                log.info("event consumer %s: claimed %d abandoned entries", self.consumer, len(entries))
                await self._process(entries)
            if start == "0-0":
                break
        await self._forget_dead_consumers()

    async def _forget_dead_consumers(self) -> None:
        consumers: Any = await self._redis.xinfo_consumers(self.stream, self.group)
        for info in consumers:
            name = _text(info.get("name"))
            if name and name != self.consumer and not info.get("pending") and (
                int(info.get("idle", 0)) > DEAD_CONSUMER_IDLE_MS
            ):
                await self._redis.xgroup_delconsumer(self.stream, self.group, name)

    async def _process(self, entries: list[Any]) -> None:
        parsed: list[tuple[str, Event | None]] = []
        for entry_id, fields in entries:
            eid = _text(entry_id)
            try:
                if not fields:
                    raise ValueError("entry was trimmed from the stream before it was acked")
                parsed.append((eid, parse_event(fields)))
            except ValueError as exc:  # not JSON, an unknown type, a payload that does not fit its type
                log.error("event consumer %s: dropping unreadable entry %s: %s", self.consumer, eid, exc)
                parsed.append((eid, None))
        # Only the newest progress per job is worth an edit; none once the job has ended.
        newest_progress: dict[str, str] = {}
        ended = set()
        for eid, event in parsed:
            if event is None:
                continue
            if event.type is EventType.PROGRESS:
                newest_progress[event.job_id] = eid
            else:
                ended.add(event.job_id)
        for eid, event in parsed:
            if self._stop.is_set() and event is not None and event.type is not EventType.PROGRESS:
                return  # stays pending; the next run delivers it
            if event is None:
                await self._redis.xack(self.stream, self.group, eid)
            elif event.type is EventType.PROGRESS:
                skip = (
                    newest_progress.get(event.job_id) != eid
                    or event.job_id in ended
                    or event.job_id in self._finished
                )
                if not skip:
                    self._enqueue(eid, event)
                await self._redis.xack(self.stream, self.group, eid)
            else:
                self._enqueue(eid, event)

    def _enqueue(self, eid: str, event: Event) -> None:
        """Put an event in its chat's lane (started if idle); see the module docstring."""
        if eid in self._queued:
            return
        lane = self._lanes.setdefault(event.chat_id, deque())
        obsolete = [item for item in lane
                    if item[1].type is EventType.PROGRESS and item[1].job_id == event.job_id]
        for item in obsolete:  # a newer progress or the job's end makes a queued progress pointless
            lane.remove(item)
            self._queued.discard(item[0])
        self._queued.add(eid)
        lane.append((eid, event))
        if event.chat_id not in self._lane_tasks:
            self._lane_tasks[event.chat_id] = asyncio.create_task(
                self._run_lane(event.chat_id, lane), name=f"deliver-chat-{event.chat_id}")

    async def _run_lane(self, chat_id: int, lane: deque[tuple[str, Event]]) -> None:
        try:
            while lane and not self._stop.is_set():
                eid, event = lane.popleft()
                try:
                    if event.type is EventType.PROGRESS:
                        if event.job_id not in self._finished:
                            await self._call(event, eid)
                    else:
                        await self._deliver(eid, event)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    # Redis went away mid-delivery: the entry stays pending and is tried again.
                    log.warning("event consumer %s: redis unavailable delivering %s to chat %s (%s)",
                                self.consumer, eid, chat_id, exc)
                    if event.type is not EventType.PROGRESS:
                        self._schedule_retry(eid)
                finally:
                    self._queued.discard(eid)
        finally:
            for eid, _ in lane:  # stopped: what is left stays pending in the stream for the next run
                self._queued.discard(eid)
            lane.clear()
            self._lanes.pop(chat_id, None)
            self._lane_tasks.pop(chat_id, None)

    async def _call(self, event: Event, eid: str) -> bool:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races a handler finishing, which would keep a stopped bot consuming.
            async with asyncio.timeout(self._handler_timeout_s):
                await self._handler(event)
            return True
        except Exception:
            log.exception(
                "event consumer %s: handler failed for %s event %s of job %s, chat %s",
                self.consumer, event.type, eid, event.job_id, event.chat_id,
            )
            return False

    async def _deliver(self, eid: str, event: Event) -> None:
        """Hand a terminal event to the handler once per job, then mark and ack in one MULTI."""
        marker = keys.delivered(event.job_id)
        lease = keys.delivering(event.job_id)
        if await self._redis.exists(marker):
            await self._ack_terminal(eid, event, lease, mark=False)
            log.info(
                "event consumer %s: job %s (chat %s) already delivered; acked duplicate %s",
                self.consumer, event.job_id, event.chat_id, eid,
            )
            return
        if not await self._redis.set(lease, self._token, nx=True, px=self._lease_ms):
            self._schedule_retry(eid)  # another consumer is sending this job right now
            return
        try:
            handled = await self._call(event, eid)
        except asyncio.CancelledError:
            # Stopped while Telegram held the chat: the next run (or replica) may send it at once.
            with contextlib.suppress(Exception):
                await self._release(keys=[lease], args=[self._token])
            raise
        if handled:
            await self._ack_terminal(eid, event, lease, mark=True)
            self._retry.pop(eid, None)
            return
        await self._release(keys=[lease], args=[self._token])
        self._schedule_retry(eid)

    async def _ack_terminal(self, eid: str, event: Event, lease: str, *, mark: bool) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            if mark:
                pipe.set(keys.delivered(event.job_id), event.type.value, ex=keys.DELIVERED_TTL)
            pipe.xack(self.stream, self.group, eid)
            pipe.srem(keys.inflight(event.user_id), event.job_id)
            if mark:
                pipe.delete(lease)
            await pipe.execute()
        if self._target is not None:
            try:
                await redisconn.replicate(self._redis, self._target, event.job_id)
            except redis.RedisError as exc:  # acked on the master already; the sending is done
                log.warning("event consumer %s: job %s: waiting for a replica failed: %s",
                            self.consumer, event.job_id, exc)
        self._retry.pop(eid, None)
        self._finished[event.job_id] = None
        while len(self._finished) > RECENTLY_FINISHED_KEEP:
            self._finished.popitem(last=False)

    def _schedule_retry(self, eid: str) -> None:
        failures = self._retry.get(eid, (0, 0.0))[0] + 1
        delay = min(self._retry_max_s, self._retry_base_s * 2 ** min(failures - 1, 30))
        self._retry[eid] = (failures, time.monotonic() + delay)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
