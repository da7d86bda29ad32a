"""/video end to end: a prompt becomes a Kandinsky 5.0 Video clip through the real worker on the tiny
bundle, delivered by sendVideo (streamable) to the local Bot API server, whatever model the user
picked for pictures; Russian goes to the model untranslated; the quota counts the video's seconds."""

from __future__ import annotations

import asyncio
import json
import subprocess

from bot.services.user_settings import SettingsStore, UserSettings
from contract import keys
from contract.families import Family
from contract.spec import Mode
from contract.stats import utc_day
from contract.video import IMAGE_TO_VIDEO, video_checkpoint
from devkit.audio import make_voice
from devkit.botapi import LocalBotAPI
from devkit.faults import slow_marker
from devkit.redis_server import RedisServer
from tests.bot.conftest import Harness, press, running_harness
from tests.bot.images import photo
from tests.bot.test_e2e_language import TRANSCRIPTION_TIMEOUT_S
from worker.engine.animation.encode import probe


def labels(message: object) -> list[str]:
    return [b["text"] for b in getattr(message, "inline_buttons", [])]


async def test_a_video_arrives_by_send_video_with_its_buttons(live: Harness) -> None:
    h = live
    user = h.user()
    await SettingsStore(h.redis).save(user.user_id, UserSettings(model=Family.SDXL, aspect="16:9"))
    await user.send_text("/video")
    await h.wait_text(user, "What should the video show?")
    # Slow steps: the status counts them once the job has run one edit interval.
    await user.send_text(f"{slow_marker(0.05)}a cat dancing in the rain")
    result = await h.wait_result(user, kind="video")
    [job_id] = await h.jobs_of(user)
    assert result.method == "sendVideo" and result.file is not None
    assert result.extra["supports_streaming"] is True and result.extra["video"]["duration"] == 5
    info = probe(result.file.data)
    frames = video_checkpoint("distilled16steps", 5).frames(1)  # the harness worker's 1 fps
    assert (info.codec, info.pix_fmt, info.width, info.height, info.frames) == ("h264", "yuv420p", 512, 288,
                                                                                frames)
    caption = result.caption or ""
    assert "Video" in caption and "a cat dancing in the rain" in caption and "Kandinsky 5.0" in caption
    assert "🎬 5 s" in caption
    assert labels(result) == ["🔄 Again", "🎯 Same seed", "📎 As a file"]
    # It ran on Kandinsky 5.0 though the user draws pictures with SDXL, and counted five requests.
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None and record.spec.model is Family.KANDINSKY5
    assert record.created_at is not None
    day = await h.redis.get(keys.quota_day(user.user_id, utc_day(record.created_at)))
    assert int(day or 0) == 5
    # The status message counted the model's steps and showed the first frame forming (a photo whose
    # caption counts), then went.
    steps = video_checkpoint("distilled16steps", 5).steps
    statuses = [v for m in h.api.messages_to(user.chat_id) for v in [m, *m.edits]]
    assert any(f"Filming… step {steps}/{steps}" in (v.text or v.caption or "") for v in statuses)
    assert any(m.kind == "photo" and "Filming…" in (m.caption or "") for m in h.api.messages_to(user.chat_id))
    before = h.count(user)
    await press(h, user, result, "📎 As a file")
    document = await h.wait_result(user, kind="document", after=before)
    assert document.file is not None and document.file.data == result.file.data
    stored = json.loads(await h.redis.hget(keys.job(job_id), "result") or "{}")
    assert [f["kind"] for f in stored["files"]] == ["video_mp4"]
    assert h.api.violations == []


async def test_a_russian_prompt_reaches_the_video_model_as_written(live: Harness) -> None:
    h = live
    user = h.user(language_code="ru")
    await user.send_text("/video кот танцует под дождём")
    result = await h.wait_result(user, kind="video")
    caption = result.caption or ""
    assert "кот танцует под дождём" in caption
    assert "Kandinsky 5.0 Video сам понимает язык ru: промпт ушёл ему как есть, без перевода." in caption
    [job_id] = await h.jobs_of(user)
    record = await h.queue.job(job_id)
    assert record is not None and record.result is not None and record.result.translation is not None
    assert record.result.translation.prompt is not None
    assert record.result.translation.prompt.text == "кот танцует под дождём"


async def test_model_offers_only_families_that_draw_pictures(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/model")
    menu = await h.wait_message(user, lambda m: bool(m.inline_buttons))
    shown = " | ".join(labels(menu))
    assert "Kandinsky 3.0" in shown and "SDXL" in shown and "Kandinsky 5.0 Image" in shown, shown
    assert "Kandinsky 5.0 Video" not in shown, shown


async def test_make_it_move_turns_a_picture_into_a_video_of_its_shape(live: Harness) -> None:
    h = live
    user = h.user()
    await SettingsStore(h.redis).save(user.user_id, UserSettings(aspect="9:16"))
    await user.send_text("/imagine a lighthouse in a storm")
    picture = await h.wait_result(user)
    before = h.count(user)
    await press(h, user, picture, "🎬 Make it move")
    ask = await h.wait_text(user, "What should happen in the video?", after=before)
    assert labels(ask) == ["▶️ Start", "✖️ Cancel"]
    assert len(await h.jobs_of(user)) == 1  # only the picture's: nothing queued before the answer
    await press(h, user, ask, "▶️ Start")
    result = await h.wait_result(user, kind="video", after=before)
    info = probe(result.file.data if result.file is not None else b"")
    assert (info.width, info.height) == (288, 512) and info.frames == IMAGE_TO_VIDEO.frames(1)
    caption = result.caption or ""
    assert "Moving picture" in caption and "a lighthouse in a storm" in caption and "🎬 5 s" in caption
    moving = [j for j in await h.jobs_of(user) if (r := await h.queue.job(j)) is not None
              and r.spec is not None and r.spec.mode is Mode.IMAGE2VIDEO]
    assert len(moving) == 1
    record = await h.queue.job(moving[0])
    assert record is not None and record.spec is not None and record.spec.model is Family.KANDINSKY5
    assert record.spec.aspect == "9:16" and record.spec.seconds == 5 and len(record.spec.inputs) == 1
    assert h.api.message(ask.chat_id, ask.message_id).inline_buttons == []  # started once only


async def test_make_it_move_with_words_a_stale_start_and_another_user_s_press(live: Harness) -> None:
    h = live
    user, other = h.user(language_code="ru"), h.user()
    await user.send_text("/imagine a lighthouse in a storm")
    picture = await h.wait_result(user)
    before = h.count(user)
    await press(h, user, picture, "🎬 Оживить")
    ask = await h.wait_text(user, "Что должно происходить в видео?", after=before)
    # Someone else's press on this picture is refused and opens no dialog of theirs.
    stranger = await other.press(h.api.message(picture.chat_id, picture.message_id), button_text="🎬 Оживить")
    await h.api.wait_for(lambda: h.api.callback_queries[stranger].answered, timeout=10)
    assert h.api.callback_queries[stranger].answer_text and not await h.jobs_of(other)
    # A photo is not words: the dialog asks for text and keeps the picture.
    await user.send_photo(photo(320, 320))
    await h.wait_text(user, "Здесь нужен текст", after=before)
    words = f"{slow_marker(0.5)}волны разбиваются о маяк, камера медленно приближается"
    await user.send_text(words)
    # The words are the video's prompt (the clip itself is the start button's test above: this one is
    # cancelled while it films, its steps slowed so the press comes first).
    status = await h.wait_text(user, "Снимаю… шаг", after=before, timeout=120)
    moving = [r for j in await h.jobs_of(user) if (r := await h.queue.job(j)) is not None
              and r.spec is not None and r.spec.mode is Mode.IMAGE2VIDEO]
    assert [(r.spec.prompt, r.spec.inputs != ()) for r in moving if r.spec is not None] == [(words, True)]
    await press(h, user, h.api.message(status.chat_id, status.message_id), "✖️ Отменить")
    await h.wait_text(user, "Запрос отменён", after=before, timeout=60)
    # The dialog ended with the words: its start button is stale now, and queues nothing.
    stale = await user.press(h.api.message(ask.chat_id, ask.message_id), button_text="▶️ Начать")
    await h.api.wait_for(lambda: h.api.callback_queries[stale].answered, timeout=10)
    assert "устарело" in (h.api.callback_queries[stale].answer_text or "")
    assert len([j for j in await h.jobs_of(user)]) == 2


async def test_where_ten_seconds_are_offered_video_asks_the_length_and_refuses_a_stale_button(
        botapi: LocalBotAPI, bot_redis: RedisServer, worker_process: subprocess.Popen[bytes]) -> None:
    async with running_harness(botapi, bot_redis.url, VIDEO_SECONDS=10) as h:
        user = h.user()
        await user.send_text("/video a lighthouse in a storm")
        ask = await h.wait_text(user, "How long should the video be?")
        assert labels(ask) == ["5 s", "10 s", "✖️ Cancel"]
        assert not await h.queue.user_jobs(user.user_id)  # nothing queued before the length
        await press(h, user, ask, "10 s")
        result = await h.wait_result(user, kind="video")
        assert result.extra["video"]["duration"] == 10 and "🎬 10 s" in (result.caption or "")
        assert probe(result.file.data if result.file else b"").frames == video_checkpoint("distilled16steps",
                                                                                           10).frames(1)
        [job_id] = await h.jobs_of(user)
        record = await h.queue.job(job_id)
        assert record is not None and record.spec is not None and record.spec.seconds == 10
        assert h.api.message(ask.chat_id, ask.message_id).inline_buttons == []  # pressed once only
        # A length button of a dialog that is gone (cancelled) is refused, and nothing is queued.
        await user.send_text("/video a red fox")
        again = await h.wait_text(user, "How long should the video be?", after=h.count(user) - 1)
        await user.send_text("/cancel")
        await h.wait_text(user, "Cancelled", after=h.count(user) - 1)
        stale = await user.press(h.api.message(again.chat_id, again.message_id), button_text="5 s")
        await h.api.wait_for(lambda: h.api.callback_queries[stale].answered, timeout=10)
        assert "This video request has expired" in (h.api.callback_queries[stale].answer_text or "")
        assert len(await h.jobs_of(user)) == 1
        # A spoken prompt asks the length too, after "Draw it".
        await user.send_text("/video")
        await h.wait_text(user, "What should the video show?", after=h.count(user) - 1)
        await user.send_voice(make_voice(1.5))
        heard = await h.wait_message(user, lambda m: (m.text or "").startswith("I heard:"),
                                     timeout=TRANSCRIPTION_TIMEOUT_S)
        asked = h.count(user)
        await press(h, user, heard, "🎨 Draw it")
        spoken = await h.wait_text(user, "How long should the video be?", after=asked)
        assert labels(spoken) == ["5 s", "10 s", "✖️ Cancel"] and len(await h.jobs_of(user)) == 1
    assert worker_process.poll() is None


async def test_a_video_cancelled_while_filming_is_answered_once_and_sends_no_video(live: Harness) -> None:
    h = live
    user = h.user()
    await user.send_text(f"/video {slow_marker(0.5)}a harbour at dawn")
    status = await h.wait_text(user, "Filming… step", timeout=120)
    await press(h, user, h.api.message(status.chat_id, status.message_id), "✖️ Cancel")
    await h.wait_text(user, "The request was cancelled", timeout=60)
    [job_id] = await h.jobs_of(user)
    assert (await h.redis.hget(keys.job(job_id), "status") or b"").decode() == "cancelled"
    await asyncio.sleep(2)  # a late result would arrive by now: the worker stops at the next step
    texts = [v.text or v.caption or "" for m in h.api.messages_to(user.chat_id) for v in [m, *m.edits]]
    assert sum("The request was cancelled" in text for text in texts) == 1
    assert not [m for m in h.bot_messages(user) if m.kind == "video"]
