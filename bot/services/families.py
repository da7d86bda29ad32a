"""The bot's side of model families: which family runs a request, what to say when it cannot.

Every request passes :func:`family_for` just before admission (bot/services/jobs.py ``submit``): a mode the
chosen family does not serve is refused there, before anything is counted or queued, with one
message that names the family that can and a button to run this one job with it
(``bot.services.switches`` keeps the request in Redis until the user presses it; bot/routers/model.py
handles the press). The user's choice itself lives in their settings (``UserSettings.model``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.services import Services, reply_to
from bot.ui.callbacks import SwitchCb
from contract.families import Family, describe_family, families_serving
from contract.modes import describe
from contract.spec import JobSpec

log = logging.getLogger(__name__)


def title(family: Family | str) -> str:
    """The family's name as users see it (a proper name, the same in every language)."""
    return describe_family(family).title


def serves(family: Family | str, mode: str) -> bool:
    return describe_family(family).serves(mode)


def alternative(mode: str) -> Family:
    """The first family (contract.families order) that serves ``mode`` (every mode has one)."""
    return families_serving(mode)[0]


def caption_note(t: Callable[..., str], spec: JobSpec, prompt_truncated: bool) -> str:
    """The model line of a result's caption, and the note that the prompt was cut when it was."""
    note = "\n" + t("result-model", model=title(spec.model))
    if prompt_truncated:
        note += "\n" + t("result-prompt-cut", model=title(spec.model),
                         tokens=describe_family(spec.model).prompt_tokens)
    return note


async def offer_switch(spec: JobSpec, refused_by: Family, *, bot: Bot, services: Services,
                       t: Callable[..., str]) -> None:
    """Refuse a mode the user's family lacks, before anything is counted or queued: say which
    family can, and keep the request (``spec``, already that family's) for a one-tap run with it."""
    token = await services.switches.offer(spec, refused_by)
    mode_name = t(describe(spec.mode).name_key)
    text = t("model-mode-refused", mode=mode_name, model=title(refused_by), other=title(spec.model))
    await bot.send_message(spec.chat_id, text, reply_markup=switch_keyboard(t, token, spec.model),
                           reply_parameters=reply_to(spec.reply_to))
    log.info("chat %s: %s refused for %s, offered %s (offer %s)", spec.chat_id, spec.mode, refused_by,
             spec.model, token)


def switch_keyboard(t: Callable[..., str], token: str, family: Family) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(text=t("btn-switch-once", other=title(family)),
                                  callback_data=SwitchCb(token=token).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[button]])
