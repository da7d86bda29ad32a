"""Voice messages through the local Bot API server as Telegram delivers them: OGG/Opus ``voice``
objects with the duration the client measured, audio files and video notes, every file
downloadable with getFile."""

from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.types import Message

from devkit.audio import make_voice, ogg_opus_duration
from devkit.botapi import LocalBotAPI
from tests.devkit.conftest import EVENT_TIMEOUT_S, POLL_TIMEOUT_S

USER_ID = 5150


def test_ogg_duration_is_read_from_the_pages() -> None:
    assert ogg_opus_duration(make_voice(3.4)) == pytest.approx(3.4, abs=0.02)
    assert ogg_opus_duration(make_voice(1, fmt="m4a")) is None  # not OGG at all
    assert ogg_opus_duration(b"OggS" + b"\0" * 40) is None  # OGG, but no Opus header


async def test_voice_audio_and_video_note_arrive_and_download(api: LocalBotAPI, bot: Bot) -> None:
    dp = Dispatcher()
    got: list[tuple[str, int, bytes, str | None]] = []

    @dp.message(F.voice | F.audio | F.video_note)
    async def on_recording(message: Message, bot: Bot) -> None:
        media = message.voice or message.audio or message.video_note
        assert media is not None
        buf = await bot.download(media.file_id)
        assert buf is not None
        kind = "voice" if message.voice else "audio" if message.audio else "video_note"
        got.append((kind, media.duration, buf.read(), getattr(media, "mime_type", None)))

    user = api.user(USER_ID)
    voice = make_voice(2.4)
    audio = make_voice(1, fmt="m4a")
    task = asyncio.create_task(dp.start_polling(bot, polling_timeout=POLL_TIMEOUT_S, handle_signals=False,
                                                close_bot_session=False))
    try:
        await user.send_voice(voice)
        await user.send_audio(audio, duration=1)
        await user.send_video_note(audio, duration=1)
        await api.wait_for(lambda: len(got) == 3, EVENT_TIMEOUT_S)
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(task, EVENT_TIMEOUT_S)
    assert got[0] == ("voice", 2, voice, "audio/ogg")  # whole seconds, as Telegram reports them
    assert got[1] == ("audio", 1, audio, "audio/mp4")
    assert got[2][:3] == ("video_note", 1, audio)
    assert api.violations == []


async def test_a_client_sends_voice_notes_as_ogg_opus_only(api: LocalBotAPI) -> None:
    user = api.user(USER_ID)
    with pytest.raises(ValueError, match="OGG/Opus"):
        await user.send_voice(make_voice(1, fmt="m4a"))
    # A broken or hostile client: any bytes with a claimed duration (what the bot must survive).
    message_id = await user.send_voice(b"junk", duration=7)
    sent = api.message(USER_ID, message_id)
    assert sent.kind == "voice" and sent.extra["voice"]["duration"] == 7 and sent.file is not None
