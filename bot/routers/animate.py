"""The /animate dialog: a prompt (or several by second), then a camera button, then a length.

Built from the mode's description like every mode's router (contract.modes: ``animation``). The
dialog keeps the one FSM state the description derives (``Animate:prompt``); the prompt and the
camera picked so far ride in the dialog's FSM data, so the buttons of an old dialog (its data
gone, or another prompt sent since) can never start a job with the wrong words. A new text while
the buttons are shown replaces the prompt.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.services import Services, refuse
from bot.services.inputs import InputError, validate_prompt
from bot.services.jobs import Requester
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import AnimateCb, AnimateStep, MenuCb
from bot.ui.filters import HasText, NotCommand
from bot.ui.i18n import Translator
from bot.ui.states import clear_dialog, mode_state
from contract.animation import MIN_SECONDS, Animation, Camera, ScheduleError, parse_prompts
from contract.modes import ModeDescription

log = logging.getLogger(__name__)

PROMPT_KEY = "animate_prompt"
CAMERA_KEY = "animate_camera"
"""FSM data of a dialog in progress: the validated prompt, then the camera's value."""


def schedule_error_text(t: Translator, err: ScheduleError) -> str:
    """The user's message for a prompt list that does not read (contract.animation's codes)."""
    return t(f"animate-bad-{err.code}", **err.values)


def animation_router(description: ModeDescription) -> Router:
    if description.command is None or not description.animation:
        raise ValueError(f"mode {description.mode} is not an animation bot mode")
    mode, waiting = description.mode, mode_state(description)
    in_dialog = StateFilter(waiting)
    router = Router(name=description.stem)

    async def take_prompt(message: Message, text: str | None, state: FSMContext, t: Translator) -> None:
        """Check the prompt (and its seconds), keep it in the dialog and offer the camera buttons."""
        try:
            prompt = validate_prompt(text)
            parse_prompts(prompt)
        except InputError as err:
            await refuse(message, t, err)
            return
        except ScheduleError as err:
            await message.answer(schedule_error_text(t, err), reply_markup=keyboards.dialog_cancel(t))
            return
        await state.set_state(waiting)
        await state.set_data({PROMPT_KEY: prompt})
        await message.answer(t(description.ask_camera_key), reply_markup=keyboards.animate_cameras(t))

    @router.message(Command(description.command))
    async def cmd(message: Message, command: CommandObject, state: FSMContext, t: Translator) -> None:
        await clear_dialog(state)
        if command.args and command.args.strip():
            await take_prompt(message, command.args, state, t)
            return
        await state.set_state(waiting)
        await message.answer(t(description.ask_prompt_key), reply_markup=keyboards.dialog_cancel(t))

    @router.callback_query(MenuCb.filter(F.mode == mode.value))
    async def menu(query: CallbackQuery, state: FSMContext, bot: Bot, t: Translator) -> None:
        await query.answer()
        await clear_dialog(state)
        await state.set_state(waiting)
        if query.message is not None:
            await bot.send_message(query.message.chat.id, t(description.ask_prompt_key),
                                   reply_markup=keyboards.dialog_cancel(t))

    @router.message(in_dialog, HasText())
    async def got_prompt(message: Message, state: FSMContext, t: Translator) -> None:
        await take_prompt(message, message.text, state, t)

    @router.message(in_dialog, NotCommand())
    async def not_text(message: Message, t: Translator) -> None:
        await message.answer(t("need-text"), reply_markup=keyboards.dialog_cancel(t))

    @router.callback_query(AnimateCb.filter(F.step == AnimateStep.CAMERA))
    async def camera(query: CallbackQuery, callback_data: AnimateCb, state: FSMContext, bot: Bot,
                     t: Translator, services: Services) -> None:
        data = await _dialog(state, waiting.state)
        if data is None or callback_data.value not in set(Camera) - {Camera.CUSTOM}:
            await query.answer(t("animate-expired"), show_alert=True)
            return
        await query.answer()
        await state.update_data({CAMERA_KEY: callback_data.value})
        if query.message is not None:
            await bot.edit_message_text(
                t(description.ask_duration_key) + "\n" + t(f"animate-camera-{callback_data.value}"),
                chat_id=query.message.chat.id, message_id=query.message.message_id,
                reply_markup=keyboards.animate_durations(t, services.config.animation_max_seconds),
            )

    @router.callback_query(AnimateCb.filter(F.step == AnimateStep.SECONDS))
    async def seconds(query: CallbackQuery, callback_data: AnimateCb, state: FSMContext, bot: Bot,
                      services: Services, t: Translator, locale: str, user_settings: UserSettings) -> None:
        data = await _dialog(state, waiting.state)
        chosen = int(callback_data.value) if callback_data.value.isdigit() else 0
        longest = services.config.animation_max_seconds
        if data is None or CAMERA_KEY not in data or not MIN_SECONDS <= chosen <= longest:
            await query.answer(t("animate-expired"), show_alert=True)
            return
        await query.answer()
        prompt, camera_value = str(data[PROMPT_KEY]), str(data[CAMERA_KEY])
        animation = Animation.for_camera(Camera(camera_value), seconds=chosen)
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        try:
            animation.check_scenes(prompt)
        except ScheduleError as err:  # a prompt at a second past the chosen length: pick again
            await bot.send_message(chat_id, schedule_error_text(t, err))
            return
        req = Requester(bot, services, t, locale, user_settings, query.from_user.id, chat_id)
        if query.message is not None:
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=query.message.message_id)
        job_id = await req.run(mode, prompt=prompt, animation=animation)
        log.info("chat %s: animation %s (%s, %d s) %s", chat_id, job_id or "refused", camera_value, chosen,
                 "queued" if job_id else "not queued")
        if job_id is not None:
            await clear_dialog(state)

    return router


async def _dialog(state: FSMContext, waiting: str | None) -> dict[str, Any] | None:
    """The dialog's data if an /animate dialog with a prompt is in progress, else None."""
    if await state.get_state() != waiting:
        return None
    data = await state.get_data()
    return data if PROMPT_KEY in data else None
