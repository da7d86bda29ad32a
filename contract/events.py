"""Events a worker sends back to the bot through the Redis stream ``keys.EVENTS_STREAM``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FailureReason(StrEnum):
    """Why a job ended without an image; the bot maps each to a message in the user's language."""

    BAD_SPEC = "bad_spec"
    INPUT_EXPIRED = "input_expired"
    BAD_INPUT = "bad_input"
    TIMEOUT = "timeout"
    ENGINE_ERROR = "engine_error"
    WORKER_LOST = "worker_lost"


class ResultFile(BaseModel):
    key: str  # Redis key of the bytes
    format: str  # "png", "webp", "jpeg"
    width: int
    height: int


class JobResult(BaseModel):
    """Metadata stored with a result and sent in the DONE event."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: str
    seed: int
    seeds: list[int] = Field(default_factory=list)  # one per image
    files: list[ResultFile] = Field(default_factory=list)
    """One display file per image (stickers add a WEBP after each PNG)."""
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per stage
    model_ids: dict[str, str] = Field(default_factory=dict)
    worker: str = ""


class Event(BaseModel):
    """One stream entry. ``data`` holds a JobResult (DONE), progress numbers, or a failure."""

    type: EventType
    job_id: str
    chat_id: int
    user_id: int
    data: dict[str, Any] = Field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        return {"event": self.model_dump_json()}

    @classmethod
    def from_fields(cls, fields: dict[bytes | str, bytes | str]) -> Event:
        raw = fields.get(b"event", fields.get("event"))
        if raw is None:
            raise ValueError("stream entry has no 'event' field")
        return cls.model_validate_json(raw)
