"""/model and the model submenu of /settings: which model family draws the user's requests; and the
"run this one with the other model" button under a refusal (bot.services.families).

The choice is stored in the user's settings (Redis), so it survives a bot restart and is the same
on every replica. Modes a family lacks are refused when a request is made, never silently redirected.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.services import Services
from bot.services.families import title
from bot.services.jobs import submit
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import ModelCb, SwitchCb
from bot.ui.i18n import Translator
from contract.families import Family, describe_family, picture_families
from contract.modes import bot_modes
from contract.spec import JobSpec, SpecError

log = logging.getLogger(__name__)


def model_text(t: Translator, current: Family) -> str:
    """The current model, and what it cannot do (so a refusal later is no surprise)."""
    lacking = [t(d.name_key) for d in bot_modes() if current not in d.families]
    text = t("model-current", model=title(current))
    if lacking:
        text += "\n" + t("model-lacks", model=title(current), modes=", ".join(lacking))
    return text + "\n\n" + t("model-pick")


async def cmd_model(message: Message, state: FSMContext, t: Translator, user_settings: UserSettings) -> None:
    await state.clear()
    await message.answer(model_text(t, user_settings.model),
                         reply_markup=keyboards.model_choices(t, user_settings.model))


async def model_button(query: CallbackQuery, callback_data: ModelCb, services: Services, t: Translator,
                       user_settings: UserSettings) -> None:
    message = query.message if isinstance(query.message, Message) else None
    if not callback_data.family:  # the submenu of /settings
        await query.answer()
        if message:
            await message.edit_text(model_text(t, user_settings.model),
                                    reply_markup=keyboards.model_choices(t, user_settings.model))
        return
    family = next((d.family for d in picture_families() if d.family.value == callback_data.family), None)
    if family is None:  # no button offers it: a forged or stale callback
        await query.answer()
        log.warning("user %s: refused model %r", query.from_user.id, callback_data.family)
        return
    updated = user_settings.model_copy(update={"model": family})
    await services.store.save(query.from_user.id, updated)
    await query.answer(t("model-saved", model=title(family)))
    if message:
        await message.edit_text(model_text(t, family), reply_markup=keyboards.model_choices(t, family))
    log.info("user %s: model %s", query.from_user.id, family)


async def switch_button(query: CallbackQuery, callback_data: SwitchCb, bot: Bot, services: Services,
                        t: Translator) -> None:
    """Run the one refused request with the family that serves its mode; once, for its own user."""
    pending = await services.switches.take(callback_data.token, query.from_user.id)
    if pending is None:
        await query.answer(t("switch-expired"), show_alert=True)
        return
    try:
        spec = JobSpec.from_json(pending.spec)
    except SpecError as exc:  # written by another release
        log.warning("user %s: switch offer %s unusable: %s", query.from_user.id, callback_data.token, exc)
        await query.answer(t("switch-expired"), show_alert=True)
        return
    await query.answer(t("switch-running", model=describe_family(spec.model).title))
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)  # the offer is spent
    await submit(spec, bot=bot, services=services, t=t)


def make_router() -> Router:
    router = Router(name="model")
    router.message.register(cmd_model, Command("model"))
    router.callback_query.register(model_button, ModelCb.filter())
    router.callback_query.register(switch_button, SwitchCb.filter())
    return router

