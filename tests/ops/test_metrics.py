"""Prometheus metrics and health endpoints of the bot (through run_bot) and of a worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import aiohttp
import pytest
import redis as redis_sync
from prometheus_client.parser import text_string_to_metric_families

from bot.app import run_bot
from bot.config import BotSettings
from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer, free_port
from tests.ops.conftest import ADMIN_ID, EVENT_TIMEOUT_S, last_text
from worker.metrics import record_job, start_worker_metrics

USER = 801
RUN_BOT_STOP_TIMEOUT_S = 30.0
"""run_bot stops polling, the consumer and the endpoint; half a minute means it hangs."""
HTTP_RETRIES = 200
HTTP_RETRY_S = 0.05
"""The endpoint starts with the bot: up to ten seconds of polling for it to answer."""


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def _wait_http(url: str) -> tuple[int, str]:
    for _ in range(HTTP_RETRIES):
        with contextlib.suppress(aiohttp.ClientError):
            return await _get(url)
        await asyncio.sleep(HTTP_RETRY_S)
    raise TimeoutError(url)


async def test_bot_metrics_and_health_through_run_bot(api: LocalBotAPI, redis_url: str,
                                                      sync_redis: redis_sync.Redis) -> None:
    port = free_port()
    settings = BotSettings.model_validate({
        "BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.base_url, "REDIS_URL": redis_url,
        "ADMIN_IDS": str(ADMIN_ID), "BOT_LONG_SIDE": 512, "HEALTH_PORT": port,
    })
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop))
    try:
        status, body = await _wait_http(f"http://127.0.0.1:{port}/healthz")
        assert (status, body) == (200, "ok")
        record_job(sync_redis, "sticker", "done", 1.5)
        record_job(sync_redis, "sticker", "failed", None)
        # A Telegram error the bot meets is counted by kind (the 403 of a user who blocked the bot).
        user = api.user(USER)
        api.inject("sendMessage", error_code=403, description="Forbidden: bot was blocked by the user",
                   chat_id=USER)
        await user.send_text("/start")
        await api.wait_for(lambda: any(not c.ok for c in api.calls_to("sendMessage")), EVENT_TIMEOUT_S)
        await user.send_text("a whale in the sky")  # queued: queue depth 1
        await api.wait_for(lambda: sync_redis.llen("rq:queue:kb-default") == 1, EVENT_TIMEOUT_S)
        # The admin router is wired into run_bot too.
        api.user(ADMIN_ID)
        await api.user(ADMIN_ID).send_text("/maintenance")
        await api.wait_for(lambda: bool(api.messages_to(ADMIN_ID)), EVENT_TIMEOUT_S)
        assert last_text(api, ADMIN_ID) == "Maintenance mode is off."

        status, text = await _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        samples = _samples(text)
        assert samples[("kb_jobs_total", (("mode", "sticker"), ("outcome", "done")))] == 1
        assert samples[("kb_jobs_total", (("mode", "sticker"), ("outcome", "failed")))] == 1
        assert samples[("kb_queue_depth", (("queue", "kb-default"),))] == 1
        forbidden = (("kind", "forbidden"), ("method", "SendMessage"))
        assert samples[("kb_bot_telegram_errors_total", forbidden)] == 1
        assert samples[("kb_bot_jobs_submitted_total", (("mode", "text2image"),))] == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, RUN_BOT_STOP_TIMEOUT_S)
    with pytest.raises(aiohttp.ClientError):
        await _get(f"http://127.0.0.1:{port}/healthz")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of its own, so the test can stop it without hurting the session's."""
    with RedisServer() as server:
        yield server


async def test_worker_metrics_and_health(own_redis: RedisServer) -> None:
    port = free_port()
    loaded = {"engine": False}
    metrics, server = start_worker_metrics(port, own_redis.url, lambda: loaded["engine"], worker_name="w-1")
    try:
        url = f"http://127.0.0.1:{port}"
        assert await _get(f"{url}/healthz") == (503, "engine not loaded")
        loaded["engine"] = True
        assert await _get(f"{url}/healthz") == (200, "ok")
        client = redis_sync.Redis.from_url(own_redis.url)
        record_job(client, "depth", "done", 2.0, timings={"prior": 0.5, "decoder": 1.25}, metrics=metrics)
        record_job(client, "depth", "failed", 0.3, metrics=metrics)
        metrics.observe_warmup({"text2image 1024x1024": 42.5, "depth 1024x576": 7.0})
        status, text = await _get(f"{url}/metrics")
        samples = _samples(text)
        assert samples[("kb_worker_warmup_seconds", (("mode", "text2image"), ("size", "1024x1024")))] == 42.5
        assert samples[("kb_worker_warmup_seconds", (("mode", "depth"), ("size", "1024x576")))] == 7.0
        assert samples[("kb_worker_jobs_total", (("mode", "depth"), ("outcome", "done")))] == 1
        assert samples[("kb_worker_jobs_total", (("mode", "depth"), ("outcome", "failed")))] == 1
        assert samples[("kb_worker_stage_seconds_sum", (("stage", "decoder"),))] == 1.25
        assert samples[("kb_worker_job_seconds_count", (("mode", "depth"),))] == 1
        assert samples[("kb_worker_engine_loaded", ())] == 1
        assert samples[("kb_worker_gpu_memory_bytes", (("kind", "allocated"),))] == 0  # no CUDA here
        assert client.hget("kb:stats:jobs:total", "depth:done") == b"1"
        assert client.lrange("kb:stats:durations:depth", 0, -1) == [b"2.000"]
        client.close()
        # Redis gone: unhealthy, and recording a job does not raise (statistics never fail a job).
        own_redis.stop()
        status, body = await _get(f"{url}/healthz")
        assert status == 503 and body.startswith("redis unreachable")
        record_job(redis_sync.Redis.from_url(own_redis.url), "depth", "done", 1.0, metrics=metrics)
        assert _samples((await _get(f"{url}/metrics"))[1])[
            ("kb_worker_jobs_total", (("mode", "depth"), ("outcome", "done")))] == 2
    finally:
        server.shutdown()
        server.server_close()
