"""The events consumer: ack after the handler, dedupe per job, retries, crash recovery.

Events are written with worker.jobs.finish and the ProgressPublisher's format — the very calls a
worker makes — into a database no worker listens on, so each scenario is exact.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from bot.queue import EventConsumer
from contract import keys
from contract.events import (
    DoneEvent,
    Event,
    EventType,
    FailedEvent,
    Failure,
    FailureReason,
    JobResult,
    Progress,
    ProgressEvent,
)
from contract.queue import F, JobStatus, add_event
from tests.queue import consumer_proc
from tests.queue.conftest import ROOT, Collector, text, wait_until
from worker.jobs import finish

USER = 7
CHAT = 70


@pytest.fixture
def sync_client(idle_redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(idle_redis_url)


@pytest.fixture
async def client(idle_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(idle_redis_url)
    yield c
    await c.aclose()


def done_event(job_id: str) -> DoneEvent:
    return DoneEvent(job_id=job_id, chat_id=CHAT, user_id=USER, result=JobResult(job_id=job_id, seed=1))


def emit_done(conn: redis.Redis, job_id: str) -> bool:
    conn.hset(keys.job(job_id), mapping={F.STATUS: JobStatus.RUNNING.value, F.USER: USER, F.CHAT: CHAT})
    conn.sadd(keys.inflight(USER), job_id)
    return finish(conn, done_event(job_id))


def emit_progress(conn: redis.Redis, job_id: str, step: int, total: int = 4) -> None:
    event = ProgressEvent(job_id=job_id, chat_id=CHAT, user_id=USER,
                          progress=Progress(stage="decoder", step=step, total=total, seq=step, worker="w1"))
    with conn.pipeline() as pipe:
        add_event(pipe, event)
        pipe.execute()


def emit_duplicate_done(conn: redis.Redis, job_id: str) -> None:
    """What a worker that died after XADD but before RQ noted success leaves behind on retry."""
    with conn.pipeline() as pipe:
        add_event(pipe, done_event(job_id))
        pipe.execute()


def step_of(event: Event) -> int:
    assert isinstance(event, ProgressEvent)
    return event.progress.step


def pending(conn: redis.Redis) -> int:
    return int(conn.xpending(keys.EVENTS_STREAM, keys.EVENTS_GROUP)["pending"])


def fast_collector(client: aioredis.Redis, name: str = "bot-1") -> Collector:
    return Collector(client, name, block_ms=100, claim_every_s=0.2, claim_idle_ms=1500,
                     handler_timeout_s=1.0, retry_base_s=0.05, retry_max_s=0.2)


async def test_terminal_event_is_handled_acked_marked_and_frees_the_user_slot(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    async with fast_collector(client) as c:
        assert emit_done(sync_client, "j1")
        event = await c.wait_terminal("j1")
        assert event == done_event("j1")
        await wait_until(lambda: pending(sync_client) == 0, what="ack")
        assert sync_client.get(keys.delivered("j1")) == b"done"
        assert 0 < sync_client.ttl(keys.delivered("j1")) <= keys.DELIVERED_TTL
        assert not sync_client.sismember(keys.inflight(USER), "j1")
        assert not sync_client.exists("kb:delivering:j1")


async def test_second_finish_of_a_job_sends_nothing(sync_client: redis.Redis) -> None:
    assert emit_done(sync_client, "j1")
    failed = FailedEvent(job_id="j1", chat_id=CHAT, user_id=USER,
                         failure=Failure(reason=FailureReason.TIMEOUT))
    assert not finish(sync_client, failed)
    assert sync_client.xlen(keys.EVENTS_STREAM) == 1
    assert sync_client.hget(keys.job("j1"), F.STATUS) == b"done"


async def test_duplicate_terminal_events_reach_the_handler_once(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    async with fast_collector(client) as c:
        emit_done(sync_client, "j1")
        await c.wait_terminal("j1")
        emit_duplicate_done(sync_client, "j1")
        emit_done(sync_client, "j2")  # a later job proves the duplicate was read and passed over
        await c.wait_terminal("j2")
        await wait_until(lambda: pending(sync_client) == 0, what="all acked")
        assert len(c.of("j1")) == 1


async def test_failing_handler_is_retried_with_backoff_then_delivered_once(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    c = fast_collector(client)
    c.fail_next = 3
    async with c:
        started = time.monotonic()
        emit_done(sync_client, "j1")
        await c.wait_terminal("j1")
        # 0.05 + 0.1 + 0.2 s of backoff before the fourth try.
        assert time.monotonic() - started >= 0.3
        assert c.fail_next == 0 and len(c.of("j1")) == 1
        await wait_until(lambda: pending(sync_client) == 0, what="ack after success")
        await asyncio.sleep(0.5)
        assert len(c.of("j1")) == 1


async def test_unacked_event_is_redelivered_after_restart_and_not_after_ack(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    c = fast_collector(client)
    c.fail_next = 10**6  # Telegram is down for this whole run
    async with c:
        emit_done(sync_client, "j1")
        await wait_until(lambda: pending(sync_client) == 1, what="entry pending")
        await asyncio.sleep(0.3)
    assert c.of("j1") == [] and pending(sync_client) == 1

    again = await fast_collector(client).begin()  # same consumer name: its own pending entries first
    try:
        await again.wait_terminal("j1")
        await wait_until(lambda: pending(sync_client) == 0, what="ack")
    finally:
        await again.stop()

    async with fast_collector(client) as third:
        emit_done(sync_client, "j2")
        await third.wait_terminal("j2")
        assert third.of("j1") == []


async def test_progress_is_acked_even_when_the_handler_fails_and_only_the_newest_is_shown(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    calls: list[Event] = []

    async def flaky(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("message to edit is gone")

    for step in (1, 2, 3):
        emit_progress(sync_client, "j1", step)
    consumer = EventConsumer(client, flaky, "bot-1", block_ms=100)
    await consumer.ensure_group()
    task = asyncio.create_task(consumer.run())
    try:
        await wait_until(lambda: calls, what="progress handled")
        await wait_until(lambda: pending(sync_client) == 0, what="progress acked")
        assert [step_of(e) for e in calls] == [3]
        emit_progress(sync_client, "j1", 4)
        await wait_until(lambda: len(calls) == 2, what="later progress")
        assert step_of(calls[-1]) == 4
    finally:
        await consumer.stop()
        await task


async def test_progress_after_the_job_ended_is_dropped(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    emit_progress(sync_client, "j1", 1)
    emit_done(sync_client, "j1")
    emit_progress(sync_client, "j1", 2)  # a late publisher thread
    async with fast_collector(client) as c:
        await c.wait_terminal("j1")
        await wait_until(lambda: pending(sync_client) == 0, what="all acked")
        assert [e.type for e in c.of("j1")] == [EventType.DONE]


async def test_unreadable_entries_are_acked_and_dropped_and_the_next_is_delivered(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    wire = {"type": "failed", "job_id": "j0", "chat_id": CHAT, "user_id": USER}
    for fields in (
        {"event": "{not json"},
        {"event": json.dumps({**wire, "type": "exploded", "data": {}})},  # a type this build does not know
        {"event": json.dumps({**wire, "data": {"step": 3}})},  # a payload that is not a failure
        {"something": "else"},
    ):
        sync_client.xadd(keys.EVENTS_STREAM, fields)  # type: ignore[arg-type]
    emit_done(sync_client, "j1")
    async with fast_collector(client) as c:
        await c.wait_terminal("j1")
        await wait_until(lambda: pending(sync_client) == 0, what="all acked")
        assert [e.job_id for e in c.events] == ["j1"]
        assert not sync_client.exists(keys.delivered("j0"))


def _spawn(url: str, name: str, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.queue.consumer_proc", url, name, mode], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _list(conn: redis.Redis, key: str) -> list[str]:
    return [text(x) for x in conn.lrange(key, 0, -1)]  # type: ignore[union-attr]


@pytest.mark.parametrize("successor", ["bot-1", "bot-2"], ids=["restart-same-name", "other-replica"])
async def test_consumer_killed_before_ack_is_redelivered_and_sent_once(
    idle_redis_url: str, sync_client: redis.Redis, successor: str
) -> None:
    """The first consumer dies inside the handler (upload in flight). The same consumer restarted
    re-reads its own pending entry; another replica claims it once it has been idle long enough."""
    victim = _spawn(idle_redis_url, "bot-1", "hang")
    survivor: subprocess.Popen[bytes] | None = None
    try:
        emit_done(sync_client, "j1")
        await wait_until(lambda: _list(sync_client, consumer_proc.STARTED) == ["bot-1:j1"], timeout=30,
                         what="handler started in the first consumer")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert pending(sync_client) == 1 and not sync_client.exists(keys.delivered("j1"))

        survivor = _spawn(idle_redis_url, successor, "ok")
        await wait_until(lambda: _list(sync_client, consumer_proc.COMPLETED), timeout=30,
                         what="delivery by the successor")
        await wait_until(lambda: pending(sync_client) == 0, what="ack")
        emit_done(sync_client, "j2")
        await wait_until(lambda: len(_list(sync_client, consumer_proc.COMPLETED)) == 2, timeout=30,
                         what="next job")
        assert _list(sync_client, consumer_proc.COMPLETED) == [f"{successor}:j1", f"{successor}:j2"]
        assert sync_client.get(keys.delivered("j1")) == b"done"
    finally:
        for proc in (victim, survivor):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


async def test_a_live_consumer_is_not_robbed_of_an_entry_it_is_sending(
    client: aioredis.Redis, sync_client: redis.Redis
) -> None:
    """Lease: while one replica is inside the handler, another that reads a duplicate waits."""
    gate = asyncio.Event()
    sent: list[str] = []

    async def slow(event: Event) -> None:
        if event.type is not EventType.PROGRESS:
            await gate.wait()
            sent.append(f"slow:{event.job_id}")

    async def fast(event: Event) -> None:
        if event.type is not EventType.PROGRESS:
            sent.append(f"fast:{event.job_id}")

    slow_c = EventConsumer(client, slow, "bot-1", block_ms=100, handler_timeout_s=5, claim_idle_ms=6000)
    await slow_c.ensure_group()
    slow_task = asyncio.create_task(slow_c.run())
    emit_done(sync_client, "j1")
    await wait_until(lambda: sync_client.exists("kb:delivering:j1"), what="lease taken")
    emit_duplicate_done(sync_client, "j1")  # the second entry goes to the other replica
    fast_c = EventConsumer(client, fast, "bot-2", block_ms=100, handler_timeout_s=5, claim_idle_ms=6000,
                           retry_base_s=0.05, retry_max_s=0.1)
    fast_task = asyncio.create_task(fast_c.run())
    try:
        await asyncio.sleep(0.5)
        assert sent == []
        gate.set()
        await wait_until(lambda: pending(sync_client) == 0, what="both entries acked")
        assert sent == ["slow:j1"]
    finally:
        await slow_c.stop()
        await fast_c.stop()
        await slow_task
        await fast_task


def test_claim_idle_must_exceed_handler_timeout(sync_client: redis.Redis) -> None:
    async def handler(event: Event) -> None:
        return None

    with pytest.raises(ValueError, match="claim_idle_ms"):
        EventConsumer(aioredis.Redis(), handler, "bot-1", claim_idle_ms=1000, handler_timeout_s=5)


async def test_a_chat_that_waits_delays_no_other_chat_and_stop_leaves_its_event_pending(
        client: aioredis.Redis, sync_client: redis.Redis) -> None:
    """Per-chat lanes: chat 70's handler waits (as for a retry_after window), chat 71's result is
    delivered meanwhile; stop() ends the waiting lane after its grace and the event stays pending."""
    held = asyncio.Event()
    delivered: list[int] = []

    async def handler(event: Event) -> None:
        if event.chat_id == CHAT:
            held.set()
            await asyncio.Event().wait()  # Telegram holds this chat for longer than the test
        delivered.append(event.chat_id)

    emit_done(sync_client, "lane-held")
    other = DoneEvent(job_id="lane-free", chat_id=CHAT + 1, user_id=USER, result=JobResult(job_id="lane-free",
                                                                                          seed=1))
    sync_client.hset(keys.job("lane-free"), mapping={F.STATUS: JobStatus.RUNNING.value, F.USER: USER,
                                                     F.CHAT: CHAT + 1})
    finish(sync_client, other)
    consumer = EventConsumer(client, handler, "bot-lanes", block_ms=100)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(held.wait(), timeout=10)
    await wait_until(lambda: delivered == [CHAT + 1], timeout=10, what="the other chat's result")
    await asyncio.wait_for(consumer.stop(), timeout=15)  # the lane's grace, not the hold, bounds it
    await task
    assert sync_client.exists(keys.delivered("lane-free"))
    assert not sync_client.exists(keys.delivered("lane-held"))
    assert pending(sync_client) == 1  # the held chat's result: delivered after the restart
    assert not sync_client.exists(delivering_key("lane-held"))  # its lease let go for the next run


def delivering_key(job_id: str) -> str:
    return keys.delivering(job_id)
