"""Voice messages as prompts, and the "what the model read" button under a result.

A voice note, an audio file or a round video message, sent where a prompt is wanted (outside any
dialog in a private chat, or in a dialog that asks for a prompt: imagine, sticker, blend, depth),
becomes a transcription job (bot/services/voice.py). Its words come back as "I heard: …" with
three buttons: draw it (the words become the prompt of that mode, in a dialog the dialog's prompt
step), edit the text (the next text message is the prompt), cancel. Recordings that are empty,
over the limit (``VOICE_MAX_SECONDS``) or too big to download are refused before anything is
queued; one the worker cannot decode is refused when its answer comes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from html import escape
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import BaseFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.routers import image_modes
from bot.routers.prompt_modes import ask_length
from bot.routers.results import owned_record
from bot.services import Services, refuse, reply_to
from bot.services.admission import refusal_text
from bot.services.inputs import InputError, check_file_size, validate_prompt
from bot.services.jobs import Requester, download_image
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import ResultAction, ResultCb, VoiceAction, VoiceCb
from bot.ui.filters import ImageRef
from bot.ui.i18n import Translator
from bot.ui.states import clear_dialog, mode_state
from contract.modes import Mode, ModeDescription, bot_modes, describe, plain_text_mode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceRef:
    """A recording a message carries: its file and the duration the client reported."""

    kind: str  # "voice", "audio", "video_note"
    file_id: str
    file_size: int | None
    duration: int


def voice_ref(message: Message) -> VoiceRef | None:
    for kind in ("voice", "audio", "video_note"):
        media = getattr(message, kind, None)
        if media is not None:
            return VoiceRef(kind, media.file_id, media.file_size, int(media.duration or 0))
    return None


def prompt_mode_for(raw_state: str | None, chat_type: str) -> ModeDescription | None:
    """The mode whose prompt a recording is, or None where no prompt is wanted (a mix dialog, a
    group chat outside a dialog, the settings' negative-prompt question)."""
    if raw_state is None:
        return plain_text_mode() if chat_type == ChatType.PRIVATE else None
    return next((d for d in bot_modes() if d.prompt and d.state_name == raw_state), None)


class VoiceForPrompt(BaseFilter):
    """Passes a recording where a prompt is wanted; handlers get ``voice`` and ``voice_mode``."""

    async def __call__(self, message: Message, raw_state: str | None = None) -> bool | dict[str, Any]:
        ref = voice_ref(message)
        if ref is None:
            return False
        mode = prompt_mode_for(raw_state, message.chat.type)
        if mode is None:
            return False
        return {"voice": ref, "voice_mode": mode}


async def got_voice(message: Message, voice: VoiceRef, voice_mode: ModeDescription, bot: Bot,
                    services: Services, t: Translator, locale: str) -> None:
    limit = services.config.voice_max_s
    user_id = message.from_user.id if message.from_user else message.chat.id
    try:
        if voice.duration > limit:
            raise InputError("voice-too_long", {"limit": limit})
        if voice.duration <= 0 or voice.file_size == 0:
            raise InputError("voice-empty")
        check_file_size(voice.file_size)
    except InputError as err:
        await refuse(message, t, err)
        return
    if not await services.voice.reserve(user_id):
        await refuse(message, t, InputError("voice-busy"))
        return
    status: Message | None = None
    try:
        audio = await download_image(bot, ImageRef(voice.file_id, voice.file_size))
        if not audio:
            raise InputError("voice-empty")
        status = await message.answer(t("voice-listening"), reply_parameters=reply_to(message.message_id))
        started = await services.voice.start(audio=audio, user_id=user_id, chat_id=message.chat.id,
                                             locale=locale, mode=voice_mode.mode.value,
                                             reply_to=message.message_id, status_message=status.message_id,
                                             checked=not services.quotas.is_admin(user_id))
        if not isinstance(started, str):  # refused (maintenance, a ban): the "listening" message says why
            await services.voice.release(user_id)
            await bot.edit_message_text(refusal_text(t, started), chat_id=status.chat.id,
                                        message_id=status.message_id)
    except InputError as err:
        await services.voice.release(user_id)
        await refuse(message, t, err)
    except Exception:
        await services.voice.release(user_id)
        if status is not None:
            await bot.edit_message_text(t("voice-failed"), chat_id=status.chat.id,
                                        message_id=status.message_id)
        raise


async def heard_button(query: CallbackQuery, callback_data: VoiceCb, state: FSMContext, bot: Bot,
                       services: Services, t: Translator, locale: str, user_settings: UserSettings) -> None:
    record = await services.voice.get(callback_data.voice_id)
    if record is None or not record.done or not record.text:
        await query.answer(t("voice-expired"), show_alert=True)
        return
    if record.user_id != query.from_user.id:
        await query.answer(t("not-yours"), show_alert=True)
        return
    message = query.message if isinstance(query.message, Message) else None
    description = describe(Mode(record.mode))
    action = callback_data.action
    if action is VoiceAction.CANCEL:
        await query.answer()
        await services.voice.claim(record.voice_id)
        if message is not None:
            await message.edit_text(t("voice-cancelled"))
        return
    if action is VoiceAction.EDIT:
        await query.answer()
        await _open_prompt_step(description, state)
        if message is not None:
            await message.edit_reply_markup(reply_markup=None)
        await bot.send_message(record.chat_id, t("voice-edit", text=escape(record.text)),
                               reply_markup=keyboards.dialog_cancel(t))
        return
    # DRAW: once, whatever the number of presses.
    if not await services.voice.claim(record.voice_id):
        await query.answer(t("voice-used"))
        return
    await query.answer()
    if message is not None:
        await message.edit_reply_markup(reply_markup=None)
    if description.images:
        # In a dialog the words fill its prompt step; the dialog asks for what is still missing.
        if await state.get_state() != description.state_name:
            await image_modes.open_dialog(description, state)
        assert message is not None
        await image_modes.contribute(description, message, None, record.text, state=state, bot=bot,
                                     services=services, t=t, locale=locale, user_settings=user_settings,
                                     user_id=query.from_user.id, reply_to_id=record.reply_to)
        return
    try:
        prompt = validate_prompt(record.text)
    except InputError as err:
        await services.voice.unclaim(record.voice_id)
        await bot.send_message(record.chat_id, t(err.key, **err.params))
        return
    if await state.get_state() == description.state_name:
        await clear_dialog(state)
    if await ask_length(description, prompt, record.chat_id, record.reply_to, bot=bot, services=services, t=t,
                        state=state):
        return  # a video of several lengths: its dialog holds the words and asks the length
    req = Requester(bot, services, t, locale, user_settings, query.from_user.id, record.chat_id)
    if await req.run(description.mode, prompt=prompt, reply_to_id=record.reply_to) is None:
        await services.voice.unclaim(record.voice_id)  # a limit refused it: the button works again


async def _open_prompt_step(description: ModeDescription, state: FSMContext) -> None:
    """The next text message becomes the prompt: the mode's dialog, its collected photos kept."""
    if await state.get_state() == description.state_name:
        return
    if description.images:
        await image_modes.open_dialog(description, state)
    else:
        await state.set_state(mode_state(description))


async def model_read(query: CallbackQuery, callback_data: ResultCb, bot: Bot, services: Services,
                     t: Translator) -> None:
    """What the model read: the English the engine got in place of the user's words."""
    record = await owned_record(query, callback_data.job_id, services, t)
    if record is None:
        return
    translation = record.result.translation if record.result is not None else None
    if translation is None or not translation.translated:
        await query.answer(t("read-as-written"), show_alert=True)
        return
    await query.answer()
    lines = [t("read-title")]
    if translation.prompt is not None:
        lines.append(t("read-prompt", text=escape(translation.prompt.text)))
    if translation.negative_prompt is not None and translation.negative_prompt.text.strip():
        lines.append(t("read-negative", text=escape(translation.negative_prompt.text)))
    chat_id = query.message.chat.id if query.message is not None else record.chat_id
    reply_id = query.message.message_id if query.message is not None else None
    await bot.send_message(chat_id, "\n".join(lines), reply_parameters=reply_to(reply_id))


def make_router() -> Router:
    """Included before the modes' routers: a dialog's own catch-all would otherwise answer a
    recording with "I need a text"."""
    router = Router(name="voice")
    router.message.register(got_voice, VoiceForPrompt())
    router.callback_query.register(heard_button, VoiceCb.filter())
    router.callback_query.register(model_read, ResultCb.filter(F.action == ResultAction.READ))
    return router
