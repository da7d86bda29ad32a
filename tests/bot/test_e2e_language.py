"""Prompts as people write and say them, end to end: the real bot, the local Bot API server and a real
worker with the tiny translation and speech models. Russian prompts reach the model translated while
the caption keeps the user's words; voice messages are transcribed, confirmed, then drawn; bad
recordings are refused with nothing queued for generation."""

from __future__ import annotations

from contract import keys
from contract.events import JobResult
from contract.language import PromptTranslation, TranslationStatus
from contract.queue import QUICK_QUEUE, F
from contract.spec import JobSpec
from devkit.audio import make_voice
from devkit.botapi.models import SentMessage
from tests.bot.conftest import Harness, press
from tests.bot.images import photo

RU = "рыжая лиса в заснеженном лесу"
TRANSCRIPTION_TIMEOUT_S = 90.0
"""The tiny Whisper takes about a second on a free CPU; the suite shares two cores."""


async def _record(h: Harness, job_id: str) -> dict[str, str]:
    raw = await h.redis.hgetall(keys.job(job_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def _only_job(h: Harness, user_id_of: object) -> dict[str, str]:
    jobs = await h.jobs_of(user_id_of)  # type: ignore[arg-type]
    assert len(jobs) == 1, jobs
    return await _record(h, jobs[0])


def _heard(m: SentMessage) -> bool:
    return any(b.get("text") == "🎨 Draw it" for b in m.inline_buttons)


async def test_russian_prompt_is_translated_and_the_caption_keeps_it(live: Harness) -> None:
    user = live.user()
    await user.send_text(RU)
    result = await live.wait_result(user)
    assert RU in (result.caption or "")
    record = await _only_job(live, user)
    translation = PromptTranslation.model_validate_json(record[F.TRANSLATION])
    assert translation.prompt is not None
    assert translation.prompt.status is TranslationStatus.TRANSLATED and translation.prompt.language == "ru"
    assert translation.prompt.text and translation.prompt.text != RU  # the tiny Marian's own English
    assert JobSpec.from_json(record[F.SPEC]).prompt == RU  # the record keeps the user's words
    assert JobResult.model_validate_json(record[F.RESULT]).translation == translation
    # "What the model read" shows exactly that translation.
    after = live.count(user)
    await press(live, user, result, "🔤 What the model read")
    shown = await live.wait_text(user, "The model read this English translation", after=after)
    assert translation.prompt.text.split()[0] in (shown.text or "")

    # "Again" carries the translation: the new job's spec holds it and the model reads the same.
    after = live.count(user)
    await press(live, user, result, "🔄 Again")
    await live.wait_result(user, after=after)
    jobs = [await _record(live, j) for j in await live.jobs_of(user)]
    again = next(r for r in jobs if JobSpec.from_json(r[F.SPEC]).translation is not None)
    assert JobSpec.from_json(again[F.SPEC]).translation == translation
    assert PromptTranslation.model_validate_json(again[F.TRANSLATION]) == translation


async def test_english_prompt_is_not_touched(live: Harness) -> None:
    user = live.user()
    await user.send_text("a red fox in a snowy forest")
    result = await live.wait_result(user)
    record = await _only_job(live, user)
    translation = PromptTranslation.model_validate_json(record[F.TRANSLATION])
    assert translation.prompt is not None and translation.prompt.status is TranslationStatus.ENGLISH
    assert translation.prompt.text == "a red fox in a snowy forest"
    assert "🔤 What the model read" not in [b["text"] for b in result.inline_buttons]


async def test_a_language_the_model_cannot_translate_is_said(live: Harness) -> None:
    user = live.user(language_code="ru")
    await user.send_text("їжак у тумані")
    result = await live.wait_result(user)
    assert "їжак у тумані" in (result.caption or "")
    assert "С языка uk я пока не перевожу" in (result.caption or "")
    record = await _only_job(live, user)
    translation = PromptTranslation.model_validate_json(record[F.TRANSLATION])
    assert translation.prompt is not None and translation.prompt.status is TranslationStatus.UNSUPPORTED


async def test_voice_message_is_transcribed_then_drawn(live: Harness) -> None:
    user = live.user()
    voice_id = await user.send_voice(make_voice(2))
    sent = live.api.message(user.chat_id, voice_id)
    assert sent.extra["voice"]["duration"] == 2 and sent.extra["voice"]["mime_type"] == "audio/ogg"
    heard = await live.wait_message(user, _heard, timeout=TRANSCRIPTION_TIMEOUT_S)
    assert (heard.text or "").startswith("I heard:")
    assert await live.jobs_of(user) == []  # nothing queued for generation before the button
    words = (heard.text or "").split("I heard:", 1)[1].split("\n", 1)[0].strip()
    # Pressed twice before the bot answers: drawn once, the second press is told so.
    first = await user.press(heard, button_text="🎨 Draw it")
    second = await user.press(heard, button_text="🎨 Draw it")
    await live.api.wait_for(lambda: live.api.callback_queries[second].answered, timeout=20)
    assert live.api.callback_queries[first].answered
    assert live.api.callback_queries[second].answer_text == "Already on its way."
    result = await live.wait_result(user)
    assert words in (result.caption or "")
    assert result.reply_to_message_id == voice_id
    record = await _only_job(live, user)
    assert JobSpec.from_json(record[F.SPEC]).prompt == words
    assert not live.api.message(heard.chat_id, heard.message_id).inline_buttons


async def test_voice_fills_the_prompt_step_of_a_dialog(live: Harness) -> None:
    user = live.user()
    await user.send_text("/blend")
    await live.wait_text(user, "photo")
    await user.send_photo(photo(320, 320))
    await live.wait_text(user, "text")
    await user.send_voice(make_voice(1.5))
    heard = await live.wait_message(user, _heard, timeout=TRANSCRIPTION_TIMEOUT_S)
    await press(live, user, heard, "🎨 Draw it")
    await live.wait_result(user)
    spec = JobSpec.from_json((await _only_job(live, user))[F.SPEC])
    assert spec.mode.value == "blend" and spec.prompt and len(spec.inputs) == 1


async def test_voice_edit_then_typed_text_is_the_prompt(live: Harness) -> None:
    user = live.user()
    await user.send_voice(make_voice(1))
    heard = await live.wait_message(user, _heard, timeout=TRANSCRIPTION_TIMEOUT_S)
    after = live.count(user)
    await press(live, user, heard, "✏️ Edit the text")
    await live.wait_text(user, "Send me the text as it should be", after=after)
    await user.send_text("a blue whale")
    result = await live.wait_result(user, after=after)
    assert "a blue whale" in (result.caption or "")


async def test_bad_recordings_are_refused_and_nothing_is_queued(live: Harness) -> None:
    user = live.user()
    # Undecodable bytes (a broken client), decided by the worker.
    await user.send_voice(b"this is not audio" * 20, duration=3)
    await live.wait_text(user, "I couldn't play this recording", timeout=TRANSCRIPTION_TIMEOUT_S)
    # Silence, decided by the worker on the decoded samples.
    await user.send_voice(make_voice(2, "silence"))
    await live.wait_text(user, "I couldn't hear anything", timeout=TRANSCRIPTION_TIMEOUT_S)
    # Zero length and over the limit: refused at once, no transcription queued, nothing downloaded.
    before = live.count(user)
    await user.send_voice(b"", duration=0)
    await live.wait_text(user, "I couldn't hear anything", after=before)
    await user.send_audio(make_voice(1, fmt="m4a"), duration=61)
    await live.wait_text(user, "I listen to 60 seconds at most", after=before)
    assert await live.jobs_of(user) == []
    voice_records = [k async for k in live.redis.scan_iter(match="kb:voice:v*")]
    owned = [k for k in voice_records if int(await live.redis.hget(k, "user_id") or 0) == user.user_id]
    assert len(owned) == 2  # the two the worker refused; the last two never became jobs


async def test_voice_where_no_prompt_is_wanted_is_not_taken(live: Harness) -> None:
    user = live.user()
    await user.send_text("/mix")
    await live.wait_text(user, "photo")
    after = live.count(user)
    await user.send_voice(make_voice(1))
    reply = await live.wait_message(user, lambda m: m.kind == "text", after=after)
    assert "photo" in (reply.text or "")
    assert not [k async for k in live.redis.scan_iter(match="kb:voice:v*")
                if int(await live.redis.hget(k, "user_id") or 0) == user.user_id]


async def test_a_voice_message_during_maintenance_is_refused_and_nothing_is_queued(live: Harness) -> None:
    """Transcriptions are admitted like jobs: maintenance (and a ban) refuse them in the same script
    call that would have stored the recording and queued it."""
    user = live.user()

    async def voice_records() -> int:
        return len([k async for k in live.redis.scan_iter(match=keys.voice("*"))])

    before = await voice_records()
    await live.redis.set(keys.MAINTENANCE, "1:0")
    try:
        await user.send_voice(make_voice(1))
        await live.wait_text(user, "under maintenance")
        assert await voice_records() == before
        assert await live.redis.llen(keys.rq_queue(QUICK_QUEUE)) == 0
        assert not await live.redis.exists(keys.voice_busy(user.user_id))  # the next one may go
    finally:
        await live.redis.delete(keys.MAINTENANCE)
    await user.send_voice(make_voice(1))
    await live.wait_message(user, _heard, timeout=TRANSCRIPTION_TIMEOUT_S)
