"""The bot's one admission gate: a new request becomes a job here, or gets one refusal, here.

Counted where a request really becomes a job, so a multi-step dialog (two photos, then
weights) counts once, and the "again" and "variations" buttons count like typed requests.
Bans, maintenance, the per-minute and per-day rates (a user's custom limits included), the
family's backlog and the jobs in flight are all decided by one atomic script call
(bot.queue.gate), which also writes the job's record and queues it; the answer is a
value — the :class:`~bot.queue.Submission`, or one :data:`~bot.queue.Refusal` per limit — that
:func:`refusal_text` turns into the user's message.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from typing import assert_never

from bot.infra.metrics import BotMetrics
from bot.queue import JobQueue, Submission, gate
from bot.services.quotas import QuotaService
from contract.queue import DEFAULT_MAX_BACKLOG
from contract.spec import JobSpec

log = logging.getLogger(__name__)

DEFAULT_FRAMES_PER_REQUEST = 12
"""An animation counts one request of the daily quota per this many frames begun: a second at
12 fps, so a 4 s animation is four requests (ANIMATION_FRAMES_PER_REQUEST changes it)."""

class Admission:
    """Admits (and records and enqueues) new jobs, or refuses them, for every handler.

    Admins skip bans, maintenance and the rates, but have their own in-flight cap.
    """

    def __init__(self, queue: JobQueue, quotas: QuotaService, *, admin_inflight: int,
                 metrics: BotMetrics | None = None,
                 frames_per_request: int = DEFAULT_FRAMES_PER_REQUEST,
                 max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self.queue = queue
        self.frames_per_request = frames_per_request
        self.quotas = quotas
        self.admin_inflight = admin_inflight
        self.metrics = metrics
        self.max_backlog = max_backlog

    async def admit_and_record(self, spec: JobSpec, *, now: float | None = None) -> Submission | gate.Refusal:
        """One script call decides every limit and, if they all allow it, records and queues the job.
        A user's custom limits are read there too (``/limits`` validated them when it stored them).
        ``now`` moves the rate clock (tests)."""
        if self.quotas.is_admin(spec.user_id):
            rules = gate.Rules(inflight=self.admin_inflight)
            outcome = await self.queue.admit(spec, rules, is_admin=True, now=now)
        else:
            limits = self.quotas.default_limits
            rates = gate.Rates(per_minute=limits.per_minute, per_day=limits.per_day,
                               weight=spec.quota_weight(self.frames_per_request), backlog=self.max_backlog)
            rules = gate.Rules(inflight=limits.inflight, rates=rates)
            outcome = await self.queue.admit(spec, rules, now=now)
        if isinstance(outcome, Submission):
            if self.metrics is not None:
                self.metrics.jobs_submitted.labels(spec.mode.value).inc()
            return outcome
        log.info("job refused for user %s in chat %s: %s", spec.user_id, spec.chat_id, outcome.reason)
        if self.metrics is not None:
            self.metrics.requests_refused.labels(outcome.reason).inc()
        return outcome


def refusal_text(t: Callable[..., str], refusal: gate.Refusal, now: float | None = None) -> str:
    """The user's message for a refusal (one per limit), with the next free slot where there is one."""
    now = time.time() if now is None else now
    match refusal:
        case gate.Banned():
            return t("quota-banned")
        case gate.Maintenance():
            return t("quota-maintenance")
        case gate.InFlight(limit=limit):
            return t("quota-inflight", limit=limit)
        case gate.Backlog(waiting=waiting):
            return t("quota-backlog", waiting=waiting)
        case gate.PerDay(limit=limit, retry_at=retry_at, weight=weight) if weight > 1:
            return t("quota-per-day-weighted", limit=limit, weight=weight, time=_clock(retry_at))
        case gate.PerDay(limit=limit, retry_at=retry_at):
            return t("quota-per-day", limit=limit, time=_clock(retry_at))
        case gate.PerMinute(limit=limit, retry_at=retry_at):
            wait = max(1, math.ceil(retry_at - now))
            return t("quota-per-minute", limit=limit, time=_clock(retry_at), seconds=wait)
        case _:
            assert_never(refusal)


def _clock(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M:%S")
