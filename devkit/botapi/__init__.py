"""Local Telegram Bot API server and user simulator for tests and the offline demo.

Typical test::

    async with LocalBotAPI() as api:
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base_url)))
        # or run the real bot with TELEGRAM_API_URL=api.base_url, BOT_TOKEN=api.token
        user = api.user(1001, language_code="ru")
        sent_id = await user.send_text("/imagine a red fox")
        reply = await api.wait_message(user.chat_id, after=sent_id)
        await user.press(reply, "Again")
        assert api.violations == [] and api.early_retries == []

Errors: ``api.inject("sendPhoto", error_code=429, retry_after=2, times=3)``,
``api.block_bot(user_id)``, ``api.rate_limit(1, per_seconds=1.0)``.
Run ``python -m devkit.botapi --help`` for the interactive offline demo.

Layout:

- ``server.py``: :class:`LocalBotAPI`, the core: lifecycle, the HTTP routes, ``call`` (dispatch,
  recording, flood control, error injection) and the test-driver API above.
- ``methods/``: the Bot API methods, one module per area (``updates``, ``chats``, ``commands``,
  ``files``, ``messages``, ``edits``, ``stickers``), each a mixin LocalBotAPI inherits. Adding a
  method is one handler in its area marked ``@bot_method("methodName")``.
- ``state.py``: :class:`~devkit.botapi.state.ServerState`, everything the server remembers.
- ``params.py``: request parameters with Telegram's typing rules, the handler type.
- ``models.py``: the recorded state's shapes and ApiError; ``limits.py``: Telegram's limits;
  ``sim.py``: simulated users and chats.
"""

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
