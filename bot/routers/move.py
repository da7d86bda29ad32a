""""🎬 Make it move" under a picture: that picture becomes the first frame of a short video.

The press keeps the picture and asks what should happen, in a dialog of its own: words describe the
motion, "▶️ Start" runs the picture's own prompt (what its model read, so a Russian prompt the model
got in English is read the same). The video is Kandinsky 5.0's image → video, in the picture's shape.
"""

from __future__ import annotations

import dataclasses

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.routers.results import carried_translation, fetch_result_image, owned_record
from bot.services import Services, refuse
from bot.services.inputs import InputError, validate_prompt
from bot.services.jobs import Requester
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import MoveCb, ResultAction, ResultCb
from bot.ui.filters import HasText, NotCommand
from bot.ui.i18n import Translator
from bot.ui.states import clear_dialog, mode_state
from contract.language import PromptTranslation
from contract.modes import describe
from contract.spec import Mode, nearest_aspect

MOVE = describe(Mode.IMAGE2VIDEO)
WAITING = mode_state(MOVE)
"""The dialog's state (``Image2video:collect``) while it waits for the words or the start button."""
JOB_KEY, PICTURE_KEY, PROMPT_KEY, ASPECT_KEY, TRANSLATION_KEY, REPLY_KEY = (
    "job", "picture", "prompt", "aspect", "translation", "reply_to")
"""The dialog's data: the result it came from, the stored picture, the picture's own prompt, its
shape, what its model read, and the message the video answers."""


async def ask_motion(query: CallbackQuery, callback_data: ResultCb, state: FSMContext, bot: Bot,
                     services: Services, t: Translator) -> None:
    record = await owned_record(query, callback_data.job_id, services, t)
    if record is None or record.spec is None:
        return
    await query.answer()
    spec = record.spec
    chat_id = query.message.chat.id if query.message is not None else record.chat_id
    key = await fetch_result_image(bot, services, t, chat_id, record, callback_data.index)
    if key is None:
        return
    translation = carried_translation(record)
    await clear_dialog(state)
    await state.set_state(WAITING)
    await state.set_data({
        JOB_KEY: record.job_id, PICTURE_KEY: key, PROMPT_KEY: spec.prompt,
        ASPECT_KEY: spec.aspect or nearest_aspect(*spec.output_size()),
        TRANSLATION_KEY: translation.model_dump_json() if translation is not None else None,
        REPLY_KEY: query.message.message_id if query.message is not None else None,
    })
    await bot.send_message(chat_id, t("move-ask-prompt"), reply_markup=keyboards.move_start(t, record.job_id))


async def _run(state: FSMContext, data: dict[str, object], prompt: str, translation: PromptTranslation | None,
               req: Requester) -> None:
    """The video, in the picture's shape whatever ratio the user draws in now."""
    moving = dataclasses.replace(req, user_settings=req.user_settings.model_copy(
        update={"aspect": str(data[ASPECT_KEY])}))
    reply = data.get(REPLY_KEY)
    if await moving.run(Mode.IMAGE2VIDEO, prompt=prompt, inputs=(str(data[PICTURE_KEY]),),
                        reply_to_id=int(str(reply)) if reply is not None else None,
                        translation=translation) is not None:
        await clear_dialog(state)


async def start(query: CallbackQuery, callback_data: MoveCb, state: FSMContext, bot: Bot, services: Services,
                t: Translator, locale: str, user_settings: UserSettings) -> None:
    """"▶️ Start": the picture's own prompt, in the dialog this button belongs to."""
    data = await state.get_data() if await state.get_state() == WAITING.state else {}
    if data.get(JOB_KEY) != callback_data.job_id:
        await query.answer(t("move-expired"), show_alert=True)
        return
    await query.answer()
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    if query.message is not None:
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=query.message.message_id)
    raw = data.get(TRANSLATION_KEY)
    translation = PromptTranslation.model_validate_json(str(raw)) if raw else None
    req = Requester(bot, services, t, locale, user_settings, query.from_user.id, chat_id)
    await _run(state, data, str(data[PROMPT_KEY]), translation, req)


async def words(message: Message, state: FSMContext, bot: Bot, services: Services, t: Translator, locale: str,
                user_settings: UserSettings) -> None:
    """The motion in words: the video reads them instead of the picture's prompt."""
    try:
        prompt = validate_prompt(message.text)
    except InputError as err:
        await refuse(message, t, err)
        return
    data = await state.get_data()
    chat_id = message.chat.id
    user_id = message.from_user.id if message.from_user is not None else chat_id
    req = Requester(bot, services, t, locale, user_settings, user_id, chat_id)
    await _run(state, data, prompt, None, req)


async def not_words(message: Message, t: Translator) -> None:
    await message.answer(t("need-text"), reply_markup=keyboards.dialog_cancel(t))


def make_router() -> Router:
    router = Router(name="move")
    router.callback_query.register(ask_motion, ResultCb.filter(F.action == ResultAction.MOVE))
    router.callback_query.register(start, MoveCb.filter())
    router.message.register(words, StateFilter(WAITING), HasText())
    router.message.register(not_words, StateFilter(WAITING), NotCommand())
    return router

