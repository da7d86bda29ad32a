"""Local Telegram Bot API server and user simulator for tests and the offline demo."""

from devkit.botapi.models import (
    ApiError,
    CallbackQueryState,
    RecordedCall,
    SentMessage,
    StickerSetState,
    StickerState,
    StoredFile,
    UploadedFile,
)
from devkit.botapi.server import LocalBotAPI
from devkit.botapi.sim import SimChat, SimUser, make_image

__all__ = [
    "ApiError",
    "CallbackQueryState",
    "LocalBotAPI",
    "RecordedCall",
    "SentMessage",
    "SimChat",
    "SimUser",
    "StickerSetState",
    "StickerState",
    "StoredFile",
    "UploadedFile",
    "make_image",
]
