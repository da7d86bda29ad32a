"""Reliability harness: one password-protected, append-only redis-server, two real worker processes
on the tiny bundle, and the real bot in-process against the local Bot API server.

Every scenario ends with :func:`account`, which checks that each accepted request (a job record
in Redis) got exactly one answer in its chat and adds the figures to the suite's tally, printed
as one line at the end of the run (``tests/conftest.py``'s ``pytest_terminal_summary``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from bot.queue import JobQueue, QueueSettings
from contract import keys
from contract.queue import F, JobStatus
from devkit.botapi import LocalBotAPI
from devkit.botapi.models import SentMessage
from devkit.botapi.sim import SimUser
from devkit.faults import FAULT_HOOKS_ENV
from devkit.redis_server import RedisServer
from devkit.stack import REPO, WorkerProcess
from devkit.zygote import Zygote
from tests.bot.conftest import (
    TOKEN,
    Harness,
    assert_telegram_rules_kept,
    collected_logs,
    make_settings,
    start_bot,
    stop_bot,
)
from tests.reliability.tally import TALLY, Tally

REDIS_PASSWORD = "redis-PASS_word-7f3a9c"
"""Distinctive, so finding it in a log line cannot be a coincidence."""
SECRETS = (TOKEN, REDIS_PASSWORD, TOKEN.split(":", 1)[1])
HEARTBEAT_S = 1
"""Workers prove they are alive every second, so a SIGKILLed worker's job is re-queued in ~3 s."""
JOB_TIMEOUT_S = 10
"""Cap on one job's run time in these workers: a 2-step 512-px tiny job takes under a second of one
core, a few times that on cores the load scenario keeps busy; the hanging-job scenario waits for it."""
PROGRESS_THROTTLE_S = 0.2
"""Progress events at most five a second: enough for the bot's edits, few for two cores."""
TERMINAL = {JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}
WORKER_NAMES = ("rel-worker-a", "rel-worker-b")
QUIET_TIMEOUT_S = 120
"""How long a scenario may take to drain its jobs on two shared cores."""
REDIS_RETRIES = 20
"""Half-second tries while a restarted redis-server comes back (it takes well under a second)."""
RELIABILITY_FAMILIES = '["kandinsky22"]'
"""The scenarios send default-family jobs only; holding one family makes each of the kill scenario's
restarts load one engine instead of three (0.5 s instead of 1.3 s of a core)."""
RELAXED_LIMITS = {"RATE_PER_MINUTE": 1000, "RATE_PER_DAY": 100_000, "MAX_INFLIGHT": 1000}
"""Fault scenarios send many jobs from one user; the quota scenarios set their own limits."""


# --- the suite's tally -----------------------------------------------------------------------------

@pytest.fixture
def tally() -> Iterator[Tally]:
    TALLY.scenarios += 1
    yield TALLY


# --- processes -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rel_redis() -> Iterator[RedisServer]:
    """Password on (the security scenarios scan logs for it) and AOF on (the restart scenario)."""
    with RedisServer(password=REDIS_PASSWORD, appendonly=True) as server:
        yield server


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability-logs")


def worker_env(tiny_bundle: Path | None, **extra: str) -> dict[str, str]:
    """A reliability worker's environment; without ``tiny_bundle``, what is known before it is written."""
    bundle = {"KANDINSKY_MODEL_DIR": str(tiny_bundle)} if tiny_bundle is not None else {}
    return {
        **bundle,
        "KANDINSKY_DEVICE": "cpu",
        "KANDINSKY_DTYPE": "float32",
        **FAULT_HOOKS_ENV,
        "WORKER_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
        "WORKER_MAINTENANCE_INTERVAL_S": str(HEARTBEAT_S),
        "WORKER_JOB_TIMEOUT_S": str(JOB_TIMEOUT_S),
        "WORKER_PROGRESS_THROTTLE_S": str(PROGRESS_THROTTLE_S),
        "HF_HUB_OFFLINE": "1",
        "WORKER_FAMILIES": RELIABILITY_FAMILIES,
        **extra,
    }


class Workers:
    """The suite's worker processes; scenarios kill and restart them, the fixture keeps two alive."""

    def __init__(self, redis_url: str, tiny_bundle: Path, log_dir: Path, zygote: Zygote) -> None:
        self.redis_url = redis_url
        self.env = worker_env(tiny_bundle)
        self.log_dir = log_dir
        self.procs: dict[str, WorkerProcess] = {}
        self.starts: dict[str, int] = {}
        self.zygote = zygote

    def start(self, name: str) -> WorkerProcess:
        """Start the worker ``name`` and wait until it is ready."""
        return self.launch(name).wait_ready()

    def launch(self, name: str) -> WorkerProcess:
        """Start the worker ``name``; a restart comes up as a new host would, under a name of its own
        that ends in ``name`` (``r2.rel-worker-a``): taking over a killed worker's own name waits
        out its heartbeats first, which tests/queue/test_restart_same_name.py covers."""
        self.starts[name] = self.starts.get(name, 0) + 1
        full = name if self.starts[name] == 1 else f"r{self.starts[name]}.{name}"
        proc = WorkerProcess(self.redis_url, self.log_dir / f"{full}.log", env=self.env, name=full,
                             zygote=self.zygote)
        self.procs[name] = proc
        return proc.launch()

    def current(self, name: str) -> str:
        """The full name of the process now standing for ``name`` (``r3.rel-worker-a`` after two restarts)."""
        return self.procs[name].name

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.proc is not None and proc.proc.poll() is None

    def ensure_all(self) -> None:
        """Both workers alive; the missing ones load their engines at the same time."""
        for proc in [self.launch(name) for name in WORKER_NAMES if not self.alive(name)]:
            proc.wait_ready()

    def pid(self, name: str) -> int:
        proc = self.procs[name].proc
        assert proc is not None
        return proc.pid

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture(scope="session")
def zygote(log_dir: Path) -> Iterator[Zygote]:
    """Every worker start (two workers, and each restart after a kill) forks one parent that imported
    torch and diffusers once: a restart costs the engine load, not the imports. Started before the
    tiny bundle is written, so that its imports and the writing overlap. Each start passes its own
    environment (the bundle's folder among it)."""
    parent = Zygote({**os.environ, **worker_env(None)}, log_dir / "zygote-status", log_dir / "zygote.out",
                    REPO)
    try:
        yield parent
    finally:
        parent.close()


@pytest.fixture(scope="session")
def workers(rel_redis: RedisServer, zygote: Zygote, tiny_bundle: Path, log_dir: Path) -> Iterator[Workers]:
    pool = Workers(rel_redis.url, tiny_bundle, log_dir, zygote)
    try:
        pool.ensure_all()
        yield pool
    finally:
        pool.stop_all()


def worker_log_text(log_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*.log")))


# --- the bot ---------------------------------------------------------------------------------------

@dataclass
class Rel(Harness):
    """The bot E2E harness plus what the reliability scenarios need."""

    overrides: dict[str, object] = field(default_factory=dict)

    async def start(self) -> None:
        self.settings = make_settings(self.api, self.settings.redis_url.get_secret_value(), **self.overrides)
        self.running = await start_bot(self.api, self.settings)

    async def stop(self) -> None:
        if self.running is not None:
            await stop_bot(*self.running)
            self.running = None

    async def kill(self) -> None:
        """The bot process dies: its task is cancelled, nothing is flushed or acked on the way out."""
        if self.running is not None:
            _, task = self.running
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=30)
            self.running = None


@contextlib.asynccontextmanager
async def rel_harness(api: LocalBotAPI, redis_url: str, **overrides: object) -> AsyncIterator[Rel]:
    """A running bot; on exit it stops and the Bot API must have seen no broken rule."""
    # One stable consumer name per replica, as deployed: a restarted bot re-reads its own pending entries.
    overrides = {"BOT_CONSUMER_NAME": f"rel-bot-{next(_replicas)}", **overrides}
    settings = make_settings(api, redis_url, **overrides)
    client = Redis.from_url(redis_url)
    queue = JobQueue.from_url(redis_url, QueueSettings())
    with collected_logs() as records:
        h = Rel(api, settings, client, queue, records, overrides=dict(overrides))
        try:
            await h.start()
            yield h
        finally:
            try:
                await h.stop()
                await h.forget_jobs()
            finally:
                LOG_RECORDS.extend(records)
                await queue.close()
                await client.aclose()
    assert_telegram_rules_kept(api)


_replicas = itertools.count(1)
LOG_RECORDS: list[logging.LogRecord] = []
"""Every log record the in-process bot produced during the run, for the secrets scan."""


@pytest.fixture
async def botapi() -> AsyncIterator[LocalBotAPI]:
    async with LocalBotAPI(token=TOKEN, bot_username="kandinsky_test_bot") as api:
        yield api


@pytest.fixture
def clean_redis(rel_redis: RedisServer, workers: Workers) -> str:
    """An empty database with both workers alive (a scenario before may have killed one)."""
    workers.ensure_all()
    client = redis.Redis.from_url(rel_redis.url)
    try:
        # Keep the workers' registrations, drop every job, event and setting of earlier scenarios.
        for key in client.scan_iter(match=f"{keys.PREFIX}:*"):
            client.delete(key)
        for key in client.scan_iter(match="rq:queue:*"):
            client.delete(key)
    finally:
        client.close()
    return rel_redis.url


@pytest.fixture
async def live(botapi: LocalBotAPI, clean_redis: str) -> AsyncIterator[Rel]:
    async with rel_harness(botapi, clean_redis, **RELAXED_LIMITS) as h:
        yield h


# --- accounting ------------------------------------------------------------------------------------

def job_of(message: SentMessage) -> str | None:
    """The job a result message belongs to: its buttons carry ``r:<action>:<job id>:<index>``."""
    for button in message.inline_buttons:
        data = str(button.get("callback_data", ""))
        if data.startswith("r:"):
            parts = data.split(":")
            if len(parts) >= 3:
                return parts[2]
    return None


@dataclass
class Account:
    accepted: int
    answered: int
    lost: list[str]
    duplicated: list[str]
    statuses: dict[str, str]


async def job_records(h: Harness, users: list[SimUser]) -> dict[str, dict[str, str]]:
    """Job records of these users; rides out a Redis restart (the test's own client reconnects)."""
    for _ in range(REDIS_RETRIES):
        try:
            return await _job_records(h, users)
        except (redis.ConnectionError, redis.TimeoutError):
            await asyncio.sleep(0.5)
    return await _job_records(h, users)


async def _job_records(h: Harness, users: list[SimUser]) -> dict[str, dict[str, str]]:
    ids = {u.user_id for u in users}
    out: dict[str, dict[str, str]] = {}
    async for key in h.redis.scan_iter(match=f"{keys.PREFIX}:job:*", count=1000):
        raw: dict[bytes, bytes] = await h.redis.hgetall(key)  # type: ignore[misc,assignment]
        rec = {k.decode(): v.decode() for k, v in raw.items()}
        if int(rec.get(F.USER, 0) or 0) in ids:
            out[key.decode().split(":", 2)[2]] = rec
    return out


async def wait_settled(h: Harness, users: list[SimUser], timeout: float = QUIET_TIMEOUT_S) -> None:
    """Until every job of these users reached a terminal status and its event was delivered."""
    deadline = time.monotonic() + timeout
    while True:
        records = await job_records(h, users)
        try:
            pending = [j for j, rec in records.items()
                       if rec.get(F.STATUS) not in TERMINAL or not await h.redis.exists(keys.delivered(j))]
        except (redis.ConnectionError, redis.TimeoutError):
            pending = list(records) or ["(redis)"]
        if not pending:
            return
        if time.monotonic() > deadline:
            states = {j: records.get(j, {}).get(F.STATUS) for j in pending[:10]}
            raise TimeoutError(f"{len(pending)} jobs not settled after {timeout} s: {states}")
        await asyncio.sleep(0.3)


async def account(h: Harness, users: list[SimUser], tally: Tally, *, failure_texts: tuple[str, ...] = (),
                  settle: bool = True, grace_s: float = 1.0, timeout: float = QUIET_TIMEOUT_S) -> Account:
    """Every accepted job of these users answered exactly once: one result message for a DONE job,
    one final text for a FAILED/CANCELLED one; no result for a job that did not finish."""
    if settle:
        await wait_settled(h, users, timeout)
    await asyncio.sleep(grace_s)  # a duplicate would arrive right after the first answer
    records = await job_records(h, users)
    results: dict[str, int] = {}
    for user in users:
        for m in h.api.messages_to(user.chat_id):
            if m.from_bot and not m.deleted:
                job = job_of(m)
                if job is not None and any(str(b.get("callback_data", "")).endswith(":0")
                                           for b in m.inline_buttons):
                    results[job] = results.get(job, 0) + 1
    failures_by_chat: dict[int, int] = {}
    for user in users:
        failures_by_chat[user.chat_id] = sum(
            1 for m in h.api.messages_to(user.chat_id)
            if m.from_bot and not m.deleted and any(t in (m.text or "") for t in failure_texts))
    lost: list[str] = []
    dup: list[str] = []
    answered = 0
    expected_failures: dict[int, int] = {}
    statuses = {}
    for job_id, rec in records.items():
        status = rec.get(F.STATUS, "")
        statuses[job_id] = status
        n = results.get(job_id, 0)
        if status == JobStatus.DONE.value:
            if n == 0:
                lost.append(job_id)
            elif n > 1:
                dup.append(job_id)
            else:
                answered += 1
        else:
            if n:
                dup.append(job_id)  # a result for a job that did not finish is an answer too many
            chat = int(rec.get(F.CHAT, 0))
            expected_failures[chat] = expected_failures.get(chat, 0) + 1
    for chat, expected in expected_failures.items():
        got = failures_by_chat.get(chat, 0)
        answered += min(got, expected)
        if got < expected:
            lost += [f"chat {chat}: failure message"] * (expected - got)
        elif got > expected:
            dup += [f"chat {chat}: failure message"] * (got - expected)
    stray = set(results) - set(records)
    dup += [f"result for unknown job {j}" for j in stray]
    tally.accepted += len(records)
    tally.answered += answered
    tally.lost += len(lost)
    tally.duplicated += len(dup)
    acc = Account(len(records), answered, lost, dup, statuses)
    assert not lost, f"lost: {lost}; statuses {statuses}"
    assert not dup, f"duplicated: {dup}"
    return acc


def worker_alive(workers: Workers, name: str) -> bool:
    return workers.alive(name)


def proc_rss_mb(pid: int) -> float:
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / 2**20


def self_rss_mb() -> float:
    return proc_rss_mb(os.getpid())


def redis_used_mb(url: str) -> float:
    client = redis.Redis.from_url(url)
    try:
        return float(client.info("memory")["used_memory"]) / 2**20  # type: ignore[index]
    finally:
        client.close()


__all__ = ["REDIS_PASSWORD", "SECRETS", "subprocess"]
