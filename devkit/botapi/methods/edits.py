"""Changing what was sent: editMessageText, editMessageCaption, editMessageMedia,
editMessageReplyMarkup, deleteMessage, and answerCallbackQuery (the answer to a button press).

To add a method: write ``async def _name(self, params: Params) -> <result>`` on
:class:`EditsMethods` and decorate it with ``@bot_method("methodName")``; an edit finds its
message with :meth:`EditsMethods._editable` and ends with :meth:`EditsMethods._finish_edit`.
"""

from __future__ import annotations

import time
from typing import Any

from devkit.botapi import limits
from devkit.botapi.methods.messages import MessagesMethods
from devkit.botapi.methods.registry import bot_method
from devkit.botapi.models import SentMessage, bad_request
from devkit.botapi.params import Params

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


class EditsMethods(MessagesMethods):
    """Edits and deletes of bot messages, and answers to callback queries."""

    @bot_method("editMessageText")
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

    @bot_method("editMessageCaption")
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

    @bot_method("editMessageMedia")
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

    @bot_method("editMessageReplyMarkup")
    async def _edit_markup(self, params: Params) -> dict[str, Any]:
        msg = self._editable(params)
        markup = self._markup(params)
        if markup == msg.reply_markup:
            raise bad_request(NOT_MODIFIED)
        before = msg.snapshot()
        msg.reply_markup = markup
        return self._finish_edit(msg, before)

    @bot_method("deleteMessage")
    async def _delete_message(self, params: Params) -> bool:
        chat_id = self._chat(params)
        message_id = params.req_int("message_id")
        msg = self.messages.get(chat_id, {}).get(message_id)
        if msg is None or msg.deleted:
            raise bad_request("message to delete not found")
        msg.deleted = True
        return True

    @bot_method("answerCallbackQuery")
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

    def _finish_edit(self, msg: SentMessage, before: SentMessage) -> dict[str, Any]:
        msg.edits.append(before)
        msg.edit_date = int(time.time())
        return self.message_json(msg)
