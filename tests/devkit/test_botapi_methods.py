"""The local Bot API server's method table, collected from the method areas in devkit/botapi/methods."""

from __future__ import annotations

from typing import Any

import pytest

from devkit.botapi import LocalBotAPI
from devkit.botapi.methods import bot_method
from devkit.botapi.params import Params

SUPPORTED_METHODS = (
    "getMe",
    "logOut",
    "close",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "getFile",
    "getChat",
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "sendSticker",
    "sendMediaGroup",
    "sendChatAction",
    "editMessageText",
    "editMessageCaption",
    "editMessageMedia",
    "editMessageReplyMarkup",
    "deleteMessage",
    "answerCallbackQuery",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "setChatMenuButton",
    "getChatMenuButton",
    "setMyDescription",
    "setMyShortDescription",
    "setMyName",
    "uploadStickerFile",
    "createNewStickerSet",
    "addStickerToSet",
    "getStickerSet",
    "deleteStickerFromSet",
    "setStickerSetTitle",
    "deleteStickerSet",
)
"""Every method the server answered before it was split into areas; none may go missing."""


@pytest.mark.parametrize("method", SUPPORTED_METHODS)
async def test_every_method_reaches_its_handler(method: str) -> None:
    # Empty parameters: a handler answers (a result or its own 400), a missing one would be a 404.
    api = LocalBotAPI()
    body = await api.call(method, {})
    assert body.get("error_code") != 404, body
    assert body["ok"] or body["error_code"] == 400, body
    assert api.server_errors == []
    assert [c.method for c in api.calls] == [method]


async def test_method_names_are_case_insensitive() -> None:
    api = LocalBotAPI()
    assert (await api.call("GETME", {}))["result"]["username"] == api.bot_username
    assert (await api.call("getme", {}))["ok"]
    missing = await api.call("sendDice", {})
    assert missing["error_code"] == 404 and api.violations == ["sendDice: Not Found: method not found"]


class ServerWithDice(LocalBotAPI):
    """A new area's way in: one marked handler, nothing else to register."""

    @bot_method("sendDice")
    async def _send_dice(self, params: Params) -> dict[str, Any]:
        return {"dice": {"emoji": params.get_str("emoji") or "🎲", "value": 6}}

    async def _get_me(self, params: Params) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Overridden"}


async def test_a_marked_handler_is_served_and_an_override_keeps_the_name() -> None:
    api = ServerWithDice()
    dice = await api.call("sendDice", {"emoji": "🎯"})
    assert dice == {"ok": True, "result": {"dice": {"emoji": "🎯", "value": 6}}}
    assert (await api.call("getMe", {}))["result"]["first_name"] == "Overridden"
    assert (await api.call("sendMessage", {}))["description"] == "Bad Request: chat_id is empty"


class ServerWithTwoGetMe(LocalBotAPI):
    @bot_method("getMe")
    async def _other_get_me(self, params: Params) -> dict[str, Any]:
        return {}


def test_two_handlers_for_one_method_fail_at_construction() -> None:
    with pytest.raises(TypeError, match="getMe is registered twice"):
        ServerWithTwoGetMe()


def test_bot_method_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one"):
        bot_method()
