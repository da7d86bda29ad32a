"""Delivery details the tiny worker does not exercise: a progress preview on the status message.

The test plays the worker's part on the events stream (the same contract.queue.add_event a
worker uses), so the bot's consumer, throttling and Telegram calls are the real ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

from contract import events as ev
from contract.queue import add_event
from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer
from tests.bot.conftest import Harness, running_harness
from tests.bot.images import open_image, png


async def emit(h: Harness, event: ev.Event) -> None:
    async with h.redis.pipeline(transaction=True) as pipe:
        add_event(pipe, event)
        await pipe.execute()


async def test_progress_preview_replaces_the_text_status(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("a harbour at dawn")
    status = await h.wait_text(user, "in the queue")
    [job_id] = await h.queue.user_jobs(user.user_id)

    def progress(seq: int, stage: str, step: int, preview: str | None = None) -> ev.Event:
        return ev.ProgressEvent(job_id=job_id, chat_id=user.chat_id, user_id=user.user_id,
                                progress=ev.Progress(stage=stage, step=step, total=4, seq=seq, worker="w1",
                                                     preview=preview))

    await emit(h, progress(1, "prior", 1))  # the job's first step: too young for an edit
    await asyncio.sleep(h.settings.progress_edit_interval_s + 0.1)
    await emit(h, progress(2, "prior", 2))
    await h.api.wait_for(
        lambda: "prior: 2/4" in (h.api.message(status.chat_id, status.message_id).text or ""), timeout=10)
    assert not any("1/4" in (v.text or "") for v in h.api.message(status.chat_id, status.message_id).edits)

    preview_key = await h.queue.put_blob(png(64, 64))
    await emit(h, progress(3, "decoder", 2, preview=preview_key))
    photo_status = await h.wait_result(user, kind="photo", timeout=10)
    assert "decoder: 2/4" in (photo_status.caption or "")
    assert open_image(photo_status.photo_bytes or b"").size == (64, 64)
    assert [b["text"] for b in photo_status.inline_buttons] == ["✖️ Cancel"]
    await h.api.wait_for(lambda: h.api.message(status.chat_id, status.message_id).deleted, timeout=10)

    await emit(h, progress(4, "decoder", 4))
    await h.api.wait_for(
        lambda: "decoder: 4/4" in (h.api.message(user.chat_id, photo_status.message_id).caption or ""),
        timeout=10)

    # Cancelled: the photo status goes, the news comes as text.
    await h.queue.cancel(job_id, user.user_id)
    await h.wait_text(user, "The request was cancelled")
    await h.api.wait_for(lambda: h.api.message(user.chat_id, photo_status.message_id).deleted, timeout=10)


async def test_progress_edits_are_throttled_and_failures_explained(harness: Harness) -> None:
    h = harness
    user = h.user(language_code="ru")
    await user.send_text("башня")
    status = await h.wait_text(user, "в очереди")
    [job_id] = await h.queue.user_jobs(user.user_id)
    ids: dict[str, Any] = {"job_id": job_id, "chat_id": user.chat_id, "user_id": user.user_id}
    for step in range(1, 31):
        await emit(h, ev.ProgressEvent(**ids, progress=ev.Progress(stage="decoder", step=step, total=30,
                                                                   seq=step, worker="w1")))
        if step == 1:  # the job's first step: it has to run one edit interval before it is shown
            await asyncio.sleep(h.settings.progress_edit_interval_s + 0.1)
    await h.api.wait_for(
        lambda: "30/30" in (h.api.message(status.chat_id, status.message_id).text or ""), timeout=10)
    edits = [c for c in h.api.calls if c.method == "editMessageText"]
    assert 1 <= len(edits) < 30
    gone = ev.Failure(reason=ev.FailureReason.INPUT_EXPIRED, message="blob gone")
    await emit(h, ev.FailedEvent(**ids, failure=gone))
    await h.api.wait_for(
        lambda: "устарела" in (h.api.message(status.chat_id, status.message_id).text or ""), timeout=10)


async def test_a_job_done_within_the_edit_interval_gets_no_progress_edit(
        botapi: LocalBotAPI, idle_redis: RedisServer) -> None:
    """Its result (here its failure) follows at once: an edit and a chat action would be calls the
    user never reads, each one of the bot-wide ~30 a second."""
    async with running_harness(botapi, idle_redis.url, BOT_PROGRESS_EDIT_INTERVAL=30) as h:
        user = h.user()
        await user.send_text("a quick sketch")
        status = await h.wait_text(user, "in the queue")
        [job_id] = await h.queue.user_jobs(user.user_id)
        ids: dict[str, Any] = {"job_id": job_id, "chat_id": user.chat_id, "user_id": user.user_id}
        for step in range(1, 5):  # every stage's last step would force an edit in an older job
            stage, at = ("prior", step) if step <= 2 else ("decoder", step - 2)
            await emit(h, ev.ProgressEvent(**ids, progress=ev.Progress(stage=stage, step=at, total=2,
                                                                       seq=step, worker="w1")))
        gone = ev.Failure(reason=ev.FailureReason.INPUT_EXPIRED, message="blob gone")
        await emit(h, ev.FailedEvent(**ids, failure=gone))
        await h.api.wait_for(
            lambda: "expired" in (h.api.message(status.chat_id, status.message_id).text or ""), timeout=10)
        edits = [c for c in h.api.calls if c.method == "editMessageText"
                 and int(c.params.get("chat_id", 0)) == user.chat_id]
        assert len(edits) == 1, [c.params.get("text") for c in edits]  # the failure, no progress before it
        assert not [a for a in h.api.chat_actions if a[0] == user.chat_id]


async def test_a_refused_photo_arrives_as_a_file(harness: Harness) -> None:
    h = harness
    user, job_id = await h.queued_by_new_user("a tall tower")
    key = await h.queue.put_blob(png(512, 512))
    result = ev.JobResult(job_id=job_id, seed=7, seeds=[7], files=[
        ev.ResultFile(key=key, format="png", width=512, height=512, kind=ev.FileKind.PHOTO, index=0)])
    h.api.inject("sendPhoto", error_code=400, description="Bad Request: PHOTO_INVALID_DIMENSIONS")
    await emit(h, ev.DoneEvent(job_id=job_id, chat_id=user.chat_id, user_id=user.user_id, result=result))
    doc = await h.wait_result(user, kind="document", timeout=20)
    assert "Seed: <code>7</code>" not in (doc.caption or "") and "Seed: 7" in (doc.caption or "")
    assert "🔄 Again" in [b["text"] for b in doc.inline_buttons]
    assert open_image(doc.document_bytes or b"").size == (512, 512)
