"""Getting updates: getUpdates (long polling), setWebhook, deleteWebhook, getWebhookInfo.

Also the update queue itself (:meth:`UpdatesMethods._push_update`, used by the simulated users),
allowed_updates filtering and the webhook delivery loop that :meth:`LocalBotAPI.start` runs.

To add a method: write ``async def _name(self, params: Params) -> <result>`` on
:class:`UpdatesMethods` and decorate it with ``@bot_method("methodName")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

from devkit.botapi.methods.registry import bot_method
from devkit.botapi.models import ApiError, UploadedFile, bad_request
from devkit.botapi.params import Params
from devkit.botapi.state import DEFAULT_ALLOWED_UPDATES, ServerState

MAX_POLL_TIMEOUT_S = 50
"""Telegram caps getUpdates' timeout at 50 seconds."""
MAX_UPDATES_LIMIT = 100
"""getUpdates' limit is 1-100."""
WEBHOOK_RETRY_S = 0.2
"""Retry a failed webhook delivery quickly: tests wait on it (Telegram backs off for minutes)."""
WEBHOOK_TIMEOUT_S = 10.0
"""A webhook that has not answered in this long counts as failed, like a hung bot replica."""


class UpdatesMethods(ServerState):
    """The update queue and the two ways the bot reads it (polling, webhook)."""

    @bot_method("getUpdates")
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

    @bot_method("setWebhook")
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

    @bot_method("deleteWebhook")
    async def _delete_webhook(self, params: Params) -> bool:
        self.webhook_url = None
        self.webhook_secret = None
        if params.get_bool("drop_pending_updates"):
            self._pending.clear()
        return True

    @bot_method("getWebhookInfo")
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

    def _allowed(self, update: dict[str, Any]) -> bool:
        return any(k in self._allowed_updates for k in update if k != "update_id")

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
