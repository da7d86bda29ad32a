"""A bot-side event consumer in its own process, so a test can SIGKILL it mid-delivery.

``python -m tests.queue.consumer_proc REDIS_URL NAME MODE``. The handler records each terminal
event it starts on ``test:started`` and each it finishes on ``test:completed``; MODE ``hang``
never finishes (a Telegram upload in flight when the process dies), MODE ``ok`` finishes at once.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from bot.queue import EventConsumer
from contract.events import Event, EventType

STARTED = "test:started"
COMPLETED = "test:completed"
KEY_TTL_S = 600
"""Test bookkeeping; gone by itself after the session."""


async def main(url: str, name: str, mode: str) -> None:
    client = aioredis.Redis.from_url(url)

    async def handler(event: Event) -> None:
        if event.type is EventType.PROGRESS:
            return
        await client.rpush(STARTED, f"{name}:{event.job_id}")
        await client.expire(STARTED, KEY_TTL_S)
        if mode == "hang":
            await asyncio.Event().wait()
        await client.rpush(COMPLETED, f"{name}:{event.job_id}")
        await client.expire(COMPLETED, KEY_TTL_S)

    consumer = EventConsumer(client, handler, name, block_ms=100, claim_every_s=0.3,
                             claim_idle_ms=2000, handler_timeout_s=1.5)
    await consumer.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
