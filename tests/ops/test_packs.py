"""Sticker packs end to end: delivered sticker → "add to my pack" → emoji → Telegram's sticker set."""

from __future__ import annotations

import redis as redis_sync
from aiogram.types import BufferedInputFile, InputSticker

from bot.services.packs import MAX_STICKERS_PER_PACK
from contract import keys
from devkit.botapi import LocalBotAPI, SentMessage
from tests.ops.conftest import (
    EVENT_TIMEOUT_S,
    delivered_sticker,
    finish_sticker_job,
    last_text,
    sticker_images,
)

USER = 501
OTHER = 502
BOT_USERNAME = "kandinsky_test_bot"


def _s(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


async def _add_via_buttons(api: LocalBotAPI, sync: redis_sync.Redis, user_id: int, chat_id: int,
                           emoji: str = "🔥", color: tuple[int, int, int, int] = (200, 80, 40, 255)) -> str:
    """Deliver a sticker, press "add to my pack", pick ``emoji``; returns the bot's final answer."""
    api.user(user_id)
    job_id = finish_sticker_job(sync, user_id, chat_id, color=color)
    sticker_msg = await delivered_sticker(api, chat_id, job_id)
    user = api.user(user_id)
    before = len(api.messages_to(chat_id))
    await user.press(sticker_msg, button_text="➕ Add to my pack")
    await api.wait_for(lambda: any(m.text == "Pick an emoji for the sticker:" for m in
                                   api.messages_to(chat_id)[before:]), EVENT_TIMEOUT_S)
    picker = [m for m in api.messages_to(chat_id)[before:] if m.text == "Pick an emoji for the sticker:"][-1]
    await user.press(picker, button_text=emoji)
    await api.wait_for(lambda: bool(api.message(chat_id, picker.message_id).edits), EVENT_TIMEOUT_S)
    return api.message(chat_id, picker.message_id).text or ""


async def test_first_sticker_creates_pack_second_goes_to_same_pack(api, start_replicas, sync_redis) -> None:
    await start_replicas(1)
    text = await _add_via_buttons(api, sync_redis, USER, USER, emoji="🔥")
    name = f"k{USER}n1_by_{BOT_USERNAME}"
    assert "New pack" in text and f"https://t.me/addstickers/{name}" in text
    assert name in api.sticker_sets
    sticker_set = api.sticker_sets[name]
    assert sticker_set.owner_user_id == USER
    assert [s.emoji_list for s in sticker_set.stickers] == [["🔥"]]
    # Uploaded once with uploadStickerFile, then referenced by file_id.
    assert len(api.calls_to("uploadStickerFile")) == 1
    create = api.calls_to("createNewStickerSet")[-1]
    assert create.ok and "file_id" not in str(create.files)

    text = await _add_via_buttons(api, sync_redis, USER, USER, emoji="😎", color=(20, 200, 40, 255))
    assert "Added to" in text and "2/120" in text and "118 places left" in text
    assert [s.emoji_list for s in api.sticker_sets[name].stickers] == [["🔥"], ["😎"]]
    assert len(api.sticker_sets) == 1
    assert sync_redis.hget(keys.pack(name), "count") == b"2"
    assert _s(sync_redis.get(keys.user_current_pack(USER))) == name
    assert api.violations == []


async def test_same_button_twice_adds_once(api, start_replicas, sync_redis) -> None:
    await start_replicas(1)
    api.user(USER)
    job_id = finish_sticker_job(sync_redis, USER, USER)
    sticker_msg = await delivered_sticker(api, USER, job_id)
    user = api.user(USER)
    for _ in range(2):
        before = len(api.messages_to(USER))
        await user.press(sticker_msg, button_text="➕ Add to my pack")
        await api.wait_for(lambda b=before: len(api.messages_to(USER)) > b, EVENT_TIMEOUT_S)
        picker = api.messages_to(USER)[-1]
        await user.press(picker, button_text="😀")
        await api.wait_for(lambda p=picker: bool(api.message(USER, p.message_id).edits), EVENT_TIMEOUT_S)
    assert "already in" in (api.messages_to(USER)[-1].text or "")
    (sticker_set,) = api.sticker_sets.values()
    assert len(sticker_set.stickers) == 1


async def test_foreign_press_in_group_is_refused_without_side_effects(api, start_replicas,
                                                                    sync_redis) -> None:
    await start_replicas(1)
    group = api.group(-100777, "friends")
    api.user(USER)
    intruder = api.user(OTHER)
    job_id = finish_sticker_job(sync_redis, USER, group.chat_id)
    sticker_msg = await delivered_sticker(api, group.chat_id, job_id)
    messages_before = len(api.messages_to(group.chat_id))
    query_id = await intruder.press(sticker_msg, button_text="➕ Add to my pack")
    await api.wait_for(lambda: api.callback_queries[query_id].answered, EVENT_TIMEOUT_S)
    answer = api.callback_queries[query_id]
    assert answer.show_alert and answer.answer_text == "This button belongs to someone else."
    # Nothing sent, uploaded or created; no pack records for either user.
    assert len(api.messages_to(group.chat_id)) == messages_before
    assert api.calls_to("uploadStickerFile") == [] and api.sticker_sets == {}
    assert sync_redis.keys("kb:pack*") == [] and sync_redis.keys("kb:user:*:pack*") == []
    # A forged emoji press for the owner's result is refused the same way.
    forged = f"pe:{job_id}:0:3"
    sticker_msg.reply_markup = {"inline_keyboard": [[{"text": "x", "callback_data": forged}]]}
    query_id = await intruder.press(sticker_msg, callback_data=forged)
    await api.wait_for(lambda: api.callback_queries[query_id].answered, EVENT_TIMEOUT_S)
    assert api.callback_queries[query_id].answer_text == "This button belongs to someone else."
    assert api.calls_to("uploadStickerFile") == [] and api.sticker_sets == {}

    # The owner's press in the group works, and the pack is the owner's.
    owner_text = await _add_via_buttons(api, sync_redis, USER, group.chat_id)
    assert "New pack" in owner_text
    (sticker_set,) = api.sticker_sets.values()
    assert sticker_set.owner_user_id == USER


async def test_full_pack_rolls_over_to_a_new_pack(api, start_replicas, sync_redis) -> None:
    replicas, _ = await start_replicas(1)
    await _add_via_buttons(api, sync_redis, USER, USER)
    first = f"k{USER}n1_by_{BOT_USERNAME}"
    # Fill the set to 120 outside the bot (as in @Stickers): the record still says 1.
    bot = replicas[0].bot
    _, webp = sticker_images((1, 2, 3, 255))
    uploaded = await bot.upload_sticker_file(user_id=USER, sticker=BufferedInputFile(webp, "s.webp"),
                                             sticker_format="static")
    for _ in range(MAX_STICKERS_PER_PACK - 1):
        await bot.add_sticker_to_set(user_id=USER, name=first, sticker=InputSticker(
            sticker=uploaded.file_id, format="static", emoji_list=["🙂"]))
    assert len(api.sticker_sets[first].stickers) == MAX_STICKERS_PER_PACK

    text = await _add_via_buttons(api, sync_redis, USER, USER, emoji="🥳")
    second = f"k{USER}n2_by_{BOT_USERNAME}"
    assert "New pack" in text and second in text
    assert len(api.sticker_sets[first].stickers) == MAX_STICKERS_PER_PACK
    assert [s.emoji_list for s in api.sticker_sets[second].stickers] == [["🥳"]]
    assert [_s(n) for n in sync_redis.lrange(keys.user_packs(USER), 0, -1)] == [first, second]
    assert sync_redis.hget(keys.pack(first), "count") == str(MAX_STICKERS_PER_PACK).encode()
    assert _s(sync_redis.get(keys.user_current_pack(USER))) == second

    # /packs shows both with their links and places left.
    await api.user(USER).send_text("/packs")
    await api.wait_for(lambda: "Your sticker packs (2)" in last_text(api, USER), EVENT_TIMEOUT_S)
    listing = last_text(api, USER)
    assert f"https://t.me/addstickers/{first}" not in listing  # links are entities, not text
    assert "120/120, 0 places left" in listing and "1/120, 119 places left" in listing
    links = [e["url"] for e in api.messages_to(USER)[-1].entities or [] if e["type"] == "text_link"]
    assert links == [f"https://t.me/addstickers/{first}", f"https://t.me/addstickers/{second}"]


async def test_name_taken_moves_to_next_name(api, start_replicas, sync_redis) -> None:
    replicas, _ = await start_replicas(1)
    taken = f"k{USER}n1_by_{BOT_USERNAME}"
    api.user(OTHER)
    _, webp = sticker_images()
    await replicas[0].bot.create_new_sticker_set(
        user_id=OTHER, name=taken, title="someone else's",
        stickers=[InputSticker(sticker=BufferedInputFile(webp, "s.webp"), format="static",
                               emoji_list=["🙂"])],
    )
    text = await _add_via_buttons(api, sync_redis, USER, USER)
    assert f"k{USER}n2_by_{BOT_USERNAME}" in text
    assert api.sticker_sets[taken].owner_user_id == OTHER and len(api.sticker_sets[taken].stickers) == 1
    assert api.sticker_sets[f"k{USER}n2_by_{BOT_USERNAME}"].owner_user_id == USER
    packs = [_s(n) for n in sync_redis.lrange(keys.user_packs(USER), 0, -1)]
    assert packs == [f"k{USER}n2_by_{BOT_USERNAME}"]
    assert [c.description for c in api.calls_to("createNewStickerSet") if not c.ok] == [
        "Bad Request: sticker set name is already occupied"
    ]


async def test_set_deleted_by_user_is_recreated_with_consistent_record(api, start_replicas,
                                                                       sync_redis) -> None:
    await start_replicas(1)
    await _add_via_buttons(api, sync_redis, USER, USER)
    first = f"k{USER}n1_by_{BOT_USERNAME}"
    del api.sticker_sets[first]  # the user deleted it in @Stickers
    text = await _add_via_buttons(api, sync_redis, USER, USER, emoji="😂")
    second = f"k{USER}n2_by_{BOT_USERNAME}"
    assert "New pack" in text and second in text
    assert [_s(n) for n in sync_redis.lrange(keys.user_packs(USER), 0, -1)] == [second]
    assert not sync_redis.exists(keys.pack(first))
    assert sync_redis.hget(keys.pack(second), "count") == b"1"
    assert _s(sync_redis.get(keys.user_current_pack(USER))) == second
    assert [c.description for c in api.calls_to("addStickerToSet") if not c.ok] == [
        "Bad Request: STICKERSET_INVALID"
    ]


async def test_file_rejected_has_clear_message_and_no_record(api, start_replicas, sync_redis) -> None:
    await start_replicas(1)
    api.inject("uploadStickerFile", error_code=400, description="Bad Request: STICKER_PNG_DIMENSIONS")
    text = await _add_via_buttons(api, sync_redis, USER, USER)
    assert text == "Telegram did not accept this image as a sticker. Try generating it again."
    assert api.sticker_sets == {}
    assert sync_redis.keys("kb:pack*") == [] and not sync_redis.exists(keys.user_packs(USER))


def _send_pack_sticker(api: LocalBotAPI, user_id: int, name: str, index: int) -> int:
    """The user sends a sticker of a set, as a Telegram client does: same file, with set_name."""
    sticker = api.sticker_sets[name].stickers[index]
    user = api.user(user_id)
    msg = user._message(None, "sticker", None, file=sticker.file,
                        sticker=api.sticker_json(sticker.file, sticker.emoji_list[0], set_name=name))
    return msg.message_id


async def test_packs_menu_rename_remove_new_pack(api, start_replicas, sync_redis) -> None:
    await start_replicas(1)
    await _add_via_buttons(api, sync_redis, USER, USER, emoji="🔥")
    await _add_via_buttons(api, sync_redis, USER, USER, emoji="😎", color=(0, 0, 200, 255))
    name = f"k{USER}n1_by_{BOT_USERNAME}"
    user = api.user(USER)

    async def open_pack() -> SentMessage:
        await user.send_text("/packs")
        await api.wait_for(lambda: "Your sticker packs (1)" in last_text(api, USER), EVENT_TIMEOUT_S)
        menu = api.messages_to(USER)[-1]
        await user.press(menu, button_text=menu.inline_buttons[0]["text"])
        await api.wait_for(lambda: any(b["text"] == "✏️ Rename"
                                       for b in api.message(USER, menu.message_id).inline_buttons),
                           EVENT_TIMEOUT_S)
        return api.message(USER, menu.message_id)

    # Rename: a bad title is refused with a clear message and the dialog stays open.
    menu = await open_pack()
    assert "2/120, 118 places left" in (menu.text or "")
    await user.press(menu, button_text="✏️ Rename")
    await api.wait_for(lambda: "Send me the new title" in last_text(api, USER), EVENT_TIMEOUT_S)
    await user.send_text("x" * 65)
    await api.wait_for(lambda: "1-64 characters" in last_text(api, USER), EVENT_TIMEOUT_S)
    assert api.sticker_sets[name].title != "x" * 65
    await user.send_text("My cats")
    await api.wait_for(lambda: "Renamed to «My cats»" in last_text(api, USER), EVENT_TIMEOUT_S)
    assert api.sticker_sets[name].title == "My cats"
    assert sync_redis.hget(keys.pack(name), "title") == b"My cats"

    # Remove: a sticker from elsewhere is refused; one from the pack is removed.
    menu = await open_pack()
    await user.press(menu, button_text="🗑 Remove a sticker")
    await api.wait_for(lambda: "Send me the sticker to remove" in last_text(api, USER), EVENT_TIMEOUT_S)
    _, stray = sticker_images((9, 9, 9, 255))
    await user.send_sticker(stray)
    await api.wait_for(lambda: last_text(api, USER) == "That sticker is not from this pack.", EVENT_TIMEOUT_S)
    assert len(api.sticker_sets[name].stickers) == 2
    kept = api.sticker_sets[name].stickers[1].file.file_id
    _send_pack_sticker(api, USER, name, 0)
    await api.wait_for(lambda: "Sticker removed" in last_text(api, USER), EVENT_TIMEOUT_S)
    assert "1/120 stickers, 119 places left" in last_text(api, USER)
    assert [s.file.file_id for s in api.sticker_sets[name].stickers] == [kept]
    assert sync_redis.hget(keys.pack(name), "count") == b"1"

    # New pack: the next sticker starts a second pack; "use" switches back to the first.
    await user.send_text("/packs")
    await api.wait_for(lambda: "Your sticker packs (1)" in last_text(api, USER), EVENT_TIMEOUT_S)
    await user.press(api.messages_to(USER)[-1], button_text="➕ Start a new pack")
    await api.wait_for(lambda: last_text(api, USER) == "Your next sticker will start a new pack.",
                       EVENT_TIMEOUT_S)
    text = await _add_via_buttons(api, sync_redis, USER, USER, emoji="🐱")
    second = f"k{USER}n2_by_{BOT_USERNAME}"
    assert "New pack" in text and second in text
    menu = await open_pack_at(api, USER, 0)
    await user.press(menu, button_text="★ Add new stickers here")
    await api.wait_for(lambda: last_text(api, USER) == "New stickers will go to «My cats».", EVENT_TIMEOUT_S)
    await _add_via_buttons(api, sync_redis, USER, USER, emoji="👍", color=(5, 5, 5, 255))
    assert len(api.sticker_sets[name].stickers) == 2 and len(api.sticker_sets[second].stickers) == 1
    assert api.violations == []


async def open_pack_at(api: LocalBotAPI, user_id: int, index: int) -> SentMessage:
    user = api.user(user_id)
    await user.send_text("/packs")
    await api.wait_for(lambda: "Your sticker packs" in last_text(api, user_id), EVENT_TIMEOUT_S)
    menu = api.messages_to(user_id)[-1]
    await user.press(menu, button_text=menu.inline_buttons[index]["text"])
    await api.wait_for(lambda: any(b["text"] == "✏️ Rename"
                                   for b in api.message(user_id, menu.message_id).inline_buttons),
                       EVENT_TIMEOUT_S)
    return api.message(user_id, menu.message_id)


async def test_pack_menu_of_someone_else_is_refused(api, start_replicas, sync_redis) -> None:
    await start_replicas(1)
    group = api.group(-100888, "club")
    await _add_via_buttons(api, sync_redis, USER, group.chat_id)
    owner = api.user(USER)
    await owner.send_text("/packs", in_chat=group)
    await api.wait_for(lambda: "Your sticker packs (1)" in last_text(api, group.chat_id), EVENT_TIMEOUT_S)
    menu = api.messages_to(group.chat_id)[-1]
    query_id = await api.user(OTHER).press(menu, button_text="➕ Start a new pack")
    await api.wait_for(lambda: api.callback_queries[query_id].answered, EVENT_TIMEOUT_S)
    assert api.callback_queries[query_id].answer_text == "This button belongs to someone else."
    name = f"k{USER}n1_by_{BOT_USERNAME}"
    assert _s(sync_redis.get(keys.user_current_pack(USER))) == name
    assert last_text(api, group.chat_id).startswith("Your sticker packs (1)")


async def test_user_who_never_opened_the_bot_is_told_how(api, start_replicas, sync_redis) -> None:
    await start_replicas(1)
    api.inject("uploadStickerFile", error_code=400, description="Bad Request: PEER_ID_INVALID")
    text = await _add_via_buttons(api, sync_redis, USER, USER)
    assert text.startswith("To make your own sticker pack, open a private chat with me")
    assert api.sticker_sets == {} and sync_redis.keys("kb:pack*") == []


async def test_opening_a_pack_deleted_in_telegram_drops_it_from_the_list(api, start_replicas,
                                                                         sync_redis) -> None:
    await start_replicas(1)
    await _add_via_buttons(api, sync_redis, USER, USER)
    name = f"k{USER}n1_by_{BOT_USERNAME}"
    del api.sticker_sets[name]
    user = api.user(USER)
    await user.send_text("/packs")
    await api.wait_for(lambda: "Your sticker packs (1)" in last_text(api, USER), EVENT_TIMEOUT_S)
    listing = api.messages_to(USER)[-1]
    await user.press(listing, button_text=listing.inline_buttons[0]["text"])
    await api.wait_for(lambda: "was deleted in Telegram" in last_text(api, USER), EVENT_TIMEOUT_S)
    assert not sync_redis.exists(keys.pack(name)) and not sync_redis.exists(keys.user_packs(USER))
    await user.send_text("/packs")
    await api.wait_for(lambda: last_text(api, USER).startswith("You have no sticker packs yet"),
                       EVENT_TIMEOUT_S)
