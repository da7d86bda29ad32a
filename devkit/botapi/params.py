"""Request parameters as a Bot API method handler sees them, and the handler's type.

Its own module so that the core (``server.py``) and every method area (``methods/``) share it
without importing each other.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from devkit.botapi.models import UploadedFile, bad_request

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
"""One Bot API method: decoded parameters in, the answer's ``result`` out (or an ApiError raised)."""


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
