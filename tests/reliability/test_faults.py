"""Faults in the real processes: killed and stopped workers, a Redis restart, a bot killed before it
acked, a misbehaving Bot API, a hanging job. Each ends with every accepted request answered once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import struct
import time
from typing import Any

import pytest
import redis

from bot.ui.i18n import I18n
from contract import keys
from contract.animation import FRAME_STAGE
from contract.events import Progress
from contract.queue import F, JobStatus
from devkit.botapi import LocalBotAPI
from devkit.botapi.sim import SimUser
from devkit.faults import slow_marker
from devkit.redis_server import RedisServer
from tests.reliability.conftest import (
    JOB_TIMEOUT_S,
    RELAXED_LIMITS,
    WORKER_NAMES,
    Rel,
    Tally,
    Workers,
    account,
    job_records,
    rel_harness,
)

I18N = I18n()
KILLS = int(os.environ.get("RELIABILITY_KILLS", "20"))
"""SIGKILLs in the kill scenario; each costs a worker restart (about 1.5 s of a core from the zygote)
and a rerun of the killed job. RELIABILITY_KILLS=4 gives a quick local run."""
SLOW_STEP_S = 0.1
"""Each step of a faulted job sleeps this long, so a kill lands mid-job, not between jobs."""
KILLS_PER_JOB = 2
"""Each job of the kill scenario is killed on its first two attempts and must finish on its third:
half the jobs for the same kills, and the last retry is exercised too."""
KILL_SCENARIO_TIMEOUT_S = 60 + 6 * KILLS
"""Upper bound for the whole kill loop (about 35 s alone, twice that on busy cores); a stuck job shows
up as a timeout, not a hang."""


async def submit(h: Rel, user: SimUser, prompts: list[str]) -> None:
    """Send prompts as plain texts (text → image) and wait until the bot accepted each one."""
    for prompt in prompts:
        before = len(await job_records(h, [user]))
        await user.send_text(prompt)
        deadline = time.monotonic() + 20
        while len(await job_records(h, [user])) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot did not accept {prompt!r}")
            await asyncio.sleep(0.05)


async def running_on(h: Rel, user: SimUser, worker: str) -> str | None:
    """A job of this user the given worker is running right now, if any (and not on its last try).
    ``worker`` is the process's own name (``r9.rel-worker-a``): a job whose earlier worker was killed
    still reads "running" on that one until it is re-queued, and must not pass for this one's."""
    for job_id, rec in (await job_records(h, [user])).items():
        if (rec.get(F.STATUS) == JobStatus.RUNNING.value and rec.get(F.WORKER) == worker
                and int(rec.get(F.ATTEMPTS) or 0) <= 2):
            return job_id
    return None


@pytest.mark.slow
async def test_sigkill_mid_job_across_two_workers_delivers_every_job_once(
        live: Rel, workers: Workers, tally: Tally) -> None:
    h = live
    user = h.user()
    jobs = KILLS // KILLS_PER_JOB + 2
    await submit(h, user, [f"[fault:slow={SLOW_STEP_S}] tower {i}" for i in range(jobs)])
    kills = 0
    restarts: list[asyncio.Task[object]] = []
    deadline = time.monotonic() + KILL_SCENARIO_TIMEOUT_S
    killed_jobs: dict[str, int] = {}
    while kills < KILLS:
        assert time.monotonic() < deadline, f"only {kills} kills in {KILL_SCENARIO_TIMEOUT_S} s"
        victim = None
        for name in WORKER_NAMES:
            if workers.alive(name):
                job_id = await running_on(h, user, workers.current(name))
                # With its two retries a job killed twice must still finish (running_on leaves its
                # last attempt alone).
                if job_id is not None and killed_jobs.get(job_id, 0) < KILLS_PER_JOB:
                    victim = (name, job_id)
                    break
        if victim is None:
            if not any(workers.alive(n) for n in WORKER_NAMES) and not [t for t in restarts if not t.done()]:
                break
            await asyncio.sleep(0.1)
            continue
        name, job_id = victim
        await asyncio.sleep(0.3)  # mid-job: past the start, inside the engine's steps
        if await running_on(h, user, workers.current(name)) != job_id:
            continue  # it finished meanwhile: every kill must hit a job killed no time before
        os.kill(workers.pid(name), signal.SIGKILL)
        workers.procs[name].proc.wait()  # type: ignore[union-attr]
        kills += 1
        tally.faults += 1
        killed_jobs[job_id] = killed_jobs.get(job_id, 0) + 1
        restarts.append(asyncio.create_task(asyncio.to_thread(workers.start, name)))
        # Let the restarted worker come up before the other one is killed, or both could be down.
        if kills % 2 == 0:
            await asyncio.gather(*restarts)
    await asyncio.gather(*restarts)
    acc = await account(h, [user], tally, timeout=KILL_SCENARIO_TIMEOUT_S)
    assert acc.accepted == jobs
    assert set(acc.statuses.values()) == {JobStatus.DONE.value}, acc.statuses
    assert kills == KILLS


async def test_sigterm_finishes_or_hands_back_the_current_job(
        live: Rel, workers: Workers, tally: Tally) -> None:
    h = live
    user = h.user()
    await submit(h, user, [f"[fault:slow={SLOW_STEP_S}] bridge {i}" for i in range(3)])
    deadline = time.monotonic() + 60
    target = WORKER_NAMES[0]
    while await running_on(h, user, workers.current(target)) is None:
        assert time.monotonic() < deadline, "worker a never took a job"
        await asyncio.sleep(0.05)
    os.kill(workers.pid(target), signal.SIGTERM)
    tally.faults += 1
    code = await asyncio.to_thread(workers.procs[target].proc.wait, 60)  # type: ignore[union-attr]
    assert code == 0, f"warm shutdown exits cleanly, got {code}"
    acc = await account(h, [user], tally)
    assert set(acc.statuses.values()) == {JobStatus.DONE.value}, acc.statuses
    workers.ensure_all()


async def test_redis_restart_with_jobs_queued_running_and_awaiting_delivery(
        live: Rel, workers: Workers, rel_redis: RedisServer, tally: Tally) -> None:
    h = live
    user = h.user()
    # Telegram holds the first results back (429, retry after 6 s): they wait, read but unacked,
    # in the events stream while Redis restarts; the bot stays up throughout.
    h.api.inject("sendPhoto", error_code=429, retry_after=6, times=2, chat_id=user.chat_id)
    await submit(h, user, [f"[fault:slow={SLOW_STEP_S}] harbour {i}" for i in range(6)])
    deadline = time.monotonic() + 90
    wanted = {JobStatus.DONE.value, JobStatus.RUNNING.value, JobStatus.QUEUED.value}
    while True:
        records = await job_records(h, [user])
        statuses = {r.get(F.STATUS) for r in records.values()}
        undelivered = [j for j, r in records.items() if r.get(F.STATUS) == JobStatus.DONE.value
                       and not await h.redis.exists(keys.delivered(j))]
        if wanted <= statuses and undelivered:
            break
        assert time.monotonic() < deadline, statuses
        await asyncio.sleep(0.05)
    # Redis goes away for a moment (AOF flushed first, as a clean restart does), then comes back.
    sync = redis.Redis.from_url(rel_redis.url)
    sync.bgrewriteaof()
    sync.close()
    await asyncio.sleep(0.5)
    rel_redis.stop()
    tally.faults += 1
    await asyncio.sleep(3.0)
    rel_redis.start()
    acc = await account(h, [user], tally)
    assert acc.accepted == 6
    assert set(acc.statuses.values()) == {JobStatus.DONE.value}, acc.statuses
    # Both workers and the bot reconnected by themselves and serve new work.
    assert all(workers.alive(n) for n in WORKER_NAMES)
    await submit(h, user, ["after the restart"])
    acc = await account(h, [user], tally)
    assert acc.accepted == 7


async def test_bot_killed_between_sending_and_acking_sends_the_image_once(
        live: Rel, tally: Tally) -> None:
    h = live
    user = h.user()
    sent = asyncio.Event()
    original_ack = None

    # Kill the bot at the exact moment the result went out and before the consumer acked it:
    # the ack's MULTI never runs, as if the process died there.
    from bot.queue import consumer as consumer_mod

    original_ack = consumer_mod.EventConsumer._ack_terminal

    async def dying_ack(self: consumer_mod.EventConsumer, eid: str, event: object, lease: str, *,
                        mark: bool) -> None:
        if mark and not sent.is_set() and getattr(event, "chat_id", None) == user.chat_id:
            sent.set()
            await asyncio.Event().wait()  # never returns: the task is cancelled here
        await original_ack(self, eid, event, lease, mark=mark)  # type: ignore[arg-type]

    consumer_mod.EventConsumer._ack_terminal = dying_ack  # type: ignore[method-assign]
    try:
        await submit(h, user, ["a lighthouse at dusk"])
        await asyncio.wait_for(sent.wait(), timeout=120)
        photos_before = [m for m in h.api.messages_to(user.chat_id) if m.kind == "photo"]
        assert len(photos_before) == 1
        await h.kill()
        tally.faults += 1
    finally:
        consumer_mod.EventConsumer._ack_terminal = original_ack  # type: ignore[method-assign]
    await h.start()  # a new replica process comes up
    acc = await account(h, [user], tally, grace_s=3.0)
    assert acc.answered == 1


class ResettingProxy:
    """A TCP proxy in front of the local Bot API that, during a burst, resets connections: new ones
    at once, idle keep-alive ones too (what a flaky network or a restarted load balancer does).
    During a stall it swallows new requests without an answer, so the bot's calls time out (a
    black-holed route): what arrives then never reaches the Bot API, and the connection stays
    silent until the bot gives up on it.

    A connection with a request in flight is left to finish: cut there, nobody can know whether
    Telegram acted on the request (the Bot API has no idempotency key), so a retry may duplicate
    and no retry may lose; that case is not what this scenario measures.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.bursting = False
        self.stalling = False
        self.resets = 0
        self.swallowed = 0
        self._conns: dict[asyncio.StreamWriter, list[Any]] = {}
        """client writer -> [upstream writer, request in flight, monotonic time of last answer byte]"""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                self._reset(w)
            await self._server.wait_closed()

    def burst(self, on: bool) -> None:
        self.bursting = on
        if on:
            now = time.monotonic()
            for w, (_, busy, last) in list(self._conns.items()):
                if not busy and now - last > IDLE_BEFORE_RESET_S:
                    self._reset(w)

    def _reset(self, writer: asyncio.StreamWriter) -> None:
        state = self._conns.pop(writer, None)
        if state is not None:
            with contextlib.suppress(OSError):
                state[0].close()
        if writer.is_closing():
            return
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        self.resets += 1

    def stall(self, on: bool) -> None:
        self.stalling = on

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        """Read and drop whatever the client sends until it gives up and closes."""
        self.swallowed += 1
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.bursting:
            self._reset(writer)
            return
        if self.stalling:
            await self._swallow(reader)
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        state: list[Any] = [up_w, False, time.monotonic()]
        self._conns[writer] = state

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, request: bool) -> None:
            try:
                while data := await src.read(65536):
                    if writer not in self._conns:
                        break
                    if request and self.stalling and not state[1]:
                        # A new request on a kept-alive connection: it goes nowhere, from now on.
                        self._conns.pop(writer, None)
                        with contextlib.suppress(OSError):
                            up_w.close()
                        await self._swallow(src)
                        break
                    state[1] = request
                    state[2] = time.monotonic()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.close()

        try:
            await asyncio.gather(pipe(reader, up_w, True), pipe(up_r, writer, False))
        finally:
            self._conns.pop(writer, None)


IDLE_BEFORE_RESET_S = 0.2
"""A connection quiet this long after its last answer byte carries no request: safe to cut."""
ORDERED = ("/start", "/help", "/settings", "/help", "/start")
"""Requests of one chat: each must be answered once, in this order."""
BURSTS = 3
"""Network bursts in the Telegram-errors scenario, each cutting every connection for a moment."""
BURST_S = 0.5
"""Short enough that aiogram's polling backoff and the consumer's retry ride it out."""
REQUEST_TIMEOUT_S = 3
"""The bot's Bot API call timeout in this scenario (60 s in production), so stalls time calls out."""
STALLS = 2
"""Black-holed stretches in the Telegram-errors scenario, each longer than REQUEST_TIMEOUT_S."""
STALL_S = REQUEST_TIMEOUT_S + 1.0


async def test_bot_api_429_500_and_connection_resets_every_message_arrives_in_order(
        botapi: LocalBotAPI, clean_redis: str, tally: Tally) -> None:
    proxy = ResettingProxy(botapi.port)
    await proxy.start()
    base = botapi.base_url
    botapi.base_url = f"http://127.0.0.1:{proxy.port}"  # the bot talks through the proxy
    try:
        async with rel_harness(botapi, clean_redis, BOT_REQUEST_TIMEOUT_S=REQUEST_TIMEOUT_S,
                               **RELAXED_LIMITS) as h:
            botapi.base_url = base
            # One chat gets a generation (its result meets a 429), two others a stream of /help
            # answers (they meet 429s and 5xx). Requests to one chat are sequential here, so every
            # early write in api.early_retries would be the bot's own fault, never a race.
            drawer, *askers = [h.user() for _ in range(3)]
            users = [drawer, *askers]
            control = h.user()

            def said(u: SimUser) -> list[str]:
                return [m.text or m.caption or m.kind for m in h.bot_messages(u) if m.from_bot]

            # What the requests below get answered with when nothing goes wrong, in order.
            for command in ORDERED:
                await control.send_text(command)
            await h.api.wait_for(lambda: len(said(control)) >= len(ORDERED), timeout=30)
            await asyncio.sleep(2.0)
            expected = said(control)
            h.api.rate_limit(3, per_seconds=1.0)  # Telegram's per-chat flood control
            h.api.inject("sendPhoto", error_code=429, retry_after=2, times=2, chat_id=drawer.chat_id)
            h.api.inject("sendMessage", error_code=500, times=2, chat_id=askers[0].chat_id)
            # Fewer than BOT_RETRY_AFTER_MAX_TRIES in a row: past that bound the bot gives up by design.
            h.api.inject("sendMessage", error_code=429, retry_after=1, times=2, chat_id=askers[1].chat_id)
            tally.faults += 6
            await drawer.send_text(f"a windmill for {drawer.user_id}")
            for command in ORDERED:
                for user in askers:
                    await user.send_text(command)
            # Resets and stalls take turns: (pause before, the fault, how long it lasts).
            bursts = [(1.0, proxy.burst, BURST_S)] * BURSTS
            stalls = [(0.5, proxy.stall, STALL_S)] * STALLS
            schedule = [w for pair in itertools.zip_longest(bursts, stalls) for w in pair if w is not None]
            for pause, fault, length in schedule:
                await asyncio.sleep(pause)
                fault(True)
                await asyncio.sleep(length)
                fault(False)
                tally.faults += 1
            def all_answered() -> bool:
                return all(len(said(u)) >= len(expected) for u in askers)

            await h.api.wait_for(all_answered, timeout=90)
            await account(h, users, tally)
            for user in askers:
                # Each request answered once, and in the order the user asked.
                assert said(user) == expected, (said(user), expected)
            assert proxy.resets > 0 and proxy.swallowed > 0
            timeouts = [r for r in h.log_records if "telegram unreachable" in r.getMessage()
                        and "Timeout" in r.getMessage()]
            assert timeouts, "no Bot API call timed out during the stalls"
            tally.figures.append(f"telegram faults: {proxy.resets} connections reset, "
                                 f"{len(timeouts)} calls timed out and retried, "
                                 f"{sum(c.status == 429 for c in h.api.calls)} answers 429, "
                                 f"{sum(c.status >= 500 for c in h.api.calls)} answers 5xx")
    finally:
        botapi.base_url = base
        await proxy.stop()


HANG_STEP_S = 60
"""A step that sleeps a minute: far past the workers' JOB_TIMEOUT_S, so only the timeout ends it."""


async def test_a_hanging_job_times_out_the_user_is_told_and_the_worker_serves_the_next(
        live: Rel, workers: Workers, tally: Tally) -> None:
    h = live
    user = h.user(language_code="ru")
    await submit(h, user, [f"[fault:slow={HANG_STEP_S}] a frozen clock"])
    tally.faults += 1
    told = I18N.get("ru", "failed-timeout")
    await h.wait_text(user, told, timeout=JOB_TIMEOUT_S * 3 + 30)
    await submit(h, user, ["a clock that works"])
    acc = await account(h, [user], tally, failure_texts=(told,))
    assert sorted(acc.statuses.values()) == [JobStatus.DONE.value, JobStatus.FAILED.value]
    assert all(workers.alive(n) for n in WORKER_NAMES)



async def test_sigkill_mid_animation_reruns_it_on_a_worker_and_sends_it_once(
        live: Rel, workers: Workers, tally: Tally) -> None:
    """A worker killed between an animation's frames: the sweep re-queues it, a worker renders it
    anew from frame 0, and one animation reaches the chat (the killed attempt stored nothing)."""
    h = live
    user = h.user()
    await h.order_animation(user, f"{slow_marker(SLOW_STEP_S)}a lighthouse at night", "🌀 Spin", "2 s")
    deadline = time.monotonic() + 120
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "no worker got three frames into the animation"
        for name in WORKER_NAMES:
            job_id = await running_on(h, user, workers.current(name)) if workers.alive(name) else None
            raw = await h.redis.get(keys.progress(job_id)) if job_id else None
            progress = Progress.model_validate_json(raw) if raw else None
            if progress is not None and progress.stage == FRAME_STAGE and progress.step >= 3:
                victim = (name, job_id)
                break
        await asyncio.sleep(0.05)
    name, killed = victim
    assert killed is not None
    os.kill(workers.pid(name), signal.SIGKILL)
    workers.procs[name].proc.wait()  # type: ignore[union-attr]
    tally.faults += 1
    restart = asyncio.create_task(asyncio.to_thread(workers.start, name))
    acc = await account(h, [user], tally)
    await restart
    assert acc.accepted == 1 and set(acc.statuses.values()) == {JobStatus.DONE.value}, acc.statuses
    record = await h.redis.hgetall(keys.job(killed))
    assert int(record[F.ATTEMPTS.encode()]) == 2
    assert [m.kind for m in h.bot_messages(user)].count("animation") == 1
