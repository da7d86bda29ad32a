"""The prompt-only modes (no input image) share one dialog: a command with or without the prompt.

Each mode's router is built from its description (contract.modes); plain text outside any
dialog starts the mode whose description says ``plain_text``.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.services import Services, refuse
from bot.services.inputs import InputError, validate_prompt
from bot.services.jobs import Requester, requester
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import LengthCb, MenuCb
from bot.ui.filters import HasText, Matches, NotCommand
from bot.ui.i18n import Translator
from bot.ui.states import clear_dialog, mode_state
from contract.modes import ModeDescription, describe
from contract.spec import Mode

PROMPT_KEY = "prompt"
"""The dialog's data while a video mode asks for the length: the prompt it will run."""
REPLY_KEY = "reply_to"
"""...and the message the result answers."""


async def run_prompt(message: Message, text: str | None, mode: Mode, *, bot: Bot, services: Services,
                     t: Translator, locale: str, user_settings: UserSettings,
                     state: FSMContext | None = None) -> bool:
    """Validate the prompt and queue the job; False (and a refusal message) when the prompt is bad
    or a limit refused the job: then the dialog stays open for the user's next try. In a dialog
    (``state``), a video mode offering several lengths here keeps the prompt and asks the length
    first (False too: the dialog waits for the button)."""
    try:
        prompt = validate_prompt(text)
    except InputError as err:
        await refuse(message, t, err)
        return False
    if state is not None and await ask_length(describe(mode), prompt, message.chat.id, message.message_id,
                                              bot=bot, services=services, t=t, state=state):
        return False
    req = requester(message, bot=bot, services=services, t=t, locale=locale, user_settings=user_settings)
    return await req.run(mode, prompt=prompt, reply_to_id=message.message_id) is not None


async def ask_length(description: ModeDescription, prompt: str, chat_id: int, reply_to_id: int | None, *,
                     bot: Bot, services: Services, t: Translator, state: FSMContext) -> bool:
    """A video mode offering several lengths here keeps ``prompt`` in its dialog and asks the length
    (True); any other mode asks nothing (False)."""
    choices = description.lengths_up_to(services.config.video_seconds)
    if len(choices) < 2:
        return False
    await state.set_state(mode_state(description))
    await state.set_data({PROMPT_KEY: prompt, REPLY_KEY: reply_to_id})
    await bot.send_message(chat_id, t(description.ask_length_key),
                           reply_markup=keyboards.video_lengths(t, description.mode.value, choices))
    return True


def prompt_mode_router(description: ModeDescription) -> Router:
    if description.command is None or description.images:
        raise ValueError(f"mode {description.mode} is not a prompt-only bot mode")
    mode, ask_key, waiting = description.mode, description.ask_prompt_key, mode_state(description)
    router = Router(name=description.stem)
    in_dialog = StateFilter(waiting)

    @router.message(Command(description.command))
    async def cmd(message: Message, command: CommandObject, state: FSMContext, bot: Bot,
                  services: Services, t: Translator, locale: str, user_settings: UserSettings) -> None:
        await clear_dialog(state)
        if command.args and command.args.strip():
            await run_prompt(message, command.args, mode, bot=bot, services=services, t=t, locale=locale,
                             user_settings=user_settings, state=state)
            return
        await state.set_state(waiting)
        await message.answer(t(ask_key), reply_markup=keyboards.dialog_cancel(t))

    @router.callback_query(MenuCb.filter(F.mode == mode.value))
    async def menu(query: CallbackQuery, state: FSMContext, bot: Bot, t: Translator) -> None:
        await query.answer()
        await state.set_state(waiting)
        if query.message is not None:
            await bot.send_message(query.message.chat.id, t(ask_key), reply_markup=keyboards.dialog_cancel(t))

    @router.message(in_dialog, HasText())
    async def got_prompt(message: Message, state: FSMContext, bot: Bot, services: Services, t: Translator,
                         locale: str, user_settings: UserSettings) -> None:
        if await run_prompt(message, message.text, mode, bot=bot, services=services, t=t, locale=locale,
                            user_settings=user_settings, state=state):
            await clear_dialog(state)

    @router.callback_query(LengthCb.filter(F.mode == mode.value))
    async def length(query: CallbackQuery, callback_data: LengthCb, state: FSMContext, bot: Bot,
                     services: Services, t: Translator, locale: str, user_settings: UserSettings) -> None:
        """The length button: the prompt kept in this user's dialog, at a length offered here."""
        data = await state.get_data() if await state.get_state() == waiting.state else {}
        offered = description.lengths_up_to(services.config.video_seconds)
        if PROMPT_KEY not in data or callback_data.seconds not in offered:
            await query.answer(t(description.expired_key), show_alert=True)
            return
        await query.answer()
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        if query.message is not None:
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=query.message.message_id)
        req = Requester(bot, services, t, locale, user_settings, query.from_user.id, chat_id)
        reply = data.get(REPLY_KEY)
        if await req.run(mode, prompt=str(data[PROMPT_KEY]), seconds=callback_data.seconds,
                         reply_to_id=int(reply) if reply is not None else None) is not None:
            await clear_dialog(state)

    @router.message(in_dialog, NotCommand())
    async def not_text(message: Message, t: Translator) -> None:
        await message.answer(t("need-text"), reply_markup=keyboards.dialog_cancel(t))

    return router


def plain_text_router(description: ModeDescription) -> Router:
    """Included last: only text that no dialog and no other feature claimed becomes a prompt."""
    mode = description.mode

    async def plain_text(message: Message, bot: Bot, services: Services, t: Translator, locale: str,
                         user_settings: UserSettings) -> None:
        await run_prompt(message, message.text, mode, bot=bot, services=services, t=t, locale=locale,
                         user_settings=user_settings)

    router = Router(name="plain-text")
    # Only in private chats: in a group, people talk to each other, not to the bot.
    router.message.register(plain_text, StateFilter(None), HasText(),
                            Matches(F.chat.type == ChatType.PRIVATE))
    return router
