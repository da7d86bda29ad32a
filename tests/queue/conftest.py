"""Real worker processes (``python -m worker`` on the tiny bundle), real RQ, a real redis-server.

Worker processes take seconds to start (torch import, engine load), so a small pool lives for the
tests of this package (and stops with them, so it never takes jobs meant for other packages'
workers) and survives the per-test FLUSHALL of the ``redis_url`` fixture (RQ workers only
block on their queue keys). Two roles:

* ``a`` holds every model family and listens to all their queues (admins' and everyone's),
* ``b`` holds Kandinsky 2.2 only and listens to its default queue only,

so an admin job (``is_admin=True``) always runs on ``a`` — which is how a test proves that the
worker that just failed a job goes on to serve the next one — while default 2.2 jobs may run on
either, which is what the kill test needs (another worker takes over); a Kandinsky 3.0 job can only
run on ``a`` (tests/queue/test_families_routing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from bot.queue import EventConsumer, JobQueue, QueueSettings
from contract import keys
from contract.events import Event, EventType, parse_event
from contract.families import Family
from contract.queue import DEFAULT_QUEUE
from contract.spec import JobSpec, Mode, bucket_size
from devkit.faults import FAULT_HOOKS_ENV
from devkit.redis_server import RedisServer
from devkit.zygote import ForkedProcess, Zygote

ROOT = Path(__file__).resolve().parents[2]
WORKER_READY_TIMEOUT_S = 120.0
"""Import of torch + diffusers and the tiny engine load; slow only on a loaded 2-core box."""
EVENT_TIMEOUT_S = 60.0
"""A tiny job takes about a second; a minute means it is lost, not slow."""
HEARTBEAT_S = 1
"""Test workers beat every second, so an abandoned job is noticed after 3 s (3 missed beats)."""
TEST_SIZE = bucket_size("16:9", 512)
"""The smallest size bucket (512x320) keeps a tiny-bundle job near one second on the CPU."""

_user_ids = iter(range(1000, 10**6))


def new_spec(prompt: str = "a red cube", *, user_id: int | None = None, **kw: Any) -> JobSpec:
    """A valid 2-step text2image spec at the smallest size; a fresh user unless one is given."""
    uid = next(_user_ids) if user_id is None else user_id
    fields: dict[str, Any] = dict(
        mode=Mode.TEXT2IMAGE, prompt=prompt, width=TEST_SIZE[0], height=TEST_SIZE[1],
        steps=2, prior_steps=2, user_id=uid, chat_id=uid + 10**7,
    )
    fields.update(kw)
    return JobSpec(**fields)


class WorkerPool:
    """Worker subprocesses by role; a killed or stopped role is respawned under a new name."""

    def __init__(self, redis_url: str, bundle: Path, log_dir: Path, zygote: Zygote) -> None:
        self.redis_url = redis_url
        self.bundle = bundle
        self.log_dir = log_dir
        self.zygote = zygote
        self.procs: dict[str, ForkedProcess] = {}
        self.names: dict[str, str] = {}
        self.ready: set[str] = set()
        self._generation = 0

    def env(self, role: str, name: str) -> dict[str, str]:
        # a: every family, its queues derived from them (no WORKER_QUEUES); b: 2.2 only, its
        # default queue only.
        routing = ({"WORKER_FAMILIES": json.dumps([f.value for f in Family])} if role == "a" else
                   {"WORKER_FAMILIES": json.dumps([Family.KANDINSKY22.value]),
                    "WORKER_QUEUES": json.dumps([DEFAULT_QUEUE])})
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "KANDINSKY_MODEL_DIR": str(self.bundle),
            "KANDINSKY_DEVICE": "cpu",
            "KANDINSKY_DTYPE": "float32",
            "WORKER_NAME": name,
            **routing,
            "WORKER_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
            "WORKER_MAINTENANCE_INTERVAL_S": "1",
            "WORKER_PROGRESS_THROTTLE_S": "0",
            "WORKER_CANCEL_POLL_S": "0.05",
            **FAULT_HOOKS_ENV,
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, role: str) -> str:
        self._generation += 1
        name = f"test-{role}{self._generation}"
        self.procs[role] = self.zygote.spawn(self.env(role, name), self.log_dir / f"{name}.log")
        self.names[role] = name
        self.ready.discard(role)
        return name

    def ensure(self, *roles: str) -> None:
        """Start the roles that are not running, then wait until each listens on Redis."""
        for role in roles:
            proc = self.procs.get(role)
            if proc is None or proc.poll() is not None:
                self.start(role)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
        client = redis.Redis.from_url(self.redis_url)
        try:
            for role in roles:
                if role in self.ready:
                    continue
                name = self.names[role]
                while not client.exists(f"rq:worker:{name}"):
                    if self.procs[role].poll() is not None:
                        raise RuntimeError(f"worker {name} exited:\n{self.log(role)[-3000:]}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"worker {name} not ready:\n{self.log(role)[-3000:]}")
                    time.sleep(0.1)
                self.ready.add(role)
        finally:
            client.close()

    def role_of(self, name: str) -> str:
        return next(role for role, n in self.names.items() if n == name)

    def signal(self, role: str, sig: signal.Signals) -> None:
        self.procs[role].send_signal(sig)

    def wait_exit(self, role: str, timeout: float = 30.0) -> int:
        return self.procs[role].wait(timeout=timeout)

    def log(self, role: str) -> str:
        return (self.log_dir / f"{self.names[role]}.log").read_text(errors="replace")

    def alive(self, role: str) -> bool:
        proc = self.procs.get(role)
        return proc is not None and proc.poll() is None

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="package")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    """The queue tests' workers fork from one parent that imported torch and diffusers once
    (devkit.zygote): a worker killed by a test comes back for the cost of its engine load."""
    logs = tmp_path_factory.mktemp("zygote")
    parent = Zygote({**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}, logs / "status",
                    logs / "zygote.out", ROOT)
    try:
        yield parent
    finally:
        parent.close()


@pytest.fixture(scope="package")
def worker_pool(
    redis_server: RedisServer, tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory, zygote: Zygote
) -> Iterator[WorkerPool]:
    pool = WorkerPool(redis_server.url, tiny_bundle, tmp_path_factory.mktemp("worker-logs"), zygote)
    pool.start("a")
    pool.start("b")
    yield pool
    pool.close()


@pytest.fixture
def workers(worker_pool: WorkerPool, redis_url: str) -> WorkerPool:
    """Both roles running and listening (redis_url has just flushed the database)."""
    worker_pool.ensure("a", "b")
    return worker_pool


@pytest.fixture
def idle_redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A database no worker listens on: submitted jobs stay queued."""
    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


class Collector:
    """An EventConsumer whose handler records what it was given."""

    def __init__(self, client: aioredis.Redis, name: str = "test-consumer", **kw: Any) -> None:
        self.events: list[Event] = []
        self.fail_next: int = 0
        self.consumer = EventConsumer(client, self.handle, name, **kw)
        self._task: asyncio.Task[None] | None = None

    async def handle(self, event: Event) -> None:
        if self.fail_next and event.type is not EventType.PROGRESS:
            self.fail_next -= 1
            raise ConnectionError("simulated Telegram outage")
        self.events.append(event)

    def start(self) -> Collector:
        self._task = asyncio.create_task(self.consumer.run())
        return self

    async def begin(self) -> Collector:
        """Start once the group exists, so events written next are certainly seen."""
        await self.consumer.ensure_group()
        return self.start()

    async def stop(self) -> None:
        await self.consumer.stop()
        if self._task is not None:
            await self._task

    async def __aenter__(self) -> Collector:
        return await self.begin()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def of(self, job_id: str, *types: EventType) -> list[Event]:
        return [e for e in self.events if e.job_id == job_id and (not types or e.type in types)]

    async def wait_terminal(self, job_id: str, timeout: float = EVENT_TIMEOUT_S) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.of(job_id, EventType.DONE, EventType.FAILED, EventType.CANCELLED)
            if done:
                return done[0]
            if self._task is not None and self._task.done():
                self._task.result()
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no terminal event for job {job_id}; got {[e.type for e in self.of(job_id)]}")

    async def wait_for(self, job_id: str, etype: EventType, timeout: float = EVENT_TIMEOUT_S) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(job_id, etype)
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {etype} event for job {job_id}")


TEST_QUEUE_SETTINGS = QueueSettings(per_user_inflight=2, admin_inflight=10, job_timeout_s=30, max_retries=1)


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def job_queue(aredis: aioredis.Redis) -> AsyncIterator[JobQueue]:
    queue = JobQueue(aredis, TEST_QUEUE_SETTINGS)
    yield queue
    await queue.close()


@pytest.fixture
async def collector(aredis: aioredis.Redis) -> AsyncIterator[Collector]:
    c = await Collector(aredis, block_ms=200, claim_every_s=0.5, claim_idle_ms=3000, handler_timeout_s=2.0,
                        retry_base_s=0.1, retry_max_s=0.5).begin()
    yield c
    with contextlib.suppress(Exception):
        await c.stop()


def stream_events(conn: redis.Redis) -> list[Event]:
    """Everything in the events stream, oldest first (acked or not)."""
    entries: Any = conn.xrange(keys.EVENTS_STREAM)
    return [parse_event(fields) for _id, fields in entries]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def wait_until(predicate: Any, timeout: float = EVENT_TIMEOUT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")
