"""The queue protocol shared by the bot (bot/queue) and the workers (worker/jobs, worker/runner).

The worker image ships without the bot package and the bot never imports the worker, so the
names both sides must agree on live here: RQ queue names, the job-record hash layout, the job
statuses and the one atomic "finish" step that writes a terminal status and its event together.
Imports neither torch nor aiogram.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from contract import keys
from contract.events import DoneEvent, Event, EventType, FailedEvent, TerminalEvent
from contract.families import DEFAULT_FAMILY, FAMILIES, Family

JOB_TIMEOUT_S = 600
"""Cap on one job's run time, the same for the bot's enqueue and the worker: a 1024 px job with 4
images takes well under a minute on a GPU; ten minutes means the job is stuck, and the GPU must go
to the next user."""
MAX_RETRIES = 2
"""An engine error or a lost worker is retried twice; a third failure is the job, not bad luck."""

RUN_JOB_FUNC = "worker.jobs.run_job"
"""What RQ calls; its only argument is the job id, so no image bytes or secrets reach RQ's logs."""

HIGH_QUEUE = "kb-high"
DEFAULT_QUEUE = "kb-default"
"""Kandinsky 2.2's queues (admins', everyone's): the names from before families, so jobs queued by
an older bot are still served after an upgrade."""


QUICK_QUEUE = f"{keys.PREFIX}-quick"
"""Short jobs that need no model family (a voice message's transcription): every worker listens to
it first, so a host holding only Kandinsky 3.0 transcribes too and no voice waits behind a long
generation."""


def family_queues(family: Family | str) -> tuple[str, str]:
    """(admins' queue, everyone's queue) of one model family: a job waits in its family's queue
    and only a worker holding that family listens to it (contract.families)."""
    if family == DEFAULT_FAMILY:
        return HIGH_QUEUE, DEFAULT_QUEUE
    return f"{keys.PREFIX}-{family}-high", f"{keys.PREFIX}-{family}-default"


def family_queue(family: Family | str, high: bool) -> str:
    """The queue a job of ``family`` goes to: the admins' one when ``high``."""
    return family_queues(family)[0 if high else 1]


def queues_for(families: Iterable[Family | str]) -> tuple[str, ...]:
    """The queues a worker holding ``families`` listens to, in priority order: every admins' queue
    first, then everyone's, each in contract.families order (a worker holding both Kandinsky
    families takes a 2.2 job before a 3.0 job of the same priority)."""
    held = set(families)
    ordered = [d.family for d in FAMILIES if d.family in held]
    return tuple(family_queues(f)[0] for f in ordered) + tuple(family_queues(f)[1] for f in ordered)


def queue_family(name: str) -> Family | None:
    """The family whose queue ``name`` is; None for any other queue."""
    return next((d.family for d in FAMILIES if name in family_queues(d.family)), None)


QUEUES_IN_ORDER: tuple[str, ...] = queues_for(d.family for d in FAMILIES)
"""Every family's queues in priority order (what /queue and the bot's metrics read)."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES: frozenset[str] = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
STATUS_OF: dict[EventType, JobStatus] = {
    EventType.DONE: JobStatus.DONE,
    EventType.FAILED: JobStatus.FAILED,
    EventType.CANCELLED: JobStatus.CANCELLED,
}
"""The status a terminal event leaves in the job record."""


def lua_is_terminal(var: str) -> str:
    """A Lua expression, true when ``var`` holds a final status: for the scripts that count a
    user's live jobs (the quota check and the submit), so they agree with TERMINAL_STATUSES."""
    return "(" + " or ".join(f"{var} == '{status}'" for status in sorted(TERMINAL_STATUSES)) + ")"


class F:
    """Field names of the job-record hash ``keys.job(job_id)``."""

    SPEC = "spec"  # the JobSpec JSON as the bot wrote it
    STATUS = "status"
    USER = "user_id"
    CHAT = "chat_id"
    QUEUE = "queue"
    CREATED = "created_at"  # unix seconds, when the bot accepted it
    STARTED = "started_at"
    FINISHED = "finished_at"
    WORKER = "worker"
    ATTEMPTS = "attempts"
    RESULT = "result"  # JobResult JSON
    REASON = "reason"  # FailureReason
    ERROR = "error"  # one line for operators
    TRANSLATION = "translation"  # contract.language.PromptTranslation JSON: what the model read


DEFAULT_MAX_BACKLOG = 1000
"""Jobs that may wait for one model family before new requests are refused (QUEUE_MAX_BACKLOG):
past it a user would wait longer than the result is worth, and Redis holds it all."""
DURATIONS_KEEP = 50
"""Enough samples for a stable mean, few enough to follow a change of GPU or of load."""


def add_event(pipe: Any, event: Event) -> Any:
    """Queue an XADD of ``event`` on a (sync or async) pipeline; the stream stays approximately bounded."""
    return pipe.xadd(
        keys.EVENTS_STREAM, event.to_fields(), maxlen=keys.EVENTS_STREAM_MAXLEN, approximate=True
    )


FINISH_SCRIPT = """
-- KEYS[1] job record, KEYS[2] events stream
-- ARGV[1] record TTL, ARGV[2] stream maxlen, ARGV[3] event JSON (stream field events.STREAM_FIELD),
-- ARGV[4..] field/value pairs
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'failed' or status == 'cancelled' then
  return 0
end
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3])
return 1
"""
"""Write a terminal status and its event in one step, once: a second finisher (a retried attempt,
the abandoned-job sweeper, a queued-job cancel racing a worker) changes nothing and sends nothing."""


def finish_args(event: TerminalEvent, fields: Mapping[str, str | int | float] | None = None) -> tuple[
    list[str], list[str | int | float]
]:
    """KEYS and ARGV for :data:`FINISH_SCRIPT`: the event, and the record fields it implies (its
    status, the result of a DONE, the reason of a FAILED) plus ``fields`` (worker, error line)."""
    merged: dict[str, str | int | float] = {F.STATUS: STATUS_OF[event.type].value, F.FINISHED: time.time()}
    if isinstance(event, DoneEvent):
        merged[F.RESULT] = event.result.model_dump_json()
    elif isinstance(event, FailedEvent):
        merged[F.REASON] = event.failure.reason.value
    merged.update(fields or {})
    argv: list[str | int | float] = [keys.JOB_RECORD_TTL, keys.EVENTS_STREAM_MAXLEN, event.to_json()]
    for k, v in merged.items():
        argv += [k, v]
    return [keys.job(event.job_id), keys.EVENTS_STREAM], argv
