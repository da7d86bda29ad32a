"""The contract between the bot and the workers: job spec, events, Redis keys.

Imports neither torch nor aiogram.
"""

from contract.events import (
    CancelledEvent,
    DoneEvent,
    Event,
    EventType,
    FailedEvent,
    Failure,
    FailureReason,
    FileKind,
    JobResult,
    Progress,
    ProgressEvent,
    ResultFile,
    TerminalEvent,
    parse_event,
)
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
    "CancelledEvent",
    "DoneEvent",
    "Event",
    "EventType",
    "FailedEvent",
    "Failure",
    "FailureReason",
    "FileKind",
    "JobResult",
    "JobSpec",
    "Mode",
    "Priority",
    "Progress",
    "ProgressEvent",
    "ResultFile",
    "SpecError",
    "Style",
    "TerminalEvent",
    "UnsupportedSpecVersion",
    "bucket_size",
    "parse_event",
]
