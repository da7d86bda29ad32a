"""Webhook mode: Telegram's POSTs with the secret token are handled, others get 401."""

from __future__ import annotations

import aiohttp

from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer, free_port
from tests.bot.conftest import make_settings, start_bot, stop_bot

SECRET = "webhook-secret-Value_42"


async def test_webhook_with_right_and_wrong_secret(botapi: LocalBotAPI, idle_redis: RedisServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/tg/webhook"
    settings = make_settings(botapi, idle_redis.url, BOT_MODE="webhook", WEBHOOK_URL=url,
                             WEBHOOK_PATH="/tg/webhook", WEBHOOK_SECRET=SECRET, WEBHOOK_HOST="127.0.0.1",
                             WEBHOOK_PORT=port)
    running = await start_bot(botapi, settings)
    try:
        await botapi.wait_for(lambda: botapi.webhook_url == url, timeout=10)
        assert botapi.webhook_secret == SECRET
        assert not any(c.method.lower() == "getupdates" for c in botapi.calls)

        user = botapi.user(990_001, language_code="en")
        await user.send_text("/help")
        def helped() -> bool:
            return any("What I can do" in (m.text or "") for m in botapi.messages_to(user.chat_id))

        await botapi.wait_for(helped, timeout=20)
        assert any(status == 200 for _, status, _ in botapi.webhook_deliveries)

        update = {"update_id": 10_000, "message": {
            "message_id": 99, "date": 1, "chat": {"id": user.chat_id, "type": "private"},
            "from": {"id": user.user_id, "is_bot": False, "first_name": "Mallory"}, "text": "/start"}}
        sent_before = len(botapi.messages_to(user.chat_id))
        async with aiohttp.ClientSession() as session:
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
                async with session.post(url, json=update, headers=headers) as resp:
                    assert resp.status == 401
            good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with session.post(url, json=update, headers=good) as resp:
                assert resp.status == 200
        # Only the POST with the secret was handled: exactly one greeting.
        await botapi.wait_for(lambda: len(botapi.messages_to(user.chat_id)) == sent_before + 1, timeout=10)
        assert "Hi, Mallory" in (botapi.messages_to(user.chat_id)[-1].text or "")
    finally:
        await stop_bot(*running)
    assert botapi.webhook_url in (None, "")  # removed on shutdown
    assert not botapi.violations
