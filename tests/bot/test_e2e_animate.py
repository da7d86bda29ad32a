"""/animate end to end: the dialog and its refusals (no worker), then a real animation through the
worker on the tiny bundle, delivered by sendAnimation to the local Bot API server, and a cancel
between its frames. The bot's settings are the harness's (512 px, 2 steps: a strength of 0.4 leaves
no img2img step, so the frames are the moved first frame: seconds of CPU)."""

from __future__ import annotations

import json

from contract import keys
from contract.animation import job_timeout_s
from contract.queue import JOB_TIMEOUT_S
from contract.spec import JobSpec, Mode
from contract.stats import utc_day
from devkit.faults import slow_marker
from tests.bot.conftest import Harness, press
from worker.engine.animation.encode import probe

CAMERAS = ["🔍 Zoom in", "🔭 Zoom out", "⬅️ Pan left", "➡️ Pan right", "🌀 Spin", "🚀 3D flight", "✖️ Cancel"]


def labels(message: object) -> list[str]:
    return [b["text"] for b in getattr(message, "inline_buttons", [])]


async def test_the_dialog_asks_prompt_camera_and_length_and_refuses_clearly(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/animate")
    await h.wait_text(user, "What should the animation show?")
    before = h.count(user)
    await user.send_text("0: a quiet forest | the forest on fire")
    await h.wait_text(user, "“the forest on fire” has no second", after=before)
    before = h.count(user)
    await user.send_text("0: a quiet forest | 3: the forest on fire")
    cameras = await h.wait_text(user, "How should the camera move?", after=before)
    assert labels(cameras) == CAMERAS
    await press(h, user, cameras, "🚀 3D flight", expect="How long should it be?")
    lengths = h.api.message(cameras.chat_id, cameras.message_id)
    assert labels(lengths) == [f"{s} s" for s in range(2, 9)] + ["✖️ Cancel"]
    before = h.count(user)
    await press(h, user, lengths, "2 s")
    await h.wait_text(user, "The prompt at 3 s starts after the 2 s animation ends", after=before)
    assert not await h.queue.user_jobs(user.user_id), "nothing was queued"
    before = h.count(user)
    await press(h, user, lengths, "4 s")
    await h.wait_text(user, "in the queue", after=before)
    [job_id] = await h.queue.user_jobs(user.user_id)
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None
    spec: JobSpec = record.spec
    assert spec.mode is Mode.ANIMATE and spec.prompt == "0: a quiet forest | 3: the forest on fire"
    assert spec.animation is not None and (spec.animation.frames, spec.animation.fps) == (48, 12)
    assert spec.animation.camera.value == "flight_3d" and spec.animation.uses_depth
    assert (spec.width, spec.height, spec.num_images) == (512, 512, 1)
    assert int(await h.redis.hget(f"rq:job:{job_id}", "timeout") or 0) == job_timeout_s(JOB_TIMEOUT_S, 48)
    assert labels(h.api.message(lengths.chat_id, lengths.message_id)) == [], "its buttons are gone"
    # A dialog left with /cancel: its buttons start nothing.
    before = h.count(user)
    await user.send_text("/animate a lighthouse")
    left = await h.wait_text(user, "How should the camera move?", after=before)
    await user.send_text("/cancel")
    await h.wait_text(user, "Cancelled", after=before)
    query = await user.press(left, button_text="🔍 Zoom in")
    await h.api.wait_for(lambda: h.api.callback_queries[query].answered, timeout=10)
    expired = "This animation request has expired. Send /animate again."
    assert h.api.callback_queries[query].answer_text == expired and h.api.callback_queries[query].show_alert
    assert len(await h.queue.user_jobs(user.user_id)) == 1


async def test_a_bad_prompt_list_is_refused_in_the_user_s_language(harness: Harness) -> None:
    h = harness
    user = h.user(language_code="ru")
    await user.send_text("/animate 2: лес | 4: пожар")
    await h.wait_text(user, "Первый промпт начинается на 2 с, а должен — на 0.")
    await user.send_text("/animate 0: лес | 3: пожар | 1: дождь")
    await h.wait_text(user, "Промпт на 1 с идёт после промпта на 3 с")
    assert not await h.queue.user_jobs(user.user_id)


async def test_an_animation_arrives_by_send_animation_with_its_buttons(live: Harness) -> None:
    h = live
    user = h.user()
    # Slow steps leave time for the frame edits.
    await h.order_animation(user, f"{slow_marker(0.25)}a quiet forest", "🔍 Zoom in", "2 s")
    result = await h.wait_result(user, kind="animation")
    [job_id] = await h.jobs_of(user)
    assert result.method == "sendAnimation" and result.file is not None
    info = probe(result.file.data)
    assert (info.codec, info.pix_fmt, info.has_audio) == ("h264", "yuv420p", False)
    assert (info.width, info.height, info.frames, info.fps) == (512, 512, 24, 12.0)
    caption = result.caption or ""
    assert "Animation" in caption and "a quiet forest" in caption and "Seed: " in caption
    assert "🎞 🔍 Zoom in · 2 s · 24 frames at 12 fps" in caption
    assert labels(result) == ["🔄 Again", "🎯 Same seed", "📎 As a file"]
    assert result.extra["animation"]["duration"] == 2
    # The status message counted frames, then went.
    assert any("Animating… frame" in (m.text or "") for m in h.api.messages_to(user.chat_id)
               for m in [m, *m.edits])
    # 24 frames count two requests of the day (ANIMATION_FRAMES_PER_REQUEST = 12).
    record = await h.queue.job(job_id)
    assert record is not None and record.created_at is not None
    day = await h.redis.get(keys.quota_day(user.user_id, utc_day(record.created_at)))
    assert int(day or 0) == 2
    before = h.count(user)
    await press(h, user, result, "📎 As a file")
    document = await h.wait_result(user, kind="document", after=before)
    assert document.file is not None and document.file.data == result.file.data
    assert (document.document or {}).get("file_name") == f"kandinsky-{job_id}.mp4"
    assert [m.kind for m in h.bot_messages(user)].count("animation") == 1
    stored = json.loads(await h.redis.hget(keys.job(job_id), "result") or "{}")
    assert [f["kind"] for f in stored["files"]] == ["animation_mp4"]


async def test_an_animation_cancelled_between_frames_sends_nothing(live: Harness) -> None:
    h = live
    user = h.user()
    await h.order_animation(user, f"{slow_marker(0.5)}a harbour at dawn", "🌀 Spin", "8 s")
    status = await h.wait_text(user, "Animating… frame", timeout=120)
    await press(h, user, h.api.message(status.chat_id, status.message_id), "✖️ Cancel")
    await h.wait_text(user, "The request was cancelled", timeout=60)
    [job_id] = await h.jobs_of(user)
    assert (await h.redis.hget(keys.job(job_id), "status") or b"").decode() == "cancelled"
    assert not [m for m in h.bot_messages(user) if m.kind == "animation"]
