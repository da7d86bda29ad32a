"""/cancel and the cancel buttons: leave a dialog, or cancel the user's queued and running jobs."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, User

from bot.queue import CancelOutcome
from bot.services import Services
from bot.ui import keyboards
from bot.ui.callbacks import DialogCb, JobCb
from bot.ui.i18n import Translator

log = logging.getLogger(__name__)

_OUTCOME_KEYS: dict[CancelOutcome, str] = {
    CancelOutcome.QUEUED_REMOVED: "job-cancel-removed",
    CancelOutcome.STOPPING: "job-cancel-stopping",
    CancelOutcome.NOT_FOUND: "job-cancel-not-found",
    CancelOutcome.NOT_YOURS: "not-yours",
    CancelOutcome.ALREADY_FINISHED: "job-already-finished",
}


async def _cancel_everything(user: User, state: FSMContext, services: Services, t: Translator) -> str:
    if await state.get_state() is not None:
        await state.clear()
        return t("dialog-cancelled")
    cancelled = 0
    for job_id in await services.queue.user_jobs(user.id):
        outcome = await services.queue.cancel(job_id, user.id)
        if outcome in (CancelOutcome.QUEUED_REMOVED, CancelOutcome.STOPPING):
            cancelled += 1
    log.info("user %s cancelled %d job(s)", user.id, cancelled)
    return t("jobs-cancelled", count=cancelled) if cancelled else t("nothing-to-cancel")


async def cmd_cancel(message: Message, state: FSMContext, services: Services, t: Translator) -> None:
    if message.from_user is None:
        return
    text = await _cancel_everything(message.from_user, state, services, t)
    await message.answer(text, reply_markup=keyboards.main_menu(t))


async def button_cancel_dialog(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await query.answer()
    await state.clear()
    if query.message is not None:
        await query.bot.send_message(query.message.chat.id, t("dialog-cancelled"))  # type: ignore[union-attr]


async def button_cancel_job(query: CallbackQuery, callback_data: JobCb, services: Services,
                            t: Translator) -> None:
    outcome = await services.queue.cancel(callback_data.job_id, query.from_user.id)
    await query.answer(t(_OUTCOME_KEYS[outcome]), show_alert=outcome is CancelOutcome.NOT_YOURS)
    log.info("job %s: cancel by user %s -> %s", callback_data.job_id, query.from_user.id, outcome)


def make_router() -> Router:
    router = Router(name="cancel")
    router.message.register(cmd_cancel, Command("cancel"))
    router.callback_query.register(button_cancel_dialog, DialogCb.filter(F.action == "cancel"))
    router.callback_query.register(button_cancel_job, JobCb.filter(F.action == "cancel"))
    return router
