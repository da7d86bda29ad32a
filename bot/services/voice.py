"""Voice messages as prompts: a recording becomes a transcription job, its words a confirmed prompt.

The bot downloads the recording; one admission script call (bot.queue.gate.ADMIT_QUICK_LUA) refuses
a banned user or maintenance, or stores it as a short-lived blob, writes the transcription record
(``keys.voice``: who, where, for which mode) and queues the worker's transcription job on the
quick queue every worker serves first (contract.language.TRANSCRIBE_FUNC). The worker answers with one
``TranscribedEvent``; :meth:`VoiceService.deliver` turns the "listening" message into "I heard: …"
with buttons (draw it, edit the text, cancel) or into the reason there are no words. Nothing is
queued for generation until the user presses "draw it" (bot/routers/voice.py).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from html import escape
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from redis.asyncio import Redis

from bot.queue import JobQueue, Refusal
from bot.ui import keyboards
from bot.ui.i18n import I18n
from contract import keys
from contract.events import TranscribedEvent
from contract.language import TRANSCRIBE_FUNC, TRANSCRIBE_TIMEOUT_S

log = logging.getLogger(__name__)

HEARD_CHARS = 1500
"""Room for the words in "I heard: …" (a minute of speech is about 1000 characters; Telegram takes 4096)."""


@dataclass(frozen=True)
class VoiceRecord:
    """A transcription as the bot wrote it, with what the worker heard once it is done."""

    voice_id: str
    user_id: int
    chat_id: int
    locale: str
    mode: str
    """The mode whose prompt the words are for (contract.modes.Mode value)."""
    reply_to: int | None
    """The voice message: the generation answers it."""
    status_message: int | None
    """The "listening…" message, edited into "I heard: …"."""
    text: str
    error: str
    done: bool
    used: bool


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


class VoiceService:
    """One per bot process: the bot's side of transcription jobs."""

    def __init__(self, redis: Redis, queue: JobQueue) -> None:
        self._redis = redis
        self._queue = queue

    async def reserve(self, user_id: int) -> bool:
        """One transcription per user at a time; False while one is in flight."""
        return bool(await self._redis.set(keys.voice_busy(user_id), "1", nx=True, ex=keys.VOICE_BUSY_TTL))

    async def release(self, user_id: int) -> None:
        await self._redis.delete(keys.voice_busy(user_id))

    async def start(self, *, audio: bytes, user_id: int, chat_id: int, locale: str, mode: str,
                    reply_to: int | None, status_message: int, checked: bool = True) -> str | Refusal:
        """Admit the transcription in one script call (the recording, its record and the quick job),
        or refuse it (a ban, maintenance; ``checked`` False: an admin's); returns its id."""
        if not audio:
            raise ValueError("refusing to transcribe an empty recording")
        voice_id = "v" + secrets.token_hex(8)
        blob = keys.blob(f"voice-{voice_id}")
        record: dict[str, object] = {
            "user_id": user_id, "chat_id": chat_id, "locale": locale, "mode": mode,
            "reply_to": reply_to or 0, "status_message": status_message, "blob": blob,
            "status": "queued", "created_at": repr(time.time()),
        }
        refused = await self._queue.admit_quick(
            TRANSCRIBE_FUNC, voice_id, user_id=user_id, checked=checked, blob_key=blob, blob=audio,
            blob_ttl=keys.VOICE_BLOB_TTL, record_key=keys.voice(voice_id), record=record,
            record_ttl=keys.VOICE_TTL, timeout_s=TRANSCRIBE_TIMEOUT_S)
        if refused is not None:
            log.info("transcription refused for user %s in chat %s: %s", user_id, chat_id, refused.reason)
            return refused
        log.info("transcription %s queued for chat %s (user %s, %d bytes, mode %s)", voice_id, chat_id,
                 user_id, len(audio), mode)
        return voice_id

    async def get(self, voice_id: str) -> VoiceRecord | None:
        raw = {_text(k): _text(v) for k, v in (await self._redis.hgetall(keys.voice(voice_id))).items()}
        if not raw or not raw.get("user_id"):
            return None
        return VoiceRecord(
            voice_id=voice_id, user_id=int(raw["user_id"]), chat_id=int(raw.get("chat_id") or 0),
            locale=raw.get("locale", ""), mode=raw.get("mode", ""),
            reply_to=int(raw.get("reply_to") or 0) or None,
            status_message=int(raw.get("status_message") or 0) or None, text=raw.get("text", ""),
            error=raw.get("error", ""), done=raw.get("status") == "done", used=bool(raw.get("used")),
        )

    async def claim(self, voice_id: str) -> bool:
        """Mark the words used; True once only, so "draw it" pressed twice draws once."""
        return bool(await self._redis.hsetnx(keys.voice(voice_id), "used", "1"))

    async def unclaim(self, voice_id: str) -> None:
        """The drawing was refused (a limit): the button works again."""
        await self._redis.hdel(keys.voice(voice_id), "used")

    async def deliver(self, bot: Bot, event: TranscribedEvent, i18n: I18n) -> None:
        """The worker's answer: "I heard: …" with its buttons, or why it heard nothing."""
        record = await self.get(event.job_id)
        await self.release(event.user_id)
        t = i18n.translator(record.locale if record is not None and record.locale else i18n.default_locale)
        heard = event.transcription
        markup = None
        if heard.error is not None:
            text = t(f"voice-{heard.error.value}", limit=heard.max_s)
        else:
            words = heard.text if len(heard.text) <= HEARD_CHARS else heard.text[:HEARD_CHARS] + "…"
            text = t("voice-heard", text=escape(words))
            markup = keyboards.voice_heard(t, event.job_id)
        if record is not None and record.status_message:
            try:
                await bot.edit_message_text(text, chat_id=event.chat_id, message_id=record.status_message,
                                            reply_markup=markup)
                return
            except TelegramBadRequest as exc:
                if "not modified" in exc.message:
                    return
                log.info("transcription %s: status message not editable (%s); sending anew", event.job_id,
                         exc.message)
        await bot.send_message(event.chat_id, text, reply_markup=markup)
