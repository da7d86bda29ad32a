"""State the local Bot API server keeps, shaped so tests can read it back directly."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """An answer with ``ok: false``; raised anywhere inside a method handler."""

    def __init__(
        self,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        violation: bool = False,
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        self.violation = violation
        """True when the request broke a documented Telegram limit the bot controls."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(text: str, *, violation: bool = False) -> ApiError:
    return ApiError(400, f"Bad Request: {text}", violation=violation)


@dataclass
class UploadedFile:
    """One file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class StoredFile:
    """A file the server knows by ``file_id`` (uploaded by the bot or sent by a simulated user)."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    mime_type: str | None = None
    file_name: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class RecordedCall:
    """One request to the server, as decoded, with the answer it got."""

    method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile]
    response: dict[str, Any]
    status: int
    time: float
    http_method: str = "POST"

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def description(self) -> str | None:
        value = self.response.get("description")
        return str(value) if value is not None else None


@dataclass
class SentMessage:
    """A message in a chat (normally one the bot sent), with edits applied.

    ``edits`` keeps every earlier version (as ``SentMessage`` snapshots, oldest first).
    """

    chat_id: int
    message_id: int
    date: int
    from_bot: bool
    kind: str
    """"text", "photo", "document", "sticker"."""
    method: str
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    reply_to_message_id: int | None = None
    media_group_id: str | None = None
    photo: list[dict[str, Any]] | None = None
    file: StoredFile | None = None
    """The main file: the original photo upload, the document or the sticker."""
    document: dict[str, Any] | None = None
    sticker: dict[str, Any] | None = None
    from_user: dict[str, Any] | None = None
    edit_date: int | None = None
    deleted: bool = False
    edits: list[SentMessage] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Other fields of the user's message (``my_chat_member`` etc. never land here)."""

    @property
    def photo_bytes(self) -> bytes | None:
        return self.file.data if self.kind == "photo" and self.file else None

    @property
    def document_bytes(self) -> bytes | None:
        return self.file.data if self.kind == "document" and self.file else None

    @property
    def sticker_bytes(self) -> bytes | None:
        return self.file.data if self.kind == "sticker" and self.file else None

    @property
    def file_name(self) -> str | None:
        return self.file.file_name if self.file else None

    @property
    def mime_type(self) -> str | None:
        return self.file.mime_type if self.file else None

    @property
    def inline_buttons(self) -> list[dict[str, Any]]:
        """Every inline button, row by row, flattened."""
        if not self.reply_markup or "inline_keyboard" not in self.reply_markup:
            return []
        return [button for row in self.reply_markup["inline_keyboard"] for button in row]

    def snapshot(self) -> SentMessage:
        clone = copy.copy(self)
        clone.edits = []
        clone.reply_markup = copy.deepcopy(self.reply_markup)
        return clone


@dataclass
class CallbackQueryState:
    """A button press and how (or whether) the bot answered it."""

    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str | None
    pressed_at: float = field(default_factory=time.monotonic)
    answered: bool = False
    answer_text: str | None = None
    show_alert: bool = False
    url: str | None = None
    answered_at: float | None = None

    @property
    def answer_delay_s(self) -> float | None:
        """Seconds from the press to answerCallbackQuery (the client shows a spinner meanwhile)."""
        return None if self.answered_at is None else self.answered_at - self.pressed_at


@dataclass
class StickerState:
    file: StoredFile
    emoji_list: list[str]
    format: str

    def to_json(self, set_name: str) -> dict[str, Any]:
        return {
            "file_id": self.file.file_id,
            "file_unique_id": self.file.file_unique_id,
            "type": "regular",
            "width": self.file.width or 512,
            "height": self.file.height or 512,
            "is_animated": False,
            "is_video": False,
            "emoji": self.emoji_list[0] if self.emoji_list else None,
            "set_name": set_name,
            "file_size": self.file.size,
        }


@dataclass
class StickerSetState:
    name: str
    title: str
    owner_user_id: int
    sticker_type: str = "regular"
    stickers: list[StickerState] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "sticker_type": self.sticker_type,
            "stickers": [s.to_json(self.name) for s in self.stickers],
        }


@dataclass
class Injection:
    """An error to answer instead of running the method, ``times`` more times."""

    method: str | None
    error_code: int
    description: str
    retry_after: int | None
    times: int
    chat_id: int | None
