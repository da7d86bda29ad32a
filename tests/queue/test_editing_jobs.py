"""Edits and live previews through real RQ workers on the tiny bundle: a region the segmentation
model does not find fails once with its own reason (never retried), an edit of a region it finds
is done, and a running job's progress events carry previews stored under ``keys.preview``."""

from __future__ import annotations

import io

import redis
from PIL import Image

from bot.queue import JobQueue
from contract import keys
from contract.events import DoneEvent, EventType, FailedEvent, FailureReason, ProgressEvent
from contract.spec import Mode
from devkit.faults import slow_marker
from tests.queue.conftest import TEST_SIZE, Collector, WorkerPool, new_spec

GREY = (128, 128, 128)
"""Nothing in it: the tiny CLIPSeg finds no cat (tests/worker/test_editing.py)."""


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def gradient(size: tuple[int, int]) -> Image.Image:
    w, h = size
    image = Image.new("RGB", size)
    image.putdata([(x * 255 // w, y * 255 // h, 128) for y in range(h) for x in range(w)])
    return image


async def test_an_edit_whose_region_is_not_found_fails_once_with_its_reason(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    blob = await job_queue.put_blob(png(Image.new("RGB", (512, 256), GREY)))
    spec = new_spec("a tiger", mode=Mode.EDIT, region="the cat", inputs=(blob,))
    await job_queue.submit(spec)
    end = await collector.wait_terminal(spec.job_id)
    assert isinstance(end, FailedEvent) and end.failure.reason is FailureReason.REGION_NOT_FOUND
    record = await job_queue.job(spec.job_id)
    assert record is not None and record.attempts == 1 and record.reason == FailureReason.REGION_NOT_FOUND
    assert record.error is not None and "'the cat'" in record.error


async def test_edit_and_zoom_jobs_are_done_like_any_other(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector
) -> None:
    blob = await job_queue.put_blob(png(gradient(TEST_SIZE)))
    edit = new_spec("a stormy sky", mode=Mode.EDIT, region="the sky", inputs=(blob,))
    zoom = new_spec("", mode=Mode.ZOOM_OUT, zoom=1.5, inputs=(blob,))
    for spec in (edit, zoom):
        await job_queue.submit(spec)
    for spec in (edit, zoom):
        end = await collector.wait_terminal(spec.job_id)
        assert isinstance(end, DoneEvent), end
        assert [(f.width, f.height) for f in end.result.files] == [TEST_SIZE]


async def test_progress_events_carry_live_previews(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    # 6 decoder steps: the default interval (5) offers one at step 5; each step sleeps a little so
    # the side thread publishes it before the job ends.
    spec = new_spec(f"{slow_marker(0.2)}a red cube", steps=6)
    await job_queue.submit(spec)
    end = await collector.wait_terminal(spec.job_id)
    assert end.type is EventType.DONE
    progress = [e for e in collector.of(spec.job_id, EventType.PROGRESS) if isinstance(e, ProgressEvent)]
    with_preview = [e.progress for e in progress if e.progress.preview]
    assert with_preview, [(e.progress.stage, e.progress.step) for e in progress]
    first = with_preview[0]
    assert first.preview == keys.preview(spec.job_id) and first.stage == "decoder" and first.step >= 5
    data = redis_client.get(keys.preview(spec.job_id))
    assert data is not None and redis_client.ttl(keys.preview(spec.job_id)) > 0
    with Image.open(io.BytesIO(data)) as preview:  # type: ignore[arg-type]
        assert preview.format == "JPEG" and preview.size == (TEST_SIZE[0] // 2, TEST_SIZE[1] // 2)
    assert not any(e.progress.preview for e in progress if e.progress.stage == "prior")
