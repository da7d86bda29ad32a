"""Inline keyboards; every label comes from the translator, every payload from bot.ui.callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.ui.callbacks import (
    AnimateCb,
    AnimateStep,
    DialogCb,
    JobCb,
    LengthCb,
    LoraAction,
    LoraCb,
    MenuCb,
    ModelCb,
    MoveCb,
    ResultAction,
    ResultCb,
    SettingsCb,
    SettingsField,
    VoiceAction,
    VoiceCb,
    WeightsCb,
)
from bot.ui.i18n import Translator
from contract.animation import CAMERA_PRESETS
from contract.animation import MIN_SECONDS as ANIMATION_MIN_SECONDS
from contract.families import Family, picture_families
from contract.modes import IMAGE_BUTTONS, Button, Output, menu_modes
from contract.spec import ASPECT_RATIOS, MAX_IMAGES_PER_JOB, Style

if TYPE_CHECKING:  # the settings model only types a parameter: the UI imports no service
    from bot.services.user_settings import UserSettings
    from contract.loras import LoraChoice, LoraStyle

MENU_MODES: tuple[tuple[str, str], ...] = (
    *((mode.mode.value, mode.button_key) for mode in menu_modes()),
    ("settings", "btn-settings"),
)
"""The main menu's (callback value, label key) pairs: the modes' from their descriptions, then settings."""
WEBAPP_PAGE = "/webapp/edit"
"""Where the bot's web server serves the brush editor (bot/webapp/): WEBAPP_URL + this."""
ZOOM_BUTTONS: tuple[tuple[ResultAction, str], ...] = (
    (ResultAction.ZOOM_1_5, "btn-zoom-out-1_5"), (ResultAction.ZOOM_2, "btn-zoom-out-2"))
PAN_BUTTONS: tuple[tuple[ResultAction, str], ...] = (
    (ResultAction.PAN_LEFT, "btn-pan-left"), (ResultAction.PAN_RIGHT, "btn-pan-right"),
    (ResultAction.PAN_UP, "btn-pan-up"), (ResultAction.PAN_DOWN, "btn-pan-down"))
"""Under every photo result, so a result of a zoom or a pan can be zoomed and panned again."""
WEIGHT_PRESETS: tuple[int, ...] = (30, 50, 70)
"""Percent of the first input offered as buttons; the second input gets the rest."""


def pack_aspect(aspect: str) -> str:
    """':' separates callback-data fields, so "16:9" travels as "16x9"."""
    return aspect.replace(":", "x")


def unpack_aspect(value: str) -> str:
    return value.replace("x", ":")


def main_menu(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for mode, label in MENU_MODES:
        kb.button(text=t(label), callback_data=MenuCb(mode=mode))
    kb.adjust(2)
    return kb.as_markup()


def dialog_cancel(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t("btn-cancel"), callback_data=DialogCb())
    return kb.as_markup()


def move_start(t: Translator, job_id: str) -> InlineKeyboardMarkup:
    """Make it move: run the picture's own prompt, or cancel (words are the other answer)."""
    kb = InlineKeyboardBuilder()
    kb.button(text=t("btn-move-start"), callback_data=MoveCb(job_id=job_id))
    kb.button(text=t("btn-cancel"), callback_data=DialogCb())
    kb.adjust(2)
    return kb.as_markup()


def weights(t: Translator, current_first: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for first in WEIGHT_PRESETS:
        mark = "• " if first == current_first else ""
        kb.button(text=f"{mark}{first}/{100 - first}", callback_data=WeightsCb(first=first))
    kb.button(text=t("btn-cancel"), callback_data=DialogCb())
    kb.adjust(len(WEIGHT_PRESETS), 1)
    return kb.as_markup()


def job_status(t: Translator, job_id: str) -> InlineKeyboardMarkup:
    """Built directly, not with the builder: it goes out with every queued job, and the builder's
    export deep-copies its buttons (24 → 10 µs per call, timeit, same markup)."""
    button = InlineKeyboardButton(text=t("btn-cancel-job"),
                                  callback_data=JobCb(action="cancel", job_id=job_id).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def webapp_url(base: str, job_id: str, index: int, locale: str) -> str:
    """The brush editor's address for image ``index`` of a job (Telegram adds the signed init data)."""
    return base.rstrip("/") + WEBAPP_PAGE + "?" + urlencode({"job": job_id, "i": index, "lang": locale})


def edit_rows(t: Translator, job_id: str, index: int, webapp: str = "") -> list[list[InlineKeyboardButton]]:
    """Edit by words (and by brush when the Mini App has a public URL, ``webapp``), zoom out, pan."""
    def button(action: ResultAction, label: str) -> InlineKeyboardButton:
        data = ResultCb(action=action, job_id=job_id, index=index).pack()
        return InlineKeyboardButton(text=t(label), callback_data=data)

    first = [button(ResultAction.EDIT, "btn-edit-words")]
    if webapp:
        url = webapp_url(webapp, job_id, index, t.locale)
        first.append(InlineKeyboardButton(text=t("btn-edit-paint"), web_app=WebAppInfo(url=url)))
    zoom = [button(action, label) for action, label in ZOOM_BUTTONS]
    return [first, zoom, [button(action, label) for action, label in PAN_BUTTONS]]


def edit_menu(t: Translator, job_id: str, index: int, webapp: str = "") -> InlineKeyboardMarkup:
    """The edit buttons of one image of an album (a media group carries no keyboard)."""
    return InlineKeyboardMarkup(inline_keyboard=edit_rows(t, job_id, index, webapp))


RESULT_BUTTONS: dict[Button, tuple[ResultAction, str]] = {
    Button.AGAIN: (ResultAction.AGAIN, "btn-again"),
    Button.VARIATIONS: (ResultAction.VARIATIONS, "btn-variations-of"),
    Button.SAME_SEED: (ResultAction.SAME_SEED, "btn-same-seed"),
    Button.FILE: (ResultAction.FILE, "btn-file"),
    Button.MOVE: (ResultAction.MOVE, "btn-move"),
    Button.ADD_TO_PACK: (ResultAction.ADD_TO_PACK, "btn-add-to-pack"),
}
"""The callback and label of each button a mode's description puts under its result (the edit rows
are Button.EDIT's)."""
FILE_LABELS: dict[Output, str] = {Output.ANIMATION: "btn-animation-file", Output.VIDEO: "btn-animation-file"}
"""The "as a file" label where it is not the picture's ("btn-file")."""


def result(t: Translator, job_id: str, index: int, *, buttons: tuple[Button, ...],
           output: Output = Output.IMAGE, read: bool = False, webapp: str = "") -> InlineKeyboardMarkup:
    """The buttons a mode's description lists (contract.modes), in pairs. ``read``: the model read a
    translation; a button shows it. Button.EDIT adds the edit rows (``webapp``: the Mini App's public
    URL, for the brush button)."""
    kb = InlineKeyboardBuilder()
    for button in buttons:
        if button is Button.EDIT:
            continue
        action, label = RESULT_BUTTONS[button]
        if button is Button.FILE:
            label = FILE_LABELS.get(output, label)
        kb.button(text=t(label), callback_data=ResultCb(action=action, job_id=job_id, index=index))
    if read:
        kb.button(text=t("btn-model-read"), callback_data=ResultCb(action=ResultAction.READ, job_id=job_id,
                                                                   index=index))
    kb.adjust(2, 2, 1)
    if Button.EDIT in buttons:
        for row in edit_rows(t, job_id, index, webapp):
            kb.row(*row)
    return kb.as_markup()


def style_label(t: Translator, style: Style) -> str:
    return t(f"style-{style.value}")


def language_label(t: Translator, locale: str | None) -> str:
    return t(f"language-{locale}") if locale else t("language-auto")


def settings_main(t: Translator, loras: bool = False) -> InlineKeyboardMarkup:
    """The /settings buttons; ``loras``: the user's model takes LoRA styles (their submenu)."""
    kb = InlineKeyboardBuilder()
    for field, label in (
        (SettingsField.STYLE, "settings-btn-style"),
        (SettingsField.ASPECT, "settings-btn-aspect"),
        (SettingsField.COUNT, "settings-btn-count"),
        (SettingsField.NEGATIVE, "settings-btn-negative"),
        (SettingsField.LANGUAGE, "settings-btn-language"),
    ):
        kb.button(text=t(label), callback_data=SettingsCb(field=field))
    kb.button(text=t("settings-btn-model"), callback_data=ModelCb())  # bot/routers/model.py
    if loras:
        kb.button(text=t("settings-btn-loras"), callback_data=SettingsCb(field=SettingsField.LORAS))
    kb.button(text=t("settings-btn-close"), callback_data=SettingsCb(field=SettingsField.CLOSE))
    kb.adjust(2, 2, 2, 1, 1)
    return kb.as_markup()


def lora_choices(t: Translator, picks: tuple[LoraChoice, ...],
                 styles: dict[str, LoraStyle]) -> InlineKeyboardMarkup:
    """One row per style: its title (✓ and the weight when picked), and − / + for a picked one's
    weight; a pick no worker publishes any more is listed too, so it can be taken off."""
    kb = InlineKeyboardBuilder()
    weights = {p.name: p.weight for p in picks}
    sizes: list[int] = []
    for name in (*styles, *(n for n in weights if n not in styles)):
        label = styles[name].title if name in styles else name
        if name in weights:
            kb.button(text=f"✓ {label} · {weights[name]:g}",
                      callback_data=LoraCb(action=LoraAction.TOGGLE, name=name))
            kb.button(text="−", callback_data=LoraCb(action=LoraAction.DOWN, name=name))
            kb.button(text="+", callback_data=LoraCb(action=LoraAction.UP, name=name))
            sizes.append(3)
        else:
            kb.button(text=label, callback_data=LoraCb(action=LoraAction.TOGGLE, name=name))
            sizes.append(1)
    _back(kb, t)
    kb.adjust(*sizes, 1)
    return kb.as_markup()


def model_choices(t: Translator, current: Family) -> InlineKeyboardMarkup:
    """One button per model family (the current one marked), then back to /settings."""
    kb = InlineKeyboardBuilder()
    choices = picture_families()
    for description in choices:
        mark = "• " if description.family is current else ""
        kb.button(text=mark + description.title, callback_data=ModelCb(family=description.family.value))
    _back(kb, t)
    kb.adjust(len(choices), 1)
    return kb.as_markup()


def _back(kb: InlineKeyboardBuilder, t: Translator) -> None:
    kb.button(text=t("settings-btn-back"), callback_data=SettingsCb(field=SettingsField.MENU))


def settings_choices(t: Translator, field: SettingsField, current: UserSettings,
                     locales: tuple[str, ...]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    if field is SettingsField.STYLE:
        for style in Style:
            mark = "• " if style is current.style else ""
            data = SettingsCb(field=field, value=style.value)
            kb.button(text=mark + style_label(t, style), callback_data=data)
        sizes: tuple[int, ...] = (2, 2, 1)
    elif field is SettingsField.ASPECT:
        for aspect in ASPECT_RATIOS:
            mark = "• " if aspect == current.aspect else ""
            kb.button(text=mark + aspect, callback_data=SettingsCb(field=field, value=pack_aspect(aspect)))
        sizes = (4, 3, 1)
    elif field is SettingsField.COUNT:
        for n in range(1, MAX_IMAGES_PER_JOB + 1):
            mark = "• " if n == current.num_images else ""
            kb.button(text=f"{mark}{n}", callback_data=SettingsCb(field=field, value=str(n)))
        sizes = (MAX_IMAGES_PER_JOB, 1)
    elif field is SettingsField.LANGUAGE:
        for locale in ("", *locales):
            mark = "• " if (locale or None) == current.locale else ""
            kb.button(text=mark + language_label(t, locale or None),
                      callback_data=SettingsCb(field=field, value=locale or "auto"))
        sizes = (1 + len(locales), 1)
    elif field is SettingsField.NEGATIVE:
        kb.button(text=t("settings-btn-negative-clear"),
                  callback_data=SettingsCb(field=SettingsField.NEGATIVE_CLEAR))
        sizes = (1,)
    else:
        sizes = (1,)
    _back(kb, t)
    kb.adjust(*sizes)
    return kb.as_markup()


def voice_heard(t: Translator, voice_id: str) -> InlineKeyboardMarkup:
    """Under "I heard: …": draw it, edit the text, cancel."""
    kb = InlineKeyboardBuilder()
    for action, label in ((VoiceAction.DRAW, "btn-voice-draw"), (VoiceAction.EDIT, "btn-voice-edit"),
                          (VoiceAction.CANCEL, "btn-voice-cancel")):
        kb.button(text=t(label), callback_data=VoiceCb(action=action, voice_id=voice_id))
    kb.adjust(1, 2)
    return kb.as_markup()


def results_multi(t: Translator, job_id: str, count: int, *, read: bool = False) -> InlineKeyboardMarkup:
    """Buttons for a media group (which cannot carry a keyboard): one row per image."""
    kb = InlineKeyboardBuilder()
    for index in range(count):
        n = index + 1
        for action, label in (RESULT_BUTTONS[b] for b in IMAGE_BUTTONS if b is not Button.EDIT):
            emoji = t(label).split(" ", 1)[0]
            data = ResultCb(action=action, job_id=job_id, index=index)
            kb.button(text=f"{n} {emoji}", callback_data=data)
        kb.button(text=f"{n} {t('btn-edit-menu')}",
                  callback_data=ResultCb(action=ResultAction.EDIT_MENU, job_id=job_id, index=index))
    if read:
        kb.button(text=t("btn-model-read"), callback_data=ResultCb(action=ResultAction.READ, job_id=job_id))
    kb.adjust(5)
    return kb.as_markup()


def animate_cameras(t: Translator) -> InlineKeyboardMarkup:
    """The camera buttons of /animate (contract.animation.CAMERA_PRESETS), then cancel."""
    kb = InlineKeyboardBuilder()
    for camera in CAMERA_PRESETS:
        kb.button(text=t(f"animate-camera-{camera.value}"),
                  callback_data=AnimateCb(step=AnimateStep.CAMERA, value=camera.value))
    kb.button(text=t("btn-cancel"), callback_data=DialogCb())
    kb.adjust(2, 2, 2, 1)
    return kb.as_markup()


def video_lengths(t: Translator, mode: str, lengths: tuple[int, ...]) -> InlineKeyboardMarkup:
    """One button per length a video mode offers here, then cancel."""
    kb = InlineKeyboardBuilder()
    for seconds in lengths:
        kb.button(text=t("video-seconds", seconds=seconds),
                  callback_data=LengthCb(mode=mode, seconds=seconds))
    kb.button(text=t("btn-cancel"), callback_data=DialogCb())
    kb.adjust(len(lengths), 1)
    return kb.as_markup()


def animate_durations(t: Translator, max_seconds: int) -> InlineKeyboardMarkup:
    """Lengths from MIN_SECONDS to the operator's ANIMATION_MAX_SECONDS, then cancel."""
    kb = InlineKeyboardBuilder()
    choices = range(ANIMATION_MIN_SECONDS, max_seconds + 1)
    for seconds in choices:
        kb.button(text=t("animate-seconds", seconds=seconds),
                  callback_data=AnimateCb(step=AnimateStep.SECONDS, value=str(seconds)))
    kb.button(text=t("btn-cancel"), callback_data=DialogCb())
    kb.adjust(4, 4, 1)
    return kb.as_markup()
