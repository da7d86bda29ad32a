"""Redis key names and lifetimes shared by the bot and the workers.

Every key written has a TTL (or is a bounded stream), so Redis memory stays bounded even when
nobody ever reads a result. Keys are prefixed so one Redis can host several deployments.
"""

from __future__ import annotations

PREFIX = "kb"

# --- lifetimes (seconds), each with its reason -------------------------------------------------
INPUT_BLOB_TTL = 6 * 3600
"""Inputs must outlive the longest queue wait plus retries, but are user photos: keep them briefly."""
JOB_RECORD_TTL = 7 * 24 * 3600
"""Job records back /stats, "again" and "variations" buttons for a week."""
RESULT_TTL = 24 * 3600
"""Result bytes back the "full-size file" and "add to pack" buttons for a day."""
PROGRESS_TTL = 3600
"""Latest progress of a job; only useful while the job runs."""
DELIVERED_TTL = 7 * 24 * 3600
"""Dedupe marker: longer than any redelivery window of the events stream."""
CANCEL_FLAG_TTL = 3600
"""A cancel request only matters while the job may still start or run."""
EVENTS_STREAM_MAXLEN = 100_000
"""Approximate cap on the delivery stream; acked entries beyond it are trimmed."""


def blob(blob_id: str) -> str:
    return f"{PREFIX}:blob:{blob_id}"


def job(job_id: str) -> str:
    """Hash: spec (JSON), status, timestamps, worker, error."""
    return f"{PREFIX}:job:{job_id}"


def result(job_id: str, index: int, fmt: str) -> str:
    return f"{PREFIX}:result:{job_id}:{index}.{fmt}"


def progress(job_id: str) -> str:
    return f"{PREFIX}:progress:{job_id}"


def delivered(job_id: str) -> str:
    return f"{PREFIX}:delivered:{job_id}"


def cancel_flag(job_id: str) -> str:
    return f"{PREFIX}:cancel:{job_id}"


def inflight(user_id: int) -> str:
    """Set of a user's job ids that are queued or running."""
    return f"{PREFIX}:inflight:{user_id}"


EVENTS_STREAM = f"{PREFIX}:events"
"""Worker → bot: progress, result and failure events (a consumer group reads it)."""
EVENTS_GROUP = "bot"
