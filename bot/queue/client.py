"""The bot's side of the job queue: store inputs, admit and enqueue, cancel, look up jobs and results.

The bot is asyncio and RQ is synchronous: every RQ call runs in a thread on RQ's own sync
connection, built from the same URL, so the event loop never blocks on it. Plain Redis reads
and writes go through the bot's async client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import now as rq_now
from rq.utils import utcformat

from bot.queue.gate import (
    ADMIT_LUA,
    ADMIT_QUICK_LUA,
    Banned,
    InFlight,
    Maintenance,
    Refusal,
    Rules,
    admit_call,
    admit_quick_call,
    read_quick_reply,
    read_reply,
)
from contract import keys, redisconn
from contract.events import CancelledEvent, JobResult
from contract.queue import (
    FINISH_SCRIPT,
    JOB_TIMEOUT_S,
    MAX_RETRIES,
    QUEUES_IN_ORDER,
    QUICK_QUEUE,
    RUN_JOB_FUNC,
    TERMINAL_STATUSES,
    F,
    JobStatus,
    family_queue,
    family_queues,
    finish_args,
    queue_family,
)
from contract.redisconn import RedisTarget
from contract.spec import JobSpec, Priority, SpecError

log = logging.getLogger(__name__)

RQ_RESULT_TTL = 600
"""RQ's own copy of a finished job: only for operators' dashboards; the real result is in kb:*."""
RQ_FAILURE_TTL = 24 * 3600
"""Failed RQ jobs keep their traceback a day, for operators."""
ETA_MIN_SAMPLES = 1
"""One finished job is enough to give a rough wait; with none the bot says nothing."""

class QueueSettings(BaseModel):
    """Plain values; the bot's own settings fill them from the environment."""

    per_user_inflight: int = Field(default=2, ge=1)
    admin_inflight: int = Field(default=10, ge=1)
    job_timeout_s: int = Field(default=JOB_TIMEOUT_S, ge=1)
    max_retries: int = Field(default=MAX_RETRIES, ge=0)
    rq_result_ttl: int = Field(default=RQ_RESULT_TTL, ge=1)
    rq_failure_ttl: int = Field(default=RQ_FAILURE_TTL, ge=1)


class TooManyJobs(Exception):
    """The bare :meth:`JobQueue.submit` (tests, benches): the user already has ``limit`` jobs in flight."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"already {limit} job(s) in flight")
        self.limit = limit


class CancelOutcome(StrEnum):
    QUEUED_REMOVED = "queued_removed"  # never started; a CANCELLED event is on its way
    STOPPING = "stopping"  # running: stops at the next step, then a CANCELLED event
    NOT_FOUND = "not_found"
    NOT_YOURS = "not_yours"
    ALREADY_FINISHED = "already_finished"


@dataclass(frozen=True)
class Submission:
    job_id: str
    position: int | None
    """1 = next to start; None when a worker took it before we could look."""
    eta_s: float | None
    """Estimated seconds until it finishes, from recent job durations; None without samples."""
    workers: int | None = None
    """Workers listening to its family's queues right now; 0: none is, the job waits for one."""


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    spec: JobSpec | None
    """None when the stored spec no longer parses (e.g. written by a newer bot)."""
    status: JobStatus
    user_id: int
    chat_id: int
    queue: str
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    worker: str
    attempts: int
    result: JobResult | None
    reason: str | None
    error: str | None


@dataclass(frozen=True)
class QueueStats:
    waiting: dict[str, int]
    running: dict[str, int]
    workers: int
    oldest_wait_s: float | None
    """How long the oldest queued job has waited (seconds)."""
    recent_durations: list[float] = field(default_factory=list)
    """Newest first: run times of the last finished jobs."""
    recent_waits: list[float] = field(default_factory=list)

    @property
    def mean_duration_s(self) -> float | None:
        return sum(self.recent_durations) / len(self.recent_durations) if self.recent_durations else None


def _eta(position: int, samples: int, mean: float, workers: int) -> float | None:
    """Seconds until the job at ``position`` is done: jobs ahead run ``workers`` at a time, then ours
    (``mean`` of the ``samples`` recent job durations)."""
    if samples < ETA_MIN_SAMPLES:
        return None
    return mean * (math.ceil((position - 1) / max(workers, 1)) + 1)


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _float(value: bytes | str | None) -> float | None:
    text = _text(value)
    return float(text) if text else None


def _line_of(queue_name: str) -> tuple[str, ...]:
    """The queues a job in ``queue_name`` waits in line with: its family's (admins' first), whose
    workers are the ones that can take it; a queue of no family stands alone."""
    family = queue_family(queue_name)
    return family_queues(family) if family is not None else (queue_name,)


def _submission(job_id: str, queue_name: str, replies: list[Any]) -> Submission:
    """Position (its family's admins' queue counts first), the workers that can take it and the ETA,
    from the admission script's placement reads (bot.queue.gate): LPOS, one LLEN per queue of the
    line, the count and mean of the recent durations, one SCARD per queue of the line."""
    line = _line_of(queue_name)
    n = len(line)
    index, lengths, workers = replies[0], replies[1:1 + n], replies[3 + n:]
    samples, mean = int(replies[1 + n]), float(replies[2 + n])
    live = max(int(w) for w in workers)
    if index is None:
        return Submission(job_id=job_id, position=None, eta_s=None, workers=live)
    ahead = sum(int(length) for name, length in zip(line, lengths, strict=True)
                if line.index(name) < line.index(queue_name))
    position = int(index) + ahead + 1
    # With no live worker the estimate assumes one will come (the user is told none serves it now).
    eta = _eta(position, samples, mean, live)
    return Submission(job_id=job_id, position=position, eta_s=eta, workers=live)


class JobQueue:
    """One per bot process; safe to share between handlers."""

    def __init__(self, redis_client: aioredis.Redis, settings: QueueSettings, *,
                 target: RedisTarget | None = None) -> None:
        """``target``: where ``redis_client`` connects (the bot passes its settings' one). Under
        Sentinel, RQ's connection is built from it and every accepted job is waited onto a replica
        before the user hears it is queued (contract.redisconn.replicate); without it, RQ's
        connection copies ``redis_client``'s server."""
        if redis_client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("JobQueue needs a Redis client with decode_responses=False: blobs are bytes")
        self._redis = redis_client
        self._settings = settings
        self._target = target
        # RQ pickles, so its connection returns bytes; it gets its own blocking pool.
        if target is not None and target.uses_sentinel:
            self._sync = redisconn.sync_client(target)
        else:
            self._sync = redisconn.sync_twin(redis_client)
        self._queues = {name: Queue(name, connection=self._sync) for name in (QUICK_QUEUE, *QUEUES_IN_ORDER)}
        self._rq_templates: dict[tuple[object, ...], dict[str, Any]] = {}
        self._finish = self._redis.register_script(FINISH_SCRIPT)
        self._admit = self._redis.register_script(ADMIT_LUA)
        self._admit_quick = self._redis.register_script(ADMIT_QUICK_LUA)
        self._owns_client = False

    @classmethod
    def from_url(cls, url: str, settings: QueueSettings) -> JobQueue:
        queue = cls(redisconn.async_client(RedisTarget(url=url)), settings)
        queue._owns_client = True
        return queue

    async def close(self) -> None:
        await asyncio.to_thread(self._sync.close)
        if self._owns_client:
            await self._redis.aclose()

    # --- inputs and results -------------------------------------------------------------------

    async def put_blob(self, data: bytes) -> str:
        """Store one input image; the key goes into JobSpec.inputs / .mask."""
        if not data:
            raise ValueError("refusing to store an empty input blob")
        key = keys.blob(secrets.token_hex(12))
        await self._redis.set(key, data, ex=keys.INPUT_BLOB_TTL)
        return key

    async def result_bytes(self, key: str) -> bytes | None:
        data: Any = await self._redis.get(key)
        return bytes(data) if data is not None else None

    # --- admit and submit -----------------------------------------------------------------------

    async def admit(self, spec: JobSpec, rules: Rules, *, is_admin: bool = False,
                    now: float | None = None) -> Submission | Refusal:
        """Admit, record and queue a job in one script call (see bot.queue.gate), or refuse it.

        ``now`` is when the rates count the request (tests move it); the record's created-at is
        always the real time. The script writes RQ's job hash as RQ's Job builds it and pushes it
        onto the job's family queue, so there is no later step to fail and nothing to take back.
        """
        created_at = time.time()
        now = created_at if now is None else now
        # The job's family's own queue: only workers holding that family listen to it.
        queue_name = family_queue(spec.model, high=is_admin or spec.priority is Priority.HIGH)
        created = repr(created_at)  # the same text redis-py would write for the float
        record: dict[str, str | int] = {
            F.SPEC: spec.to_json(),
            F.STATUS: JobStatus.QUEUED.value,
            F.USER: spec.user_id,
            F.CHAT: spec.chat_id,
            F.QUEUE: queue_name,
            F.CREATED: created,
            F.ATTEMPTS: 0,
        }
        retries = self._settings.max_retries
        rq_job = self._rq_job(queue_name, RUN_JOB_FUNC, spec.job_id,
                              timeout_s=spec.job_timeout_s(self._settings.job_timeout_s),  # by its mode
                              retry=Retry(max=retries) if retries > 0 else None)
        call = admit_call(spec, rules, created=created, now=now, record=record, queue=queue_name,
                          line=_line_of(queue_name), rq_job=rq_job)
        reply = read_reply(await self._admit(keys=call.keys, args=call.args), spec, rules, now)
        if reply.unreadable_limits:
            log.warning("user %s: unreadable custom limits, using defaults", spec.user_id)
        if reply.refusal is not None:
            return reply.refusal
        if self._target is not None:
            # Accepted means on a replica too: a failover right now must not lose it.
            await redisconn.replicate(self._redis, self._target, spec.job_id)
        log.info(
            "job %s queued on %s for chat %s (user %s, mode %s)",
            spec.job_id, queue_name, spec.chat_id, spec.user_id, spec.mode,
        )
        return _submission(spec.job_id, queue_name, reply.placement)

    def _rq_job(self, queue_name: str, func: str, job_id: str, *, timeout_s: int,
                retry: Retry | None = None) -> dict[str, Any]:
        """RQ's hash of the job ``func(job_id)``, as RQ's own enqueue would write it (Job.to_dict;
        tests/queue/test_client.py holds the two equal); the admission scripts write it.

        RQ makes the hash once per queue, function, timeout and retries; a job's own fields (its
        call, description and times) go into a copy: making an RQ Job per request cost more than the
        rest of admission's Python."""
        retries = (retry.max, tuple(retry.intervals)) if retry else None
        key = (queue_name, func, timeout_s, retries)
        template = self._rq_templates.get(key)
        if template is None:
            made = self._queues[queue_name].create_job(
                func, args=("",), job_id="template", description="", timeout=timeout_s,
                result_ttl=self._settings.rq_result_ttl, failure_ttl=self._settings.rq_failure_ttl,
                retry=retry)
            template = self._rq_templates[key] = made.to_dict()
        stamp = utcformat(rq_now())
        call = self._queues[queue_name].serializer.dumps((func, None, (job_id,), {}))
        return {**template, "created_at": stamp, "enqueued_at": stamp, "data": zlib.compress(call),
                "description": f"{func.rsplit('.', 1)[-1]} {job_id}"}

    async def submit(self, spec: JobSpec, *, is_admin: bool = False) -> Submission:
        """The bare queue, without the bot's quotas (tests, benches, tools): the in-flight cap of
        :class:`QueueSettings` only; raises TooManyJobs at it. The bot admits through
        bot.services.admission, which applies every limit in the same script."""
        limit = self._settings.admin_inflight if is_admin else self._settings.per_user_inflight
        outcome = await self.admit(spec, Rules(inflight=limit), is_admin=is_admin)
        if isinstance(outcome, Submission):
            return outcome
        if isinstance(outcome, InFlight):
            raise TooManyJobs(outcome.limit)
        raise AssertionError(f"the in-flight-only rules refused with {outcome!r}")

    async def admit_quick(self, func: str, job_id: str, *, user_id: int, checked: bool, blob_key: str,
                          blob: bytes, blob_ttl: int, record_key: str, record: dict[str, object],
                          record_ttl: int, timeout_s: int) -> Banned | Maintenance | None:
        """A short job with its own record (a voice message's transcription) on the quick queue, admitted
        in one script call (bot.queue.gate.ADMIT_QUICK_LUA): refused for a banned user or during
        maintenance (``checked``: not an admin), else its input, record and RQ job written and queued.
        Every worker, whatever families it holds, takes it before any waiting generation; no retries."""
        call = admit_quick_call(job_id, user_id=user_id, checked=checked, queue=QUICK_QUEUE,
                                blob_key=blob_key, blob=blob, blob_ttl=blob_ttl, record_key=record_key,
                                record=record, record_ttl=record_ttl,
                                rq_job=self._rq_job(QUICK_QUEUE, func, job_id, timeout_s=timeout_s))
        refusal = read_quick_reply(await self._admit_quick(keys=call.keys, args=call.args))
        if refusal is None and self._target is not None:
            await redisconn.replicate(self._redis, self._target, job_id)
        return refusal

    # --- lookups --------------------------------------------------------------------------------

    async def position(self, job_id: str) -> int | None:
        """1-based place in line among its family's queues (admins' queue counts first); None if
        not waiting."""
        queue_name = _text(await self._redis.hget(keys.job(job_id), F.QUEUE))
        if queue_name is None:
            return None
        index: Any = await self._redis.lpos(keys.rq_queue(queue_name), job_id)
        if index is None:
            return None
        ahead = int(index)
        for name in _line_of(queue_name):
            if name == queue_name:
                break
            ahead += int(await self._redis.llen(keys.rq_queue(name)))
        return ahead + 1

    async def job(self, job_id: str) -> JobRecord | None:
        raw = await self._redis.hgetall(keys.job(job_id))
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        spec: JobSpec | None
        try:
            spec = JobSpec.from_json(data.get(F.SPEC) or "")
        except SpecError:
            spec = None
        result_json = data.get(F.RESULT)
        return JobRecord(
            job_id=job_id,
            spec=spec,
            status=JobStatus(data.get(F.STATUS) or JobStatus.QUEUED),
            user_id=int(data.get(F.USER) or 0),
            chat_id=int(data.get(F.CHAT) or 0),
            queue=data.get(F.QUEUE) or "",
            created_at=_float(data.get(F.CREATED)),
            started_at=_float(data.get(F.STARTED)),
            finished_at=_float(data.get(F.FINISHED)),
            worker=data.get(F.WORKER) or "",
            attempts=int(data.get(F.ATTEMPTS) or 0),
            result=JobResult.model_validate_json(result_json) if result_json else None,
            reason=data.get(F.REASON),
            error=data.get(F.ERROR),
        )

    async def user_jobs(self, user_id: int) -> list[str]:
        """Job ids the user has queued or running (until their final event is delivered)."""
        return sorted(m for m in (_text(x) for x in await self._redis.smembers(keys.inflight(user_id))) if m)

    async def stats(self) -> QueueStats:
        waiting: dict[str, int] = {}
        running: dict[str, int] = {}
        oldest: float | None = None
        now = time.time()
        workers: set[Any] = set()
        for name in QUEUES_IN_ORDER:
            waiting[name] = int(await self._redis.llen(keys.rq_queue(name)))
            started_key = StartedJobRegistry(name, connection=self._sync).key
            running[name] = int(await self._redis.zcount(started_key, now, "+inf"))
            workers |= set(await self._redis.smembers(keys.rq_workers(name)))
            head = _text(await self._redis.lindex(keys.rq_queue(name), 0))
            if head:
                created = _float(await self._redis.hget(keys.job(head), F.CREATED))
                if created is not None:
                    wait = now - created
                    oldest = wait if oldest is None else max(oldest, wait)
        durations = [float(d) for d in await self._redis.lrange(keys.DURATIONS, 0, -1)]
        waits = [float(d) for d in await self._redis.lrange(keys.WAIT_TIMES, 0, -1)]
        return QueueStats(
            waiting=waiting,
            running=running,
            workers=len(workers),
            oldest_wait_s=oldest,
            recent_durations=durations,
            recent_waits=waits,
        )

    # --- cancel ---------------------------------------------------------------------------------

    async def cancel(self, job_id: str, user_id: int) -> CancelOutcome:
        """Remove a queued job, or ask a running one to stop at its next step."""
        record_key = keys.job(job_id)
        raw = await self._redis.hmget(record_key, [F.STATUS, F.USER, F.CHAT, F.QUEUE])
        status, owner, chat, queue_name = (_text(v) for v in raw)
        if status is None:
            return CancelOutcome.NOT_FOUND
        if int(owner or 0) != user_id:
            return CancelOutcome.NOT_YOURS
        if status in TERMINAL_STATUSES:
            return CancelOutcome.ALREADY_FINISHED
        # The flag first: a worker that pops the job right now sees it before it starts.
        await self._redis.set(keys.cancel_flag(job_id), "1", ex=keys.CANCEL_FLAG_TTL)
        removed = 0
        if queue_name:
            removed = int(await self._redis.lrem(keys.rq_queue(queue_name), 1, job_id))
        if not removed:
            log.info("job %s for chat %s: cancel requested while running", job_id, chat)
            return CancelOutcome.STOPPING
        event = CancelledEvent(job_id=job_id, chat_id=int(chat or 0), user_id=user_id)
        key_args, argv = finish_args(event)
        await self._finish(keys=key_args, args=argv)
        await asyncio.to_thread(self._delete_rq_job, job_id)
        log.info("job %s for chat %s: removed from queue %s", job_id, chat, queue_name)
        return CancelOutcome.QUEUED_REMOVED

    def _delete_rq_job(self, job_id: str) -> None:
        try:
            job = Job.fetch(job_id, connection=self._sync)
        except NoSuchJobError:
            return
        job.delete(remove_from_queue=True)
