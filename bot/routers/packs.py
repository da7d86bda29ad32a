"""Sticker packs from the chat: "add to my pack" under a sticker, /packs to list and edit them.

Ownership is checked against Redis on every press (the job record's user for a result, the
pack record's owner for a pack), never trusted from callback data: in a group anyone can
press any button.
"""

from __future__ import annotations

import html
import logging

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.services import Services
from bot.services.packs import (
    DEFAULT_EMOJI,
    EMOJI_CHOICES,
    MAX_STICKERS_PER_PACK,
    Pack,
    PackError,
    PackService,
    seq_of,
)
from bot.ui.callbacks import ResultAction, ResultCb
from bot.ui.filters import Matches
from bot.ui.i18n import Translator
from contract.events import FileKind
from contract.modes import Button

log = logging.getLogger(__name__)

class PackEmojiCb(CallbackData, prefix="pe"):
    """Emoji picked for a result about to be added (``e`` indexes EMOJI_CHOICES, -1 = default)."""

    job_id: str
    index: int
    e: int = -1


class PackCb(CallbackData, prefix="pk"):
    """An action on one of the ``owner``'s packs; ``seq`` is the number in the pack's name, so a
    button keeps pointing at the same pack when the list changes."""

    action: str
    owner: int
    seq: int = -1


class PackDialog(StatesGroup):
    title = State()
    remove = State()


# --- adding a generated sticker ---------------------------------------------------------------
def emoji_keyboard(job_id: str, index: int, t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for i, emoji in enumerate(EMOJI_CHOICES):
        kb.button(text=emoji, callback_data=PackEmojiCb(job_id=job_id, index=index, e=i))
    kb.button(text=t("pack-btn-default-emoji", emoji=DEFAULT_EMOJI),
              callback_data=PackEmojiCb(job_id=job_id, index=index, e=-1))
    kb.adjust(6, 6, 1)
    return kb.as_markup()


async def _owned_sticker(query: CallbackQuery, job_id: str, index: int, services: Services,
                         t: Translator) -> bytes | None:
    """The sticker bytes of a result the presser owns; None (with an answer) otherwise."""
    record = await services.queue.job(job_id)
    if record is None or record.user_id != query.from_user.id:
        # Someone else's button (or an expired one): refuse, change nothing.
        log.info("pack button of job %s pressed by user %s: not theirs", job_id, query.from_user.id)
        await query.answer(t("pack-not-yours") if record is not None else t("pack-result-expired"),
                           show_alert=True)
        return None
    if record.result is None or record.spec is None or Button.ADD_TO_PACK not in record.spec.buttons:
        await query.answer(t("pack-result-expired"), show_alert=True)
        return None
    sticker = record.result.file(index, FileKind.STICKER_WEBP)
    if sticker is None:
        await query.answer(t("pack-result-expired"), show_alert=True)
        return None
    data = await services.queue.result_bytes(sticker.key)
    if data is None:
        await query.answer(t("pack-result-expired"), show_alert=True)
        return None
    return data


async def add_to_pack_pressed(query: CallbackQuery, callback_data: ResultCb, services: Services,
                              t: Translator) -> None:
    if await _owned_sticker(query, callback_data.job_id, callback_data.index, services, t) is None:
        return
    await query.answer()
    if query.message is None:
        return
    await query.message.answer(t("pack-pick-emoji"),
                               reply_markup=emoji_keyboard(callback_data.job_id, callback_data.index, t))


async def emoji_picked(query: CallbackQuery, callback_data: PackEmojiCb, bot: Bot, services: Services,
                       t: Translator) -> None:
    packs = services.packs
    sticker = await _owned_sticker(query, callback_data.job_id, callback_data.index, services, t)
    if sticker is None:
        return
    await query.answer()
    e = callback_data.e
    emoji = EMOJI_CHOICES[e] if 0 <= e < len(EMOJI_CHOICES) else DEFAULT_EMOJI
    user = query.from_user
    existing = await packs.packs(user.id)
    title = t("pack-default-title", name=user.first_name, n=len(existing) + 1)
    try:
        outcome = await packs.add_sticker(bot, user.id, sticker, emoji=emoji, default_title=title,
                                          source=(callback_data.job_id, callback_data.index))
    except PackError as exc:
        text = t(exc.key, **exc.args_)
    else:
        pack = outcome.pack
        key = "pack-already-added" if outcome.already else "pack-created" if outcome.created else "pack-added"
        text = t(key, title=html.escape(pack.title), link=pack.link, count=pack.count,
                 limit=MAX_STICKERS_PER_PACK, left=pack.places_left)
    if query.message is not None:
        await bot.edit_message_text(text=text, chat_id=query.message.chat.id,
                                    message_id=query.message.message_id, reply_markup=None)


# --- /packs -------------------------------------------------------------------------------------
def _pack_line(t: Translator, n: int, pack: Pack, current: bool) -> str:
    return t("pack-line", n=n, title=html.escape(pack.title), link=pack.link, count=pack.count,
             limit=MAX_STICKERS_PER_PACK, left=pack.places_left, current="yes" if current else "no")


async def _packs_view(user_id: int, packs: PackService, t: Translator) -> tuple[str, InlineKeyboardMarkup]:
    mine = await packs.packs(user_id)
    current = await packs.current(user_id)
    kb = InlineKeyboardBuilder()
    if not mine:
        text = t("packs-empty")
    else:
        lines = [t("packs-header", count=len(mine))]
        for i, pack in enumerate(mine):
            is_current = current is not None and current.name == pack.name
            lines.append(_pack_line(t, i + 1, pack, is_current))
            kb.button(text=t("pack-btn-open", n=i + 1, title=pack.title[:40]),
                      callback_data=PackCb(action="open", owner=user_id, seq=seq_of(pack.name)))
        text = "\n".join(lines)
    kb.button(text=t("pack-btn-new"), callback_data=PackCb(action="new", owner=user_id))
    kb.adjust(1)
    return text, kb.as_markup()


async def cmd_packs(message: Message, state: FSMContext, t: Translator, services: Services) -> None:
    packs = services.packs
    if message.from_user is None:
        return
    await state.clear()
    text, markup = await _packs_view(message.from_user.id, packs, t)
    await message.answer(text, reply_markup=markup, disable_web_page_preview=True)


async def _pack_at(query: CallbackQuery, cb: PackCb, packs: PackService,
                   t: Translator) -> tuple[int, Pack] | None:
    """(position in the user's list, pack) of the button's pack; None (answered) when it is gone."""
    for i, pack in enumerate(await packs.packs(query.from_user.id)):
        if seq_of(pack.name) == cb.seq:
            return i, pack
    await query.answer(t("pack-not-found"), show_alert=True)
    return None


def _pack_menu(t: Translator, owner: int, seq: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t("pack-btn-use"), callback_data=PackCb(action="use", owner=owner, seq=seq))
    kb.button(text=t("pack-btn-rename"), callback_data=PackCb(action="rename", owner=owner, seq=seq))
    kb.button(text=t("pack-btn-remove"), callback_data=PackCb(action="remove", owner=owner, seq=seq))
    kb.button(text=t("pack-btn-back"), callback_data=PackCb(action="list", owner=owner))
    kb.adjust(1, 2, 1)
    return kb.as_markup()


async def pack_action(query: CallbackQuery, callback_data: PackCb, bot: Bot, state: FSMContext,
                      t: Translator, services: Services) -> None:
    packs = services.packs
    user_id = query.from_user.id
    if callback_data.owner != user_id:
        log.info("pack menu of user %s pressed by user %s: refused", callback_data.owner, user_id)
        await query.answer(t("pack-not-yours"), show_alert=True)
        return
    message = query.message
    chat_id = message.chat.id if message is not None else user_id
    action = callback_data.action
    if action == "list":
        await query.answer()
        text, markup = await _packs_view(user_id, packs, t)
        if message is not None:
            await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message.message_id,
                                        reply_markup=markup, disable_web_page_preview=True)
        return
    if action == "new":
        await packs.start_new(user_id)
        await query.answer()
        await bot.send_message(chat_id, t("pack-next-new"))
        return
    found = await _pack_at(query, callback_data, packs, t)
    if found is None:
        return
    position, pack = found
    try:
        if action == "open":
            pack, _ = await packs.fetch(bot, user_id, pack.name)
            await query.answer()
            current = await packs.current(user_id)
            text = _pack_line(t, position + 1, pack, current is not None and current.name == pack.name)
            if message is not None:
                await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message.message_id,
                                            reply_markup=_pack_menu(t, user_id, callback_data.seq),
                                            disable_web_page_preview=True)
        elif action == "use":
            pack = await packs.make_current(user_id, pack.name)
            await query.answer()
            await bot.send_message(chat_id, t("pack-now-current", title=html.escape(pack.title)))
        elif action == "rename":
            await query.answer()
            await state.set_state(PackDialog.title)
            await state.update_data(pack=pack.name)
            await bot.send_message(chat_id, t("pack-ask-title", title=html.escape(pack.title)))
        elif action == "remove":
            await query.answer()
            await state.set_state(PackDialog.remove)
            await state.update_data(pack=pack.name)
            await bot.send_message(chat_id, t("pack-ask-sticker", title=html.escape(pack.title)))
        else:
            await query.answer()
    except PackError as exc:
        await bot.send_message(chat_id, t(exc.key, **exc.args_))


async def command_leaves_dialog(message: Message, state: FSMContext) -> None:
    """Any command ends a pack dialog and then runs as usual (in this router or the next ones)."""
    await state.clear()
    raise SkipHandler


async def got_title(message: Message, state: FSMContext, bot: Bot, t: Translator, services: Services) -> None:
    packs = services.packs
    if message.from_user is None or message.text is None:
        return
    name = str((await state.get_data()).get("pack", ""))
    try:
        pack = await packs.rename(bot, message.from_user.id, name, message.text)
    except PackError as exc:
        if exc.key != "pack-title-invalid":
            await state.clear()
        await message.answer(t(exc.key, **exc.args_))
        return
    await state.clear()
    await message.answer(t("pack-renamed", title=html.escape(pack.title), link=pack.link))


async def got_sticker_to_remove(message: Message, state: FSMContext, bot: Bot, t: Translator,
                                services: Services) -> None:
    packs = services.packs
    if message.from_user is None or message.sticker is None:
        return
    name = str((await state.get_data()).get("pack", ""))
    if (message.sticker.set_name or "").lower() != name.lower():
        await message.answer(t("pack-sticker-not-in-pack"))
        return
    try:
        _, sticker_set = await packs.fetch(bot, message.from_user.id, name)
        positions = [i for i, s in enumerate(sticker_set.stickers)
                     if s.file_unique_id == message.sticker.file_unique_id]
        if not positions:
            raise PackError("pack-sticker-not-in-pack")
        pack = await packs.remove_sticker(bot, message.from_user.id, name, positions[0])
    except PackError as exc:
        await state.clear()
        await message.answer(t(exc.key, **exc.args_))
        return
    await state.clear()
    await message.answer(t("pack-removed", title=html.escape(pack.title), count=pack.count,
                           limit=MAX_STICKERS_PER_PACK, left=pack.places_left))


async def not_a_sticker(message: Message, t: Translator) -> None:
    await message.answer(t("pack-ask-sticker-again"))


def make_router() -> Router:
    """A fresh router per dispatcher (a router can belong to one dispatcher only)."""
    router = Router(name="packs")
    router.callback_query.register(add_to_pack_pressed, ResultCb.filter(F.action == ResultAction.ADD_TO_PACK))
    router.callback_query.register(emoji_picked, PackEmojiCb.filter())
    router.message.register(cmd_packs, Command("packs"))
    router.callback_query.register(pack_action, PackCb.filter())
    router.message.register(command_leaves_dialog, StateFilter(PackDialog.title, PackDialog.remove),
                            Matches(F.text.startswith("/")))
    router.message.register(got_title, StateFilter(PackDialog.title), Matches(F.text))
    router.message.register(got_sticker_to_remove, StateFilter(PackDialog.remove), Matches(F.sticker))
    router.message.register(not_a_sticker, StateFilter(PackDialog.remove))
    return router
