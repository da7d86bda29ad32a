"""Events a worker sends back to the bot through the Redis stream ``keys.EVENTS_STREAM``.

One model per event type, told apart by ``type`` (:data:`Event` is their union). ``to_fields`` is
the one way an entry is written and :func:`parse_event` the one way it is read. On the wire every
event is ``{"type", "job_id", "chat_id", "user_id", "data": <its payload>}``, the layout of earlier
releases, so a bot and a worker of different releases still read each other during an upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from contract.language import PromptTranslation, Transcription
from contract.modes import Output


class EventType(StrEnum):
    PROGRESS = "progress"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TRANSCRIBED = "transcribed"
    """A voice message's transcription (contract.language): the end of a transcription job."""


class FailureReason(StrEnum):
    """Why a job ended without an image; the bot maps each to a message in the user's language."""

    BAD_SPEC = "bad_spec"
    INPUT_EXPIRED = "input_expired"
    BAD_INPUT = "bad_input"
    TIMEOUT = "timeout"
    ENGINE_ERROR = "engine_error"
    WORKER_LOST = "worker_lost"
    REGION_NOT_FOUND = "region_not_found"
    """An edit by words whose region the segmentation model did not find (mask nearly empty)."""
    STYLE_UNAVAILABLE = "style_unavailable"
    """A LoRA style the job names is not loaded on the worker that took it (removed, or refused): the
    user is told, and an operator should see why workers of one family hold different styles."""

    @property
    def users_input(self) -> bool:
        """The user's request could not be drawn as given: told to them, nothing an operator must fix."""
        return self in (FailureReason.BAD_INPUT, FailureReason.REGION_NOT_FOUND)


class FileKind(StrEnum):
    """What a result file is for: the bot picks files by kind and image index, never by position."""

    PHOTO = "photo"
    """A non-sticker image: shown in the chat as a photo and sent as the "full size" file."""
    STICKER_PNG = "sticker_png"
    """A sticker's lossless cut-out: the "full size" file and the input of its variations."""
    STICKER_WEBP = "sticker_webp"
    """The same sticker as Telegram takes it: sent as the sticker and added to packs."""
    ANIMATION = "animation_mp4"
    """An animation (H.264 MP4, no sound): sent with sendAnimation, and as the "file" itself."""
    VIDEO = "video_mp4"
    """A video model's clip (H.264 MP4, no sound): sent with sendVideo, and as the "file" itself."""

    @classmethod
    def motion(cls, output: Output) -> FileKind:
        """The kind of the one MP4 a motion output (``Output.motion``) is stored as."""
        if output is Output.VIDEO:
            return cls.VIDEO
        if output is Output.ANIMATION:
            return cls.ANIMATION
        raise ValueError(f"{output} is pictures, not one MP4")


class ResultFile(BaseModel):
    key: str  # Redis key of the bytes
    format: str  # "png", "webp", "jpeg"
    width: int
    height: int
    kind: FileKind
    index: int = Field(ge=0)
    """Which image of the job this file shows (0-based, the order of ``JobResult.seeds``)."""


class JobResult(BaseModel):
    """Metadata stored with a result and sent in the DONE event."""

    model_config = ConfigDict(protected_namespaces=())

    job_id: str
    seed: int
    seeds: list[int] = Field(default_factory=list)  # one per image
    files: list[ResultFile] = Field(default_factory=list)
    """Every stored file, each naming its kind and image (stickers have a PNG and a WEBP per image)."""
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per stage
    model_ids: dict[str, str] = Field(default_factory=dict)
    worker: str = ""
    prompt_truncated: bool = False
    """The model's text encoder cut the prompt (it was longer than the family reads): the caption says so."""
    translation: PromptTranslation | None = None
    """What the model read for the prompt fields (None from workers before translation)."""

    @model_validator(mode="before")
    @classmethod
    def _read_legacy_layout(cls, data: Any) -> Any:
        """Results written before files named their kind (records live ``keys.JOB_RECORD_TTL``)."""
        files = data.get("files") if isinstance(data, dict) else None
        if not files or not all(isinstance(f, dict) and "kind" not in f for f in files):
            return data
        return {**data, "files": _legacy_files(files)}

    def file(self, index: int, kind: FileKind) -> ResultFile | None:
        """The file of image ``index`` with that kind, if the result has one."""
        return next((f for f in self.files if f.index == index and f.kind is kind), None)

    def image_indices(self) -> list[int]:
        """The images of the job, in order."""
        return sorted({f.index for f in self.files})


# --- a result's pictures, picked by kind (delivery, the buttons, edits) ------------------------
DISPLAY_KINDS = (FileKind.STICKER_WEBP, FileKind.PHOTO)
"""What an image is shown as in the chat, in order of preference."""
FULL_KINDS = (FileKind.STICKER_PNG, FileKind.PHOTO)
"""What "full size" sends and variations start from, in order of preference."""


@dataclass(frozen=True)
class ImageFiles:
    index: int
    """Which image of the job: the index its buttons carry."""
    display: ResultFile
    """What is shown in the chat (the WEBP for a sticker)."""
    full: ResultFile
    """What the "full size" button sends (a sticker's PNG)."""


def image(result: JobResult, index: int) -> ImageFiles | None:
    """The files of image ``index`` of a result, picked by kind; None when it has none."""
    display = _first_of(result, index, DISPLAY_KINDS) or _first_of(result, index, FULL_KINDS)
    full = _first_of(result, index, FULL_KINDS) or display
    if display is None or full is None:
        return None
    return ImageFiles(index, display, full)


def image_files(result: JobResult) -> list[ImageFiles]:
    """Every image of a result, in order."""
    return [files for i in result.image_indices() if (files := image(result, i)) is not None]


def _first_of(result: JobResult, index: int, kinds: tuple[FileKind, ...]) -> ResultFile | None:
    return next((f for kind in kinds if (f := result.file(index, kind)) is not None), None)


def _legacy_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The old layout: one file per image, except stickers, whose PNG was followed by its WEBP."""
    out: list[dict[str, Any]] = []
    pos = index = 0
    while pos < len(files):
        first = files[pos]
        nxt = files[pos + 1] if pos + 1 < len(files) else None
        if nxt is not None and first.get("format") == "png" and nxt.get("format") == "webp":
            out += [{**first, "kind": FileKind.STICKER_PNG, "index": index},
                    {**nxt, "kind": FileKind.STICKER_WEBP, "index": index}]
            pos += 2
        else:
            out.append({**first, "kind": FileKind.PHOTO, "index": index})
            pos += 1
        index += 1
    return out


class Progress(BaseModel):
    """Where a running job is; the bot edits the status message with it."""

    stage: str  # "prior", "decoder", …
    step: int
    total: int
    seq: int
    """The publisher's counter (from 1): a job's progress events leave in this order."""
    worker: str
    preview: str | None = None
    """Redis key (``keys.preview``) of a small picture of the job so far, when the worker made one
    at this step: the status message shows it."""


class Failure(BaseModel):
    reason: FailureReason
    message: str = ""
    """One line for the logs, never shown to the user."""

    @model_validator(mode="before")
    @classmethod
    def _unknown_reason_is_an_engine_error(cls, data: Any) -> Any:
        """A reason a newer worker added must not make its event unreadable (the user would hear
        nothing): it reads as an engine error, and the log line keeps what the worker said."""
        reason = data.get("reason") if isinstance(data, dict) else None
        if not isinstance(reason, str) or reason in set(FailureReason):
            return data
        said = f"(reason {reason!r} is unknown to this release) "
        return {**data, "reason": FailureReason.ENGINE_ERROR, "message": said + str(data.get("message", ""))}


STREAM_FIELD = "event"
"""The one field of a stream entry; it holds the event's JSON."""
_PAYLOAD = "data"
"""Wire name of every event's payload."""


class _Envelope(BaseModel):
    """Who an event is for; each event type adds its ``type`` and its payload."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    job_id: str
    chat_id: int
    user_id: int

    def to_json(self) -> str:
        return self.model_dump_json()

    def to_fields(self) -> dict[str, str]:
        return {STREAM_FIELD: self.to_json()}


class ProgressEvent(_Envelope):
    type: Literal[EventType.PROGRESS] = EventType.PROGRESS
    progress: Progress = Field(validation_alias=_PAYLOAD, serialization_alias=_PAYLOAD)


class DoneEvent(_Envelope):
    type: Literal[EventType.DONE] = EventType.DONE
    result: JobResult = Field(validation_alias=_PAYLOAD, serialization_alias=_PAYLOAD)


class FailedEvent(_Envelope):
    type: Literal[EventType.FAILED] = EventType.FAILED
    failure: Failure = Field(validation_alias=_PAYLOAD, serialization_alias=_PAYLOAD)


class CancelledEvent(_Envelope):
    type: Literal[EventType.CANCELLED] = EventType.CANCELLED


class TranscribedEvent(_Envelope):
    """The end of a transcription job (``job_id`` is the transcription id): delivered once, like a
    job's terminal event, but it writes no job record."""

    type: Literal[EventType.TRANSCRIBED] = EventType.TRANSCRIBED
    transcription: Transcription = Field(validation_alias=_PAYLOAD, serialization_alias=_PAYLOAD)


TerminalEvent = DoneEvent | FailedEvent | CancelledEvent
"""The events that end a job: exactly one per job reaches the bot."""
Event = Annotated[ProgressEvent | TerminalEvent | TranscribedEvent, Field(discriminator="type")]
"""Any stream entry, told apart by ``type``."""

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(fields: Mapping[Any, Any]) -> Event:
    """The event of one stream entry (bytes or str keys, as redis-py gives them). ValueError (a
    pydantic ValidationError) when it is none: no event field, not JSON, an unknown type, or a
    payload that does not fit its type."""
    raw = fields.get(STREAM_FIELD.encode(), fields.get(STREAM_FIELD))
    if raw is None:
        raise ValueError(f"stream entry has no {STREAM_FIELD!r} field")
    return _EVENT.validate_json(raw)
