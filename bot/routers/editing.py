"""The edit buttons under a result: "✏️ Edit" (what to change, and into what), zoom out, pan.

Each press re-reads the job record and refuses anyone but the result's owner (as every result
button does); each edit is a new job through the admission gate, with its queue position, its
cancel button and its result, which carries the same buttons again (zoom out, and out again).
The brush editor ("🖌 Paint") is the Mini App of bot/webapp/.
"""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.queue import JobRecord
from bot.routers.results import carried_translation, owned_record
from bot.services import Services, refuse
from bot.services.editing import check_edit_words, edit_spec, editable, source_png
from bot.services.inputs import InputError, validate_prompt
from bot.services.jobs import submit
from bot.ui import keyboards
from bot.ui.callbacks import ResultAction, ResultCb
from bot.ui.filters import HasText, Matches
from bot.ui.i18n import Translator
from contract.editing import PanDirection
from contract.spec import Mode

log = logging.getLogger(__name__)

ZOOMS: dict[ResultAction, float] = {ResultAction.ZOOM_1_5: 1.5, ResultAction.ZOOM_2: 2.0}
PANS: dict[ResultAction, PanDirection] = {
    ResultAction.PAN_LEFT: PanDirection.LEFT, ResultAction.PAN_RIGHT: PanDirection.RIGHT,
    ResultAction.PAN_UP: PanDirection.UP, ResultAction.PAN_DOWN: PanDirection.DOWN,
}
HANDLED = (ResultAction.EDIT, ResultAction.EDIT_MENU, *ZOOMS, *PANS)


class EditDialog(StatesGroup):
    """After "✏️ Edit": waiting for ``what -> into what`` (the data names the job and the image)."""

    words = State()


async def _queue_on(record: JobRecord, index: int, *, bot: Bot, services: Services, t: Translator,
                    chat_id: int, reply_to: int | None, **edit: object) -> str | None:
    """Store the result's picture and queue the edit of it; tell the user if it expired."""
    assert record.spec is not None  # owned_record refuses records without a spec
    png = await source_png(services, record, index)
    if png is None:
        await bot.send_message(chat_id, t("result-expired"))
        return None
    key = await services.queue.put_blob(png)
    spec = edit_spec(record.spec, services.config, inputs=(key,), reply_to=reply_to, **edit)  # type: ignore[arg-type]
    job_id = await submit(spec, bot=bot, services=services, t=t)
    if job_id is not None:
        log.info("job %s: %s of job %s image %d for chat %s", job_id, spec.mode, record.job_id, index,
                 chat_id)
    return job_id


async def edit_button(query: CallbackQuery, callback_data: ResultCb, state: FSMContext, bot: Bot,
                      services: Services, t: Translator) -> None:
    record = await owned_record(query, callback_data.job_id, services, t)
    if record is None or record.spec is None:
        return
    if not editable(record):
        await query.answer(t("edit-not-photo"), show_alert=True)
        return
    await query.answer()
    action, index = callback_data.action, callback_data.index
    chat_id = query.message.chat.id if query.message is not None else record.chat_id
    reply_id = query.message.message_id if query.message is not None else None
    if action is ResultAction.EDIT_MENU:
        await bot.send_message(chat_id, t("edit-menu", n=index + 1), reply_parameters=None,
                               reply_markup=keyboards.edit_menu(t, record.job_id, index,
                                                                services.config.webapp_url))
    elif action is ResultAction.EDIT:
        await state.set_state(EditDialog.words)
        await state.update_data(job=record.job_id, i=index, reply=reply_id)
        await bot.send_message(chat_id, t("edit-ask-words"), reply_markup=keyboards.dialog_cancel(t))
    elif action in ZOOMS:
        await _queue_on(record, index, bot=bot, services=services, t=t, chat_id=chat_id, reply_to=reply_id,
                        mode=Mode.ZOOM_OUT, zoom=ZOOMS[action], translation=carried_translation(record))
    else:
        await _queue_on(record, index, bot=bot, services=services, t=t, chat_id=chat_id, reply_to=reply_id,
                        mode=Mode.PAN, pan=PANS[action], translation=carried_translation(record))


async def edit_words(message: Message, state: FSMContext, bot: Bot, services: Services,
                     t: Translator) -> None:
    """``what -> into what`` for the result the dialog names; a malformed text is asked again."""
    try:
        region, prompt = check_edit_words(validate_prompt(message.text))
    except InputError as err:
        await refuse(message, t, err)
        return
    data = await state.get_data()
    await state.clear()
    record = await services.queue.job(str(data.get("job", "")))
    user_id = message.from_user.id if message.from_user is not None else message.chat.id
    if record is None or record.spec is None:
        await message.answer(t("result-expired"))
        return
    if record.user_id != user_id:  # the dialog is the user's own, but the record is the truth
        log.info("job %s: edit of user %s's result by user %s refused", record.job_id, record.user_id,
                 user_id)
        await message.answer(t("not-yours"))
        return
    await _queue_on(record, int(data.get("i", 0)), bot=bot, services=services, t=t, chat_id=message.chat.id,
                    reply_to=message.message_id, mode=Mode.EDIT, prompt=prompt, region=region)


async def edit_needs_text(message: Message, t: Translator) -> None:
    await message.answer(t("need-text"), reply_markup=keyboards.dialog_cancel(t))


def make_router() -> Router:
    router = Router(name="editing")
    router.callback_query.register(edit_button, ResultCb.filter(F.action.in_(HANDLED)))
    router.message.register(edit_words, StateFilter(EditDialog.words), HasText())
    router.message.register(edit_needs_text, StateFilter(EditDialog.words), Matches(~F.text.startswith("/")))
    return router
