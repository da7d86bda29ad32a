"""Sticker sets: uploadStickerFile, createNewStickerSet, addStickerToSet, getStickerSet,
deleteStickerFromSet, setStickerSetTitle, deleteStickerSet.

To add a method: write ``async def _name(self, params: Params) -> <result>`` on
:class:`StickersMethods` and decorate it with ``@bot_method("methodName")``.
"""

from __future__ import annotations

from typing import Any

from devkit.botapi import limits
from devkit.botapi.methods.files import FilesMethods
from devkit.botapi.methods.registry import bot_method
from devkit.botapi.models import StickerSetState, StickerState, bad_request
from devkit.botapi.params import Params


class StickersMethods(FilesMethods):
    """Sticker sets owned by simulated users, with Telegram's limits on names, files and counts."""

    @bot_method("uploadStickerFile")
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

    @bot_method("createNewStickerSet")
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

    @bot_method("addStickerToSet")
    async def _add_sticker(self, params: Params) -> bool:
        owner = self._sticker_owner(params)
        sticker_set = self._set(params.get_str("name"))
        if sticker_set.owner_user_id != owner:
            raise bad_request("STICKERSET_INVALID")
        if len(sticker_set.stickers) >= limits.MAX_STICKERS_IN_SET:
            raise bad_request("STICKERS_TOO_MUCH")
        sticker_set.stickers.append(await self._input_sticker(params.get_json("sticker"), params))
        return True

    @bot_method("getStickerSet")
    async def _get_sticker_set(self, params: Params) -> dict[str, Any]:
        return self._set(params.get_str("name")).to_json()

    @bot_method("deleteStickerFromSet")
    async def _delete_sticker(self, params: Params) -> bool:
        file_id = params.req_str("sticker")
        for sticker_set in self.sticker_sets.values():
            for sticker in sticker_set.stickers:
                if sticker.file.file_id == file_id:
                    sticker_set.stickers.remove(sticker)
                    return True
        raise bad_request("STICKER_INVALID")

    @bot_method("setStickerSetTitle")
    async def _set_set_title(self, params: Params) -> bool:
        sticker_set = self._set(params.get_str("name"))
        title = params.get_str("title") or ""
        limits.check_set_title(title)
        sticker_set.title = title
        return True

    @bot_method("deleteStickerSet")
    async def _delete_sticker_set(self, params: Params) -> bool:
        sticker_set = self._set(params.get_str("name"))
        del self.sticker_sets[sticker_set.name]
        return True

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
