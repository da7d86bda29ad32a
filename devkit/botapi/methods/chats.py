"""The bot and its chats: getMe, getChat, logOut, close.

To add a method: write ``async def _name(self, params: Params) -> <result>`` on
:class:`ChatsMethods` and decorate it with ``@bot_method("methodName")``.
"""

from __future__ import annotations

from typing import Any

from devkit.botapi.methods.registry import bot_method
from devkit.botapi.models import bad_request
from devkit.botapi.params import Params
from devkit.botapi.state import ServerState


class ChatsMethods(ServerState):
    """Who the bot is and which chats it can see."""

    @bot_method("getMe")
    async def _get_me(self, params: Params) -> dict[str, Any]:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    @bot_method("getChat")
    async def _get_chat(self, params: Params) -> dict[str, Any]:
        raw = params.get_int("chat_id", required=True)
        if raw not in self.chats:
            raise bad_request("chat not found")
        return {**self.chats[raw], "accent_color_id": 0, "max_reaction_count": 11}

    @bot_method("logOut", "close")
    async def _session_end(self, params: Params) -> bool:
        """Accepted and ignored: a local server has no cloud session to log out of or close."""
        return True
