"""The modes that start from photos share one dialog: collect images and a prompt, then queue.

Each message may bring a photo, a text, or both (a photo with a caption); the dialog asks for
whatever is still missing. Inputs are validated and stored as they arrive, so a bad one is
refused on its own and the good ones are kept.
"""

from __future__ import annotations

import logging
import re

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.services import Services, refuse
from bot.services.editing import check_edit_words, photo_bucket
from bot.services.inputs import InputError, validate_prompt
from bot.services.jobs import DEFAULT_WEIGHT_PERCENT, normalize_weights, requester
from bot.services.user_settings import UserSettings
from bot.ui import keyboards
from bot.ui.callbacks import MenuCb, WeightsCb
from bot.ui.filters import HasImage, HasText, ImageRef, NotCommand, image_ref
from bot.ui.i18n import Translator
from bot.ui.states import mode_state
from contract.editing import parse_edit_request
from contract.modes import ModeDescription

log = logging.getLogger(__name__)
_WEIGHTS_ARG = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*[/:, ]\s*(\d{1,3}(?:\.\d+)?)\s*$")


def parse_weights(args: str | None) -> int | None:
    """'30/70', '30 70' or '0.3 0.7' → percent of the first input, normalised to sum 100."""
    if not args:
        return None
    match = _WEIGHTS_ARG.match(args)
    if not match:
        return None
    a, b = float(match.group(1)), float(match.group(2))
    if a < 0 or b < 0 or a + b <= 0:
        return None
    return round(100 * a / (a + b))


async def ask_missing(spec: ModeDescription, message: Message, state: FSMContext, t: Translator, *,
                      album: bool) -> None:
    """Ask for whatever the dialog still lacks (nothing while the rest of an album is coming)."""
    data = await state.get_data()
    n_inputs = len(data.get("inputs", []))
    if n_inputs < spec.images:
        if album:
            return  # the rest of the album is on its way
        if n_inputs == 0:
            key = spec.ask_photo_after_text_key if data.get("prompt") else spec.ask_photo_key
        else:
            key = spec.ask_next_photo_key
        markup = (keyboards.weights(t, data.get("w", DEFAULT_WEIGHT_PERCENT)) if spec.weights
                  else keyboards.dialog_cancel(t))
        await message.answer(t(key), reply_markup=markup)
    else:
        await message.answer(t(spec.ask_text_key), reply_markup=keyboards.dialog_cancel(t))


async def contribute(spec: ModeDescription, message: Message, image: ImageRef | None, text: str | None, *,
                     state: FSMContext, bot: Bot, services: Services, t: Translator, locale: str,
                     user_settings: UserSettings, user_id: int | None = None,
                     reply_to_id: int | None = None) -> None:
    """Add a photo and/or the prompt to the dialog; queue the job once nothing is missing.

    ``user_id`` and ``reply_to_id`` are for contributions that do not come from the user's own
    message (a transcribed voice message, confirmed with a button under the bot's message)."""
    data = await state.get_data()
    inputs: list[str] = list(data.get("inputs", []))
    prompt: str | None = data.get("prompt")
    req = requester(message, bot=bot, services=services, t=t, locale=locale, user_settings=user_settings,
                    user_id=user_id)
    try:
        if text is not None and spec.prompt:
            prompt = validate_prompt(text)
            if spec.region:
                check_edit_words(prompt)  # "what -> into what": refused now, asked again
        if image is not None and len(inputs) < spec.images:
            inputs.append(await req.store(image))
    except InputError as err:
        await refuse(message, t, err)
        return
    await state.update_data(inputs=inputs, prompt=prompt)
    if len(inputs) < spec.images or (spec.prompt and not prompt):
        album = message.media_group_id is not None and image is not None
        await ask_missing(spec, message, state, t, album=album)
        return
    await state.clear()
    weights = normalize_weights(data.get("w", DEFAULT_WEIGHT_PERCENT)) if spec.weights else ()
    region, size = "", None
    if spec.region:  # an edit: the words split, and the photo keeps its shape
        region, prompt = parse_edit_request(prompt or "")
        size = await photo_bucket(services.queue, inputs[0], services.config.long_side)
    await req.run(spec.mode, prompt=prompt or "", inputs=tuple(inputs), weights=weights,
                  reply_to_id=reply_to_id if reply_to_id is not None else message.message_id,
                  region=region, size=size)


async def open_dialog(spec: ModeDescription, state: FSMContext, *,
                      weight: int = DEFAULT_WEIGHT_PERCENT) -> None:
    """A fresh dialog of this mode: nothing collected yet."""
    await state.clear()
    await state.set_state(mode_state(spec))
    await state.update_data(inputs=[], prompt=None, w=weight)


def image_mode_router(spec: ModeDescription) -> Router:
    """A photo mode's dialog, from its description: what it collects, what it asks for."""
    if spec.command is None or not spec.images:
        raise ValueError(f"mode {spec.mode} is not a photo mode the bot offers")
    router = Router(name=spec.mode.value)
    waiting = mode_state(spec)
    in_dialog = StateFilter(waiting)

    @router.message(Command(spec.command))
    async def cmd(message: Message, command: CommandObject, state: FSMContext, bot: Bot, services: Services,
                  t: Translator, locale: str, user_settings: UserSettings) -> None:
        args = (command.args or "").strip() or None
        first = parse_weights(args) if spec.weights else None
        await open_dialog(spec, state, weight=first if first is not None else DEFAULT_WEIGHT_PERCENT)
        text = args if (args and spec.prompt and first is None) else None
        ref = image_ref(message)
        if ref is None and text is None:
            await ask_missing(spec, message, state, t, album=False)
            return
        await contribute(spec, message, ref, text, state=state, bot=bot, services=services, t=t,
                         locale=locale, user_settings=user_settings)

    @router.callback_query(MenuCb.filter(F.mode == spec.mode.value))
    async def menu(query: CallbackQuery, state: FSMContext, t: Translator) -> None:
        await query.answer()
        await open_dialog(spec, state)
        if isinstance(query.message, Message):
            await ask_missing(spec, query.message, state, t, album=False)

    @router.message(in_dialog, HasImage(), NotCommand())
    async def got_image(message: Message, image: ImageRef, state: FSMContext, bot: Bot, services: Services,
                        t: Translator, locale: str, user_settings: UserSettings) -> None:
        caption = message.caption if (message.caption and message.caption.strip()) else None
        await contribute(spec, message, image, caption, state=state, bot=bot, services=services, t=t,
                         locale=locale, user_settings=user_settings)

    @router.message(in_dialog, HasText())
    async def got_text(message: Message, state: FSMContext, bot: Bot, services: Services, t: Translator,
                       locale: str, user_settings: UserSettings) -> None:
        data = await state.get_data()
        if not spec.prompt or (len(data.get("inputs", [])) < spec.images and data.get("prompt")):
            await message.answer(t("need-photo"), reply_markup=keyboards.dialog_cancel(t))
            return
        await contribute(spec, message, None, message.text, state=state, bot=bot, services=services, t=t,
                         locale=locale, user_settings=user_settings)

    @router.message(in_dialog, NotCommand())
    async def other(message: Message, t: Translator) -> None:
        await message.answer(t("need-photo"), reply_markup=keyboards.dialog_cancel(t))

    if spec.weights:
        @router.callback_query(in_dialog, WeightsCb.filter())
        async def set_weights(query: CallbackQuery, callback_data: WeightsCb, state: FSMContext,
                              t: Translator) -> None:
            first = min(max(callback_data.first, 0), 100)
            await query.answer(t("weights-set", first=first, second=100 - first))
            await state.update_data(w=first)
            if isinstance(query.message, Message):
                await query.message.edit_reply_markup(reply_markup=keyboards.weights(t, first))

    return router
