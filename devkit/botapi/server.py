"""A local Telegram Bot API server: the real wire format, recorded calls, simulated users.

The real aiogram ``Bot`` talks to it over HTTP (``TELEGRAM_API_URL`` = :attr:`LocalBotAPI.base_url`),
so tests exercise exactly the requests production sends, and every documented limit the bot
could break answers 400 like Telegram does and is appended to :attr:`LocalBotAPI.violations`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import json
import logging
import math
import mimetypes
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image, ImageOps

from devkit.botapi import limits
from devkit.botapi.models import (
    ApiError,
    CallbackQueryState,
    Injection,
    RecordedCall,
    SentMessage,
    StickerSetState,
    StickerState,
    StoredFile,
    UploadedFile,
    bad_request,
)
from devkit.botapi.sim import SimChat, SimUser

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Accept bodies above the 50 MB upload limit so an oversized file gets Telegram's answer, not a reset."""
SHUTDOWN_TIMEOUT_S = 1.0
"""Long-polling requests are woken on stop; nothing else needs longer to finish."""
MAX_POLL_TIMEOUT_S = 50
"""Telegram caps getUpdates' timeout at 50 seconds."""
MAX_UPDATES_LIMIT = 100
"""getUpdates' limit is 1-100."""
WEBHOOK_RETRY_S = 0.2
"""Retry a failed webhook delivery quickly: tests wait on it (Telegram backs off for minutes)."""
WEBHOOK_TIMEOUT_S = 10.0
"""A webhook that has not answered in this long counts as failed, like a hung bot replica."""
FLOOD_TOLERANCE_S = 0.1
"""A write this close to the end of a retry_after window is on time (clocks and scheduling jitter)."""
WAIT_POLL_S = 0.02
"""How often :meth:`LocalBotAPI.wait_for` re-checks its predicate."""
URL_FETCH_TIMEOUT_S = 10.0
"""Fetching a file by HTTP URL (sendPhoto with a URL) gives up after this long."""
PHOTO_THUMB_SIDES = (90, 320, 800, 1280, 2560)
"""The longest sides of the photo sizes Telegram generates (s, m, x, y, w)."""
USER_PHOTO_JPEG_QUALITY = 87
"""Telegram re-encodes photos sent by users as JPEG; this is close to its quality."""
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
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
DEFAULT_ERROR_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
WRONG_FILE = "wrong file identifier/HTTP URL specified"
JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "entities",
        "caption_entities",
        "media",
        "stickers",
        "sticker",
        "commands",
        "allowed_updates",
        "menu_button",
        "scope",
        "reply_parameters",
        "link_preview_options",
        "emoji_list",
        "keywords",
        "mask_position",
    }
)
"""Parameters sent as JSON-serialized objects in form requests."""

Handler = Callable[["Params"], Awaitable[Any]]
MediaLoader = Callable[["Params"], Awaitable[dict[str, Any]]]
"""Reads a send method's file from the request into the message's content fields."""


class Params:
    """Decoded request parameters with Telegram's typing rules (every form value is a string)."""

    def __init__(self, values: dict[str, Any], files: dict[str, UploadedFile]) -> None:
        self.values = values
        self.files = files

    def has(self, key: str) -> bool:
        return self.values.get(key) not in (None, "")

    def raw(self, key: str) -> Any:
        return self.values.get(key)

    def get_str(self, key: str, required: bool = False) -> str | None:
        value = self.values.get(key)
        if value is None or value == "":
            if required:
                raise bad_request(f"{key} is empty")
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def req_str(self, key: str) -> str:
        value = self.get_str(key, required=True)
        assert value is not None
        return value

    def get_int(self, key: str, required: bool = False) -> int | None:
        value = self.values.get(key)
        if value is None or value == "":
            if required:
                raise bad_request(f"{key} is empty")
            return None
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid {key} specified") from exc

    def req_int(self, key: str) -> int:
        value = self.get_int(key, required=True)
        assert value is not None
        return value

    def get_bool(self, key: str) -> bool:
        value = self.values.get(key)
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)

    def get_json(self, key: str) -> Any:
        value = self.values.get(key)
        if isinstance(value, str):
            if value == "":
                return None
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise bad_request(f"can't parse {key} JSON object") from exc
        return value

    def decoded(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.values.items():
            if isinstance(value, UploadedFile):
                out[key] = f"<file {value.filename} {len(value.data)} bytes>"
            elif key in JSON_FIELDS and isinstance(value, str) and value[:1] in ("{", "["):
                try:
                    out[key] = json.loads(value)
                except json.JSONDecodeError:
                    out[key] = value
            else:
                out[key] = value
        return out


class LocalBotAPI:
    """The server plus the test-driver API (simulated users, error injection, inspection)."""

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
        self._flood_until: dict[int, float] = {}
        self._rate_limit: tuple[int, float] | None = None
        self._sent_times: dict[int, collections.deque[float]] = {}
        self._file_counter = 0
        self._query_counter = 0
        self._update_event = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._methods: dict[str, Handler] = {
            name.lower(): handler for name, handler in self._method_table().items()
        }
        self.base_url = ""

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

    def rate_limit(self, max_calls: int | None, per_seconds: float = 1.0) -> None:
        """Flood control like Telegram's: more than ``max_calls`` writes to one chat within
        ``per_seconds`` answer 429 with the retry_after until the window frees (None turns it off).

        Every write that arrives before a 429's retry_after ended is listed in :attr:`early_retries`.
        """
        if max_calls is not None and max_calls < 1:
            raise ValueError("max_calls must be at least 1")
        self._rate_limit = None if max_calls is None else (max_calls, per_seconds)
        self._sent_times.clear()

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
        self.early_retries.clear()
        self._flood_until.clear()
        self._rate_limit = None
        self._sent_times.clear()

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
            self._check_flood_wait(method, chat_id)
            self._apply_injection(name, params)
            self._apply_rate_limit(chat_id)
            result = await handler(params)
            body: dict[str, Any] = {"ok": True, "result": result}
        except ApiError as err:
            body = err.to_json()
            if err.violation:
                self.violations.append(f"{method}: {err.description}")
            if err.retry_after is not None and chat_id is not None:
                self._flood_until[chat_id] = time.monotonic() + err.retry_after
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

    def _check_flood_wait(self, method: str, chat_id: int | None) -> None:
        """Record a write to a chat still inside the retry_after of an earlier 429."""
        if chat_id is None:
            return
        until = self._flood_until.get(chat_id)
        left = (until - time.monotonic()) if until is not None else 0.0
        if left > FLOOD_TOLERANCE_S:
            self.early_retries.append(
                f"{method} to chat {chat_id} {left:.2f} s before the retry_after of a 429 ended"
            )

    def _apply_rate_limit(self, chat_id: int | None) -> None:
        if self._rate_limit is None or chat_id is None:
            return
        max_calls, per_seconds = self._rate_limit
        now = time.monotonic()
        window = self._sent_times.setdefault(chat_id, collections.deque())
        while window and window[0] <= now - per_seconds:
            window.popleft()
        if len(window) >= max_calls:
            retry_after = max(1, math.ceil(window[0] + per_seconds - now))
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        window.append(now)

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

    # ------------------------------------------------------------------ updates

    def _push_update(self, kind: str, payload: dict[str, Any]) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        if kind not in self._allowed_updates:
            return update_id
        self._pending.append({"update_id": update_id, kind: payload})
        self._update_event.set()
        return update_id

    def _push_member_update(self, user_id: int, old: str, new: str) -> None:
        bot = self._bot_user()
        new_member: dict[str, Any] = {"status": new, "user": bot}
        if new == "kicked":
            new_member["until_date"] = 0
        self._push_update(
            "my_chat_member",
            {
                "chat": self.chats[user_id],
                "from": self.users[user_id].to_json(),
                "date": int(time.time()),
                "old_chat_member": {
                    "status": old,
                    "user": bot,
                    **({"until_date": 0} if old == "kicked" else {}),
                },
                "new_chat_member": new_member,
            },
        )

    def _set_allowed_updates(self, allowed: Any) -> None:
        """Store allowed_updates; queued updates of other types are dropped, as Telegram does."""
        if not isinstance(allowed, list):
            return
        self._allowed_updates = frozenset(allowed) if allowed else DEFAULT_ALLOWED_UPDATES
        self._pending = [u for u in self._pending if self._allowed(u)]

    def _select_updates(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        if offset is not None:
            if offset < 0:
                offset = max(0, self._next_update_id + offset) if self._pending else 0
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        return self._pending[:limit]

    async def _webhook_loop(self) -> None:
        while not self._closing:
            if self.webhook_url is None or not self._pending:
                self._update_event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._update_event.wait(), timeout=WEBHOOK_RETRY_S)
                continue
            update = self._pending[0]
            ok = await self._deliver(self.webhook_url, update)
            if ok:
                if self._pending and self._pending[0] is update:
                    self._pending.pop(0)
            else:
                await asyncio.sleep(WEBHOOK_RETRY_S)

    async def _deliver(self, url: str, update: dict[str, Any]) -> bool:
        """POST one update; a method in the answer body (JSON or multipart) is run like a call."""
        assert self._client is not None
        headers = {}
        if self.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
        values: dict[str, Any] = {}
        files: dict[str, UploadedFile] = {}
        try:
            async with self._client.post(
                url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            ) as resp:
                status = resp.status
                if 200 <= status < 300 and resp.content_type == "multipart/form-data":
                    reader = aiohttp.MultipartReader.from_response(resp)
                    while (part := await reader.next()) is not None:
                        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                            continue
                        data = await part.read(decode=False)
                        if part.filename is not None:
                            upload = UploadedFile(
                                part.name, part.filename, part.headers.get("Content-Type"), bytes(data)
                            )
                            files[part.name] = upload
                            values[part.name] = upload
                        else:
                            values[part.name] = bytes(data).decode()
                    raw = b""
                else:
                    raw = await resp.read()
                    if 200 <= status < 300 and resp.content_type == "application/json" and raw:
                        with contextlib.suppress(json.JSONDecodeError):
                            reply = json.loads(raw)
                            if isinstance(reply, dict):
                                values = reply
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.webhook_deliveries.append((update["update_id"], 0, f"{type(exc).__name__}: {exc}"))
            self._webhook_error = (int(time.time()), f"Connection failed: {exc}")
            return False
        if not 200 <= status < 300:
            self.webhook_deliveries.append((update["update_id"], status, raw.decode(errors="replace")))
            self._webhook_error = (int(time.time()), f"Wrong response from the webhook: {status}")
            return False
        self.webhook_deliveries.append((update["update_id"], status, None))
        if "method" in values:
            method = str(values.pop("method"))
            await self.call(method, values, files, http_method="WEBHOOK-REPLY")
        return True

    _webhook_error: tuple[int, str] | None = None

    # ------------------------------------------------------------------ helpers

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Kandinsky", "username": self.bot_username}

    def _new_file_ids(self) -> tuple[str, str]:
        self._file_counter += 1
        n = self._file_counter
        return f"BAAC{n:06d}{secrets.token_hex(8)}", f"AQAD{n:06d}"

    def store_file(
        self,
        data: bytes,
        folder: str,
        ext: str,
        mime_type: str | None = None,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> StoredFile:
        file_id, unique = self._new_file_ids()
        path = f"{folder}/file_{self._file_counter}.{ext}"
        stored = StoredFile(file_id, unique, data, path, mime_type, file_name, width, height)
        self.files[file_id] = stored
        self._files_by_path[path] = stored
        if self.data_dir is not None:
            target = self.data_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return stored

    def photo_sizes(self, data: bytes, *, reencode: bool) -> tuple[list[dict[str, Any]], StoredFile]:
        """PhotoSize list computed from the real image; the last one is the biggest.

        ``reencode`` mimics Telegram's JPEG re-encoding of user photos (EXIF orientation
        applied); bot uploads keep their original bytes in the biggest size so tests can
        inspect exactly what the bot sent.
        """
        try:
            with Image.open(io.BytesIO(data)) as opened:
                image = ImageOps.exif_transpose(opened) if reencode else opened.copy()
            image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        except Exception as exc:  # PIL raises many types for odd files; Telegram says one thing
            raise bad_request("IMAGE_PROCESS_FAILED", violation=not reencode) from exc
        width, height = image.size
        sizes: list[dict[str, Any]] = []
        main: StoredFile | None = None
        longest = max(width, height)
        limits_ = [s for s in PHOTO_THUMB_SIDES if s < longest] + [min(longest, PHOTO_THUMB_SIDES[-1])]
        for i, side in enumerate(limits_):
            last = i == len(limits_) - 1
            scale = side / longest
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            if last and not reencode:
                stored = self.store_file(data, "photos", "jpg", "image/jpeg", width=width, height=height)
                w, h = width, height
            else:
                buf = io.BytesIO()
                image.resize((w, h)).save(buf, "JPEG", quality=USER_PHOTO_JPEG_QUALITY)
                stored = self.store_file(buf.getvalue(), "photos", "jpg", "image/jpeg", width=w, height=h)
            if last:
                main = stored
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": stored.size,
                }
            )
        assert main is not None
        return sizes, main

    def document_json(self, stored: StoredFile) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
        }
        if stored.file_name:
            out["file_name"] = stored.file_name
        if stored.mime_type:
            out["mime_type"] = stored.mime_type
        return out

    def sticker_json(
        self, stored: StoredFile, emoji: str | None = None, set_name: str | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": stored.width or limits.STICKER_SIDE,
            "height": stored.height or limits.STICKER_SIDE,
            "is_animated": False,
            "is_video": False,
            "file_size": stored.size,
        }
        if emoji:
            out["emoji"] = emoji
        if set_name:
            out["set_name"] = set_name
        return out

    def message_json(self, msg: SentMessage, with_reply: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": msg.message_id,
            "date": msg.date,
            "chat": self.chats[msg.chat_id],
            "from": self._bot_user() if msg.from_bot else msg.from_user,
        }
        if msg.edit_date:
            out["edit_date"] = msg.edit_date
        if msg.text is not None:
            out["text"] = msg.text
            if msg.entities:
                out["entities"] = msg.entities
        if msg.photo is not None:
            out["photo"] = msg.photo
        if msg.document is not None:
            out["document"] = msg.document
        if msg.sticker is not None:
            out["sticker"] = msg.sticker
        if msg.caption is not None:
            out["caption"] = msg.caption
            if msg.caption_entities:
                out["caption_entities"] = msg.caption_entities
        if msg.media_group_id:
            out["media_group_id"] = msg.media_group_id
        if msg.reply_markup and "inline_keyboard" in msg.reply_markup:
            out["reply_markup"] = msg.reply_markup
        if with_reply and msg.reply_to_message_id is not None:
            replied = self.messages.get(msg.chat_id, {}).get(msg.reply_to_message_id)
            if replied is not None:
                out["reply_to_message"] = self.message_json(replied, with_reply=False)
        out.update(msg.extra)
        return out

    def add_message(self, msg: SentMessage) -> SentMessage:
        self.messages.setdefault(msg.chat_id, {})[msg.message_id] = msg
        return msg

    def next_message_id(self, chat_id: int) -> int:
        value = self._next_message_id.get(chat_id, 0) + 1
        self._next_message_id[chat_id] = value
        return value

    def _chat(self, params: Params) -> int:
        raw = params.raw("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str) and raw.startswith("@"):
            for chat in self.chats.values():
                if chat.get("username", "").lower() == raw[1:].lower():
                    raw = chat["id"]
                    break
            else:
                raise bad_request("chat not found")
        chat_id = params.get_int("chat_id") if not isinstance(raw, int) else raw
        assert chat_id is not None
        if chat_id not in self.chats:
            raise bad_request("chat not found")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _reply_to(self, params: Params, chat_id: int) -> int | None:
        reply_id = params.get_int("reply_to_message_id")
        reply_parameters = params.get_json("reply_parameters")
        allow = params.get_bool("allow_sending_without_reply")
        if isinstance(reply_parameters, dict) and reply_parameters.get("message_id") is not None:
            reply_id = int(reply_parameters["message_id"])
            allow = allow or bool(reply_parameters.get("allow_sending_without_reply"))
        if reply_id is None:
            return None
        if reply_id not in self.messages.get(chat_id, {}):
            if allow:
                return None
            raise bad_request("message to be replied not found")
        return reply_id

    def _markup(self, params: Params) -> dict[str, Any] | None:
        markup = params.get_json("reply_markup")
        if markup is None:
            return None
        limits.check_reply_markup(markup)
        return dict(markup)

    def _format(
        self, params: Params, text_key: str, entities_key: str, *, caption: bool
    ) -> tuple[str | None, list[dict[str, Any]] | None, str | None]:
        source = params.get_str(text_key)
        parse_mode = params.get_str("parse_mode")
        if source is None:
            if not caption:
                raise bad_request("message text is empty", violation=True)
            return None, None, parse_mode
        entities = params.get_json(entities_key)
        text, parsed = limits.formatted_text(source, parse_mode, entities)
        if caption:
            limits.check_caption(text)
            if not text:
                return None, None, parse_mode
        else:
            limits.check_text(text)
        return text, parsed, parse_mode

    async def _input_file(
        self, value: Any, files: dict[str, UploadedFile]
    ) -> tuple[bytes, str | None, str | None, StoredFile | None]:
        """(bytes, filename, content type, existing file) of an InputFile parameter."""
        if isinstance(value, UploadedFile):
            return value.data, value.filename, value.content_type, None
        if not isinstance(value, str) or not value:
            raise bad_request("there is no file in the request")
        if value.startswith("attach://"):
            upload = files.get(value[len("attach://") :])
            if upload is None:
                raise bad_request(f"file for {value} not found in the request")
            return upload.data, upload.filename, upload.content_type, None
        if value.startswith(("http://", "https://")):
            assert self._client is not None
            try:
                async with self._client.get(
                    value, timeout=aiohttp.ClientTimeout(total=URL_FETCH_TIMEOUT_S)
                ) as resp:
                    if resp.status != 200:
                        raise bad_request("failed to get HTTP URL content")
                    data = await resp.read()
                    return data, value.rsplit("/", 1)[-1] or None, resp.content_type, None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise bad_request("failed to get HTTP URL content") from exc
        stored = self.files.get(value)
        if stored is None:
            raise bad_request(WRONG_FILE)
        return stored.data, stored.file_name, stored.mime_type, stored

    def _editable(self, params: Params) -> SentMessage:
        if params.has("inline_message_id"):
            raise bad_request("inline messages are not supported by the local server")
        chat_id = self._chat(params)
        message_id = params.req_int("message_id")
        msg = self.messages.get(chat_id, {}).get(message_id)
        if msg is None or msg.deleted:
            raise bad_request("message to edit not found")
        if not msg.from_bot:
            raise bad_request("message can't be edited")
        return msg

    # ------------------------------------------------------------------ methods

    def _method_table(self) -> dict[str, Handler]:
        return {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getFile": self._get_file,
            "getChat": self._get_chat,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendSticker": self._send_sticker,
            "sendMediaGroup": self._send_media_group,
            "sendChatAction": self._send_chat_action,
            "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "editMessageMedia": self._edit_media,
            "editMessageReplyMarkup": self._edit_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback,
            "setMyCommands": self._set_commands,
            "getMyCommands": self._get_commands,
            "deleteMyCommands": self._delete_commands,
            "setChatMenuButton": self._set_menu_button,
            "getChatMenuButton": self._get_menu_button,
            "setMyDescription": self._true,
            "setMyShortDescription": self._true,
            "setMyName": self._true,
            "uploadStickerFile": self._upload_sticker_file,
            "createNewStickerSet": self._create_sticker_set,
            "addStickerToSet": self._add_sticker,
            "getStickerSet": self._get_sticker_set,
            "deleteStickerFromSet": self._delete_sticker,
            "setStickerSetTitle": self._set_set_title,
            "deleteStickerSet": self._delete_sticker_set,
        }

    async def _true(self, params: Params) -> bool:
        return True

    async def _get_me(self, params: Params) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _get_chat(self, params: Params) -> dict[str, Any]:
        raw = params.get_int("chat_id", required=True)
        if raw not in self.chats:
            raise bad_request("chat not found")
        return {**self.chats[raw], "accent_color_id": 0, "max_reaction_count": 11}

    async def _get_updates(self, params: Params) -> list[dict[str, Any]]:
        if self.webhook_url is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
                "to delete the webhook first",
            )
        offset = params.get_int("offset")
        limit = params.get_int("limit") or MAX_UPDATES_LIMIT
        limit = max(1, min(limit, MAX_UPDATES_LIMIT))
        timeout = max(0, min(params.get_int("timeout") or 0, MAX_POLL_TIMEOUT_S))
        self._set_allowed_updates(params.get_json("allowed_updates"))
        self._poll_generation += 1
        generation = self._poll_generation
        self._update_event.set()  # an older long poll still waiting is terminated, as in Telegram
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot "
                    "instance is running",
                )
            updates = self._select_updates(offset, limit)
            remaining = deadline - loop.time()
            if updates or remaining <= 0 or self._closing or self.webhook_url is not None:
                return updates
            self._update_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._update_event.wait(), timeout=remaining)

    def _allowed(self, update: dict[str, Any]) -> bool:
        return any(k in self._allowed_updates for k in update if k != "update_id")

    async def _set_webhook(self, params: Params) -> bool:
        url = params.get_str("url")
        secret = params.get_str("secret_token")
        if secret is not None and (
            not 1 <= len(secret) <= 256 or not all(c.isalnum() or c in "_-" for c in secret)
        ):
            raise bad_request("secret token contains unallowed characters", violation=True)
        self._set_allowed_updates(params.get_json("allowed_updates"))
        if params.get_bool("drop_pending_updates"):
            self._pending.clear()
        if not url:
            self.webhook_url = None
            self.webhook_secret = None
            return True
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        self.webhook_secret = secret
        self._webhook_error = None
        self._update_event.set()
        return True

    async def _delete_webhook(self, params: Params) -> bool:
        self.webhook_url = None
        self.webhook_secret = None
        if params.get_bool("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _get_webhook_info(self, params: Params) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
            "max_connections": 40,
        }
        if self._allowed_updates != DEFAULT_ALLOWED_UPDATES:
            info["allowed_updates"] = sorted(self._allowed_updates)
        if self._webhook_error is not None:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    async def _get_file(self, params: Params) -> dict[str, Any]:
        file_id = params.req_str("file_id")
        stored = self.files.get(file_id)
        if stored is None:
            raise bad_request("invalid file_id")
        if stored.size > limits.MAX_DOWNLOAD_BYTES:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    def _bot_message(self, chat_id: int, method: str, kind: str, **fields: Any) -> SentMessage:
        return self.add_message(
            SentMessage(
                chat_id=chat_id,
                message_id=self.next_message_id(chat_id),
                date=int(time.time()),
                from_bot=True,
                kind=kind,
                method=method,
                **fields,
            )
        )

    async def _send_message(self, params: Params) -> dict[str, Any]:
        chat_id = self._chat(params)
        text, entities, parse_mode = self._format(params, "text", "entities", caption=False)
        markup = self._markup(params)
        reply_to = self._reply_to(params, chat_id)
        msg = self._bot_message(
            chat_id,
            "sendMessage",
            "text",
            text=text,
            entities=entities,
            parse_mode=parse_mode,
            reply_markup=markup,
            reply_to_message_id=reply_to,
        )
        return self.message_json(msg)

    async def _photo_content(self, value: Any, files: dict[str, UploadedFile]) -> dict[str, Any]:
        data, _, _, existing = await self._input_file(value, files)
        if existing is None:
            limits.check_photo(data)
        else:
            limits.image_info(data)
        sizes, main = self.photo_sizes(data, reencode=False)
        return {"photo": sizes, "file": main}

    async def _document_content(self, value: Any, params: Params) -> dict[str, Any]:
        data, filename, content_type, existing = await self._input_file(value, params.files)
        if existing is not None:
            stored = existing
        else:
            limits.check_document(data)
            if not data:
                raise bad_request("file must be non-empty")
            name = filename or "document"
            mime = content_type if content_type and content_type != "application/octet-stream" else None
            mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
            ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
            stored = self.store_file(data, "documents", ext, mime, name)
        return {"document": self.document_json(stored), "file": stored}

    async def _sticker_content(self, value: Any, params: Params, emoji: str | None) -> dict[str, Any]:
        data, _, _, existing = await self._input_file(value, params.files)
        if existing is not None:
            stored = existing
        else:
            fmt, width, height = limits.check_sticker_file(data)
            ext = fmt.lower()
            stored = self.store_file(data, "stickers", ext, f"image/{ext}", width=width, height=height)
        return {"sticker": self.sticker_json(stored, emoji), "file": stored}

    async def _send_media(
        self, params: Params, method: str, kind: str, load: MediaLoader, *, caption: bool = True
    ) -> dict[str, Any]:
        """One sendPhoto / sendDocument / sendSticker message; ``load`` turns the request's file into
        the message's content. One order of checks for all (chat, caption, markup, reply target,
        then the file), so which error a bad request gets does not depend on the method."""
        chat_id = self._chat(params)
        fields: dict[str, Any] = {}
        if caption:
            text, entities, parse_mode = self._format(params, "caption", "caption_entities", caption=True)
            fields = {"caption": text, "caption_entities": entities, "parse_mode": parse_mode}
        markup = self._markup(params)
        reply_to = self._reply_to(params, chat_id)
        content = await load(params)
        msg = self._bot_message(
            chat_id, method, kind, reply_markup=markup, reply_to_message_id=reply_to, **fields, **content
        )
        return self.message_json(msg)

    async def _send_photo(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params, "sendPhoto", "photo", lambda p: self._photo_content(p.raw("photo"), p.files)
        )

    async def _send_document(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params, "sendDocument", "document", lambda p: self._document_content(p.raw("document"), p)
        )

    async def _send_sticker(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params,
            "sendSticker",
            "sticker",
            lambda p: self._sticker_content(p.raw("sticker"), p, p.get_str("emoji")),
            caption=False,
        )

    async def _send_media_group(self, params: Params) -> list[dict[str, Any]]:
        chat_id = self._chat(params)
        media = params.get_json("media")
        if not isinstance(media, list) or not 2 <= len(media) <= limits.MAX_MEDIA_GROUP:
            raise bad_request("wrong number of media items: must be 2-10", violation=True)
        reply_to = self._reply_to(params, chat_id)
        prepared: list[tuple[str, dict[str, Any]]] = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in ("photo", "document"):
                raise bad_request("unsupported media type in the local server (photo and document only)")
            sub = Params({k: v for k, v in item.items() if k != "media"}, params.files)
            caption, entities, parse_mode = self._format(sub, "caption", "caption_entities", caption=True)
            if item["type"] == "photo":
                content = await self._photo_content(item.get("media"), params.files)
            else:
                content = await self._document_content(item.get("media"), params)
            prepared.append(
                (
                    item["type"],
                    {"caption": caption, "caption_entities": entities, "parse_mode": parse_mode, **content},
                )
            )
        if len({kind for kind, _ in prepared}) > 1:
            raise bad_request("documents can't be mixed with other media types", violation=True)
        group_id = str(10**17 + secrets.randbelow(10**17))
        return [
            self.message_json(
                self._bot_message(
                    chat_id,
                    "sendMediaGroup",
                    kind,
                    media_group_id=group_id,
                    reply_to_message_id=reply_to,
                    **fields,
                )
            )
            for kind, fields in prepared
        ]

    async def _send_chat_action(self, params: Params) -> bool:
        chat_id = self._chat(params)
        action = params.req_str("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request", violation=True)
        self.chat_actions.append((chat_id, action))
        return True

    def _finish_edit(self, msg: SentMessage, before: SentMessage) -> dict[str, Any]:
        msg.edits.append(before)
        msg.edit_date = int(time.time())
        return self.message_json(msg)

    async def _edit_text(self, params: Params) -> dict[str, Any]:
        msg = self._editable(params)
        text, entities, parse_mode = self._format(params, "text", "entities", caption=False)
        markup = self._markup(params)
        if msg.kind != "text":
            raise bad_request("there is no text in the message to edit")
        if text == msg.text and entities == msg.entities and markup == msg.reply_markup:
            raise bad_request(NOT_MODIFIED)
        before = msg.snapshot()
        msg.text, msg.entities, msg.parse_mode, msg.reply_markup = text, entities, parse_mode, markup
        return self._finish_edit(msg, before)

    async def _edit_caption(self, params: Params) -> dict[str, Any]:
        msg = self._editable(params)
        caption, entities, parse_mode = self._format(params, "caption", "caption_entities", caption=True)
        markup = self._markup(params)
        if msg.kind == "text" or msg.kind == "sticker":
            raise bad_request("there is no caption in the message to edit")
        if caption == msg.caption and entities == msg.caption_entities and markup == msg.reply_markup:
            raise bad_request(NOT_MODIFIED)
        before = msg.snapshot()
        msg.caption, msg.caption_entities, msg.parse_mode, msg.reply_markup = (
            caption,
            entities,
            parse_mode,
            markup,
        )
        return self._finish_edit(msg, before)

    async def _edit_media(self, params: Params) -> dict[str, Any]:
        msg = self._editable(params)
        media = params.get_json("media")
        if not isinstance(media, dict) or media.get("type") not in ("photo", "document"):
            raise bad_request("unsupported media type in the local server (photo and document only)")
        if msg.kind not in ("photo", "document"):
            raise bad_request("there is no media in the message to edit")
        sub = Params({k: v for k, v in media.items() if k != "media"}, params.files)
        caption, entities, parse_mode = self._format(sub, "caption", "caption_entities", caption=True)
        markup = self._markup(params)
        if media["type"] == "photo":
            content = await self._photo_content(media.get("media"), params.files)
        else:
            content = await self._document_content(media.get("media"), params)
        before = msg.snapshot()
        msg.kind = media["type"]
        msg.photo = content.get("photo")
        msg.document = content.get("document")
        msg.file = content["file"]
        msg.caption, msg.caption_entities, msg.parse_mode = caption, entities, parse_mode
        msg.reply_markup = markup
        return self._finish_edit(msg, before)

    async def _edit_markup(self, params: Params) -> dict[str, Any]:
        msg = self._editable(params)
        markup = self._markup(params)
        if markup == msg.reply_markup:
            raise bad_request(NOT_MODIFIED)
        before = msg.snapshot()
        msg.reply_markup = markup
        return self._finish_edit(msg, before)

    async def _delete_message(self, params: Params) -> bool:
        chat_id = self._chat(params)
        message_id = params.req_int("message_id")
        msg = self.messages.get(chat_id, {}).get(message_id)
        if msg is None or msg.deleted:
            raise bad_request("message to delete not found")
        msg.deleted = True
        return True

    async def _answer_callback(self, params: Params) -> bool:
        query_id = params.req_str("callback_query_id")
        query = self.callback_queries.get(query_id)
        if query is None or query.answered:
            raise bad_request(QUERY_TOO_OLD)
        text = params.get_str("text")
        if text is not None and len(text) > limits.MAX_CALLBACK_ANSWER_TEXT:
            raise bad_request("MESSAGE_TOO_LONG", violation=True)
        query.answered = True
        query.answer_text = text
        query.show_alert = params.get_bool("show_alert")
        query.url = params.get_str("url")
        query.answered_at = time.monotonic()
        return True

    @staticmethod
    def _scope_key(params: Params) -> tuple[str, str]:
        scope = params.get_json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.get_str("language_code") or ""

    async def _set_commands(self, params: Params) -> bool:
        commands = params.get_json("commands")
        limits.check_commands(commands)
        self.commands[self._scope_key(params)] = list(commands)
        return True

    async def _get_commands(self, params: Params) -> list[dict[str, Any]]:
        return self.commands.get(self._scope_key(params), [])

    async def _delete_commands(self, params: Params) -> bool:
        self.commands.pop(self._scope_key(params), None)
        return True

    async def _set_menu_button(self, params: Params) -> bool:
        button = params.get_json("menu_button") or {"type": "default"}
        self.menu_buttons[params.get_int("chat_id")] = button
        return True

    async def _get_menu_button(self, params: Params) -> dict[str, Any]:
        return self.menu_buttons.get(params.get_int("chat_id"), {"type": "commands"})

    # sticker sets

    def _sticker_owner(self, params: Params) -> int:
        user_id = params.req_int("user_id")
        if user_id not in self.users:
            raise bad_request("USER_ID_INVALID")
        return user_id

    async def _input_sticker(self, raw: Any, params: Params) -> StickerState:
        if not isinstance(raw, dict):
            raise bad_request("can't parse InputSticker JSON object")
        sticker_format = str(raw.get("format") or params.get_str("sticker_format") or "static")
        emoji_list = raw.get("emoji_list") or []
        if not isinstance(emoji_list, list) or not 1 <= len(emoji_list) <= 20:
            raise bad_request("invalid sticker emojis", violation=True)
        data, _, _, existing = await self._input_file(raw.get("sticker"), params.files)
        if existing is not None:
            limits.check_sticker_file(existing.data, sticker_format)
            stored = existing
        else:
            fmt, width, height = limits.check_sticker_file(data, sticker_format)
            ext = fmt.lower()
            stored = self.store_file(data, "stickers", ext, f"image/{ext}", width=width, height=height)
        return StickerState(stored, [str(e) for e in emoji_list], sticker_format)

    def _set(self, name: str | None) -> StickerSetState:
        sticker_set = self.sticker_sets.get(name or "")
        if sticker_set is None:
            raise bad_request("STICKERSET_INVALID")
        return sticker_set

    async def _upload_sticker_file(self, params: Params) -> dict[str, Any]:
        self._sticker_owner(params)
        sticker_format = params.get_str("sticker_format") or "static"
        data, _, _, _ = await self._input_file(params.raw("sticker"), params.files)
        fmt, width, height = limits.check_sticker_file(data, sticker_format)
        ext = fmt.lower()
        stored = self.store_file(data, "stickers", ext, f"image/{ext}", width=width, height=height)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    async def _create_sticker_set(self, params: Params) -> bool:
        owner = self._sticker_owner(params)
        name = params.req_str("name")
        title = params.get_str("title") or ""
        limits.check_set_name(name, self.bot_username)
        limits.check_set_title(title)
        if name.lower() in (n.lower() for n in self.sticker_sets):
            raise bad_request("sticker set name is already occupied")
        raw_stickers = params.get_json("stickers")
        if not isinstance(raw_stickers, list) or not 1 <= len(raw_stickers) <= limits.MAX_INITIAL_STICKERS:
            raise bad_request("STICKERS_INVALID (1-50 initial stickers)", violation=True)
        stickers = [await self._input_sticker(raw, params) for raw in raw_stickers]
        self.sticker_sets[name] = StickerSetState(
            name, title, owner, params.get_str("sticker_type") or "regular", stickers
        )
        return True

    async def _add_sticker(self, params: Params) -> bool:
        owner = self._sticker_owner(params)
        sticker_set = self._set(params.get_str("name"))
        if sticker_set.owner_user_id != owner:
            raise bad_request("STICKERSET_INVALID")
        if len(sticker_set.stickers) >= limits.MAX_STICKERS_IN_SET:
            raise bad_request("STICKERS_TOO_MUCH")
        sticker_set.stickers.append(await self._input_sticker(params.get_json("sticker"), params))
        return True

    async def _get_sticker_set(self, params: Params) -> dict[str, Any]:
        return self._set(params.get_str("name")).to_json()

    async def _delete_sticker(self, params: Params) -> bool:
        file_id = params.req_str("sticker")
        for sticker_set in self.sticker_sets.values():
            for sticker in sticker_set.stickers:
                if sticker.file.file_id == file_id:
                    sticker_set.stickers.remove(sticker)
                    return True
        raise bad_request("STICKER_INVALID")

    async def _set_set_title(self, params: Params) -> bool:
        sticker_set = self._set(params.get_str("name"))
        title = params.get_str("title") or ""
        limits.check_set_title(title)
        sticker_set.title = title
        return True

    async def _delete_sticker_set(self, params: Params) -> bool:
        sticker_set = self._set(params.get_str("name"))
        del self.sticker_sets[sticker_set.name]
        return True
