"""Enqueue → real worker process (tiny bundle, CPU) → events stream → consumer → ack."""

from __future__ import annotations

import io

import redis
from PIL import Image
from rq.job import Job
from rq.job import JobStatus as RQJobStatus

from bot.queue import CancelOutcome, JobQueue, JobStatus
from contract import keys
from contract.events import (
    DoneEvent,
    Event,
    EventType,
    FailedEvent,
    FailureReason,
    FileKind,
    Progress,
    ProgressEvent,
)
from contract.spec import Mode
from tests.queue.conftest import TEST_SIZE, Collector, WorkerPool, new_spec, stream_events, wait_until

STAGE_ORDER = {"prior": 0, "decoder": 1}


def progress_of(events: list[Event]) -> list[Progress]:
    """The progress payloads of events that must all be progress events."""
    assert all(isinstance(e, ProgressEvent) for e in events)
    return [e.progress for e in events if isinstance(e, ProgressEvent)]


async def test_a_job_runs_and_its_result_is_delivered_and_acked(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    spec = new_spec()
    submitted = await job_queue.submit(spec)
    assert submitted.job_id == spec.job_id
    done = await collector.wait_terminal(spec.job_id)
    assert done.type is EventType.DONE and (done.user_id, done.chat_id) == (spec.user_id, spec.chat_id)

    assert isinstance(done, DoneEvent)
    result = done.result
    assert result.job_id == spec.job_id and result.seeds == [spec.seed]
    assert result.worker in workers.names.values()
    assert {"prior", "decoder", "total", "encode", "job", "queue_wait"} <= set(result.timings)
    assert result.timings["job"] >= result.timings["total"] > 0
    [file] = result.files
    data = await job_queue.result_bytes(file.key)
    assert data is not None
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("JPEG", TEST_SIZE)  # WORKER_RESULT_FORMAT's default
    assert (file.format, file.width, file.height) == ("jpeg", *TEST_SIZE)
    assert (file.kind, file.index) == (FileKind.PHOTO, 0)

    record = await job_queue.job(spec.job_id)
    assert record is not None and record.status is JobStatus.DONE
    assert record.result == result and record.attempts == 1 and record.worker == result.worker
    assert record.started_at and record.finished_at and record.finished_at >= record.started_at

    # Acked, marked delivered, and the user's slot is free again.
    await wait_until(lambda: redis_client.xpending(keys.EVENTS_STREAM, keys.EVENTS_GROUP)["pending"] == 0,
                     what="ack")
    assert redis_client.get(keys.delivered(spec.job_id)) == b"done"
    assert await job_queue.user_jobs(spec.user_id) == []
    assert redis_client.llen(keys.DURATIONS) == 1


async def test_progress_events_arrive_in_order_before_the_result(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    spec = new_spec(steps=3, prior_steps=3)
    await job_queue.submit(spec)
    await collector.wait_terminal(spec.job_id)

    # In the stream: every step, in order, then the result.
    stream = stream_events(redis_client)
    mine = [e for e in stream if e.job_id == spec.job_id]
    assert mine[-1].type is EventType.DONE
    progress = progress_of(mine[:-1])
    assert [p.seq for p in progress] == list(range(1, len(progress) + 1))
    order = [(STAGE_ORDER[p.stage], p.step) for p in progress]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert order[-1] == (1, 3) and all(p.total == 3 for p in progress)

    # At the handler: in the same order (newest-only coalescing may skip some), result last.
    handled = collector.of(spec.job_id)
    assert handled[-1].type is EventType.DONE
    seqs = [p.seq for p in progress_of(handled[:-1])]
    assert seqs == sorted(seqs) and len(seqs) >= 1


async def test_cancel_a_running_job_stops_it_at_the_next_step(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector
) -> None:
    spec = new_spec("[fault:slow=0.4] a slow cube", steps=10, prior_steps=10)
    await job_queue.submit(spec)
    await collector.wait_for(spec.job_id, EventType.PROGRESS)
    assert await job_queue.cancel(spec.job_id, spec.user_id + 1) is CancelOutcome.NOT_YOURS
    assert await job_queue.cancel(spec.job_id, spec.user_id) is CancelOutcome.STOPPING
    end = await collector.wait_terminal(spec.job_id, timeout=15)
    assert end.type is EventType.CANCELLED
    record = await job_queue.job(spec.job_id)
    assert record is not None and record.status is JobStatus.CANCELLED and record.result is None
    steps = [p.step for p in progress_of(collector.of(spec.job_id, EventType.PROGRESS))]
    assert max(steps) < 10  # it did not run to the end
    assert await job_queue.cancel(spec.job_id, spec.user_id) is CancelOutcome.ALREADY_FINISHED


RQ_BOOKKEEPING = ("rq:workers", "rq:queues", "rq:wip:", "rq:finished:", "rq:failed:", "rq:canceled:",
                  "rq:deferred:", "rq:scheduled:", "rq:workers:", "rq:executions:")
"""RQ's own indexes: sets of worker and queue names and per-queue registries whose entries carry
their expiry as a score; RQ's maintenance (every second here, 5 s in production) trims them."""
STATS_KEYS = ("kb:stats:jobs:total", "kb:stats:durations:", "kb:stats:families:total")
"""Statistics (contract.stats, issue 5): a fixed set of counter fields and LTRIM-bounded lists."""


RQ_ENDED = (RQJobStatus.FINISHED, RQJobStatus.FAILED, RQJobStatus.CANCELED, RQJobStatus.STOPPED)


async def test_every_key_written_has_a_ttl_or_is_bounded(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    blob = await job_queue.put_blob(b"not an image")
    specs = [
        new_spec(),  # done
        new_spec("[fault:engine-error] a cube"),  # retried, then failed
        new_spec(mode=Mode.VARIATIONS, prompt="", inputs=(blob,)),  # bad input
        new_spec("[fault:slow=0.3] cube", steps=10),  # cancelled while running
    ]
    for spec in specs:
        await job_queue.submit(spec)
    await collector.wait_for(specs[3].job_id, EventType.PROGRESS)
    await job_queue.cancel(specs[3].job_id, specs[3].user_id)
    ends = [await collector.wait_terminal(s.job_id) for s in specs]
    assert [e.type for e in ends] == [EventType.DONE, EventType.FAILED, EventType.FAILED, EventType.CANCELLED]
    assert isinstance(ends[2], FailedEvent) and ends[2].failure.reason is FailureReason.BAD_INPUT
    await wait_until(lambda: redis_client.xpending(keys.EVENTS_STREAM, keys.EVENTS_GROUP)["pending"] == 0,
                     what="all acked")
    # The terminal event leaves the job function before RQ files the job (status and TTL in one
    # transaction), so the scan waits for RQ to have filed all four.
    await wait_until(lambda: all(Job.fetch(s.job_id, connection=redis_client).get_status() in RQ_ENDED
                                 for s in specs), what="RQ filed every job")

    unbounded = []
    seen = set()
    for raw in redis_client.scan_iter(count=1000):
        key = raw.decode()
        seen.add(key)
        ttl = redis_client.pttl(key)
        if ttl != -1:  # expiring (>= 0) or already gone (-2)
            continue
        if key == keys.EVENTS_STREAM:
            assert redis_client.type(key) == b"stream"
        elif key.startswith(RQ_BOOKKEEPING) or key.startswith(STATS_KEYS):
            continue
        else:
            unbounded.append((key, ttl))
    assert unbounded == []
    # The scan saw what the jobs wrote: records, results, markers, progress, RQ jobs.
    for spec in specs:
        assert keys.job(spec.job_id) in seen and keys.delivered(spec.job_id) in seen
        assert f"rq:job:{spec.job_id}" in seen
    assert keys.progress(specs[0].job_id) in seen and blob in seen
    assert any(k.startswith(f"kb:result:{specs[0].job_id}:") for k in seen)
