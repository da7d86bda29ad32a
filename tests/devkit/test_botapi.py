"""The local Bot API server, driven by the real aiogram Bot and Dispatcher over HTTP."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputSticker,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from PIL import Image

from devkit.botapi import LocalBotAPI, make_image
from devkit.redis_server import free_port
from tests.devkit.conftest import EVENT_TIMEOUT_S, POLL_TIMEOUT_S, PlainHttpSession

USER_ID = 1001


async def _polling(dp: Dispatcher, bot: Bot) -> asyncio.Task[None]:
    task = asyncio.create_task(
        dp.start_polling(bot, polling_timeout=POLL_TIMEOUT_S, handle_signals=False, close_bot_session=False)
    )
    await asyncio.sleep(0)
    return task


async def _stop(dp: Dispatcher, task: asyncio.Task[None]) -> None:
    await dp.stop_polling()
    await asyncio.wait_for(task, EVENT_TIMEOUT_S)


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    return make_image(width, height, "PNG", mode)


async def test_text_round_trip_via_polling(api: LocalBotAPI, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(Command("start"))
    async def start(message: Message) -> None:
        await message.answer(f"hi {message.from_user.first_name if message.from_user else '?'}")

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.reply(f"<b>echo</b>: {message.text}", parse_mode="HTML")

    user = api.user(USER_ID, first_name="Ann", language_code="ru")
    task = await _polling(dp, bot)
    try:
        start_id = await user.send_text("/start")
        greeted = await api.wait_message(USER_ID, after=start_id, timeout=EVENT_TIMEOUT_S)
        first = await user.send_text("hello")
        await api.wait_message(USER_ID, after=first, predicate=lambda m: "echo" in (m.text or ""))
        with pytest.raises(TimeoutError, match="last calls"):
            await api.wait_message(USER_ID, after=first + 1, timeout=0.2)
    finally:
        await _stop(dp, task)
    greeting, echoed = api.messages_to(USER_ID)
    assert greeting is greeted and greeting.text == "hi Ann"
    assert echoed.text == "echo: hello"
    assert echoed.entities == [{"type": "bold", "offset": 0, "length": 4}]
    assert echoed.reply_to_message_id == first
    assert echoed.message_id > first > greeting.message_id - 2
    assert api.violations == []
    assert api.pending_updates() == []
    polls = api.calls_to("getUpdates")
    assert polls and all(c.ok for c in polls)


async def test_photo_downloaded_and_sent_back(api: LocalBotAPI, bot: Bot) -> None:
    dp = Dispatcher()
    seen: list[tuple[int, int, int]] = []

    @dp.message(F.photo)
    async def on_photo(message: Message, bot: Bot) -> None:
        assert message.photo
        biggest = message.photo[-1]
        buf = await bot.download(biggest)
        assert buf is not None
        data = buf.read()
        with Image.open(io.BytesIO(data)) as image:
            seen.append((image.width, image.height, len(message.photo)))
        await message.answer_photo(BufferedInputFile(data, "back.jpg"), caption=message.caption)

    user = api.user(USER_ID)
    task = await _polling(dp, bot)
    try:
        await user.send_photo(_png(1000, 500), caption="look")
        await api.wait_for(lambda: len(api.messages_to(USER_ID)) == 1, EVENT_TIMEOUT_S)
    finally:
        await _stop(dp, task)
    # Telegram makes 90/320/800 px thumbnails plus the full 1000 px size.
    assert seen == [(1000, 500, 4)]
    assert len(api.downloads) == 1 and api.downloads[0].startswith("photos/")
    sent = api.messages_to(USER_ID)[0]
    assert sent.kind == "photo" and sent.caption == "look"
    assert sent.photo_bytes is not None
    with Image.open(io.BytesIO(sent.photo_bytes)) as back:
        assert back.format == "JPEG" and back.size == (1000, 500)
    assert sent.photo is not None and [s["width"] for s in sent.photo] == [90, 320, 800, 1000]
    assert api.violations == []


async def test_album_and_document_updates(api: LocalBotAPI, bot: Bot) -> None:
    user = api.user(USER_ID)
    ids = await user.send_album([_png(64, 64), _png(128, 64)], caption="mix")
    doc_id = await user.send_document(b"%PDF-1.4 hello", "a.pdf", "application/pdf")
    updates = await bot.get_updates(timeout=0)
    messages = [u.message for u in updates if u.message]
    assert [m.message_id for m in messages] == [*ids, doc_id]
    assert messages[0].media_group_id == messages[1].media_group_id is not None
    assert messages[0].caption == "mix" and messages[1].caption is None
    doc = messages[2].document
    assert doc is not None and doc.file_name == "a.pdf" and doc.mime_type == "application/pdf"
    buf = await bot.download(doc)
    assert buf is not None and buf.read() == b"%PDF-1.4 hello"
    # offset confirms: the next call only sees new updates
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == []


async def test_long_polling_waits_for_an_update(api: LocalBotAPI, bot: Bot) -> None:
    user = api.user(USER_ID)

    async def later() -> None:
        await asyncio.sleep(0.2)
        await user.send_text("late")

    sender = asyncio.create_task(later())
    updates = await bot.get_updates(timeout=5)
    await sender
    assert len(updates) == 1 and updates[0].message and updates[0].message.text == "late"


async def test_callback_press_and_answer(api: LocalBotAPI, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.callback_query(F.data == "again")
    async def on_again(query: CallbackQuery) -> None:
        await query.answer("queued")
        assert isinstance(query.message, Message)
        await query.message.edit_text("again pressed")

    user = api.user(USER_ID)
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Again", callback_data="again")]]
    )
    sent = await bot.send_message(USER_ID, "result", reply_markup=keyboard)
    message = api.message(USER_ID, sent.message_id)
    task = await _polling(dp, bot)
    try:
        query_id = await user.press(message, "Again")
        await api.wait_for(lambda: api.callback_queries[query_id].answered, EVENT_TIMEOUT_S)
        await api.wait_for(lambda: message.text == "again pressed", EVENT_TIMEOUT_S)
    finally:
        await _stop(dp, task)
    state = api.callback_queries[query_id]
    assert state.data == "again" and state.answer_text == "queued"
    assert state.answer_delay_s is not None and 0 <= state.answer_delay_s < EVENT_TIMEOUT_S
    assert [e.text for e in message.edits] == ["result"]
    assert message.reply_markup is None  # edit_text without markup removes the keyboard
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(ValueError, match="no button"):
        await user.press(message, "Again")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"text": "x" * 4097}, "message is too long"),
        ({"text": ""}, "message text is empty"),
        ({"text": "<b>open", "parse_mode": "HTML"}, "can't parse entities"),
        ({"text": "<blink>x</blink>", "parse_mode": "HTML"}, 'Unsupported start tag "blink"'),
        ({"text": "<b>x</i>", "parse_mode": "HTML"}, "Unmatched end tag"),
        ({"text": "Seed 42. Done!", "parse_mode": "MarkdownV2"}, "Character '.' is reserved"),
        ({"text": "*bold", "parse_mode": "MarkdownV2"}, "Can't find end of Bold entity"),
        ({"text": "_open", "parse_mode": "Markdown"}, "Can't find end of the entity"),
        (
            {"text": "ok", "reply_markup": [[InlineKeyboardButton(text="b", callback_data="d" * 65)]]},
            "BUTTON_DATA_INVALID",
        ),
        (
            {"text": "ok", "reply_markup": [[InlineKeyboardButton(text="b", callback_data="д" * 33)]]},
            "BUTTON_DATA_INVALID",
        ),
        (
            {"text": "ok", "reply_markup": [[InlineKeyboardButton(text="b", callback_data="")]]},
            "Text buttons are unallowed",
        ),
        (
            {"text": "ok", "reply_markup": [[InlineKeyboardButton(text="", callback_data="d")]]},
            "BUTTON_TEXT_INVALID",
        ),
    ],
)
async def test_send_message_limits(
    api: LocalBotAPI, bot: Bot, kwargs: dict[str, object], expected: str
) -> None:
    api.user(USER_ID)
    if "reply_markup" in kwargs:
        kwargs["reply_markup"] = InlineKeyboardMarkup(inline_keyboard=kwargs["reply_markup"])  # type: ignore[arg-type]
    with pytest.raises(TelegramBadRequest, match=expected):
        await bot.send_message(USER_ID, **kwargs)  # type: ignore[arg-type]
    assert len(api.violations) == 1 and expected in api.violations[0]
    assert api.messages_to(USER_ID) == []


async def test_html_within_limit_counts_text_after_parsing(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    text = "<b>" + "x" * 4086 + "</b>&lt;&amp;&gt;&#33;&quot;&nbsp"
    sent = await bot.send_message(USER_ID, text, parse_mode="HTML")
    assert sent.text == "x" * 4086 + '<&>!"&nbsp'
    assert sent.entities and sent.entities[0].length == 4086
    assert api.violations == []


async def test_markdown_v2_that_parses(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    sent = await bot.send_message(
        USER_ID, "*Seed* `42` \\. [again](https://t.me/x) ||spoiler||", parse_mode="MarkdownV2"
    )
    assert sent.text == "Seed 42 . again spoiler"
    assert api.violations == []


async def test_caption_and_photo_limits(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    photo = BufferedInputFile(_png(64, 64), "p.png")
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_photo(USER_ID, photo, caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER_ID, BufferedInputFile(_png(2100, 100), "wide.png"))
    with pytest.raises(TelegramBadRequest, match="PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(USER_ID, BufferedInputFile(make_image(5100, 5000, "PNG", "L"), "big.png"))
    with pytest.raises(TelegramBadRequest, match="larger than 10 MB"):
        await bot.send_photo(USER_ID, BufferedInputFile(b"\x89PNG" + b"\0" * (10 * 1024 * 1024), "x.png"))
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(USER_ID, BufferedInputFile(b"not an image", "x.png"))
    assert len(api.violations) == 5
    sent = await bot.send_photo(USER_ID, photo, caption="c" * 1024)
    assert sent.photo and sent.photo[-1].width == 64
    assert len(api.violations) == 5


async def test_document_and_download_limits(api: LocalBotAPI, bot: Bot) -> None:
    user = api.user(USER_ID)
    with pytest.raises(TelegramEntityTooLarge):
        await bot.send_document(USER_ID, BufferedInputFile(b"\0" * (50 * 1024 * 1024 + 1), "big.bin"))
    assert len(api.violations) == 1
    await user.send_document(b"\0" * (20 * 1024 * 1024 + 1), "huge.png", "image/png")
    update = (await bot.get_updates(timeout=0))[0]
    assert update.message and update.message.document
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(update.message.document.file_id)
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")
    assert len(api.violations) == 1  # a big user file is the user's doing, not a bot bug


async def test_edits_keep_history_and_not_modified(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    sent = await bot.send_message(USER_ID, "queued: 3")
    await bot.edit_message_text("step 1", chat_id=USER_ID, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("step 1", chat_id=USER_ID, message_id=sent.message_id)
    await bot.edit_message_reply_markup(
        chat_id=USER_ID,
        message_id=sent.message_id,
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="x")]]
        ),
    )
    msg = api.messages_to(USER_ID)[0]
    assert msg.text == "step 1" and [e.text for e in msg.edits] == ["queued: 3", "step 1"]
    assert msg.inline_buttons == [{"text": "x", "callback_data": "x"}]
    photo = await bot.send_photo(USER_ID, BufferedInputFile(_png(64, 32), "a.png"), caption="v1")
    await bot.edit_message_caption(chat_id=USER_ID, message_id=photo.message_id, caption="v2")
    await bot.edit_message_media(
        InputMediaPhoto(media=BufferedInputFile(_png(32, 64), "b.png"), caption="v3"),
        chat_id=USER_ID,
        message_id=photo.message_id,
    )
    pmsg = api.message(USER_ID, photo.message_id)
    assert pmsg.caption == "v3" and [e.caption for e in pmsg.edits] == ["v1", "v2"]
    assert pmsg.photo_bytes is not None and Image.open(io.BytesIO(pmsg.photo_bytes)).size == (32, 64)
    with pytest.raises(TelegramBadRequest, match="no text in the message"):
        await bot.edit_message_text("t", chat_id=USER_ID, message_id=photo.message_id)
    assert await bot.delete_message(USER_ID, sent.message_id)
    assert api.message(USER_ID, sent.message_id).deleted
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(USER_ID, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("t", chat_id=USER_ID, message_id=999)
    assert api.violations == []


async def test_media_group_document_action_and_commands(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    group = await bot.send_media_group(
        USER_ID,
        [
            InputMediaPhoto(media=BufferedInputFile(_png(64, 64), "1.png"), caption="pair"),
            InputMediaPhoto(media=BufferedInputFile(_png(96, 64), "2.png")),
        ],
    )
    assert len({m.media_group_id for m in group}) == 1
    assert [m.photo[-1].width for m in group if m.photo] == [64, 96]
    doc = await bot.send_document(USER_ID, BufferedInputFile(b"PNGDATA", "full.png"), caption="full size")
    assert doc.document and doc.document.file_name == "full.png" and doc.document.mime_type == "image/png"
    assert api.messages_to(USER_ID)[-1].document_bytes == b"PNGDATA"
    # file_id re-use sends the same bytes again
    again = await bot.send_document(USER_ID, doc.document.file_id)
    assert again.document and again.document.file_id == doc.document.file_id
    assert await bot.send_chat_action(USER_ID, "upload_photo")
    assert api.chat_actions == [(USER_ID, "upload_photo")]
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="imagine", description="Draw"),
    ]
    assert await bot.set_my_commands(commands)
    assert await bot.set_my_commands([BotCommand(command="start", description="Старт")], language_code="ru")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "imagine"]
    assert [c.description for c in await bot.get_my_commands(language_code="ru")] == ["Старт"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Command", description="x")])
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "who?")
    assert len(api.violations) == 1


async def test_injected_errors(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    api.user(USER_ID + 1)
    api.inject("sendMessage", error_code=429, retry_after=7, times=1, chat_id=USER_ID)
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(USER_ID, "x")
    assert info.value.retry_after == 7
    # The window holds the whole chat: every call to it is refused with the time left, none extends it.
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as info:
            await bot.send_chat_action(USER_ID, "typing")
        assert info.value.retry_after in (6, 7)
    api.inject(None, error_code=500, chat_id=USER_ID + 1)
    with pytest.raises(TelegramServerError):
        await bot.send_chat_action(USER_ID + 1, "typing")
    api.inject("sendMessage", error_code=403, chat_id=USER_ID + 1)
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(USER_ID + 1, "x")
    assert (await bot.send_message(USER_ID + 1, "other chats are free")).text == "other chats are free"
    failed = [c for c in api.calls if not c.ok]
    assert [c.status for c in failed] == [429, 429, 429, 500, 403]
    assert failed[0].response["parameters"] == {"retry_after": 7}
    assert api.violations == []
    # the bot above kept writing to that chat, ignoring retry_after=7: every later call is on record
    assert len(api.early_retries) == 2 and "before the retry_after" in api.early_retries[0]
    assert len(api.flood.windows) == 1 and api.flood.windows[0].chat_id == USER_ID
    assert 6.9 < api.flood.held_s(USER_ID) <= 7.0


async def test_rate_limit_and_honoured_retry_after(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    api.user(USER_ID + 1)
    api.rate_limit(2, per_seconds=1.0)
    await bot.send_message(USER_ID, "1")
    await bot.send_chat_action(USER_ID, "typing")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(USER_ID, "3")
    assert info.value.retry_after == 1
    assert (await bot.send_message(USER_ID + 1, "other chat")).text == "other chat"
    await asyncio.sleep(info.value.retry_after)
    assert (await bot.send_message(USER_ID, "3")).text == "3"
    assert api.early_retries == []
    api.rate_limit(None)
    for i in range(5):
        await bot.send_message(USER_ID, f"burst {i}")


async def test_a_chat_of_its_own_limit_and_the_bot_wide_limit(api: LocalBotAPI, bot: Bot) -> None:
    group = api.group(-100500600, "busy group")
    api.user(USER_ID)
    api.rate_limit(2, per_seconds=10.0, chat_id=group.chat_id)  # two messages per ten seconds
    await bot.send_message(group.chat_id, "1")
    await bot.send_message(group.chat_id, "2")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(group.chat_id, "3")
    assert info.value.retry_after == 10
    for i in range(4):  # no limit for other chats
        await bot.send_message(USER_ID, f"private {i}")
    api.rate_limit(None, chat_id=group.chat_id)
    with pytest.raises(TelegramRetryAfter):  # the window stays until it ends, limit or not
        await bot.send_message(group.chat_id, "4")
    assert len(api.early_retries) == 1
    api.global_rate_limit(3, per_seconds=10.0)
    for i in range(3):
        await bot.send_message(USER_ID + 1 if api.user(USER_ID + 1) else USER_ID, f"bulk {i}")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(USER_ID, "over the bot's limit")
    assert api.flood.answers == 3
    assert [w.chat_id for w in api.flood.windows] == [group.chat_id, USER_ID]
    with pytest.raises(ValueError):
        api.global_rate_limit(0)
    api.reset()
    assert api.flood.windows == [] and api.early_retries == [] and api.flood.answers == 0
    assert (await bot.send_message(USER_ID, "after reset")).text == "after reset"


async def test_blocked_user(api: LocalBotAPI, bot: Bot) -> None:
    user = api.user(USER_ID)
    await user.send_text("hi")
    api.block_bot(USER_ID)
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(USER_ID, "result")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_photo(USER_ID, BufferedInputFile(_png(8, 8), "a.png"))
    updates = await bot.get_updates(timeout=0)
    member = updates[-1].my_chat_member
    assert member is not None and member.new_chat_member.status == "kicked"
    api.unblock_bot(USER_ID)
    assert (await bot.send_message(USER_ID, "back")).text == "back"


async def test_sticker_sets(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    name = f"pack_{USER_ID}_by_{api.bot_username}"
    sticker = _png(512, 300, "RGBA")

    def input_sticker(file: str | BufferedInputFile) -> InputSticker:
        return InputSticker(sticker=file, format="static", emoji_list=["🎨"])

    assert await bot.create_new_sticker_set(
        USER_ID, name, "My pack", [input_sticker(BufferedInputFile(sticker, "s.png"))]
    )
    with pytest.raises(TelegramBadRequest, match="sticker set name is already occupied"):
        await bot.create_new_sticker_set(
            USER_ID, name, "Again", [input_sticker(BufferedInputFile(sticker, "s.png"))]
        )
    uploaded = await bot.upload_sticker_file(USER_ID, BufferedInputFile(sticker, "s.png"), "static")
    for _ in range(119):
        await bot.add_sticker_to_set(USER_ID, name, input_sticker(uploaded.file_id))
    with pytest.raises(TelegramBadRequest, match="STICKERS_TOO_MUCH"):
        await bot.add_sticker_to_set(USER_ID, name, input_sticker(uploaded.file_id))
    state = api.sticker_sets[name]
    assert len(state.stickers) == 120 and state.title == "My pack"
    fetched = await bot.get_sticker_set(name)
    assert len(fetched.stickers) == 120 and fetched.stickers[0].width == 512
    assert await bot.delete_sticker_from_set(fetched.stickers[0].file_id)
    assert await bot.set_sticker_set_title(name, "Renamed")
    assert api.sticker_sets[name].title == "Renamed" and len(api.sticker_sets[name].stickers) == 119
    sent = await bot.send_sticker(USER_ID, BufferedInputFile(_png(300, 512, "RGBA"), "st.png"))
    assert sent.sticker and (sent.sticker.width, sent.sticker.height) == (300, 512)
    assert api.messages_to(USER_ID)[-1].sticker_bytes is not None
    assert await bot.delete_sticker_set(name)
    with pytest.raises(TelegramBadRequest, match="STICKERSET_INVALID"):
        await bot.get_sticker_set(name)
    assert api.violations == []


@pytest.mark.parametrize(
    ("width", "height", "fmt", "expected"),
    [
        (500, 500, "PNG", "STICKER_PNG_DIMENSIONS"),
        (512, 600, "PNG", "STICKER_PNG_DIMENSIONS"),
        (512, 512, "JPEG", "STICKER_PNG_NOPNG"),
    ],
)
async def test_sticker_file_rule(
    api: LocalBotAPI, bot: Bot, width: int, height: int, fmt: str, expected: str
) -> None:
    api.user(USER_ID)
    data = make_image(width, height, fmt)
    with pytest.raises(TelegramBadRequest, match=expected):
        await bot.send_sticker(USER_ID, BufferedInputFile(data, "s.png"))
    with pytest.raises(TelegramBadRequest, match=expected):
        await bot.upload_sticker_file(USER_ID, BufferedInputFile(data, "s.png"), "static")
    assert len(api.violations) == 2


@pytest.mark.parametrize(
    "name",
    [
        "1pack_by_kandinsky_test_bot",
        "pack__x_by_kandinsky_test_bot",
        "pack_by_other_bot",
        "pack-x_by_kandinsky_test_bot",
        "p" * 50 + "_by_kandinsky_test_bot",
    ],
)
async def test_sticker_set_name_rules(api: LocalBotAPI, bot: Bot, name: str) -> None:
    api.user(USER_ID)
    sticker = InputSticker(
        sticker=BufferedInputFile(_png(512, 512), "s.png"), format="static", emoji_list=["🙂"]
    )
    with pytest.raises(TelegramBadRequest, match="invalid sticker set name"):
        await bot.create_new_sticker_set(USER_ID, name, "Title", [sticker])
    assert api.sticker_sets == {} and len(api.violations) == 1


async def test_webhook_mode_with_secret(api: LocalBotAPI, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(F.text == "inline")
    async def inline_reply(message: Message) -> SendMessage:
        return message.answer("via webhook response")

    @dp.message(F.text)
    async def reply(message: Message) -> None:
        await message.answer(f"got {message.text}")

    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="s3cret").register(
        app, path="/hook"
    )
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    user = api.user(USER_ID)
    try:
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates(timeout=0)
        await user.send_text("hello")
        await user.send_text("inline")
        await api.wait_for(lambda: len(api.messages_to(USER_ID)) == 2, EVENT_TIMEOUT_S)
        assert [m.text for m in api.messages_to(USER_ID)] == ["got hello", "via webhook response"]
        assert api.calls_to("sendMessage")[-1].http_method == "WEBHOOK-REPLY"
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook") and info.pending_update_count == 0
        # a wrong secret is refused by aiogram with 401, so the update stays pending
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="wrong")
        await user.send_text("lost?")
        await api.wait_for(
            lambda: any(status == 401 for _, status, _ in api.webhook_deliveries), EVENT_TIMEOUT_S
        )
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1 and info.last_error_message
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        await api.wait_for(lambda: len(api.messages_to(USER_ID)) == 3, EVENT_TIMEOUT_S)
        assert api.messages_to(USER_ID)[-1].text == "got lost?"
        assert await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()
    assert api.violations == []


async def test_raw_http_wire_format(api: LocalBotAPI) -> None:
    api.user(USER_ID)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.base_url}/bot{api.token}/fooBar") as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        async with http.get(f"{api.base_url}/bot123:WRONG/getMe") as resp:
            assert resp.status == 401 and (await resp.json())["description"] == "Unauthorized"
        async with http.get(f"{api.base_url}/bot{api.token}/getMe") as resp:
            me = await resp.json()
            assert me["ok"] and me["result"]["username"] == api.bot_username
        body = {
            "chat_id": USER_ID,
            "text": "json body",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "url": "https://x.y"}]]},
        }
        async with http.post(f"{api.base_url}/bot{api.token}/sendMessage", json=body) as resp:
            sent = await resp.json()
            assert sent["ok"] and sent["result"]["text"] == "json body"
        form = aiohttp.FormData(
            {
                "chat_id": str(USER_ID),
                "text": "form body",
                "reply_markup": json.dumps({"remove_keyboard": True}),
            }
        )
        async with http.post(f"{api.base_url}/bot{api.token}/SENDMESSAGE", data=form) as resp:
            assert (await resp.json())["result"]["text"] == "form body"
        async with http.get(f"{api.base_url}/file/bot{api.token}/photos/none.jpg") as resp:
            assert resp.status == 404
        async with http.get(f"{api.base_url}/file/bot1:WRONG/photos/none.jpg") as resp:
            assert resp.status == 401
    assert [c.method for c in api.calls] == ["fooBar", "getMe", "getMe", "sendMessage", "SENDMESSAGE"]
    assert api.calls[3].params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://x.y"
    assert api.violations == ["fooBar: Not Found: method not found"]


async def test_wrong_token_with_aiogram(api: LocalBotAPI) -> None:
    session = PlainHttpSession(api=TelegramAPIServer.from_base(api.base_url))
    bot = Bot(token="999:OTHER", session=session)
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await bot.get_me()
    finally:
        await bot.session.close()


async def test_unknown_method_via_aiogram_is_not_found(api: LocalBotAPI, bot: Bot) -> None:
    api.user(USER_ID)
    with pytest.raises(TelegramNotFound):
        await bot.send_dice(USER_ID)


async def test_group_chat_commands_and_exif_photo(api: LocalBotAPI, bot: Bot) -> None:
    user = api.user(USER_ID, username="ann")
    group = api.group(-100200300, "Artists")
    await user.send_text(f"/imagine@{api.bot_username} a cat", in_chat=group)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display: a 40x20 file shows as 20x40
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (1, 2, 3)).save(buf, "JPEG", exif=exif)
    await user.send_photo(buf.getvalue())
    updates = await bot.get_updates(timeout=0)
    text_msg, photo_msg = (u.message for u in updates)
    assert text_msg is not None and photo_msg is not None
    assert text_msg.chat.id == -100200300 and text_msg.chat.type == "supergroup"
    assert text_msg.entities and text_msg.entities[0].type == "bot_command"
    assert text_msg.entities[0].length == len(f"/imagine@{api.bot_username}")
    assert text_msg.from_user and text_msg.from_user.username == "ann"
    assert photo_msg.photo and (photo_msg.photo[-1].width, photo_msg.photo[-1].height) == (20, 40)
    sent = await bot.send_message(group.chat_id, "in group")
    assert sent.chat.id == group.chat_id and api.messages_to(group.chat_id)[0].text == "in group"
    with pytest.raises(ValueError, match="send_document"):
        await user.send_photo(b"garbage")


async def test_url_upload_and_data_dir(tmp_path: Path) -> None:
    async with LocalBotAPI(data_dir=tmp_path) as api:
        session = PlainHttpSession(api=TelegramAPIServer.from_base(api.base_url))
        bot = Bot(token=api.token, session=session)
        try:
            user = api.user(USER_ID)
            await user.send_photo(_png(50, 40))
            update = (await bot.get_updates(timeout=0))[0]
            assert update.message and update.message.photo
            file = await bot.get_file(update.message.photo[-1].file_id)
            assert file.file_path and (tmp_path / file.file_path).is_file()
            url = f"{api.base_url}/file/bot{api.token}/{file.file_path}"
            sent = await bot.send_photo(USER_ID, url)
            assert sent.photo and sent.photo[-1].width == 50
            with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
                await bot.send_photo(USER_ID, "no-such-file-id")
        finally:
            await bot.session.close()
        assert api.violations == []


async def test_second_poller_terminates_the_first(api: LocalBotAPI, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await first
    assert await second == []


async def test_reset_and_unblock_by_writing(api: LocalBotAPI, bot: Bot) -> None:
    user = api.user(USER_ID)
    api.block_bot(USER_ID)
    await user.send_text("/start")  # the client's "Restart" button unblocks the bot
    assert (await bot.send_message(USER_ID, "welcome back")).text == "welcome back"
    kinds = [next(k for k in u if k != "update_id") for u in api.pending_updates()]
    assert kinds == ["my_chat_member", "my_chat_member", "message"]
    api.inject(None, error_code=500, times=5)
    api.reset()
    assert api.calls == [] and api.messages_to(USER_ID) == [] and api.pending_updates() == []
    assert (await bot.send_message(USER_ID, "clean")).message_id > 1  # ids keep counting


async def test_allowed_updates_drop_other_types(api: LocalBotAPI, bot: Bot) -> None:
    user = api.user(USER_ID)
    api.block_bot(USER_ID)
    api.unblock_bot(USER_ID)
    await user.send_text("only this")
    updates = await bot.get_updates(timeout=0, allowed_updates=["message"])
    assert [u.message.text for u in updates if u.message] == ["only this"] and len(updates) == 1
    api.block_bot(USER_ID)  # not queued at all now
    assert [next(k for k in u if k != "update_id") for u in api.pending_updates()] == ["message"]
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(USER_ID, "x")


async def test_restart_keeps_port_and_state(api: LocalBotAPI, bot: Bot) -> None:
    """An outage: the server goes away and comes back on the same URL with its chats."""
    api.user(USER_ID)
    first = await bot.send_message(USER_ID, "before")
    url = api.base_url
    await api.stop()
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(USER_ID, "during")
    await api.start()
    assert api.base_url == url
    after = await bot.send_message(USER_ID, "after")
    assert after.message_id == first.message_id + 1
    assert [m.text for m in api.messages_to(USER_ID)] == ["before", "after"]
