"""`python -m bot` as deployed: configured from the environment, stops on SIGTERM, token never printed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer
from tests.bot.conftest import REPO, TOKEN

EXIT_TIMEOUT_S = 30
"""SIGTERM stops polling at once; closing connections takes well under this."""


async def test_python_m_bot_runs_from_env_and_never_prints_the_token(
    botapi: LocalBotAPI, idle_redis: RedisServer, tmp_path: Path
) -> None:
    env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": botapi.base_url, "REDIS_URL": idle_redis.url,
           "BOT_MODE": "polling", "LOG_LEVEL": "DEBUG", "BOT_CONSUMER_NAME": "bot-entrypoint-test"}
    log_path = tmp_path / "bot.log"
    with open(log_path, "wb") as log_file:  # a file, not a pipe: DEBUG output must never block the bot
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=REPO, env=env,
                                                    stdout=log_file, stderr=asyncio.subprocess.STDOUT)
    try:
        await botapi.wait_for(lambda: len(botapi.commands) >= 2, timeout=60)
        user = botapi.user(990_101, language_code="ru")
        await user.send_text("/help")
        await botapi.wait_for(
            lambda: any("Что я умею" in (m.text or "") for m in botapi.messages_to(user.chat_id)), timeout=30)
        botapi.inject("sendMessage", error_code=500, times=3)  # an error that gets logged with its details
        await user.send_text("/start")
        await botapi.wait_for(lambda: len([c for c in botapi.calls if c.status == 500]) >= 3, timeout=30)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=EXIT_TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = log_path.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    for line in ("polling mode started", "Internal Server Error", "bot stopped"):
        assert line in text, text[-6000:]
    assert TOKEN not in text and TOKEN.split(":", 1)[1] not in text
    assert not botapi.violations


def test_redacting_filter_masks_the_token_in_any_record() -> None:
    """Defence in depth for `python -m bot`: even a library quoting a request URL cannot leak it."""
    import io
    import logging

    from bot.__main__ import LOG_FORMAT, TokenRedactingFilter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(TokenRedactingFilter(TOKEN))
    logger = logging.getLogger("tests.bot.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("GET %s failed", f"https://api.telegram.org/bot{TOKEN}/getUpdates")
    finally:
        logger.removeHandler(handler)
    assert TOKEN not in out.getvalue() and "bot<BOT_TOKEN>/getUpdates failed" in out.getvalue()
