"""Everything the local Bot API server remembers, in one base class all method areas build on.

:class:`ServerState` holds the state (chats, messages, files, the update queue, recorded calls
...) so that each area in :mod:`devkit.botapi.methods` is only behaviour, and
:meth:`LocalBotAPI.reset <devkit.botapi.server.LocalBotAPI.reset>` sees every field in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from devkit.botapi.flood import FloodControl
from devkit.botapi.models import (
    CallbackQueryState,
    Injection,
    RecordedCall,
    SentMessage,
    StickerSetState,
    StoredFile,
)
from devkit.botapi.params import Handler
from devkit.botapi.sim import SimUser

DEFAULT_ALLOWED_UPDATES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
    }
)
"""Update types delivered when allowed_updates is empty (chat_member and reactions are opt-in)."""


class ServerState:
    """The server's state; :class:`~devkit.botapi.server.LocalBotAPI` adds the behaviour."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "kandinsky_test_bot",
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: Path | None = None,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123456
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.calls: list[RecordedCall] = []
        self.violations: list[str] = []
        self.server_errors: list[str] = []
        """Unexpected exceptions inside the server (a bug here, never the bot's fault)."""
        self.sticker_sets: dict[str, StickerSetState] = {}
        self.callback_queries: dict[str, CallbackQueryState] = {}
        self.chat_actions: list[tuple[int, str]] = []
        self.downloads: list[str] = []
        """file_path of every request to the file download route, in order."""
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        """setMyCommands state by (scope JSON, language_code)."""
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_deliveries: list[tuple[int, int, str | None]] = []
        """(update_id, HTTP status or 0, error text) for every webhook attempt."""
        self.files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self.users: dict[int, SimUser] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.blocked: set[int] = set()
        self.messages: dict[int, dict[int, SentMessage]] = {}
        self._next_message_id: dict[int, int] = {}
        self._next_update_id = 1
        self._poll_generation = 0
        self._pending: list[dict[str, Any]] = []
        self._allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self._injections: list[Injection] = []
        self.early_retries: list[str] = []
        """Writes to a chat before the retry_after of its last 429 ended: a bot ignoring flood control."""
        self.flood = FloodControl(self.early_retries)
        """Per-chat and per-bot limits, the retry_after windows they impose (devkit.botapi.flood)."""
        self._file_counter = 0
        self._query_counter = 0
        self._update_event = asyncio.Event()
        self._methods = self._method_table()
        """Lowercased Bot API method name -> handler, collected from the method areas (a clash fails
        here, at construction)."""
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._webhook_error: tuple[int, str] | None = None
        """(date, text) of the last failed webhook delivery, for getWebhookInfo."""
        self.base_url = ""

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Kandinsky", "username": self.bot_username}

    def _method_table(self) -> dict[str, Handler]:
        """The server's methods by lowercased name (the core, ``server.py``, collects them)."""
        return {}

    call: Callable[..., Awaitable[dict[str, Any]]]
    """``call(method, values, files=None, *, http_method="POST", started=None)``: run one method as if
    it arrived over HTTP. The core (``server.py``) implements it; declared here for the webhook
    delivery, which runs the bot's reply as a call."""
