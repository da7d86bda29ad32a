"""Worker settings, read from the environment by pydantic-settings.

Variable names have no prefix where the bot reads the same value (``REDIS_URL``); the rest start
with ``WORKER_``. The engine's own settings (model dir, device, dtype) are ``KANDINSKY_*``.
"""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.families import Family
from contract.queue import JOB_TIMEOUT_S, MAX_RETRIES, QUICK_QUEUE, queue_family, queues_for
from contract.redisconn import RedisSettings

DEFAULT_HEARTBEAT_INTERVAL_S = 5
"""How often a busy worker proves it is alive while a long job runs."""
ABANDON_AFTER_BEATS = 3
"""A job whose worker missed this many heartbeats is abandoned (worker SIGKILLed or OOM)."""
DEFAULT_MAINTENANCE_INTERVAL_S = 5
"""How often a worker sweeps for abandoned jobs; RQ's default of 10 minutes leaves users waiting."""
DEFAULT_PROGRESS_THROTTLE_S = 0.5
"""At most two progress events a second per job: the bot edits one Telegram message with them and
Telegram rate-limits edits, so more would only fill the stream."""
DEFAULT_CANCEL_POLL_S = 0.25
"""How often a running job looks for a cancel request (from a side thread, never in the step loop)."""
DEFAULT_PREVIEW_EVERY_STEPS = 5
"""A live preview every 5 decoder steps (worker/engine/preview.py: well under 3 % of a job's time)."""
DEFAULT_PREVIEW_INTERVAL_S = 2.0
"""At most one preview every 2 s per job: the bot edits the status photo no faster (Telegram takes
about one edit a second per chat), so more would be made and never shown."""


def default_worker_name() -> str:
    """Unique per process and readable in logs: which host, which process."""
    return f"{socket.gethostname()}.{os.getpid()}"


class WorkerSettings(RedisSettings, BaseSettings):
    """Everything a worker process needs besides the engine; one instance per process."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore")

    name: str = Field(default_factory=default_worker_name)
    """``WORKER_NAME``: the RQ worker name, shown in logs and in job records."""
    families: tuple[Family, ...] | None = None
    """``WORKER_FAMILIES``: the model families this worker holds (a JSON list, e.g.
    ``["kandinsky22"]``); unset: every family that fits its GPU (worker/engine/selection.py says
    how that is decided). An unknown name stops the worker with the known ones."""
    queues: tuple[str, ...] | None = None
    """``WORKER_QUEUES``: the queues served, in priority order (a JSON list); unset: the quick queue,
    then the held families' queues, admins' first (contract.queue.queues_for)."""
    job_timeout_s: int = Field(default=JOB_TIMEOUT_S, ge=1)
    """Cap on any job's run time; a job enqueued with a shorter timeout keeps its own."""
    max_retries: int = Field(default=MAX_RETRIES, ge=0)
    """Cap on engine-error retries; a job enqueued with fewer keeps its own."""
    heartbeat_interval_s: int = Field(default=DEFAULT_HEARTBEAT_INTERVAL_S, ge=1)
    maintenance_interval_s: int = Field(default=DEFAULT_MAINTENANCE_INTERVAL_S, ge=1)
    progress_throttle_s: float = Field(default=DEFAULT_PROGRESS_THROTTLE_S, ge=0.0)
    cancel_poll_s: float = Field(default=DEFAULT_CANCEL_POLL_S, gt=0.0)
    preview_every_steps: int = Field(default=DEFAULT_PREVIEW_EVERY_STEPS, ge=0)
    """``WORKER_PREVIEW_EVERY_STEPS``: a live preview of the picture every N decoder steps; 0 = none."""
    preview_interval_s: float = Field(default=DEFAULT_PREVIEW_INTERVAL_S, ge=0.0)
    """``WORKER_PREVIEW_INTERVAL_S``: the least time between two previews of one job."""
    result_format: Literal["jpeg", "png"] = "jpeg"
    """How non-sticker results are stored and sent: JPEG q95 (fast, small) or lossless PNG."""
    health_port: int | None = Field(
        default=None, validation_alias=AliasChoices("HEALTH_PORT", "WORKER_HEALTH_PORT")
    )
    """Serve /healthz and /metrics on this port (docker healthcheck); off when unset."""
    job_hooks: str | None = None
    """``WORKER_JOB_HOOKS=module:attr``: the extension point for tests and benches (worker.hooks),
    e.g. ``devkit.faults:FaultHooks``; loaded once at start, a bad path stops the worker. Unset in
    production."""

    @field_validator("queues")
    @classmethod
    def _queues_not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("a worker needs at least one queue")
        return value

    def queues_to_serve(self, held: tuple[Family, ...]) -> tuple[str, ...]:
        """The queues of a worker whose engine holds ``held``: ``WORKER_QUEUES`` if set (none of
        them may be the queue of a family it does not hold: its jobs would fail here), else the
        held families' own, after the quick queue that every worker serves (contract.queue.QUICK_QUEUE)."""
        if self.queues is None:
            return (QUICK_QUEUE, *queues_for(held))
        foreign = [q for q in self.queues if (f := queue_family(q)) is not None and f not in held]
        if foreign:
            raise ValueError(f"WORKER_QUEUES names {', '.join(foreign)}, the queue(s) of a model family "
                             f"this worker does not hold (it holds {', '.join(held)})")
        return self.queues

    @property
    def abandon_after_s(self) -> int:
        """How long a started job may go without a heartbeat before another worker takes it over."""
        return self.heartbeat_interval_s * ABANDON_AFTER_BEATS
