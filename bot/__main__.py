"""``python -m bot``: run the bot with settings from the environment until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.app import run_bot
from bot.config import BotSettings
from bot.infra.heap import freeze_startup_heap

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TokenRedactingFilter(logging.Filter):
    """Replaces the bot token in every formatted record: aiohttp errors may quote request URLs."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token:
            message = record.getMessage()
            if self.token in message:
                record.msg = message.replace(self.token, "<BOT_TOKEN>")
                record.args = None
        return True


def install_token_filter(token: str) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(TokenRedactingFilter(token))


async def _serve(settings: BotSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_bot(settings, stop=stop)


def main() -> None:
    settings = BotSettings()  # type: ignore[call-arg]
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    install_token_filter(settings.bot_token.get_secret_value())
    freeze_startup_heap()  # everything is imported by now; see bot/infra/heap.py
    asyncio.run(_serve(settings))


if __name__ == "__main__":
    main()
