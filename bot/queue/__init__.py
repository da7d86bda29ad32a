"""The bot's side of the job queue: admit and submit jobs to the GPU workers, consume their events."""

from bot.queue.client import (
    CancelOutcome,
    JobQueue,
    JobRecord,
    QueueSettings,
    QueueStats,
    Submission,
    TooManyJobs,
)
from bot.queue.consumer import EventConsumer, Handler
from bot.queue.gate import (
    Backlog,
    Banned,
    InFlight,
    Maintenance,
    PerDay,
    PerMinute,
    Rates,
    Refusal,
    Rules,
)
from contract.queue import JobStatus

__all__ = [
    "Backlog",
    "Banned",
    "CancelOutcome",
    "EventConsumer",
    "Handler",
    "InFlight",
    "JobQueue",
    "JobRecord",
    "JobStatus",
    "Maintenance",
    "PerDay",
    "PerMinute",
    "QueueSettings",
    "QueueStats",
    "Rates",
    "Refusal",
    "Rules",
    "Submission",
    "TooManyJobs",
]
