"""Every way a job can go wrong ends in a retry or in one clear FAILED event, and the worker
goes on serving. Admin jobs run on worker role ``a`` only (see conftest), which is how these
tests show that the very worker that failed a job serves the next one."""

from __future__ import annotations

import io
import signal
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis
import redis.asyncio as aioredis
from PIL import Image
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry

from bot.queue import JobQueue, JobStatus, QueueSettings
from contract import keys
from contract.events import DoneEvent, Event, EventType, FailedEvent, Failure, FailureReason, JobResult
from contract.queue import DEFAULT_QUEUE, F
from contract.spec import JobSpec, Mode
from devkit.faults import VALUE_ERROR
from tests.queue.conftest import HEARTBEAT_S, Collector, WorkerPool, new_spec, stream_events, text, wait_until

ABANDON_S = 3 * HEARTBEAT_S
TOO_SMALL_SIDE = 32
"""Below the engine's MIN_INPUT_SIDE (64 px): a readable image that the engine's own check refuses."""


def failure_of(event: Event) -> Failure:
    assert isinstance(event, FailedEvent), event
    return event.failure


def result_of(event: Event) -> JobResult:
    assert isinstance(event, DoneEvent), event
    return event.result


def terminal_entries(conn: redis.Redis, job_id: str) -> list[str]:
    events = stream_events(conn)
    return [e.type.value for e in events if e.job_id == job_id and e.type is not EventType.PROGRESS]


@pytest.fixture
async def make_queue(aredis: aioredis.Redis) -> AsyncIterator[Callable[..., JobQueue]]:
    made: list[JobQueue] = []

    def factory(**overrides: int) -> JobQueue:
        settings = QueueSettings(**{"job_timeout_s": 30, "max_retries": 1, **overrides})
        queue = JobQueue(aredis, settings)
        made.append(queue)
        return queue

    yield factory
    for queue in made:
        await queue.close()


async def wait_running(conn: redis.Redis, job_id: str) -> str:
    """The worker name once the job is running."""
    def running() -> bool:
        return conn.hget(keys.job(job_id), F.STATUS) == JobStatus.RUNNING.value.encode()

    await wait_until(running, what=f"job {job_id} running")
    return text(conn.hget(keys.job(job_id), F.WORKER) or b"")


class NewerSpec(JobSpec):
    """A spec as a newer bot would store it: the next schema version."""

    def to_json(self) -> str:
        return super().to_json().replace('"version":1', '"version":2')


async def test_bad_job_records_fail_with_a_reason_and_the_worker_serves_the_next(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    newer = new_spec()
    expired = new_spec(mode=Mode.VARIATIONS, prompt="", inputs=("kb:blob:expired-long-ago",))
    corrupt_blob = await job_queue.put_blob(b"\x89PNG\r\n\x1a\n but then garbage")
    corrupt = new_spec(mode=Mode.BLEND, prompt="a cat", inputs=(corrupt_blob,), weights=(0.5, 0.5))
    good = new_spec()

    # A spec written by a newer bot: this worker must refuse it, not half-run it. Its record says so
    # from the start (rewriting it after the submit raced an idle worker, which could take it first).
    await job_queue.submit(NewerSpec.model_validate(newer.model_dump()), is_admin=True)
    for spec in (expired, corrupt, good):
        await job_queue.submit(spec, is_admin=True)

    ends = {s.job_id: await collector.wait_terminal(s.job_id) for s in (newer, expired, corrupt, good)}
    reasons = [failure_of(ends[s.job_id]).reason for s in (newer, expired, corrupt)]
    assert reasons == [FailureReason.BAD_SPEC, FailureReason.INPUT_EXPIRED, FailureReason.BAD_INPUT]
    assert "version 2" in failure_of(ends[newer.job_id]).message
    assert ends[good.job_id].type is EventType.DONE
    worker_a = workers.names["a"]
    for spec in (newer, expired, corrupt, good):
        record = await job_queue.job(spec.job_id)
        assert record is not None and record.worker == worker_a and record.attempts == 1
        assert terminal_entries(redis_client, spec.job_id) == [ends[spec.job_id].type.value]
    record = await job_queue.job(expired.job_id)
    assert record is not None and record.reason == FailureReason.INPUT_EXPIRED and record.error


async def test_a_job_that_always_fails_gives_one_failed_event_after_the_retries(
    workers: WorkerPool, make_queue: Callable[..., JobQueue], collector: Collector, redis_client: redis.Redis
) -> None:
    queue = make_queue(max_retries=2)
    spec = new_spec("[fault:engine-error] a cube")
    await queue.submit(spec)
    end = await collector.wait_terminal(spec.job_id)
    assert failure_of(end).reason is FailureReason.ENGINE_ERROR
    assert "injected engine error" in failure_of(end).message
    record = await queue.job(spec.job_id)
    assert record is not None and record.attempts == 3 and record.status is JobStatus.FAILED
    await wait_until(lambda: Job.fetch(spec.job_id, connection=redis_client).get_status() == RQStatus.FAILED,
                     what="RQ marks it failed")
    assert terminal_entries(redis_client, spec.job_id) == ["failed"]
    # The next job is served as usual.
    after = new_spec()
    await queue.submit(after)
    assert (await collector.wait_terminal(after.job_id)).type is EventType.DONE


async def test_a_job_timeout_fails_the_job_and_the_worker_serves_the_next(
    workers: WorkerPool, make_queue: Callable[..., JobQueue], job_queue: JobQueue, collector: Collector,
    redis_client: redis.Redis,
) -> None:
    queue = make_queue(job_timeout_s=2)
    slow = new_spec("[fault:slow=1.0] a slow cube", steps=4)
    started = time.monotonic()
    await queue.submit(slow, is_admin=True)
    end = await collector.wait_terminal(slow.job_id)
    assert failure_of(end).reason is FailureReason.TIMEOUT
    assert time.monotonic() - started < 6  # stopped at the timeout, not after the 6 s job
    record = await queue.job(slow.job_id)
    assert record is not None and record.attempts == 1  # a timeout is not retried
    assert terminal_entries(redis_client, slow.job_id) == ["failed"]

    after = new_spec()
    await job_queue.submit(after, is_admin=True)  # the usual 30 s timeout
    done = await collector.wait_terminal(after.job_id)
    assert result_of(done).worker == workers.names["a"]


async def test_a_worker_killed_mid_job_is_replaced_and_the_job_delivered_once(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    spec = new_spec("[fault:slow=0.5] a cube", steps=6)
    await job_queue.submit(spec)
    victim = await wait_running(redis_client, spec.job_id)
    role = workers.role_of(victim)
    await collector.wait_for(spec.job_id, EventType.PROGRESS)
    workers.signal(role, signal.SIGKILL)
    workers.wait_exit(role)
    killed_at = time.monotonic()

    done = await collector.wait_terminal(spec.job_id)
    assert done.type is EventType.DONE
    result = result_of(done)
    assert result.worker != victim
    assert time.monotonic() - killed_at < ABANDON_S + 15  # picked up within seconds, not minutes
    record = await job_queue.job(spec.job_id)
    assert record is not None and record.attempts == 2 and record.worker == result.worker
    await wait_until(lambda: redis_client.xpending(keys.EVENTS_STREAM, keys.EVENTS_GROUP)["pending"] == 0,
                     what="ack")
    assert len(collector.of(spec.job_id, EventType.DONE, EventType.FAILED)) == 1
    assert terminal_entries(redis_client, spec.job_id) == ["done"]
    workers.start(role)  # the next test waits for it


async def test_a_killed_job_without_retries_left_fails_as_worker_lost(
    workers: WorkerPool, make_queue: Callable[..., JobQueue], collector: Collector, redis_client: redis.Redis
) -> None:
    queue = make_queue(max_retries=0)
    spec = new_spec("[fault:slow=0.5] a cube", steps=6)
    await queue.submit(spec)
    victim = await wait_running(redis_client, spec.job_id)
    role = workers.role_of(victim)
    workers.signal(role, signal.SIGKILL)
    workers.wait_exit(role)
    end = await collector.wait_terminal(spec.job_id)
    assert failure_of(end).reason is FailureReason.WORKER_LOST
    record = await queue.job(spec.job_id)
    assert record is not None and record.attempts == 1 and record.status is JobStatus.FAILED
    assert terminal_entries(redis_client, spec.job_id) == ["failed"]
    workers.start(role)


async def test_sigterm_lets_the_running_job_finish_then_the_worker_exits(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    spec = new_spec("[fault:slow=0.5] a cube", steps=4)
    await job_queue.submit(spec, is_admin=True)
    await wait_running(redis_client, spec.job_id)
    await collector.wait_for(spec.job_id, EventType.PROGRESS)
    workers.signal("a", signal.SIGTERM)
    done = await collector.wait_terminal(spec.job_id)
    assert result_of(done).worker == workers.names["a"]
    assert workers.wait_exit("a") == 0
    record = await job_queue.job(spec.job_id)
    assert record is not None and record.attempts == 1
    workers.start("a")


async def test_an_engine_input_check_fails_the_job_as_bad_input_without_a_retry(
    workers: WorkerPool, make_queue: Callable[..., JobQueue], collector: Collector, redis_client: redis.Redis
) -> None:
    queue = make_queue(max_retries=2)
    small = io.BytesIO()
    Image.new("RGB", (TOO_SMALL_SIDE, TOO_SMALL_SIDE), (200, 40, 40)).save(small, "PNG")
    blob = await queue.put_blob(small.getvalue())
    spec = new_spec(mode=Mode.VARIATIONS, prompt="", inputs=(blob,))
    await queue.submit(spec)
    end = await collector.wait_terminal(spec.job_id)
    assert end.type is EventType.FAILED
    record = await queue.job(spec.job_id)
    assert record is not None and record.reason == FailureReason.BAD_INPUT and record.attempts == 1
    assert record.error is not None and "engine refused the inputs" in record.error
    assert f"is {TOO_SMALL_SIDE}x{TOO_SMALL_SIDE}; each side must be at least" in record.error
    assert terminal_entries(redis_client, spec.job_id) == ["failed"]


async def test_a_plain_value_error_from_inside_the_engine_is_retried_then_an_engine_error(
    workers: WorkerPool, make_queue: Callable[..., JobQueue], collector: Collector, redis_client: redis.Redis
) -> None:
    queue = make_queue(max_retries=2)
    spec = new_spec(f"{VALUE_ERROR} a cube")  # raised from the pipeline's step callback
    await queue.submit(spec)
    end = await collector.wait_terminal(spec.job_id)
    assert end.type is EventType.FAILED
    record = await queue.job(spec.job_id)
    assert record is not None and record.reason == FailureReason.ENGINE_ERROR
    assert record.attempts == 3 and record.status is JobStatus.FAILED  # retried like any engine error
    assert record.error is not None and record.error.startswith("ValueError: injected ValueError")
    assert terminal_entries(redis_client, spec.job_id) == ["failed"]


async def test_a_job_stranded_by_a_lost_dequeue_reply_is_put_back_and_runs(
    workers: WorkerPool, job_queue: JobQueue, collector: Collector, redis_client: redis.Redis
) -> None:
    """Redis moved the job to the intermediate list for a worker whose reply was lost (Redis
    restarting mid-dequeue): no worker has it. RQ would fail it after a minute; it runs instead."""
    queue_key = f"rq:queue:{DEFAULT_QUEUE}"
    stranded_key = f"{queue_key}:intermediate"
    started_jobs = StartedJobRegistry(DEFAULT_QUEUE, connection=redis_client)
    # Both workers busy for a few seconds, so the job is stranded before either can take it.
    busy = [new_spec(f"[fault:slow=1.0] a busy cube {n}", steps=3) for n in range(2)]
    for spec in busy:
        await job_queue.submit(spec)
    await wait_until(lambda: len(started_jobs.get_job_ids()) == 2, timeout=30, what="both workers busy")
    spec = new_spec("a stranded cube")
    await job_queue.submit(spec)
    assert redis_client.lmove(queue_key, stranded_key, "LEFT", "RIGHT") == spec.job_id.encode()
    stranded_at = time.monotonic()
    done = await collector.wait_terminal(spec.job_id)
    assert isinstance(done, DoneEvent), done
    assert time.monotonic() - stranded_at < 30  # a few missed beats, not RQ's minute
    assert redis_client.llen(stranded_key) == 0
    for other in busy:
        assert isinstance(await collector.wait_terminal(other.job_id), DoneEvent)
