"""Mini Apps as Telegram opens them: the launch URL of a ``web_app`` button with signed init data.

Telegram signs the init data it hands a Mini App with the bot's token (HMAC-SHA256 under the key
HMAC("WebAppData", token), over the sorted ``key=value`` lines: core.telegram.org/bots/webapps,
"Validating data received via the Mini App") and puts it in the URL's fragment as ``tgWebAppData``,
next to ``tgWebAppVersion``, ``tgWebAppPlatform`` and ``tgWebAppThemeParams``. This module does
the same for simulated users, and makes the forged and stale variants tests must see refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from devkit.botapi.models import SentMessage

if TYPE_CHECKING:
    from devkit.botapi.sim import SimUser

WEBAPP_VERSION = "8.0"
"""The Bot API version of the Mini App features a current client offers."""
PLATFORM = "tdesktop"
THEME = {"bg_color": "#ffffff", "text_color": "#000000", "hint_color": "#999999",
         "button_color": "#2481cc", "button_text_color": "#ffffff"}


def sign_init_data(token: str, fields: dict[str, str]) -> str:
    """``fields`` as Telegram's signed init data query string (``hash`` added)."""
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote)


def init_data(token: str, user: dict[str, Any], *, auth_date: int | None = None,
              query_id: str | None = None) -> str:
    """The init data Telegram gives a Mini App opened from an inline button by ``user``."""
    fields = {
        "query_id": query_id or "AAH" + secrets.token_urlsafe(12),
        "user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
        "auth_date": str(int(time.time()) if auth_date is None else auth_date),
    }
    return sign_init_data(token, fields)


def forged_init_data(token: str, user: dict[str, Any], as_user_id: int) -> str:
    """Init data signed for ``user`` whose user id was then changed (the signature no longer holds)."""
    genuine = init_data(token, user)
    return genuine.replace(quote(f'"id":{user["id"]}', safe=""), quote(f'"id":{as_user_id}', safe=""))


def launch_url(url: str, data: str) -> str:
    """The URL a Telegram client opens for a Mini App: its own, plus the launch parameters."""
    fragment = urlencode({"tgWebAppData": data, "tgWebAppVersion": WEBAPP_VERSION,
                          "tgWebAppPlatform": PLATFORM, "tgWebAppThemeParams": json.dumps(THEME)})
    return f"{url}#{fragment}"


def web_app_button(message: SentMessage, button_text: str | None = None) -> dict[str, Any]:
    """The ``web_app`` button of a bot message (the one labelled ``button_text``, else the first)."""
    for button in message.inline_buttons:
        if "web_app" in button and (button_text is None or button.get("text") == button_text):
            return button
    labels = [b.get("text") for b in message.inline_buttons]
    raise ValueError(f"no web_app button {button_text!r} on the message; buttons: {labels}")


def open_web_app(user: SimUser, message: SentMessage, button_text: str | None = None, *,
                 auth_date: int | None = None) -> str:
    """What a client opens when ``user`` presses a Mini App button: its URL with signed init data."""
    current = user.api.messages.get(message.chat_id, {}).get(message.message_id)
    if current is None or current.deleted:
        raise ValueError("that message does not exist (or was deleted)")
    button = web_app_button(current, button_text)
    signed = init_data(user.api.token, user.to_json(), auth_date=auth_date)
    return launch_url(button["web_app"]["url"], signed)
