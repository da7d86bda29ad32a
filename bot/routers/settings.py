"""/settings: style, aspect ratio, images per request, negative prompt, language — one message, edited."""

from __future__ import annotations

import logging
from html import escape

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, User

from bot.services import Services, refuse
from bot.services.families import title
from bot.services.inputs import InputError, validate_prompt
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import MenuCb, SettingsCb, SettingsField
from bot.ui.filters import HasText, NotCommand
from bot.ui.i18n import I18n, Translator
from bot.ui.states import SettingsDialog
from contract.spec import ASPECT_RATIOS, MAX_IMAGES_PER_JOB, Style

log = logging.getLogger(__name__)

NEGATIVE_PREVIEW_CHARS = 200
"""The summary shows the start of a long negative prompt; the message must stay short."""


def summary(t: Translator, s: UserSettings) -> str:
    negative = s.negative_prompt
    if len(negative) > NEGATIVE_PREVIEW_CHARS:
        negative = negative[:NEGATIVE_PREVIEW_CHARS] + "…"
    return t(
        "settings-title",
        style=keyboards.style_label(t, s.style),
        aspect=s.aspect,
        count=s.num_images,
        negative=escape(negative) if negative else t("settings-none"),
        language=keyboards.language_label(t, s.locale),
    ) + "\n" + t("settings-model", model=title(s.model))


def _locale_for(i18n: I18n, user: User, s: UserSettings) -> str:
    return s.locale or i18n.pick(user.language_code)


async def cmd_settings(message: Message, state: FSMContext, t: Translator,
                       user_settings: UserSettings) -> None:
    await state.clear()
    await message.answer(summary(t, user_settings), reply_markup=keyboards.settings_main(t))


async def menu_settings(query: CallbackQuery, state: FSMContext, t: Translator,
                        user_settings: UserSettings) -> None:
    await query.answer()
    await state.clear()
    if query.message is not None:
        await query.bot.send_message(  # type: ignore[union-attr]
            query.message.chat.id, summary(t, user_settings), reply_markup=keyboards.settings_main(t)
        )


def _apply(field: SettingsField, value: str, s: UserSettings, locales: tuple[str, ...]) -> UserSettings:
    """The new settings, or ValueError for a value no button offers (a forged callback)."""
    if field is SettingsField.STYLE:
        return s.model_copy(update={"style": Style(value)})
    if field is SettingsField.ASPECT:
        aspect = keyboards.unpack_aspect(value)
        if aspect not in ASPECT_RATIOS:
            raise ValueError(aspect)
        return s.model_copy(update={"aspect": aspect})
    if field is SettingsField.COUNT:
        n = int(value)
        if not 1 <= n <= MAX_IMAGES_PER_JOB:
            raise ValueError(value)
        return s.model_copy(update={"num_images": n})
    if field is SettingsField.LANGUAGE:
        if value != "auto" and value not in locales:
            raise ValueError(value)
        return s.model_copy(update={"locale": None if value == "auto" else value})
    raise ValueError(field)


async def settings_button(query: CallbackQuery, callback_data: SettingsCb, state: FSMContext,
                          services: Services, t: Translator, user_settings: UserSettings) -> None:
    field, value = callback_data.field, callback_data.value
    message = query.message if isinstance(query.message, Message) else None
    store, i18n = services.store, services.i18n
    if field is SettingsField.CLOSE:
        await query.answer()
        await state.clear()
        if message:
            await message.edit_text(summary(t, user_settings) + "\n\n" + t("settings-closed"))
        return
    if field is SettingsField.MENU:
        await query.answer()
        await state.clear()
        if message:
            await message.edit_text(summary(t, user_settings), reply_markup=keyboards.settings_main(t))
        return
    if field is SettingsField.NEGATIVE_CLEAR:
        updated = user_settings.model_copy(update={"negative_prompt": ""})
        await store.save(query.from_user.id, updated)
        await query.answer(t("settings-saved"))
        await state.clear()
        if message:
            await message.edit_text(summary(t, updated), reply_markup=keyboards.settings_main(t))
        return
    if field is SettingsField.NEGATIVE:
        await query.answer()
        await state.set_state(SettingsDialog.negative)
        if message:
            await message.edit_text(
                t("settings-ask-negative"),
                reply_markup=keyboards.settings_choices(t, field, user_settings, i18n.locales),
            )
        return
    if not value:
        await query.answer()
        if message:
            await message.edit_text(
                t(f"settings-pick-{_PICK_KEYS[field]}"),
                reply_markup=keyboards.settings_choices(t, field, user_settings, i18n.locales),
            )
        return
    try:
        updated = _apply(field, value, user_settings, i18n.locales)
    except ValueError:
        await query.answer()
        log.warning("user %s: refused settings value %s=%r", query.from_user.id, field, value)
        return
    await store.save(query.from_user.id, updated)
    # After a language change the rest of the answer is already in the new language.
    t = i18n.translator(_locale_for(i18n, query.from_user, updated))
    await query.answer(t("settings-saved"))
    if message:
        await message.edit_text(summary(t, updated), reply_markup=keyboards.settings_main(t))
    log.info("user %s: settings %s=%s", query.from_user.id, field, value)


_PICK_KEYS: dict[SettingsField, str] = {
    SettingsField.STYLE: "style",
    SettingsField.ASPECT: "aspect",
    SettingsField.COUNT: "count",
    SettingsField.LANGUAGE: "language",
}


async def got_negative(message: Message, state: FSMContext, services: Services, t: Translator,
                       user_settings: UserSettings) -> None:
    try:
        negative = validate_prompt(message.text)
    except InputError as err:
        await refuse(message, t, err)
        return
    updated = user_settings.model_copy(update={"negative_prompt": negative})
    await services.store.save(message.from_user.id if message.from_user else message.chat.id, updated)
    await state.clear()
    await message.answer(t("settings-negative-saved") + "\n\n" + summary(t, updated),
                         reply_markup=keyboards.settings_main(t))


async def negative_not_text(message: Message, t: Translator) -> None:
    await message.answer(t("need-text"), reply_markup=keyboards.dialog_cancel(t))


def make_router() -> Router:
    router = Router(name="settings")
    router.message.register(cmd_settings, Command("settings"))
    router.callback_query.register(menu_settings, MenuCb.filter(F.mode == "settings"))
    router.callback_query.register(settings_button, SettingsCb.filter())
    router.message.register(got_negative, StateFilter(SettingsDialog.negative), HasText())
    router.message.register(negative_not_text, StateFilter(SettingsDialog.negative), NotCommand())
    return router
