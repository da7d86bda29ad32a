"""Simulated Telegram users and group chats that produce updates for the bot."""

from __future__ import annotations

import io
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from devkit.audio import ogg_opus_duration
from devkit.botapi import limits
from devkit.botapi.models import ApiError, CallbackQueryState, SentMessage

if TYPE_CHECKING:
    from devkit.botapi.server import LocalBotAPI

_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]+)?")


@dataclass(frozen=True)
class SimChat:
    """A group chat simulated users can write in (``in_chat=``)."""

    chat_id: int
    title: str
    type: str = "group"


class SimUser:
    """A person talking to the bot: every ``send_*`` queues an update and returns its message id."""

    def __init__(
        self,
        api: LocalBotAPI,
        user_id: int,
        first_name: str,
        language_code: str,
        username: str | None,
    ) -> None:
        self.api = api
        self.user_id = user_id
        self.first_name = first_name
        self.language_code = language_code
        self.username = username

    @property
    def chat_id(self) -> int:
        return self.user_id

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.user_id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.username:
            out["username"] = self.username
        return out

    def _message(
        self, in_chat: SimChat | None, kind: str, reply_to: SentMessage | int | None = None, **fields: Any
    ) -> SentMessage:
        chat_id = in_chat.chat_id if in_chat else self.user_id
        if chat_id not in self.api.chats:
            raise ValueError(f"unknown chat {chat_id}: create it with api.group()")
        reply_id = reply_to.message_id if isinstance(reply_to, SentMessage) else reply_to
        if chat_id == self.user_id and self.user_id in self.api.blocked:
            # Writing to a blocked bot means pressing "Restart" in the client first.
            self.api.unblock_bot(self.user_id)
        msg = SentMessage(
            chat_id=chat_id,
            message_id=self.api.next_message_id(chat_id),
            date=int(time.time()),
            from_bot=False,
            kind=kind,
            method="user",
            from_user=self.to_json(),
            reply_to_message_id=reply_id,
            **fields,
        )
        self.api.add_message(msg)
        self.api._push_update("message", self.api.message_json(msg))
        return msg

    async def send_text(
        self, text: str, in_chat: SimChat | None = None, reply_to: SentMessage | int | None = None
    ) -> int:
        """A text message; a leading ``/command`` gets its bot_command entity like Telegram adds."""
        if not text or len(text) > limits.MAX_TEXT_LENGTH:
            raise ValueError("a Telegram client sends 1-4096 characters")
        entities = [
            {
                "type": "bot_command",
                "offset": limits.utf16_len(text[: m.start()]),
                "length": limits.utf16_len(m.group(0)),
            }
            for m in _COMMAND.finditer(text)
            if m.start() == 0 or text[m.start() - 1].isspace()
        ]
        return self._message(in_chat, "text", reply_to, text=text, entities=entities or None).message_id

    def _caption(self, caption: str | None) -> str | None:
        if caption is not None and len(caption) > limits.MAX_CAPTION_LENGTH:
            raise ValueError("a Telegram client sends captions of at most 1024 characters")
        return caption or None

    async def send_photo(
        self,
        data: bytes,
        caption: str | None = None,
        media_group_id: str | None = None,
        in_chat: SimChat | None = None,
        reply_to: SentMessage | int | None = None,
    ) -> int:
        """A compressed photo: Telegram re-encodes it as JPEG sizes up to 2560 px (EXIF applied)."""
        try:
            width, height = limits.check_photo(data)
        except ApiError as exc:
            raise ValueError(
                f"a Telegram client would not send this as a photo ({exc.description}); use send_document"
            ) from exc
        del width, height
        sizes, main = self.api.photo_sizes(data, reencode=True)
        return self._message(
            in_chat,
            "photo",
            reply_to,
            photo=sizes,
            file=main,
            caption=self._caption(caption),
            media_group_id=media_group_id,
        ).message_id

    async def send_document(
        self,
        data: bytes,
        file_name: str,
        mime_type: str,
        caption: str | None = None,
        in_chat: SimChat | None = None,
        reply_to: SentMessage | int | None = None,
    ) -> int:
        """An uncompressed file, bytes kept exactly (so tests can send anything, up to 2 GB)."""
        ext = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = self.api.store_file(data, "documents", ext, mime_type, file_name)
        return self._message(
            in_chat,
            "document",
            reply_to,
            document=self.api.document_json(stored),
            file=stored,
            caption=self._caption(caption),
        ).message_id

    async def send_album(
        self, photos: list[bytes], caption: str | None = None, in_chat: SimChat | None = None
    ) -> list[int]:
        """2-10 photos sharing one media_group_id; the caption goes on the first, like Telegram."""
        if not 2 <= len(photos) <= limits.MAX_MEDIA_GROUP:
            raise ValueError("an album has 2-10 items")
        group_id = str(10**17 + secrets.randbelow(10**17))
        return [
            await self.send_photo(p, caption if i == 0 else None, media_group_id=group_id, in_chat=in_chat)
            for i, p in enumerate(photos)
        ]

    async def send_sticker(self, data: bytes, emoji: str = "🙂", in_chat: SimChat | None = None) -> int:
        _, width, height = limits.check_sticker_file(data)
        fmt = "webp" if data[8:12] == b"WEBP" else "png"
        stored = self.api.store_file(data, "stickers", fmt, f"image/{fmt}", width=width, height=height)
        return self._message(
            in_chat, "sticker", None, sticker=self.api.sticker_json(stored, emoji), file=stored
        ).message_id

    async def send_voice(
        self, data: bytes, duration: int | None = None, in_chat: SimChat | None = None,
        reply_to: SentMessage | int | None = None,
    ) -> int:
        """A voice note as Telegram clients record it: OGG/Opus, the duration in whole seconds read
        from the file. ``duration=`` sends any bytes with that claim (a broken or hostile client)."""
        if duration is None:
            seconds = ogg_opus_duration(data)
            if seconds is None:
                raise ValueError("a Telegram client records voice notes as OGG/Opus; pass duration= "
                                 "to send other bytes as a voice message")
            duration = round(seconds)
        stored = self.api.store_file(data, "voice", "oga", "audio/ogg")
        return self._message(
            in_chat, "voice", reply_to, file=stored, extra={"voice": self.api.voice_json(stored, duration)}
        ).message_id

    async def send_audio(
        self, data: bytes, duration: int, file_name: str = "audio.m4a", mime_type: str = "audio/mp4",
        in_chat: SimChat | None = None,
    ) -> int:
        """An audio file sent as music (``audio``), with the duration the client read from it."""
        stored = self.api.store_file(data, "music", file_name.rsplit(".", 1)[-1], mime_type, file_name)
        return self._message(
            in_chat, "audio", None, file=stored, extra={"audio": self.api.audio_json(stored, duration)}
        ).message_id

    async def send_video_note(self, data: bytes, duration: int, length: int = 240,
                              in_chat: SimChat | None = None) -> int:
        """A round video message (``video_note``): a square MP4 with sound."""
        stored = self.api.store_file(data, "video_notes", "mp4", "video/mp4")
        return self._message(
            in_chat, "video_note", None, file=stored,
            extra={"video_note": self.api.video_note_json(stored, duration, length)},
        ).message_id

    async def press(
        self, message: SentMessage, button_text: str | None = None, callback_data: str | None = None
    ) -> str:
        """Press an inline button of a bot message; returns the callback query id."""
        current = self.api.messages.get(message.chat_id, {}).get(message.message_id)
        if current is None or current.deleted:
            raise ValueError("that message does not exist (or was deleted)")
        buttons = current.inline_buttons
        for button in buttons:
            if button_text is not None and button.get("text") != button_text:
                continue
            if callback_data is not None and button.get("callback_data") != callback_data:
                continue
            break
        else:
            labels = [b.get("text") for b in buttons]
            raise ValueError(f"no button {button_text or callback_data!r} on the message; buttons: {labels}")
        if "callback_data" not in button:
            raise ValueError(f"button {button.get('text')!r} is not a callback button")
        self.api._query_counter += 1
        query_id = f"{self.user_id}{self.api._query_counter:08d}"
        self.api.callback_queries[query_id] = CallbackQueryState(
            query_id, self.user_id, current.chat_id, current.message_id, button["callback_data"]
        )
        self.api._push_update(
            "callback_query",
            {
                "id": query_id,
                "from": self.to_json(),
                "message": self.api.message_json(current),
                "chat_instance": str(abs(current.chat_id) * 7919),
                "data": button["callback_data"],
            },
        )
        return query_id


def make_image(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A small solid image for tests and demos."""
    color: Any = (200, 80, 40, 255)[: len(mode)] if mode in ("RGB", "RGBA") else 128
    buf = io.BytesIO()
    Image.new(mode, (width, height), color).save(buf, fmt)
    return buf.getvalue()
