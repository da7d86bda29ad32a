"""A local Telegram Bot API server: the real wire format, recorded calls, simulated users.

The real aiogram ``Bot`` talks to it over HTTP (``TELEGRAM_API_URL`` = :attr:`LocalBotAPI.base_url`),
so tests exercise exactly the requests production sends, and every documented limit the bot
could break answers 400 like Telegram does and is appended to :attr:`LocalBotAPI.violations`.

This module is the core: lifecycle, the HTTP layer, recording, flood control, error injection and
the test-driver API. The Bot API methods themselves live in :mod:`devkit.botapi.methods`, one
module per area; the state they share is :class:`devkit.botapi.state.ServerState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from devkit.botapi.flood import FLOOD_TOLERANCE_S
from devkit.botapi.methods import (
    ChatsMethods,
    CommandsMethods,
    EditsMethods,
    StickersMethods,
    UpdatesMethods,
    method_table,
)
from devkit.botapi.methods.edits import NOT_MODIFIED, QUERY_TOO_OLD
from devkit.botapi.methods.files import (
    PHOTO_THUMB_SIDES,
    URL_FETCH_TIMEOUT_S,
    USER_PHOTO_JPEG_QUALITY,
    WRONG_FILE,
)
from devkit.botapi.methods.messages import CHAT_ACTIONS, MediaLoader
from devkit.botapi.methods.updates import (
    MAX_POLL_TIMEOUT_S,
    MAX_UPDATES_LIMIT,
    WEBHOOK_RETRY_S,
    WEBHOOK_TIMEOUT_S,
)
from devkit.botapi.models import ApiError, Injection, RecordedCall, SentMessage, UploadedFile, bad_request
from devkit.botapi.params import JSON_FIELDS, Handler, Params
from devkit.botapi.sim import SimChat, SimUser
from devkit.botapi.state import DEFAULT_ALLOWED_UPDATES

# The constants and types that moved to the params, state and methods modules stay importable
# from here, as before the split.
__all__ = [
    "CHAT_ACTIONS",
    "DEFAULT_ALLOWED_UPDATES",
    "DEFAULT_ERROR_TEXT",
    "FLOOD_TOLERANCE_S",
    "JSON_FIELDS",
    "MAX_POLL_TIMEOUT_S",
    "MAX_REQUEST_BYTES",
    "MAX_UPDATES_LIMIT",
    "NOT_MODIFIED",
    "PHOTO_THUMB_SIDES",
    "QUERY_TOO_OLD",
    "SHUTDOWN_TIMEOUT_S",
    "URL_FETCH_TIMEOUT_S",
    "USER_PHOTO_JPEG_QUALITY",
    "WAIT_POLL_S",
    "WEBHOOK_RETRY_S",
    "WEBHOOK_TIMEOUT_S",
    "WRONG_FILE",
    "Handler",
    "LocalBotAPI",
    "MediaLoader",
    "Params",
]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Accept bodies above the 50 MB upload limit so an oversized file gets Telegram's answer, not a reset."""
SHUTDOWN_TIMEOUT_S = 1.0
"""Long-polling requests are woken on stop; nothing else needs longer to finish."""
WAIT_POLL_S = 0.02
"""How often :meth:`LocalBotAPI.wait_for` re-checks its predicate."""
DEFAULT_ERROR_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class LocalBotAPI(UpdatesMethods, ChatsMethods, CommandsMethods, EditsMethods, StickersMethods):
    """The server plus the test-driver API (simulated users, error injection, inspection)."""

    def _method_table(self) -> dict[str, Handler]:
        return method_table(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._update_event = asyncio.Event()
        self._closing = False
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        self.base_url = f"http://{self.host}:{self.port}"
        self._client = aiohttp.ClientSession()
        self._webhook_task = asyncio.create_task(self._webhook_loop())
        log.info("local Bot API server on %s", self.base_url)

    async def stop(self) -> None:
        self._closing = True
        self._update_event.set()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> LocalBotAPI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test-driver API

    def user(
        self,
        user_id: int,
        first_name: str = "Test",
        language_code: str = "en",
        username: str | None = None,
    ) -> SimUser:
        """A simulated user with a private chat (id = user id), created once per id."""
        if user_id in self.users:
            return self.users[user_id]
        if user_id <= 0:
            raise ValueError("user ids are positive; groups use negative ids")
        sim = SimUser(self, user_id, first_name, language_code, username)
        self.users[user_id] = sim
        chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": first_name}
        if username:
            chat["username"] = username
        self.chats[user_id] = chat
        return sim

    def group(self, chat_id: int, title: str) -> SimChat:
        if chat_id >= 0:
            raise ValueError("group chat ids are negative, as in Telegram")
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        self.chats[chat_id] = {"id": chat_id, "type": kind, "title": title}
        return SimChat(chat_id, title, kind)

    def inject(
        self,
        method: str | None,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` matching calls with this error instead of running them.

        ``method=None`` matches every method except getUpdates (name it to break polling).
        """
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after or 1}"
            else:
                description = DEFAULT_ERROR_TEXT.get(error_code, f"Error {error_code}")
        if error_code == 429 and retry_after is None:
            retry_after = 1
        self._injections.append(
            Injection(
                method.lower() if method else None, error_code, description, retry_after, times, chat_id
            )
        )

    def rate_limit(self, max_calls: int | None, per_seconds: float = 1.0, *,
                   chat_id: int | None = None) -> None:
        """Flood control like Telegram's: more than ``max_calls`` writes to one chat within
        ``per_seconds`` answer 429 with the retry_after until the window frees, and then every call
        to that chat is refused until that retry_after ends (None turns the limit off).

        Without ``chat_id`` the limit holds for every chat; with one, for that chat only (over the
        general one): e.g. a group limited to two messages per ten seconds. Every call that arrives
        inside a window is listed in :attr:`early_retries`.
        """
        self.flood.limit_chats(max_calls, per_seconds, chat_id)

    def global_rate_limit(self, max_calls: int | None, per_seconds: float = 1.0) -> None:
        """Telegram's bulk limit: more than ``max_calls`` writes over all chats within ``per_seconds``
        answer 429 (and hold the chat written to, as a per-chat 429 does); None turns it off."""
        self.flood.limit_bot(max_calls, per_seconds)

    def block_bot(self, user_id: int) -> None:
        """The user blocks the bot: every send to them answers 403 until :meth:`unblock_bot`."""
        self.user(user_id)
        if user_id in self.blocked:
            return
        self.blocked.add(user_id)
        self._push_member_update(user_id, "member", "kicked")

    def unblock_bot(self, user_id: int) -> None:
        if user_id in self.blocked:
            self.blocked.discard(user_id)
            self._push_member_update(user_id, "kicked", "member")

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``predicate()`` is true; TimeoutError with the last calls otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() >= deadline:
                recent = ", ".join(f"{c.method}:{'ok' if c.ok else c.description}" for c in self.calls[-10:])
                problems = "".join(
                    f"; {label}: {items}"
                    for label, items in (
                        ("violations", self.violations),
                        ("server errors", self.server_errors),
                    )
                    if items
                )
                raise TimeoutError(f"condition not met within {timeout} s; last calls: {recent}{problems}")
            await asyncio.sleep(WAIT_POLL_S)

    async def wait_message(
        self,
        chat_id: int,
        after: int = 0,
        predicate: Callable[[SentMessage], bool] | None = None,
        timeout: float = 30.0,
    ) -> SentMessage:
        """The first bot message in the chat with an id above ``after`` (e.g. the user's message id)
        that satisfies ``predicate``; waits for it."""

        def found() -> SentMessage | None:
            for msg in self.messages_to(chat_id):
                if msg.message_id > after and (predicate is None or predicate(msg)):
                    return msg
            return None

        await self.wait_for(lambda: found() is not None, timeout)
        result = found()
        assert result is not None
        return result

    def messages_to(self, chat_id: int, include_deleted: bool = True) -> list[SentMessage]:
        """What the bot sent to a chat, in order (deleted ones kept with ``deleted=True``)."""
        return [
            m
            for m in self.messages.get(chat_id, {}).values()
            if m.from_bot and (include_deleted or not m.deleted)
        ]

    def reset(self) -> None:
        """Forget everything a test did, so one server can serve a whole session of tests.

        Users, groups and the bot stay registered; ids keep counting up, as in Telegram.
        """
        self.calls.clear()
        self.violations.clear()
        self.server_errors.clear()
        self.sticker_sets.clear()
        self.callback_queries.clear()
        self.chat_actions.clear()
        self.downloads.clear()
        self.commands.clear()
        self.menu_buttons.clear()
        self.webhook_url = None
        self.webhook_secret = None
        self._webhook_error = None
        self.webhook_deliveries.clear()
        self.blocked.clear()
        self.messages.clear()
        self._pending.clear()
        self._injections.clear()
        self._allowed_updates = DEFAULT_ALLOWED_UPDATES
        self.flood.reset()  # the early_retries list too

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        return self.messages[chat_id][message_id]

    def calls_to(self, method: str | None = None, chat_id: int | None = None) -> list[RecordedCall]:
        """Recorded calls of one method (any if None), optionally only those to one chat."""
        return [
            c
            for c in self.calls
            if (method is None or c.method.lower() == method.lower())
            and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
        ]

    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._pending)

    # ------------------------------------------------------------------ HTTP layer

    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
        values: dict[str, Any] = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except json.JSONDecodeError as exc:
                    raise bad_request("can't parse JSON request body") from exc
                if not isinstance(body, dict):
                    raise bad_request("JSON request body must be an object")
                values.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        upload = UploadedFile(key, value.filename, value.content_type, value.file.read())
                        files[key] = upload
                        values[key] = upload
                    else:
                        values[key] = value
        return values, files

    async def _handle_method(self, request: web.Request) -> web.Response:
        started = time.time()
        method = request.match_info["method"]
        values: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        status = 200
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            values, files = await self._read_params(request)
            body = await self.call(method, values, files, http_method=request.method, started=started)
            status = 200 if body["ok"] else int(body["error_code"])
        except ApiError as err:
            body = err.to_json()
            status = err.error_code
            self.calls.append(
                RecordedCall(
                    method, Params(values, files).decoded(), files, body, status, started, request.method
                )
            )
        return web.json_response(body, status=status)

    async def call(
        self,
        method: str,
        values: dict[str, Any],
        files: dict[str, UploadedFile] | None = None,
        *,
        http_method: str = "POST",
        started: float | None = None,
    ) -> dict[str, Any]:
        """Run one method as if it arrived over HTTP; records it and returns the JSON answer."""
        params = Params(values, files or {})
        started = time.time() if started is None else started
        name = method.lower()
        chat_id = self._flood_chat(name, params)
        try:
            handler = self._methods.get(name)
            if handler is None:
                raise ApiError(404, "Not Found: method not found", violation=True)
            self.flood.check_window(method, chat_id)
            self._apply_injection(name, params)
            self.flood.admit(chat_id)
            result = await handler(params)
            body: dict[str, Any] = {"ok": True, "result": result}
        except ApiError as err:
            body = err.to_json()
            if err.violation:
                self.violations.append(f"{method}: {err.description}")
            if err.retry_after is not None and chat_id is not None:
                self.flood.impose(chat_id, err.retry_after, err)
        except Exception as exc:
            log.exception("local Bot API server failed on %s", method)
            self.server_errors.append(f"{method}: {type(exc).__name__}: {exc}")
            body = {"ok": False, "error_code": 500, "description": f"Internal Server Error: {exc}"}
        status = 200 if body["ok"] else int(body["error_code"])
        self.calls.append(
            RecordedCall(method, params.decoded(), params.files, body, status, started, http_method)
        )
        return body

    @staticmethod
    def _flood_chat(name: str, params: Params) -> int | None:
        """The chat a call writes to (flood control is per chat), None for other calls."""
        if name.startswith("get") or name == "setchatmenubutton" or not params.has("chat_id"):
            return None
        try:
            return params.get_int("chat_id")
        except ApiError:
            return None

    def _apply_injection(self, name: str, params: Params) -> None:
        chat_id: int | None = None
        with contextlib.suppress(ApiError):
            chat_id = params.get_int("chat_id") if params.has("chat_id") else None
        for injection in self._injections:
            if injection.times <= 0:
                continue
            if injection.method is None and name == "getupdates":
                continue
            if injection.method is not None and injection.method != name:
                continue
            if injection.chat_id is not None and injection.chat_id != chat_id:
                continue
            injection.times -= 1
            raise ApiError(injection.error_code, injection.description, retry_after=injection.retry_after)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        path = request.match_info["path"]
        stored = self._files_by_path.get(path)
        self.downloads.append(path)
        if stored is not None:
            return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
