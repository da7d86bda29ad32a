"""Filters that recognise what a message carries; they pass the file reference on to the handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiogram.filters import BaseFilter
from aiogram.types import Message, TelegramObject
from magic_filter import MagicFilter


@dataclass(frozen=True)
class ImageRef:
    """A photo or a document that claims to be an image; its content is checked after download."""

    file_id: str
    file_size: int | None


def image_ref(message: Message) -> ImageRef | None:
    if message.photo:
        biggest = message.photo[-1]
        return ImageRef(biggest.file_id, biggest.file_size)
    doc = message.document
    if doc is not None:
        # Documents are accepted whatever their name or declared type: the content decides.
        return ImageRef(doc.file_id, doc.file_size)
    if message.sticker is not None and not (message.sticker.is_animated or message.sticker.is_video):
        return ImageRef(message.sticker.file_id, message.sticker.file_size)
    return None


class HasImage(BaseFilter):
    """Passes messages with a photo or a document; handlers get ``image``: ImageRef."""

    async def __call__(self, message: Message) -> bool | dict[str, Any]:
        ref = image_ref(message)
        return {"image": ref} if ref is not None else False


class HasText(BaseFilter):
    """Passes plain text messages that are not commands."""

    async def __call__(self, message: Message) -> bool:
        return bool(message.text) and not (message.text or "").startswith("/")


class NotCommand(BaseFilter):
    """Passes messages whose text or caption is not a /command: inside a dialog, a command
    must reach its own handler instead of being taken as the prompt or the wrong input."""

    async def __call__(self, message: Message) -> bool:
        return not (message.text or message.caption or "").lstrip().startswith("/")


class Matches(BaseFilter):
    """A magic filter (``F.sticker``) on the event, checked inline. aiogram hands a filter that is not
    a coroutine (a bare ``F`` filter, a State) to a worker thread on every check (asyncio.to_thread):
    a plain-text prompt passed about twenty of them, each hand-off costing more than its check.
    Dialog states are filtered with aiogram's StateFilter for the same reason."""

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        return self.magic.resolve(event)
