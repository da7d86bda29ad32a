"""The bot's commands and profile: setMyCommands, getMyCommands, deleteMyCommands,
setChatMenuButton, getChatMenuButton, setMyDescription, setMyShortDescription, setMyName.

To add a method: write ``async def _name(self, params: Params) -> <result>`` on
:class:`CommandsMethods` and decorate it with ``@bot_method("methodName")``.
"""

from __future__ import annotations

import json
from typing import Any

from devkit.botapi import limits
from devkit.botapi.methods.registry import bot_method
from devkit.botapi.params import Params
from devkit.botapi.state import ServerState


class CommandsMethods(ServerState):
    """Command lists by (scope, language), menu buttons by chat; profile texts are accepted."""

    @bot_method("setMyCommands")
    async def _set_commands(self, params: Params) -> bool:
        commands = params.get_json("commands")
        limits.check_commands(commands)
        self.commands[self._scope_key(params)] = list(commands)
        return True

    @bot_method("getMyCommands")
    async def _get_commands(self, params: Params) -> list[dict[str, Any]]:
        return self.commands.get(self._scope_key(params), [])

    @bot_method("deleteMyCommands")
    async def _delete_commands(self, params: Params) -> bool:
        self.commands.pop(self._scope_key(params), None)
        return True

    @bot_method("setChatMenuButton")
    async def _set_menu_button(self, params: Params) -> bool:
        button = params.get_json("menu_button") or {"type": "default"}
        self.menu_buttons[params.get_int("chat_id")] = button
        return True

    @bot_method("getChatMenuButton")
    async def _get_menu_button(self, params: Params) -> dict[str, Any]:
        return self.menu_buttons.get(params.get_int("chat_id"), {"type": "commands"})

    @bot_method("setMyDescription", "setMyShortDescription", "setMyName")
    async def _set_profile_text(self, params: Params) -> bool:
        """Accepted and not stored: no test reads the bot's profile texts back."""
        return True

    @staticmethod
    def _scope_key(params: Params) -> tuple[str, str]:
        scope = params.get_json("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.get_str("language_code") or ""
