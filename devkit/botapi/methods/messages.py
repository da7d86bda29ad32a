"""Sending: sendMessage, sendPhoto, sendDocument, sendAnimation, sendVideo, sendSticker, sendMediaGroup,
sendChatAction.

Also the message store (``add_message``, ``next_message_id``, ``message_json``) and the checks
every send shares: the target chat, text/caption formatting, reply markup and reply target.

To add a method: write ``async def _name(self, params: Params) -> <result>`` on
:class:`MessagesMethods` and decorate it with ``@bot_method("methodName")``; a send of a new
kind of file goes through :meth:`MessagesMethods._send_media` with its own content loader.
"""

from __future__ import annotations

import mimetypes
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from devkit.botapi import limits
from devkit.botapi.methods.files import FilesMethods
from devkit.botapi.methods.registry import bot_method
from devkit.botapi.models import ApiError, SentMessage, UploadedFile, bad_request
from devkit.botapi.params import Params

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
MediaLoader = Callable[[Params], Awaitable[dict[str, Any]]]
"""Reads a send method's file from the request into the message's content fields."""


class MessagesMethods(FilesMethods):
    """Bot messages: the sends, the message store and the checks they share."""

    @bot_method("sendMessage")
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

    @bot_method("sendPhoto")
    async def _send_photo(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params, "sendPhoto", "photo", lambda p: self._photo_content(p.raw("photo"), p.files)
        )

    @bot_method("sendDocument")
    async def _send_document(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params, "sendDocument", "document", lambda p: self._document_content(p.raw("document"), p)
        )

    @bot_method("sendAnimation")
    async def _send_animation(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params, "sendAnimation", "animation", lambda p: self._animation_content(p.raw("animation"), p)
        )

    @bot_method("sendVideo")
    async def _send_video(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params, "sendVideo", "video", lambda p: self._video_content(p.raw("video"), p)
        )

    @bot_method("sendSticker")
    async def _send_sticker(self, params: Params) -> dict[str, Any]:
        return await self._send_media(
            params,
            "sendSticker",
            "sticker",
            lambda p: self._sticker_content(p.raw("sticker"), p, p.get_str("emoji")),
            caption=False,
        )

    @bot_method("sendMediaGroup")
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

    @bot_method("sendChatAction")
    async def _send_chat_action(self, params: Params) -> bool:
        chat_id = self._chat(params)
        action = params.req_str("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request", violation=True)
        self.chat_actions.append((chat_id, action))
        return True

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

    async def _animation_content(self, value: Any, params: Params) -> dict[str, Any]:
        """A message with an animation carries it twice, as Telegram's do: ``animation`` and ``document``."""
        stored, duration = await self._motion_file(value, params, limits.check_animation, "animations",
                                                   "animation")
        animation = {**self.document_json(stored), "width": stored.width or 0, "height": stored.height or 0,
                     "duration": duration}
        return {"document": self.document_json(stored), "file": stored, "extra": {"animation": animation}}

    async def _video_content(self, value: Any, params: Params) -> dict[str, Any]:
        """A video message: Telegram's ``video`` object, and whether the bot asked for streaming."""
        stored, duration = await self._motion_file(value, params, limits.check_video, "videos", "video")
        video = {**self.document_json(stored), "width": stored.width or 0, "height": stored.height or 0,
                 "duration": params.get_int("duration") or duration}
        streaming = str(params.raw("supports_streaming")).lower() == "true"
        return {"file": stored, "extra": {"video": video, "supports_streaming": streaming}}

    async def _motion_file(self, value: Any, params: Params, check: Callable[[bytes], limits.AnimationFile],
                           folder: str, stem: str) -> tuple[Any, int]:
        """An animation's or a video's file, checked as Telegram plays it and stored; with its seconds
        (0 for a file sent before, by its file_id)."""
        data, filename, _, existing = await self._input_file(value, params.files)
        if existing is not None:
            return existing, 0
        found = check(data)
        mime = "video/mp4" if found.fmt == "mp4" else "image/gif"
        stored = self.store_file(data, folder, found.fmt, mime, filename or f"{stem}.{found.fmt}",
                                 width=found.width, height=found.height)
        return stored, found.duration

    async def _sticker_content(self, value: Any, params: Params, emoji: str | None) -> dict[str, Any]:
        data, _, _, existing = await self._input_file(value, params.files)
        if existing is not None:
            stored = existing
        else:
            fmt, width, height = limits.check_sticker_file(data)
            ext = fmt.lower()
            stored = self.store_file(data, "stickers", ext, f"image/{ext}", width=width, height=height)
        return {"sticker": self.sticker_json(stored, emoji), "file": stored}

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
