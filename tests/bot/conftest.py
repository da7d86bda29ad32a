"""End-to-end harness: the real bot (aiogram Bot + Dispatcher, in-process) talking HTTP to the
local Bot API server, a redis-server of its own, and a real worker process on the tiny bundle."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from bot.app import run_bot
from bot.config import BotSettings
from bot.queue import JobQueue, QueueSettings
from devkit.botapi import LocalBotAPI
from devkit.botapi.models import SentMessage
from devkit.botapi.sim import SimUser
from devkit.faults import FAULT_HOOKS_ENV
from devkit.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]
TOKEN = "424242:AAE-secret_TOKEN-value-0123456789"
"""A token distinctive enough that finding it in a log line cannot be a coincidence."""
WORKER_START_TIMEOUT_S = 180
"""Loading the tiny bundle takes seconds; on two busy cores allow for a slow start."""
BOT_START_TIMEOUT_S = 15
"""The bot's first getUpdates/setMyCommands come within a second or two of start."""
BOT_STOP_TIMEOUT_S = 30
"""Polling stops at once; a delivery in flight may take a few seconds more."""
RESULT_TIMEOUT_S = 120
"""A 512 px, 2-step job on the tiny bundle takes seconds on a free CPU; tests share two cores."""
_user_ids = itertools.count(int(time.time()) % 100_000 * 100 + 1000)


@pytest.fixture(scope="session")
def bot_redis() -> Iterator[RedisServer]:
    """A redis-server for the bot tests alone: no other test's FLUSHALL can hit the worker's queues."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def worker_process(bot_redis: RedisServer, tiny_bundle: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m worker` on the tiny bundle, as deployed (RQ worker, resident engine)."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "REDIS_URL": bot_redis.url,
        "KANDINSKY_MODEL_DIR": str(tiny_bundle),
        "KANDINSKY_DEVICE": "cpu",
        "KANDINSKY_DTYPE": "float32",
        "WORKER_NAME": "bot-e2e-worker",
        "KANDINSKY_K5_VIDEO_FPS": "1",  # 5 s of video are 5 frames on the tiny bundle, not 121
        "KANDINSKY_K5_VIDEO_SECONDS": "[5, 10]",  # both lengths, for VIDEO_SECONDS=10's choice
        "KANDINSKY_LORA_DIR": str(tiny_bundle / "loras"),  # SDXL's two tiny styles (devkit/tiny_lora.py)
        **FAULT_HOOKS_ENV,
        "WORKER_PROGRESS_THROTTLE_S": "0.05",
        "HF_HUB_OFFLINE": "1",
    }
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env, stdout=log_file,
                                stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(bot_redis.url)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    try:
        while not client.smembers("rq:workers"):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("worker did not start:\n" + log_path.read_text(errors="replace")[-4000:])
            time.sleep(0.2)
        yield proc
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
async def botapi() -> AsyncIterator[LocalBotAPI]:
    async with LocalBotAPI(token=TOKEN, bot_username="kandinsky_test_bot") as api:
        yield api


def make_settings(api: LocalBotAPI, redis_url: str, **overrides: object) -> BotSettings:
    values: dict[str, object] = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api.base_url,
        "REDIS_URL": redis_url,
        "BOT_LONG_SIDE": 512,
        # SDXL's two Euler steps: one for the base, one for the refiner
        "BOT_STEPS": '{"kandinsky22": 2, "kandinsky3": 2, "sdxl": 2, "kandinsky5_image": 2}',
        "BOT_PRIOR_STEPS": 2,
        "BOT_PROGRESS_EDIT_INTERVAL": 0.2,
        "BOT_CONSUMER_NAME": f"bot-test-{next(_user_ids)}",
        "ADMIN_IDS": "",
        # Telegram's pace (one message a second per chat) would make every dialog here wait for
        # nothing: the local server enforces no flood control unless a test asks (tests/bot/test_flood.py).
        "BOT_PRIVATE_CHAT_RATE": 30,
        "BOT_CHAT_BURST": 20,
    }
    values.update(overrides)
    return BotSettings(**values)  # type: ignore[arg-type]


@dataclass
class Harness:
    api: LocalBotAPI
    settings: BotSettings
    redis: Redis
    queue: JobQueue
    log_records: list[logging.LogRecord] = field(default_factory=list)
    users: list[SimUser] = field(default_factory=list)
    running: tuple[asyncio.Event, asyncio.Task[None]] | None = None

    async def restart(self) -> None:
        """Stop the bot and start a new one on the same Redis, like a redeploy."""
        if self.running is not None:
            await stop_bot(*self.running)
        self.settings = make_settings(self.api, self.settings.redis_url.get_secret_value())
        self.running = await start_bot(self.api, self.settings)

    def user(self, language_code: str = "en", first_name: str = "Ann") -> SimUser:
        sim = self.api.user(next(_user_ids), first_name=first_name, language_code=language_code)
        self.users.append(sim)
        return sim

    async def forget_jobs(self) -> None:
        """Cancel what this test left queued, so no later test's worker time goes to it."""
        for sim in self.users:
            for job_id in await self.queue.user_jobs(sim.user_id):
                await self.queue.cancel(job_id, sim.user_id)

    def bot_messages(self, user: SimUser) -> list[SentMessage]:
        return [m for m in self.api.messages_to(user.chat_id) if not m.deleted]

    async def wait_message(self, user: SimUser, predicate: Callable[[SentMessage], bool],
                           timeout: float = 20.0, after: int = 0) -> SentMessage:
        """The first bot message (with its edits applied) past index ``after`` matching ``predicate``."""
        found: list[SentMessage] = []

        def check() -> bool:
            for m in self.api.messages_to(user.chat_id)[after:]:
                if predicate(m):
                    found.append(m)
                    return True
            return False

        try:
            await self.api.wait_for(check, timeout=timeout)
        except TimeoutError as exc:
            seen = [(m.kind, (m.text or m.caption or "")[:80]) for m in self.api.messages_to(user.chat_id)]
            raise TimeoutError(f"{exc}; bot messages to the chat: {seen}") from None
        return found[0]

    async def wait_text(self, user: SimUser, fragment: str, timeout: float = 20.0,
                        after: int = 0) -> SentMessage:
        """A message that shows (or showed, before an edit) ``fragment``."""
        def shows(m: SentMessage) -> bool:
            return any(fragment in (v.text or "") or fragment in (v.caption or "") for v in [m, *m.edits])

        return await self.wait_message(user, shows, timeout, after)

    async def wait_result(self, user: SimUser, kind: str = "photo", after: int = 0,
                          timeout: float = RESULT_TIMEOUT_S) -> SentMessage:
        return await self.wait_message(user, lambda m: m.kind == kind and not m.deleted, timeout, after)

    def count(self, user: SimUser) -> int:
        return len(self.api.messages_to(user.chat_id))

    async def order_animation(self, user: SimUser, prompt: str, camera: str, length: str) -> None:
        """``/animate <prompt>``, then the camera's button and the length's."""
        await user.send_text(f"/animate {prompt}")
        cameras = await self.wait_text(user, "How should the camera move?")
        await press(self, user, cameras, camera, expect="How long should it be?")
        await press(self, user, self.api.message(cameras.chat_id, cameras.message_id), length)

    async def queued_by_new_user(self, text: str, queued: str = "Your request") -> tuple[SimUser, str]:
        """A new user sends ``text`` and is told it is queued (``queued``): the user and the one job."""
        user = self.user()
        await user.send_text(text)
        await self.wait_text(user, queued)
        [job_id] = await self.queue.user_jobs(user.user_id)
        return user, job_id

    async def jobs_of(self, user: SimUser | int) -> list[str]:
        """Every job record of ``user`` (a user or an id), whatever state it is in."""
        user_id = user if isinstance(user, int) else user.user_id
        keys = [k.decode() async for k in self.redis.scan_iter(match="kb:job:*")]
        out = []
        for key in keys:
            if int(await self.redis.hget(key, "user_id") or 0) == user_id:
                out.append(key.split(":", 2)[2])
        return out


class _Collect(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


async def start_bot(api: LocalBotAPI, settings: BotSettings) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop))
    await api.wait_for(lambda: task.done() or len(api.commands) >= 2, timeout=BOT_START_TIMEOUT_S)
    if task.done():
        task.result()
    return stop, task


async def stop_bot(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, timeout=BOT_STOP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def running_harness(api: LocalBotAPI, redis_url: str, **overrides: object) -> AsyncIterator[Harness]:
    """A running bot in polling mode (``overrides``: settings by their environment names); on exit it
    must stop cleanly with no Telegram limit broken."""
    settings = make_settings(api, redis_url, **overrides)
    client = Redis.from_url(redis_url)
    queue = JobQueue.from_url(redis_url, QueueSettings())
    with collected_logs() as records:
        h = Harness(api, settings, client, queue, records)
        h.running = await start_bot(api, settings)
        try:
            yield h
        finally:
            try:
                if h.running is not None:
                    await stop_bot(*h.running)
                await h.forget_jobs()
            finally:
                await queue.close()
                await client.aclose()
    assert_telegram_rules_kept(api)


@contextlib.contextmanager
def collected_logs() -> Iterator[list[logging.LogRecord]]:
    """Every log record of the process, at DEBUG, while the block runs (the bot runs in-process)."""
    records: list[logging.LogRecord] = []
    collector = _Collect(records)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(collector)
    try:
        yield records
    finally:
        root.removeHandler(collector)
        root.setLevel(old_level)


def assert_telegram_rules_kept(api: LocalBotAPI) -> None:
    """The bot broke none of Telegram's limits, made the server fail nowhere, retried nothing early."""
    assert not api.violations, api.violations
    assert not api.server_errors, api.server_errors
    assert not api.early_retries, api.early_retries


@pytest.fixture(scope="session")
def idle_redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def idle_redis(idle_redis_server: RedisServer) -> RedisServer:
    """A redis-server no worker listens to: jobs stay queued, so tests can look at and cancel them.
    Emptied for each test: a job an earlier test cancelled after its bot stopped leaves its event
    in the stream, which the next bot would deliver to a chat it never saw."""
    client = redis.Redis.from_url(idle_redis_server.url)
    client.flushall()
    client.close()
    return idle_redis_server


@pytest.fixture
async def harness(botapi: LocalBotAPI, idle_redis: RedisServer) -> AsyncIterator[Harness]:
    """The bot with no worker behind it (refusals, dialogs, settings, cancelling queued jobs)."""
    async with running_harness(botapi, idle_redis.url) as h:
        yield h


@pytest.fixture
async def live(botapi: LocalBotAPI, bot_redis: RedisServer,
               worker_process: subprocess.Popen[bytes]) -> AsyncIterator[Harness]:
    """The bot with a real worker serving its queue."""
    async with running_harness(botapi, bot_redis.url) as h:
        yield h
    assert worker_process.poll() is None, "the worker died during the test"


async def press(h: Harness, user: SimUser, message: SentMessage, label: str, expect: str | None = None,
                timeout: float = 10.0) -> str:
    """Press a button; the query must be answered, and with ``expect`` the message must show it."""
    query_id = await user.press(message, button_text=label)
    await h.api.wait_for(lambda: h.api.callback_queries[query_id].answered, timeout=timeout)
    if expect is not None:
        def shown() -> bool:
            return expect in (h.api.message(message.chat_id, message.message_id).text or "")

        await h.api.wait_for(shown, timeout=timeout)
    return query_id
