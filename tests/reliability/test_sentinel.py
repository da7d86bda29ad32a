"""A Redis failover under load: a real Sentinel, a master and its replica (redis-servers started
here), the real bot and a real worker both configured with REDIS_SENTINELS only (their REDIS_URL's
host does not exist). The master is SIGKILLed while jobs are queued, running and being delivered,
more requests arrive while Sentinel promotes the replica, and every accepted request is answered
exactly once (contract.redisconn: retries that follow the new master, WAIT after acceptance)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.queue import JobQueue, QueueSettings
from contract import keys, redisconn
from contract.queue import F, JobStatus
from contract.redisconn import RedisTarget
from devkit.botapi import LocalBotAPI
from devkit.botapi.sim import SimUser
from devkit.redis_server import RedisServer, SentinelServer
from devkit.stack import WorkerProcess
from tests.bot.conftest import TOKEN, Harness, make_settings, start_bot, stop_bot
from tests.reliability.conftest import RELAXED_LIMITS, Tally, account, job_records, worker_env

SERVICE = "kb-failover"
PASSWORD = "sentinel-test-PASS-1c9e"
"""The data servers' password: it reaches them through REDIS_URL while the host comes from Sentinel."""
UNREACHABLE_URL = f"redis://:{PASSWORD}@no-such-redis.invalid:1/0"
"""What bot and worker get as REDIS_URL: if either used its host, nothing would work."""
FAILOVER_S = 20.0
"""The clients' retry budget (REDIS_FAILOVER_S): the test Sentinel promotes in about 2-3 s."""
SLOW_STEP_S = 0.2
"""Each progress step of a job sleeps this long, so the kill lands while jobs run."""
BEFORE, DURING = 3, 1
"""Requests sent before the kill and while Sentinel promotes the replica."""


@dataclass
class Failover:
    master: RedisServer
    replica: RedisServer
    sentinel: SentinelServer

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_URL": UNREACHABLE_URL, "REDIS_SENTINELS": self.sentinel.address,
                "REDIS_SENTINEL_SERVICE": SERVICE, "REDIS_FAILOVER_S": str(FAILOVER_S)}

    @property
    def target(self) -> RedisTarget:
        return RedisTarget(url=UNREACHABLE_URL, sentinels=(("127.0.0.1", self.sentinel.port),),
                           service=SERVICE, failover_s=FAILOVER_S)


@pytest.fixture
def failover() -> Iterator[Failover]:
    with RedisServer(password=PASSWORD, appendonly=True) as master, \
            RedisServer(password=PASSWORD, appendonly=True, replica_of=master) as replica, \
            SentinelServer(master, SERVICE) as sentinel:
        sentinel.wait_replicas(1)
        yield Failover(master, replica, sentinel)


@pytest.fixture
async def sentinel_bot(failover: Failover, tiny_bundle: Path, tmp_path: Path) -> AsyncIterator[Harness]:
    worker = WorkerProcess(failover.master.url, tmp_path / "worker.log", name="sentinel-worker",
                           env=worker_env(tiny_bundle, **failover.env))
    await asyncio.to_thread(worker.start)
    client = redisconn.async_client(failover.target)
    queue = JobQueue(client, QueueSettings(), target=failover.target)
    try:
        async with LocalBotAPI(token=TOKEN, bot_username="kandinsky_test_bot") as api:
            settings = make_settings(api, UNREACHABLE_URL, BOT_CONSUMER_NAME="sentinel-bot",
                                     **{k: v for k, v in failover.env.items() if k != "REDIS_URL"},
                                     **RELAXED_LIMITS)
            h = Harness(api, settings, client, queue)
            h.running = await start_bot(api, settings)
            try:
                yield h
            finally:
                await stop_bot(*h.running)
            assert not api.violations, api.violations
    finally:
        await queue.close()
        await client.aclose()
        await asyncio.to_thread(worker.stop)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert f"sentinel master {SERVICE!r}" in log, log[-3000:]


async def _send(user: SimUser, prompts: list[str]) -> None:
    for prompt in prompts:
        await user.send_text(prompt)


async def _wait_accepted(h: Harness, users: list[SimUser], count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(await job_records(h, users)) < count:
        assert time.monotonic() < deadline, f"only {len(await job_records(h, users))} of {count} accepted"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_master_sigkilled_mid_stream_every_accepted_request_answered_once(
        sentinel_bot: Harness, failover: Failover, tally: Tally) -> None:
    h = sentinel_bot
    user = h.user()
    started = time.monotonic()
    await _send(user, [f"[fault:slow={SLOW_STEP_S}] lighthouse {i}" for i in range(BEFORE)])
    await _wait_accepted(h, [user], BEFORE)
    # Kill the master once a result was delivered and a job is running: queued, running and
    # delivered work all meet the failover.
    deadline = time.monotonic() + 60
    while True:
        records = await job_records(h, [user])
        delivered = [j for j, r in records.items() if r.get(F.STATUS) == JobStatus.DONE.value
                     and await h.redis.exists(keys.delivered(j))]
        running = [j for j, r in records.items() if r.get(F.STATUS) == JobStatus.RUNNING.value]
        if delivered and running:
            break
        assert time.monotonic() < deadline, {j: r.get(F.STATUS) for j, r in records.items()}
        await asyncio.sleep(0.05)
    old = failover.master.port
    failover.master.stop(kill=True)
    tally.faults += 1
    killed_at = time.monotonic()
    # Users keep writing while there is no master: the bot's handlers wait and retry.
    await _send(user, [f"during the failover {i}" for i in range(DURING)])
    new = await asyncio.to_thread(failover.sentinel.wait_failover, old)
    promoted_after = time.monotonic() - killed_at
    assert new == failover.replica.port
    await _wait_accepted(h, [user], BEFORE + DURING)
    accepted_after = time.monotonic() - killed_at
    acc = await account(h, [user], tally)
    settled = time.monotonic() - killed_at
    assert acc.accepted == BEFORE + DURING
    assert set(acc.statuses.values()) == {JobStatus.DONE.value}, acc.statuses
    tally.figures.append(f"sentinel failover: replica promoted {promoted_after:.1f} s after the master's "
                         f"SIGKILL, the requests sent meanwhile accepted after {accepted_after:.1f} s; "
                         f"{acc.accepted} accepted, {acc.answered} answered once; killed "
                         f"{killed_at - started:.1f} s in, settled {settled:.1f} s later")
