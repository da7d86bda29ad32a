"""What admins look at and do: statistics, queue and worker views, broadcasts, and the action log.

Every number comes from Redis (never from one replica's memory), so any bot replica answers
the same. A broadcast keeps its audience snapshot, cursor and counters in Redis and writes them
after every message, so a restarted bot carries on where the old one stopped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis as redis_sync
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from redis.asyncio import Redis
from rq import Worker

from bot.ui.i18n import I18n
from contract import keys
from contract import stats as jobstats
from contract.families import FAMILIES
from contract.queue import QUEUES_IN_ORDER, F
from contract.spec import Mode

log = logging.getLogger(__name__)

BROADCAST_STOP_GRACE_S = 5.0
"""On stop, how long a broadcast may take to finish the message in hand (its cursor written)."""
BROADCAST_RATE = 25.0
"""Messages per second: under Telegram's ~30/s for bots, with room for the bot's normal traffic."""
BROADCAST_LEASE_S = 15
"""A replica running a broadcast renews this lease; after a crash another replica takes over
once it lapses, so the same broadcast never runs twice at once."""
BROADCAST_PUSH_CHUNK = 10_000
"""The audience is stored in chunks: one RPUSH with a million arguments would stall Redis."""
BROADCAST_LEASE_POLL_S = 1.0
"""How often a standing-by replica checks whether the sending one's lease has lapsed."""
BROADCAST_MAX_RETRY_AFTER_S = 60.0
"""A 429 asking for longer than this is a flood ban: the message counts as failed."""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


# --- admin action log ---------------------------------------------------------------------------
class AdminLog:
    """Who did what and when; in Redis for /stats readers, and in the process log."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def record(self, admin_id: int, action: str, detail: str = "") -> None:
        entry = {"ts": time.time(), "admin": admin_id, "action": action, "detail": detail}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(keys.ADMIN_LOG, json.dumps(entry, ensure_ascii=False))
            pipe.ltrim(keys.ADMIN_LOG, 0, keys.ADMIN_LOG_KEEP - 1)
            await pipe.execute()
        log.info("admin %s: %s %s", admin_id, action, detail)

    async def recent(self, n: int = 20) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in await self.redis.lrange(keys.ADMIN_LOG, 0, n - 1)]


# --- statistics -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModeStats:
    done_today: int = 0
    failed_today: int = 0
    done_total: int = 0
    failed_total: int = 0
    median_s: float | None = None
    p95_s: float | None = None


@dataclass(frozen=True)
class Stats:
    users_total: int
    users_today: int
    modes: dict[str, ModeStats]
    families: dict[str, ModeStats]
    """Jobs per model family (contract.families order, then any other a worker reported)."""
    queue_depth: int
    jobs_today: int
    jobs_total: int
    failures_today: int
    failures_total: int


@dataclass(frozen=True)
class QueueView:
    waiting: dict[str, int]
    running: dict[str, int]
    oldest_wait_s: float | None


@dataclass(frozen=True)
class WorkerView:
    name: str
    host: str
    device: str
    state: str
    current_job: str | None
    jobs_done: int
    jobs_failed: int
    last_heartbeat: dt.datetime | None
    families: str = ""
    """The model families it holds, comma-separated, as it publishes them (empty: an older worker)."""
    styles: str = ""
    """The LoRA styles it loaded, comma-separated."""
    refused: str = ""
    """The LoRA adapter files it refused at start, comma-separated (the reasons are in its log)."""


@dataclass
class StatsService:
    """Aggregates /stats, /queue and /workers from Redis (RQ's records and the project's counters)."""

    redis: Redis
    sync_redis: redis_sync.Redis
    """RQ is synchronous and needs its own connection (bytes, not decoded)."""
    modes: tuple[str, ...] = field(default_factory=lambda: tuple(m.value for m in Mode))

    async def stats(self, now: float | None = None) -> Stats:
        now = time.time() if now is None else now
        day = jobstats.utc_day(now)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.scard(keys.USERS)
            pipe.scard(keys.active_users(day))
            pipe.hgetall(keys.STATS_TOTAL)
            pipe.hgetall(keys.stats_day(day))
            pipe.hgetall(keys.STATS_FAMILIES_TOTAL)
            pipe.hgetall(keys.stats_families_day(day))
            for mode in self.modes:
                pipe.lrange(keys.stats_durations(mode), 0, -1)
            users_total, users_today, total_raw, day_raw, family_total_raw, family_day_raw, *durations = (
                await pipe.execute())
        total = jobstats.parse_counts(total_raw)
        today = jobstats.parse_counts(day_raw)
        modes: dict[str, ModeStats] = {}
        known = set(self.modes) | {m for m, _ in total}
        order = {m: i for i, m in enumerate(self.modes)}
        for mode in sorted(known, key=lambda m: (order.get(m, len(order)), m)):
            samples = []
            if mode in self.modes:
                samples = [float(x) for x in durations[self.modes.index(mode)]]
            modes[mode] = ModeStats(
                done_today=today.get((mode, "done"), 0),
                failed_today=today.get((mode, "failed"), 0),
                done_total=total.get((mode, "done"), 0),
                failed_total=total.get((mode, "failed"), 0),
                median_s=jobstats.median(samples) if samples else None,
                p95_s=jobstats.percentile(samples, 95) if samples else None,
            )
        family_total = jobstats.parse_counts(family_total_raw)
        family_today = jobstats.parse_counts(family_day_raw)
        known_families = [d.family.value for d in FAMILIES]
        seen = sorted({f for f, _ in family_total} - set(known_families))
        families = {
            family: ModeStats(done_today=family_today.get((family, "done"), 0),
                              failed_today=family_today.get((family, "failed"), 0),
                              done_total=family_total.get((family, "done"), 0),
                              failed_total=family_total.get((family, "failed"), 0))
            for family in [*known_families, *seen]
        }
        queue = await self.queue()
        return Stats(
            users_total=int(users_total),
            users_today=int(users_today),
            modes=modes,
            families=families,
            queue_depth=sum(queue.waiting.values()),
            jobs_today=sum(v for (_, o), v in today.items() if o in ("done", "failed")),
            jobs_total=sum(v for (_, o), v in total.items() if o in ("done", "failed")),
            failures_today=sum(v for (_, o), v in today.items() if o == "failed"),
            failures_total=sum(v for (_, o), v in total.items() if o == "failed"),
        )

    async def queue(self) -> QueueView:
        return await asyncio.to_thread(self._queue_sync)

    def _queue_sync(self) -> QueueView:
        from rq import Queue
        from rq.registry import StartedJobRegistry

        waiting: dict[str, int] = {}
        running: dict[str, int] = {}
        oldest: float | None = None
        now = time.time()
        for name in QUEUES_IN_ORDER:
            queue = Queue(name, connection=self.sync_redis)
            waiting[name] = queue.count
            running[name] = StartedJobRegistry(name, connection=self.sync_redis).count
            ids = queue.get_job_ids(0, 1)
            if ids:
                # The bot's job record knows when the user asked (RQ's enqueued_at is later).
                created = self.sync_redis.hget(keys.job(ids[0]), F.CREATED)
                if created is not None:
                    wait = now - float(_s(created))
                    oldest = wait if oldest is None else max(oldest, wait)
        return QueueView(waiting=waiting, running=running, oldest_wait_s=oldest)

    async def workers(self) -> list[WorkerView]:
        views = await asyncio.to_thread(self._workers_sync)
        out = []
        for view in views:
            device, families, styles, refused = (_s(v) for v in await self.redis.hmget(
                keys.worker_info(view.name), ["device", "families", "styles", "refused"]))
            out.append(WorkerView(**{**view.__dict__, "device": device or "?", "families": families,
                                     "styles": styles, "refused": refused}))
        return out

    def _workers_sync(self) -> list[WorkerView]:
        views = []
        for worker in Worker.all(connection=self.sync_redis):
            views.append(
                WorkerView(
                    name=worker.name,
                    host=worker.hostname or "?",
                    device="?",
                    state=str(worker.get_state()),
                    current_job=worker.get_current_job_id(),
                    jobs_done=worker.successful_job_count,
                    jobs_failed=worker.failed_job_count,
                    last_heartbeat=worker.last_heartbeat,
                )
            )
        return sorted(views, key=lambda v: v.name)


# --- broadcasts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BroadcastReport:
    broadcast_id: str
    total: int
    sent: int
    blocked: int
    failed: int
    finished: bool


ReportSender = Callable[[Bot, int, BroadcastReport], Awaitable[None]]
"""``on_finish(bot, admin_chat_id, report)``: tells the admin how a broadcast went."""


def report_sender(i18n: I18n, locale: str | None = None) -> ReportSender:
    """The BroadcastService's ``on_finish``: the final report to the admin who started it."""

    async def send(bot: Bot, chat_id: int, report: BroadcastReport) -> None:
        text = i18n.get(locale or i18n.default_locale, "admin-broadcast-report", id=report.broadcast_id,
                        total=report.total, sent=report.sent, blocked=report.blocked, failed=report.failed)
        if chat_id:
            await bot.send_message(chat_id, text)

    return send


class BroadcastService:
    """Sends one text to every known user who has not blocked the bot, paced and resumable.

    ``on_finish`` (see :func:`report_sender`) sends the final report; it runs once, by the
    replica that sent the last message.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        rate: float = BROADCAST_RATE,
        lease_s: int = BROADCAST_LEASE_S,
        on_finish: ReportSender | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("broadcast rate must be positive")
        self.redis = redis
        self.rate = rate
        self.lease_s = lease_s
        self.on_finish = on_finish
        self.tasks: dict[str, asyncio.Task[BroadcastReport | None]] = {}
        self._token = secrets.token_hex(8)
        self._stopping = asyncio.Event()

    async def start(self, bot: Bot, admin_id: int, chat_id: int, text: str) -> str:
        """Freeze the audience, persist the broadcast, and start sending in the background."""
        if not text.strip():
            raise ValueError("empty broadcast text")
        broadcast_id = secrets.token_hex(6)
        users = sorted(int(_s(u)) for u in await self.redis.smembers(keys.USERS))
        async with self.redis.pipeline(transaction=True) as pipe:
            for start in range(0, len(users), BROADCAST_PUSH_CHUNK):
                pipe.rpush(keys.broadcast_targets(broadcast_id), *users[start:start + BROADCAST_PUSH_CHUNK])
            pipe.expire(keys.broadcast_targets(broadcast_id), keys.BROADCAST_TTL)
            pipe.hset(keys.broadcast(broadcast_id), mapping={
                "text": text, "admin": admin_id, "chat": chat_id, "status": "running", "cursor": 0,
                "total": len(users), "sent": 0, "blocked": 0, "failed": 0, "created_at": time.time(),
            })
            pipe.expire(keys.broadcast(broadcast_id), keys.BROADCAST_TTL)
            pipe.sadd(keys.BROADCASTS_ACTIVE, broadcast_id)
            await pipe.execute()
        log.info("broadcast %s started by admin %s to %d users", broadcast_id, admin_id, len(users))
        self._spawn(bot, broadcast_id)
        return broadcast_id

    async def resume_all(self, bot: Bot) -> list[str]:
        """Continue every unfinished broadcast (called when the bot starts)."""
        ids = sorted(_s(b) for b in await self.redis.smembers(keys.BROADCASTS_ACTIVE))
        for broadcast_id in ids:
            if broadcast_id not in self.tasks or self.tasks[broadcast_id].done():
                log.info("broadcast %s: resuming", broadcast_id)
                self._spawn(bot, broadcast_id)
        return ids

    def _spawn(self, bot: Bot, broadcast_id: str) -> None:
        self.tasks[broadcast_id] = asyncio.create_task(self.run(bot, broadcast_id),
                                                       name=f"broadcast-{broadcast_id}")

    async def stop(self) -> None:
        """Graceful shutdown: stop sending and free the leases; the state stays for a resume.

        Each run stops between two messages (its cursor written): a run cancelled right after
        Telegram took a message, before the cursor moved, would send it again on the resume. Only one
        still sending after BROADCAST_STOP_GRACE_S (a chat held by a retry_after) is cancelled."""
        self._stopping.set()
        running = [task for task in self.tasks.values() if not task.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=BROADCAST_STOP_GRACE_S)
            for task in late:
                task.cancel()
        for task in self.tasks.values():
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a failed run was already logged; shutdown goes on
                log.exception("broadcast task failed")
        self.tasks.clear()

    async def report(self, broadcast_id: str) -> BroadcastReport | None:
        raw = await self.redis.hgetall(keys.broadcast(broadcast_id))
        if not raw:
            return None
        data = {_s(k): _s(v) for k, v in raw.items()}
        return BroadcastReport(
            broadcast_id=broadcast_id,
            total=int(data.get("total") or 0),
            sent=int(data.get("sent") or 0),
            blocked=int(data.get("blocked") or 0),
            failed=int(data.get("failed") or 0),
            finished=data.get("status") == "done",
        )

    async def _take_lease(self, broadcast_id: str) -> bool:
        key = keys.broadcast_lease(broadcast_id)
        if await self.redis.set(key, self._token, nx=True, ex=self.lease_s):
            return True
        if _s(await self.redis.get(key)) == self._token:
            await self.redis.expire(key, self.lease_s)
            return True
        return False

    async def _release_lease(self, broadcast_id: str) -> None:
        key = keys.broadcast_lease(broadcast_id)
        if _s(await self.redis.get(key)) == self._token:
            await self.redis.delete(key)

    async def run(self, bot: Bot, broadcast_id: str) -> BroadcastReport | None:
        """Send from the stored cursor to the end; returns the final report.

        While another replica holds the lease this one stands by, and takes over if that replica
        dies (its lease lapses); None when the broadcast was finished by someone else.
        """
        waiting_logged = False
        while not await self._take_lease(broadcast_id):
            if not await self.redis.sismember(keys.BROADCASTS_ACTIVE, broadcast_id):  # type: ignore[misc]
                return None
            if not waiting_logged:
                log.info("broadcast %s: another replica holds it; standing by", broadcast_id)
                waiting_logged = True
            await asyncio.sleep(BROADCAST_LEASE_POLL_S)
        try:
            return await self._run_locked(bot, broadcast_id)
        finally:
            await self._release_lease(broadcast_id)

    async def _run_locked(self, bot: Bot, broadcast_id: str) -> BroadcastReport | None:
        bkey = keys.broadcast(broadcast_id)
        meta = {_s(k): _s(v) for k, v in (await self.redis.hgetall(bkey)).items()}
        if not meta or meta.get("status") == "done":
            # Gone, or finished (and reported) by another replica while this one stood by.
            await self.redis.srem(keys.BROADCASTS_ACTIVE, broadcast_id)
            return None
        text = meta["text"]
        cursor = int(meta.get("cursor") or 0)
        targets = [int(_s(u)) for u in await self.redis.lrange(keys.broadcast_targets(broadcast_id), 0, -1)]
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        lease_renewed = time.monotonic()
        for index in range(cursor, len(targets)):
            if self._stopping.is_set():
                return None  # the replica stops: the next one resumes from this cursor
            user_id = targets[index]
            if time.monotonic() - lease_renewed > self.lease_s / 3:
                if not await self._take_lease(broadcast_id):
                    log.warning("broadcast %s: lease lost, stopping here", broadcast_id)
                    return None
                lease_renewed = time.monotonic()
            if await self.redis.exists(keys.blocked(user_id)):
                outcome = "blocked"
            else:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._stopping.is_set():
                    return None
                outcome = await self._send_one(bot, user_id, text, broadcast_id)
                next_at = max(next_at + interval, time.monotonic())
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(bkey, outcome, 1)
                pipe.hset(bkey, "cursor", index + 1)
                await pipe.execute()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(bkey, mapping={"status": "done", "finished_at": time.time()})
            pipe.srem(keys.BROADCASTS_ACTIVE, broadcast_id)
            await pipe.execute()
        report = await self.report(broadcast_id)
        assert report is not None
        log.info("broadcast %s finished: sent %d, blocked %d, failed %d",
                 broadcast_id, report.sent, report.blocked, report.failed)
        if self.on_finish is not None:
            await self.on_finish(bot, int(meta.get("chat") or 0), report)
        return report

    async def _send_one(self, bot: Bot, user_id: int, text: str, broadcast_id: str) -> str:
        for _ in range(3):
            try:
                await bot.send_message(user_id, text, parse_mode=None)
                return "sent"
            except TelegramForbiddenError:

                await self.redis.set(keys.blocked(user_id), "1", ex=keys.BLOCKED_TTL)
                return "blocked"
            except TelegramRetryAfter as exc:
                if exc.retry_after > BROADCAST_MAX_RETRY_AFTER_S:
                    break
                log.warning("broadcast %s: 429, waiting %ss", broadcast_id, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except TelegramAPIError as exc:
                log.warning("broadcast %s: chat %s failed: %s", broadcast_id, user_id, exc.message)
                return "failed"
        return "failed"
