"""/settings: style, aspect ratio, images per request, negative prompt, language, and a model's LoRA
styles — one message, edited."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, User

from bot.services import Services, refuse
from bot.services.families import title
from bot.services.inputs import InputError, validate_prompt
from bot.services.styles import TooManyStyles, describe_picks, reweigh, toggle
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import LoraAction, LoraCb, MenuCb, SettingsCb, SettingsField
from bot.ui.filters import HasText, NotCommand
from bot.ui.i18n import I18n, Translator
from bot.ui.states import SettingsDialog
from contract.families import describe_family
from contract.loras import MAX_LORAS_PER_JOB, LoraStyle
from contract.spec import ASPECT_RATIOS, MAX_IMAGES_PER_JOB, Style

log = logging.getLogger(__name__)

NEGATIVE_PREVIEW_CHARS = 200
"""The summary shows the start of a long negative prompt; the message must stay short."""


def summary(t: Translator, s: UserSettings, styles: Mapping[str, LoraStyle] | None = None) -> str:
    """The settings as one message; ``styles``: the published LoRA styles of the user's model, for a
    model that takes them (their line names the picks by title)."""
    negative = s.negative_prompt
    if len(negative) > NEGATIVE_PREVIEW_CHARS:
        negative = negative[:NEGATIVE_PREVIEW_CHARS] + "…"
    text = t(
        "settings-title",
        style=keyboards.style_label(t, s.style),
        aspect=s.aspect,
        count=s.num_images,
        negative=escape(negative) if negative else t("settings-none"),
        language=keyboards.language_label(t, s.locale),
    ) + "\n" + t("settings-model", model=title(s.model))
    if styles is not None:
        picks = escape(describe_picks(s.loras, styles))
        text += "\n" + t("settings-loras", styles=picks or t("settings-none"))
    return text


async def main_view(services: Services, t: Translator, s: UserSettings) -> dict[str, Any]:
    """The /settings message and its buttons (with the LoRA styles' line and button for a model
    that takes them)."""
    takes = describe_family(s.model).lora_styles
    styles = await services.styles.published(s.model) if takes else None
    return {"text": summary(t, s, styles), "reply_markup": keyboards.settings_main(t, loras=takes)}


def _locale_for(i18n: I18n, user: User, s: UserSettings) -> str:
    return s.locale or i18n.pick(user.language_code)


async def cmd_settings(message: Message, state: FSMContext, services: Services, t: Translator,
                       user_settings: UserSettings) -> None:
    await state.clear()
    await message.answer(**await main_view(services, t, user_settings))


async def menu_settings(query: CallbackQuery, state: FSMContext, services: Services, t: Translator,
                        user_settings: UserSettings) -> None:
    await query.answer()
    await state.clear()
    if query.message is not None:
        await query.bot.send_message(  # type: ignore[union-attr]
            query.message.chat.id, **await main_view(services, t, user_settings)
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
            view = await main_view(services, t, user_settings)
            await message.edit_text(view["text"] + "\n\n" + t("settings-closed"))
        return
    if field is SettingsField.MENU:
        await query.answer()
        await state.clear()
        if message:
            await message.edit_text(**await main_view(services, t, user_settings))
        return
    if field is SettingsField.NEGATIVE_CLEAR:
        updated = user_settings.model_copy(update={"negative_prompt": ""})
        await store.save(query.from_user.id, updated)
        await query.answer(t("settings-saved"))
        await state.clear()
        if message:
            await message.edit_text(**await main_view(services, t, updated))
        return
    if field is SettingsField.LORAS:
        await query.answer()
        if message:
            await message.edit_text(**await lora_view(services, t, user_settings))
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
        await message.edit_text(**await main_view(services, t, updated))
    log.info("user %s: settings %s=%s", query.from_user.id, field, value)


async def lora_view(services: Services, t: Translator, s: UserSettings) -> dict[str, Any]:
    """The LoRA styles submenu: the published styles of the user's model, the picks marked."""
    styles = await services.styles.published(s.model)
    if not styles and not s.loras:
        text = t("settings-loras-none", model=title(s.model))
    else:
        text = t("settings-pick-loras", model=title(s.model), limit=MAX_LORAS_PER_JOB)
    return {"text": text, "reply_markup": keyboards.lora_choices(t, s.loras, styles)}


async def lora_button(query: CallbackQuery, callback_data: LoraCb, services: Services, t: Translator,
                      user_settings: UserSettings) -> None:
    """A style on or off, or its weight a step; the name must be a published style of the user's
    model (or one of their own picks, to take it off)."""
    name, action = callback_data.name, callback_data.action
    styles = await services.styles.published(user_settings.model)
    picked = any(p.name == name for p in user_settings.loras)
    if not describe_family(user_settings.model).lora_styles or (name not in styles and not picked) or (
            action is not LoraAction.TOGGLE and not picked):
        await query.answer()  # no button offers this: a forged or stale callback
        log.warning("user %s: refused LoRA style %s %r", query.from_user.id, action, name)
        return
    try:
        if action is LoraAction.TOGGLE:
            picks = toggle(user_settings.loras, name, styles)
        else:
            picks = reweigh(user_settings.loras, name, 1 if action is LoraAction.UP else -1)
    except TooManyStyles:
        await query.answer(t("settings-loras-too-many", limit=MAX_LORAS_PER_JOB), show_alert=True)
        return
    changed = picks != user_settings.loras  # a weight at its bound stays: nothing to write or redraw
    updated = user_settings.model_copy(update={"loras": picks})
    if changed:
        await services.store.save(query.from_user.id, updated)
    await query.answer(t("settings-saved"))
    message = query.message if isinstance(query.message, Message) else None
    if message and changed:
        await message.edit_text(**await lora_view(services, t, updated))
    log.info("user %s: LoRA styles %s", query.from_user.id,
             ", ".join(f"{p.name}={p.weight:g}" for p in picks) or "none")


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
    view = await main_view(services, t, updated)
    await message.answer(t("settings-negative-saved") + "\n\n" + view["text"],
                         reply_markup=view["reply_markup"])


async def negative_not_text(message: Message, t: Translator) -> None:
    await message.answer(t("need-text"), reply_markup=keyboards.dialog_cancel(t))


def make_router() -> Router:
    router = Router(name="settings")
    router.message.register(cmd_settings, Command("settings"))
    router.callback_query.register(menu_settings, MenuCb.filter(F.mode == "settings"))
    router.callback_query.register(settings_button, SettingsCb.filter())
    router.callback_query.register(lora_button, LoraCb.filter())
    router.message.register(got_negative, StateFilter(SettingsDialog.negative), HasText())
    router.message.register(negative_not_text, StateFilter(SettingsDialog.negative), NotCommand())
    return router
