"""End-to-end harness for the operations features: bot replicas on the local Bot API server.

A :class:`Replica` is assembled exactly as ``bot.app.run_bot`` assembles a bot (create_bot,
create_services, create_dispatcher, services.start, Delivery and the EventConsumer). A
:class:`Pump` reads updates from the local server once and hands them to the replicas in turn,
the way a load balancer spreads webhook calls over several replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis as redis_sync
from aiogram import Bot, Dispatcher
from PIL import Image
from redis.asyncio import Redis

from bot.app import create_bot, create_dispatcher, create_services
from bot.config import BotSettings
from bot.queue import EventConsumer
from bot.services import Services
from bot.telegram.delivery import Delivery
from contract import keys
from contract.events import DoneEvent, FileKind, JobResult, ResultFile
from contract.queue import DEFAULT_QUEUE, F, JobStatus
from contract.spec import JobSpec, Mode
from devkit.botapi import LocalBotAPI, SentMessage
from worker.jobs import finish

ADMIN_ID = 9001
EVENT_TIMEOUT_S = 15.0
"""Every round trip here takes milliseconds; fifteen seconds means the update was lost."""
PUMP_POLL_TIMEOUT_S = 1
"""Short long-polling, so stopping the pump at the end of a test is quick."""
CONSUMER_BLOCK_MS = 100
"""Short blocking reads, so a replica's consumer stops promptly at the end of a test."""
STOP_TIMEOUT_S = 10.0
"""Stopping a replica closes sessions and tasks; ten seconds means something hangs."""


def sticker_images(color: tuple[int, int, int, int] = (200, 80, 40, 255)) -> tuple[bytes, bytes]:
    """A real 512x512 RGBA sticker as the worker writes it: PNG (full size) and WEBP (display)."""
    image = Image.new("RGBA", (512, 512), (0, 0, 0, 0))
    image.paste(Image.new("RGBA", (300, 300), color), (106, 106))
    png, webp = io.BytesIO(), io.BytesIO()
    image.save(png, "PNG")
    image.save(webp, "WEBP", lossless=True)
    return png.getvalue(), webp.getvalue()


class Replica:
    """One bot process: its own Bot, Dispatcher, services and event consumer; shared Redis."""

    def __init__(self, api: LocalBotAPI, redis_url: str, name: str, **overrides: Any) -> None:
        values: dict[str, Any] = {
            "bot_token": api.token,
            "telegram_api_url": api.base_url,
            "redis_url": redis_url,
            "admin_ids": frozenset({ADMIN_ID}),
            "long_side": 512,
            "steps": 2,
            "prior_steps": 2,
            "consumer_name": name,
            "bot_mode": "webhook",  # replicas behind a load balancer: they share chat locks and pace
            "progress_edit_interval_s": 0.0,
            # No waiting on Telegram's pace against the local server (the flood profile sets its own).
            "private_chat_rate": 30.0,
            "chat_burst": 20,
        }
        values.update(overrides)
        self.settings = BotSettings(**values)
        self.name = name
        self.redis: Redis
        self.services: Services
        self.bot: Bot
        self.dp: Dispatcher
        self.consumer: EventConsumer
        self._consumer_task: asyncio.Task[None] | None = None

    async def start(self) -> Replica:
        settings = self.settings
        self.redis = Redis.from_url(settings.redis_url.get_secret_value())
        self.bot = create_bot(settings, self.redis)  # replicas share each chat's budget, as deployed
        self.services = await create_services(settings, self.redis, self.bot)
        self.dp = create_dispatcher(self.services)
        await self.services.start(self.bot)
        delivery = Delivery(self.bot, self.services)
        self.consumer = EventConsumer(self.redis, handler=delivery.handle, consumer=self.name,
                                      block_ms=CONSUMER_BLOCK_MS)
        self._consumer_task = asyncio.create_task(self.consumer.run())
        return self

    async def feed(self, update: Any) -> None:
        await self.dp.feed_update(self.bot, update)

    async def stop(self) -> None:
        """A graceful stop, as on SIGTERM: broadcasts pause (state stays in Redis), sessions close."""
        await within_stop_time(f"{self.name}: the event consumer's stop", self.consumer.stop())
        await within_stop_time(f"{self.name}: closing the services", self.services.close())
        if self._consumer_task is not None:
            self._consumer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._consumer_task, STOP_TIMEOUT_S)
        await self.bot.session.close()
        await self.redis.aclose()


def task_stacks() -> str:
    """Where every task of the loop waits (its chain of awaits): what a hung stop is reported with."""
    lines = []
    for task in asyncio.all_tasks():
        lines.append(f"{task.get_name()}:")
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                lines.append(f"  waits on {awaited!r}")
                break
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return "\n".join(lines)


async def within_stop_time(step: str, stop: Awaitable[Any]) -> None:
    """A stop that hangs fails the test at once, with the tasks' stacks, instead of at pytest's timeout."""
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await stop
    except TimeoutError:
        pytest.fail(f"{step} took over {STOP_TIMEOUT_S}s; the loop's tasks:\n{task_stacks()}")


class Pump:
    """Reads updates from the local server and feeds each to the next replica, in order."""

    def __init__(self, api: LocalBotAPI, replicas: list[Replica]) -> None:
        self.api = api
        self.replicas = replicas
        self.handled: list[tuple[int, str]] = []
        """(update_id, replica name) of every update fed, for assertions on the spread."""
        self._task: asyncio.Task[None] | None = None
        self._errors: list[BaseException] = []
        self._stopping = False

    def start(self) -> Pump:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        poller = self.replicas[0].bot
        turn = itertools.cycle(range(len(self.replicas)))
        offset: int | None = None
        while not self._stopping:
            updates = await poller.get_updates(offset=offset, timeout=PUMP_POLL_TIMEOUT_S)
            for update in updates:
                offset = update.update_id + 1
                replica = self.replicas[next(turn)]
                try:
                    await replica.feed(update)
                except Exception as exc:  # surfaced by stop(): a handler must never raise here
                    self._errors.append(exc)
                self.handled.append((update.update_id, replica.name))

    async def idle(self) -> None:
        """Wait until every update the users sent so far has been fed and handled."""
        await self.api.wait_for(lambda: not self.api.pending_updates(), EVENT_TIMEOUT_S)
        await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True  # ends the loop after its next poll even if a layer swallows the cancel
            self._task.cancel()
            await within_stop_time("the pump's stop", asyncio.wait({self._task}))
            if not self._task.cancelled():
                self._task.result()  # raises what the loop raised
                warnings.warn("the pump ended by its flag: a layer under get_updates or a handler "
                              "swallowed the cancel", RuntimeWarning, stacklevel=1)
        assert not self._errors, f"handlers raised: {self._errors!r}"


@pytest.fixture
async def api() -> AsyncIterator[LocalBotAPI]:
    async with LocalBotAPI() as server:
        yield server


@pytest.fixture
async def sync_redis(redis_url: str) -> AsyncIterator[redis_sync.Redis]:
    client = redis_sync.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def start_replicas(api: LocalBotAPI, redis_url: str) -> AsyncIterator[Callable[..., Any]]:
    """``await start_replicas(n, **settings)`` -> (replicas, pump); all stopped at the end."""
    started: list[tuple[list[Replica], Pump]] = []

    async def start(n: int = 1, **overrides: Any) -> tuple[list[Replica], Pump]:
        replicas = [await Replica(api, redis_url, f"bot-{i + 1}", **overrides).start() for i in range(n)]
        pump = Pump(api, replicas).start()
        started.append((replicas, pump))
        return replicas, pump

    yield start
    for replicas, pump in started:
        await pump.stop()
        for replica in replicas:
            with contextlib.suppress(Exception):
                await replica.stop()


def finish_sticker_job(client: redis_sync.Redis, user_id: int, chat_id: int, prompt: str = "a cat",
                       color: tuple[int, int, int, int] = (200, 80, 40, 255)) -> str:
    """Write a finished sticker job the way worker/jobs.py does: record, result files, DONE event.

    Stands in for the GPU: the bytes are a real 512x512 RGBA PNG and WEBP; the delivery, the
    buttons and the pack flow that follow are the real ones.
    """
    spec = JobSpec(mode=Mode.STICKER, prompt=prompt, width=512, height=512, steps=2, prior_steps=2,
                   user_id=user_id, chat_id=chat_id)
    now = time.time()
    client.hset(keys.job(spec.job_id), mapping={
        F.SPEC: spec.to_json(), F.STATUS: JobStatus.RUNNING.value, F.USER: user_id, F.CHAT: chat_id,
        F.QUEUE: DEFAULT_QUEUE, F.CREATED: now, F.STARTED: now, F.ATTEMPTS: 1, F.WORKER: "test-gpu",
    })
    png, webp = sticker_images(color)
    files = []
    for pos, (fmt, kind, data) in enumerate((("png", FileKind.STICKER_PNG, png),
                                             ("webp", FileKind.STICKER_WEBP, webp))):
        key = keys.result(spec.job_id, pos, fmt)
        client.set(key, data, ex=keys.RESULT_TTL)
        files.append(ResultFile(key=key, format=fmt, width=512, height=512, kind=kind, index=0))
    result = JobResult(job_id=spec.job_id, seed=7, seeds=[7], files=files, timings={"total": 0.1},
                       worker="test-gpu")
    assert finish(client, DoneEvent(job_id=spec.job_id, chat_id=chat_id, user_id=user_id, result=result),
                  {F.WORKER: "test-gpu"})
    return spec.job_id


async def delivered_sticker(api: LocalBotAPI, chat_id: int, job_id: str) -> SentMessage:
    """The message under which delivery put the result buttons (with "add to my pack") of a job."""

    def find() -> SentMessage | None:
        for msg in api.messages_to(chat_id):
            for button in msg.inline_buttons:
                if button.get("callback_data", "").startswith(f"r:pack:{job_id}:"):
                    return msg
        return None

    await api.wait_for(lambda: find() is not None, EVENT_TIMEOUT_S)
    found = find()
    assert found is not None
    return found


def last_text(api: LocalBotAPI, chat_id: int) -> str:
    msgs = [m for m in api.messages_to(chat_id) if m.text is not None]
    assert msgs, f"no text message to chat {chat_id}"
    return msgs[-1].text or ""
