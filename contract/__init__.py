"""The contract between the bot and the workers: job spec, events, Redis keys.

Imports neither torch nor aiogram.
"""

from contract.events import Event, EventType, FailureReason, JobResult, ResultFile
from contract.spec import (
    ASPECT_RATIOS,
    SIZE_BUCKETS,
    SPEC_VERSION,
    JobSpec,
    Mode,
    Priority,
    SpecError,
    Style,
    UnsupportedSpecVersion,
    bucket_size,
)

__all__ = [
    "ASPECT_RATIOS",
    "SIZE_BUCKETS",
    "SPEC_VERSION",
    "Event",
    "EventType",
    "FailureReason",
    "JobResult",
    "JobSpec",
    "Mode",
    "Priority",
    "ResultFile",
    "SpecError",
    "Style",
    "UnsupportedSpecVersion",
    "bucket_size",
]
