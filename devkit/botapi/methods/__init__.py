"""The Bot API methods of the local server, one module per area of the Bot API.

=============  ===============================================================================
``updates``    getUpdates, setWebhook, deleteWebhook, getWebhookInfo; the update queue, webhooks
``chats``      getMe, getChat, logOut, close
``commands``   set/get/deleteMyCommands, set/getChatMenuButton, setMyDescription/ShortDescription/Name
``files``      getFile; the file store, InputFile parsing, photo sizes
``messages``   sendMessage, sendPhoto, sendDocument, sendSticker, sendMediaGroup, sendChatAction
``edits``      editMessageText/Caption/Media/ReplyMarkup, deleteMessage, answerCallbackQuery
``stickers``   uploadStickerFile, createNewStickerSet, addStickerToSet, getStickerSet, ...
=============  ===============================================================================

Each area is a mixin over :class:`~devkit.botapi.state.ServerState` (``messages`` builds on
``files``, ``edits`` on ``messages``, ``stickers`` on ``files``) and
:class:`~devkit.botapi.server.LocalBotAPI` inherits them all. To add a method, write its
handler in its area and mark it with ``@bot_method("methodName")``
(:mod:`devkit.botapi.methods.registry`); the server's method table picks it up. A new area is a
new module with one such mixin, added to LocalBotAPI's bases.
"""

from devkit.botapi.methods.chats import ChatsMethods
from devkit.botapi.methods.commands import CommandsMethods
from devkit.botapi.methods.edits import EditsMethods
from devkit.botapi.methods.files import FilesMethods
from devkit.botapi.methods.messages import MessagesMethods
from devkit.botapi.methods.registry import bot_method, method_table
from devkit.botapi.methods.stickers import StickersMethods
from devkit.botapi.methods.updates import UpdatesMethods

__all__ = [
    "ChatsMethods",
    "CommandsMethods",
    "EditsMethods",
    "FilesMethods",
    "MessagesMethods",
    "StickersMethods",
    "UpdatesMethods",
    "bot_method",
    "method_table",
]
