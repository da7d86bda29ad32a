"""The bot's side of the job queue: submit jobs to the GPU workers and consume their events."""

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
from contract.queue import JobStatus

__all__ = [
    "CancelOutcome",
    "EventConsumer",
    "Handler",
    "JobQueue",
    "JobRecord",
    "JobStatus",
    "QueueSettings",
    "QueueStats",
    "Submission",
    "TooManyJobs",
]
