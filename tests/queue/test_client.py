"""The bot-side queue client on a database no worker listens on: jobs stay where they are put."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
from rq import Queue, Retry
from rq.job import Job
from rq.job import JobStatus as RQStatus

from bot.queue import CancelOutcome, JobQueue, JobStatus, QueueSettings, Rates, Rules, TooManyJobs
from bot.queue.gate import admit_call, read_reply
from contract import keys
from contract.events import EventType
from contract.families import Family
from contract.queue import DEFAULT_QUEUE, HIGH_QUEUE, RUN_JOB_FUNC, F, family_queues
from contract.spec import Mode, Priority
from devkit.redis_server import RedisServer
from tests.queue.conftest import new_spec, stream_events


@pytest.fixture
def sync_client(idle_redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(idle_redis_url)


@pytest.fixture
async def queue(idle_redis_url: str) -> AsyncIterator[JobQueue]:
    q = JobQueue.from_url(idle_redis_url, QueueSettings(per_user_inflight=2, admin_inflight=3, max_retries=2,
                                                        job_timeout_s=40))
    yield q
    await q.close()


async def test_submit_writes_the_record_and_enqueues_only_the_job_id(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    blob = await queue.put_blob(b"\x89PNG fake bytes are fine here")
    spec = new_spec(mode=Mode.VARIATIONS, prompt="", inputs=(blob,))
    sub = await queue.submit(spec)
    assert (sub.job_id, sub.position, sub.eta_s) == (spec.job_id, 1, None)

    record = await queue.job(spec.job_id)
    assert record is not None
    assert (record.spec, record.status, record.user_id, record.chat_id) == (
        spec, JobStatus.QUEUED, spec.user_id, spec.chat_id)
    assert record.queue == DEFAULT_QUEUE and record.attempts == 0 and record.created_at
    assert await queue.user_jobs(spec.user_id) == [spec.job_id]

    rq_job = Job.fetch(spec.job_id, connection=sync_client)
    assert rq_job.func_name == RUN_JOB_FUNC
    assert rq_job.args == (spec.job_id,) and rq_job.kwargs == {}
    assert rq_job.timeout == 40 and rq_job.retries_left == 2
    assert b"fake bytes" not in bytes(sync_client.hget(f"rq:job:{spec.job_id}", "data") or b"")  # type: ignore[arg-type]

    for key, ttl in ((keys.job(spec.job_id), keys.JOB_RECORD_TTL), (blob, keys.INPUT_BLOB_TTL),
                     (keys.inflight(spec.user_id), keys.INPUT_BLOB_TTL)):
        assert 0 < sync_client.ttl(key) <= ttl, key


async def test_put_blob_refuses_empty_data(queue: JobQueue) -> None:
    with pytest.raises(ValueError, match="empty"):
        await queue.put_blob(b"")


async def test_the_same_job_id_cannot_be_submitted_twice(queue: JobQueue) -> None:
    spec = new_spec()
    await queue.submit(spec)
    with pytest.raises(ValueError, match="already exists"):
        await queue.submit(spec)
    assert await queue.user_jobs(spec.user_id) == [spec.job_id]


async def test_positions_count_the_admins_queue_first(queue: JobQueue, sync_client: redis.Redis) -> None:
    first, second = new_spec(), new_spec()
    assert (await queue.submit(first)).position == 1
    assert (await queue.submit(second)).position == 2
    admin = new_spec()
    assert (await queue.submit(admin, is_admin=True)).position == 1
    urgent = new_spec(priority=Priority.HIGH)
    assert (await queue.submit(urgent)).position == 2
    assert [await queue.position(s.job_id) for s in (first, second)] == [3, 4]
    high = sync_client.lrange(f"rq:queue:{HIGH_QUEUE}", 0, -1)
    assert high == [admin.job_id.encode(), urgent.job_id.encode()]
    stats = await queue.stats()
    others = [q for f in Family if f is not Family.KANDINSKY22 for q in family_queues(f)]
    assert stats.waiting == {HIGH_QUEUE: 2, DEFAULT_QUEUE: 2, **dict.fromkeys(others, 0)}
    assert stats.running == {HIGH_QUEUE: 0, DEFAULT_QUEUE: 0, **dict.fromkeys(others, 0)}
    assert stats.oldest_wait_s is not None and stats.oldest_wait_s >= 0
    assert await queue.position("no-such-job") is None


async def test_per_user_limit_refuses_without_writing_anything(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    user = 4242
    jobs = [new_spec(user_id=user), new_spec(user_id=user)]
    for spec in jobs:
        await queue.submit(spec)
    extra = new_spec(user_id=user)
    with pytest.raises(TooManyJobs) as refused:
        await queue.submit(extra)
    assert refused.value.limit == 2
    assert not sync_client.exists(keys.job(extra.job_id))
    assert await queue.user_jobs(user) == sorted(s.job_id for s in jobs)
    assert sync_client.llen(f"rq:queue:{DEFAULT_QUEUE}") == 2
    # Another user is not affected; an admin has a higher limit.
    await queue.submit(new_spec())
    for _ in range(3):
        await queue.submit(new_spec(user_id=99), is_admin=True)
    with pytest.raises(TooManyJobs) as admin_refused:
        await queue.submit(new_spec(user_id=99), is_admin=True)
    assert admin_refused.value.limit == 3


async def test_a_finished_job_frees_its_slot_even_before_its_event_is_delivered(queue: JobQueue) -> None:
    user = 77
    first, second = new_spec(user_id=user), new_spec(user_id=user)
    await queue.submit(first)
    await queue.submit(second)
    assert await queue.cancel(first.job_id, user) is CancelOutcome.QUEUED_REMOVED
    third = new_spec(user_id=user)
    await queue.submit(third)  # the cancelled job's slot was pruned
    assert await queue.user_jobs(user) == sorted([second.job_id, third.job_id])


async def test_stale_in_flight_entries_are_dropped_only_when_a_job_is_accepted(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    """Entries whose record is finished or gone do not count; a refusal leaves them in place."""
    user = 78
    live, done, gone = (new_spec(user_id=user) for _ in range(3))
    for spec in (live, done, gone):
        await queue.submit(spec, is_admin=True)  # the admin limit (3) lets all three in
    sync_client.hset(keys.job(done.job_id), F.STATUS, JobStatus.DONE.value)
    sync_client.delete(keys.job(gone.job_id))
    second_live = new_spec(user_id=user)
    await queue.submit(second_live)  # 1 live of 2 allowed: accepted, the two stale ones dropped
    assert await queue.user_jobs(user) == sorted([live.job_id, second_live.job_id])
    sync_client.sadd(keys.inflight(user), gone.job_id)  # stale again, but the user is at the limit
    extra = new_spec(user_id=user)
    with pytest.raises(TooManyJobs) as refused:
        await queue.submit(extra)
    assert refused.value.limit == 2
    assert not sync_client.exists(keys.job(extra.job_id))
    assert await queue.user_jobs(user) == sorted([live.job_id, second_live.job_id, gone.job_id])


async def test_a_retried_submit_script_call_is_not_a_duplicate(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    """A reply lost after the script ran makes redis-py send it again: the same call is accepted,
    and counts once."""
    spec = new_spec()
    created, now = "1800000000.5", 1_800_000_000.5
    rules = Rules(inflight=2, rates=Rates(per_minute=5, per_day=10))
    place = {"queue": DEFAULT_QUEUE, "line": (HIGH_QUEUE, DEFAULT_QUEUE),
             "rq_job": queue._rq_job(DEFAULT_QUEUE, RUN_JOB_FUNC, spec.job_id, timeout_s=600)}
    call = admit_call(spec, rules, created=created, now=now, record={F.STATUS: "queued", F.CREATED: created},
                      **place)
    first = read_reply(await queue._admit(keys=call.keys, args=call.args), spec, rules, now)
    again = read_reply(await queue._admit(keys=call.keys, args=call.args), spec, rules, now)
    assert first.refusal is None and again.refusal is None
    assert first.placement[0] == again.placement[0] == 0  # first in its queue, and pushed once
    assert sync_client.llen(keys.rq_queue(DEFAULT_QUEUE)) == 1
    assert sync_client.zcard(call.minute_key) == 1 and sync_client.get(call.day_key) == b"1"
    other = admit_call(spec, rules, created="1800000000.6", now=now,
                       record={F.STATUS: "queued", F.CREATED: "1800000000.6"}, **place)
    with pytest.raises(ValueError, match="already exists"):
        read_reply(await queue._admit(keys=other.keys, args=other.args), spec, rules, now)
    assert sync_client.zcard(call.minute_key) == 1 and await queue.user_jobs(spec.user_id) == [spec.job_id]


async def test_the_admission_script_writes_the_job_rq_would_write(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    """The hash the script writes is RQ's own (Job.to_dict), so RQ's workers, registries and Job.fetch
    read it as theirs: the same fields as RQ's enqueue, and the job where RQ's enqueue puts it."""
    admitted = new_spec()
    await queue.submit(admitted)
    ours = sync_client.hgetall(keys.rq_job(admitted.job_id))
    plain = new_spec()
    settings = queue._settings
    Queue(DEFAULT_QUEUE, connection=sync_client).enqueue_call(
        RUN_JOB_FUNC, args=(plain.job_id,), job_id=plain.job_id, description=f"run_job {plain.job_id}",
        timeout=plain.job_timeout_s(settings.job_timeout_s), result_ttl=settings.rq_result_ttl,
        failure_ttl=settings.rq_failure_ttl, retry=Retry(max=settings.max_retries))
    theirs = sync_client.hgetall(keys.rq_job(plain.job_id))
    assert set(ours) == set(theirs) - {b"redis_server_version"}
    stamps = {b"created_at", b"enqueued_at", b"data", b"description"}
    assert {k: v for k, v in ours.items() if k not in stamps} == {
        k: v for k, v in theirs.items() if k not in stamps | {b"redis_server_version"}}
    job = Job.fetch(admitted.job_id, connection=sync_client)
    assert job.get_status() == RQStatus.QUEUED and job.args == (admitted.job_id,)
    assert job.origin == DEFAULT_QUEUE
    assert sync_client.lrange(keys.rq_queue(DEFAULT_QUEUE), 0, -1) == [admitted.job_id.encode(),
                                                                       plain.job_id.encode()]
    assert keys.rq_queue(DEFAULT_QUEUE).encode() in sync_client.smembers(keys.RQ_QUEUES)


async def test_cancel_a_queued_job_removes_it_and_sends_one_cancelled_event(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    spec, other = new_spec(), new_spec()
    await queue.submit(spec)
    await queue.submit(other)
    assert await queue.cancel("nope", spec.user_id) is CancelOutcome.NOT_FOUND
    assert await queue.cancel(spec.job_id, spec.user_id + 1) is CancelOutcome.NOT_YOURS
    assert await queue.cancel(spec.job_id, spec.user_id) is CancelOutcome.QUEUED_REMOVED
    assert await queue.cancel(spec.job_id, spec.user_id) is CancelOutcome.ALREADY_FINISHED

    assert sync_client.lrange(f"rq:queue:{DEFAULT_QUEUE}", 0, -1) == [other.job_id.encode()]
    assert await queue.position(other.job_id) == 1
    assert not sync_client.exists(f"rq:job:{spec.job_id}")
    record = await queue.job(spec.job_id)
    assert record is not None and record.status is JobStatus.CANCELLED and record.finished_at
    events = stream_events(sync_client)
    assert [(e.type, e.job_id, e.chat_id, e.user_id) for e in events] == [
        (EventType.CANCELLED, spec.job_id, spec.chat_id, spec.user_id)]
    assert 0 < sync_client.ttl(keys.cancel_flag(spec.job_id)) <= keys.CANCEL_FLAG_TTL


async def test_cancel_of_a_job_a_worker_already_took_asks_it_to_stop(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    spec = new_spec()
    await queue.submit(spec)
    # A worker popped it (RQ's dequeue is an LPOP) and marked it running.
    assert Queue(DEFAULT_QUEUE, connection=sync_client).get_job_ids() == [spec.job_id]
    sync_client.lpop(f"rq:queue:{DEFAULT_QUEUE}")
    sync_client.hset(keys.job(spec.job_id), F.STATUS, JobStatus.RUNNING.value)
    assert await queue.cancel(spec.job_id, spec.user_id) is CancelOutcome.STOPPING
    assert sync_client.exists(keys.cancel_flag(spec.job_id))
    assert sync_client.xlen(keys.EVENTS_STREAM) == 0  # the worker sends CANCELLED when it stops


async def test_wait_estimate_uses_recent_durations(queue: JobQueue, sync_client: redis.Redis) -> None:
    sync_client.lpush(keys.DURATIONS, 2.0, 4.0)  # what workers record after each job
    subs = [await queue.submit(new_spec()) for _ in range(3)]
    # No worker listens here, so jobs are assumed to run one at a time: mean 3 s × place in line.
    assert [s.eta_s for s in subs] == [pytest.approx(3.0 * n) for n in (1, 2, 3)]
    stats = await queue.stats()
    assert stats.mean_duration_s == pytest.approx(3.0) and stats.workers == 0
    assert math.isclose(sum(stats.recent_durations), 6.0)


async def test_result_bytes_and_missing_keys(queue: JobQueue, sync_client: redis.Redis) -> None:
    sync_client.set(keys.result("j", 0, "png"), b"\x89PNG...", ex=60)
    assert await queue.result_bytes(keys.result("j", 0, "png")) == b"\x89PNG..."
    assert await queue.result_bytes(keys.result("j", 1, "png")) is None
    assert await queue.job("missing") is None


async def test_a_decoding_client_is_refused(idle_redis_url: str) -> None:
    client = aioredis.Redis.from_url(idle_redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        JobQueue(client, QueueSettings())
    await client.aclose()


async def test_a_spec_from_a_newer_bot_still_shows_as_a_record(
    queue: JobQueue, sync_client: redis.Redis
) -> None:
    spec = new_spec()
    await queue.submit(spec)
    sync_client.hset(keys.job(spec.job_id), F.SPEC, spec.to_json().replace('"version":1', '"version":99'))
    record = await queue.job(spec.job_id)
    assert record is not None and record.spec is None and record.user_id == spec.user_id
    assert time.time() - (record.created_at or 0) < 60


async def test_a_password_protected_redis_works_for_records_and_rq_alike() -> None:
    """Production Redis has a password: RQ's own sync connection must carry it too."""
    with RedisServer(password="s3cret-pass") as server:
        queue = JobQueue.from_url(server.url, QueueSettings())
        try:
            spec = new_spec()
            assert (await queue.submit(spec)).position == 1
            rq_job = Job.fetch(spec.job_id, connection=redis.Redis.from_url(server.url))
            assert rq_job.args == (spec.job_id,)
        finally:
            await queue.close()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(server.url.replace("s3cret-pass", "wrong")).ping()
