"""One conversation per mode, from the first message to the delivered image, with a real worker."""

from __future__ import annotations

import asyncio
import re

from bot.services.user_settings import SettingsStore, UserSettings
from contract import keys
from contract.spec import Style, exact_size
from devkit.botapi.models import SentMessage
from devkit.faults import slow_marker
from tests.bot.conftest import Harness, press
from tests.bot.images import open_image, photo

SEED = re.compile(r"(?:Seed|Сид): (\d+)")


def seed_of(message: SentMessage) -> int:
    match = SEED.search(message.caption or message.text or "")
    assert match, message.caption or message.text
    return int(match.group(1))


def check_photo(message: SentMessage, aspect: str) -> None:
    img = open_image(message.photo_bytes or b"")
    assert img.size == exact_size(aspect, 512), (img.size, aspect)


async def set_settings(h: Harness, user_id: int, **changes: object) -> None:
    await SettingsStore(h.redis).save(user_id, UserSettings().model_copy(update=changes))


async def test_text_to_image_plain_text(live: Harness) -> None:
    user = live.user()
    # Slow steps: a job shows progress once it has run one edit interval (a faster one gets none).
    await user.send_text(f"{slow_marker(0.15)}a red fox in the snow")
    status = await live.wait_text(user, "Your request")
    assert [b["text"] for b in status.inline_buttons] == ["✖️ Cancel"]
    result = await live.wait_result(user)
    check_photo(result, "1:1")
    assert "a red fox in the snow" in (result.caption or "") and seed_of(result) >= 0
    labels = [b["text"] for b in result.inline_buttons]
    assert labels == ["🔄 Again", "🔁 Variations", "🎯 Same seed", "📎 Full size", "🎬 Make it move",
                      "✏️ Edit", "🔎 Zoom out 1.5×", "🔎 Zoom out 2×", "⬅️", "➡️", "⬆️",
                      "⬇️"]  # no WEBAPP_URL: no 🖌
    assert result.reply_to_message_id is not None
    # The status message showed progress, then made room for the result.
    await live.api.wait_for(lambda: live.api.message(status.chat_id, status.message_id).deleted, timeout=10)
    status_now = live.api.message(status.chat_id, status.message_id)
    assert any("Drawing" in (v.text or "") for v in [status_now, *status_now.edits])
    assert (user.chat_id, "upload_photo") in live.api.chat_actions


async def test_imagine_in_russian_with_style_and_aspect(live: Harness) -> None:
    user = live.user(language_code="ru")
    await set_settings(live, user.user_id, aspect="9:16", style=Style.ANIME)
    await user.send_text("/imagine маяк в шторм")
    result = await live.wait_result(user)
    check_photo(result, "9:16")
    assert "Картинка по тексту" in (result.caption or "") and "Аниме" in (result.caption or "")
    assert "🔄 Ещё раз" in [b["text"] for b in result.inline_buttons]


async def test_sticker(live: Harness) -> None:
    user = live.user()
    await user.send_text("/sticker")
    await live.wait_text(user, "What should the sticker show?")
    await user.send_text("a happy cat")
    sticker = await live.wait_result(user, kind="sticker")
    img = open_image(sticker.sticker_bytes or b"")
    assert img.format == "WEBP" and img.mode == "RGBA"
    assert max(img.size) == 512 and min(img.size) <= 512  # the sticker 512 rule
    card = await live.wait_message(user, lambda m: m.kind == "text" and "Seed:" in (m.text or ""))
    labels = [b["text"] for b in card.inline_buttons]
    assert "➕ Add to my pack" in labels and "📎 Full size" in labels
    await press(live, user, card, "📎 Full size")
    doc = await live.wait_result(user, kind="document")
    full = open_image(doc.document_bytes or b"")
    assert full.format == "PNG" and full.mode == "RGBA" and doc.file_name and doc.file_name.endswith(".png")


async def test_mix_album(live: Harness) -> None:
    user = live.user()
    await set_settings(live, user.user_id, aspect="4:3")
    await user.send_text("/mix 70/30")
    await live.wait_text(user, "Send me two photos")
    await user.send_album([photo(300, 200, (250, 0, 0)), photo(200, 300, (0, 0, 250))])
    result = await live.wait_result(user)
    check_photo(result, "4:3")
    assert "Mix" in (result.caption or "")


async def test_blend_photo_with_caption(live: Harness) -> None:
    user = live.user()
    await user.send_text("/blend")
    await live.wait_text(user, "Send me a photo")
    await user.send_photo(photo(320, 320), caption="in the style of a mosaic")
    result = await live.wait_result(user)
    check_photo(result, "1:1")
    assert "in the style of a mosaic" in (result.caption or "")


async def test_variations_of_a_document_two_images(live: Harness) -> None:
    user = live.user()
    await set_settings(live, user.user_id, num_images=2, aspect="3:2")
    await user.send_text("/variations")
    await live.wait_text(user, "Send me a photo")
    await user.send_document(photo(640, 480), "holiday.jpg", "image/jpeg")
    first = await live.wait_result(user)
    def photos_sent() -> list[SentMessage]:
        return [m for m in live.api.messages_to(user.chat_id) if m.kind == "photo"]

    await live.api.wait_for(lambda: len(photos_sent()) == 2)
    photos = photos_sent()
    assert photos[0].media_group_id is not None and photos[0].media_group_id == photos[1].media_group_id
    for p in photos:
        check_photo(p, "3:2")
    assert "Variations" in (first.caption or "")
    buttons = await live.wait_text(user, "Buttons for each image")
    # Per image: again, variations, same seed, full size, and its edit buttons ("n ✏️").
    assert [b["text"] for b in buttons.inline_buttons] == [
        "1 🔄", "1 🔁", "1 🎯", "1 📎", "1 🎬", "1 ✏️", "2 🔄", "2 🔁", "2 🎯", "2 📎", "2 🎬", "2 ✏️"]
    await press(live, user, buttons, "2 ✏️")
    menu = await live.wait_text(user, "Picture 2: what would you like to do with it?")
    assert [b["text"] for b in menu.inline_buttons] == ["✏️ Edit", "🔎 Zoom out 1.5×", "🔎 Zoom out 2×",
                                                       "⬅️", "➡️", "⬆️", "⬇️"]
    assert all(":1" in b["callback_data"] for b in menu.inline_buttons)  # image 2's index


async def test_depth_photo_with_command_caption(live: Harness) -> None:
    user = live.user()
    await user.send_photo(photo(300, 400), caption="/depth a bronze statue")
    result = await live.wait_result(user)
    check_photo(result, "1:1")
    assert "Keep depth" in (result.caption or "") and "a bronze statue" in (result.caption or "")


async def test_result_buttons_and_foreign_press(live: Harness) -> None:
    h = live
    owner, stranger = h.user(), h.user(first_name="Eve")
    await owner.send_text("a lighthouse")
    result = await h.wait_result(owner)
    seed = seed_of(result)
    owner_jobs = await h.jobs_of(owner)

    # Someone else's press: refused politely, nothing queued or sent.
    before = h.count(owner)
    query_id = await press(h, stranger, result, "🔄 Again")
    answer = h.api.callback_queries[query_id]
    assert answer.show_alert and "someone else" in (answer.answer_text or "")
    assert await h.jobs_of(stranger) == [] and await h.jobs_of(owner) == owner_jobs
    assert h.count(owner) == before

    await press(h, owner, result, "📎 Full size")
    doc = await h.wait_result(owner, kind="document")
    full = open_image(doc.document_bytes or b"")
    assert full.size == (512, 512) and full.format == "JPEG"  # as the worker stored it, not re-encoded
    assert doc.file_name is not None and doc.file_name.endswith(".jpg")

    await press(h, owner, result, "🎯 Same seed")
    same = await h.wait_message(owner, lambda m: m.kind == "photo" and m.message_id > doc.message_id,
                                timeout=120)
    assert seed_of(same) == seed

    await press(h, owner, result, "🔁 Variations")
    var = await h.wait_message(owner, lambda m: m.kind == "photo" and m.message_id > same.message_id,
                               timeout=120)
    assert "Variations" in (var.caption or "")

    await press(h, owner, result, "🔄 Again")
    again = await h.wait_message(owner, lambda m: m.kind == "photo" and m.message_id > var.message_id,
                                 timeout=120)
    assert "a lighthouse" in (again.caption or "") and seed_of(again) != seed


async def test_engine_failure_is_told_in_the_users_language(live: Harness) -> None:
    user = live.user(language_code="ru")
    await user.send_text("[fault:engine-error] a broken request")
    await live.wait_text(user, "при рисовании что-то пошло не так", timeout=120)
    assert not [m for m in live.api.messages_to(user.chat_id) if m.kind == "photo"]


async def test_cancel_a_running_job(live: Harness) -> None:
    h = live
    user, stranger = h.user(), h.user()
    await user.send_text("[fault:slow=0.5] a slow painting")
    status = await h.wait_text(user, "Drawing", timeout=60)
    query_id = await press(h, stranger, status, "✖️ Cancel")
    assert "someone else" in (h.api.callback_queries[query_id].answer_text or "")
    query_id = await press(h, user, status, "✖️ Cancel")
    assert "Stopping" in (h.api.callback_queries[query_id].answer_text or "")
    await h.api.wait_for(
        lambda: "cancelled" in (h.api.message(status.chat_id, status.message_id).text or ""), timeout=60)
    assert not [m for m in h.api.messages_to(user.chat_id) if m.kind == "photo"]


async def test_blocked_user_is_marked_and_the_event_acked(live: Harness) -> None:
    h = live
    user, job_id = await h.queued_by_new_user("[fault:slow=0.3] something to deliver")
    h.api.block_bot(user.user_id)
    for _ in range(600):
        if await h.redis.exists(keys.blocked(user.user_id)) and await h.redis.exists(keys.delivered(job_id)):
            break
        await asyncio.sleep(0.1)
    assert await h.redis.exists(keys.blocked(user.user_id))
    assert await h.redis.exists(keys.delivered(job_id))  # acked: never retried
    pending = await h.redis.xpending(keys.EVENTS_STREAM, keys.EVENTS_GROUP)
    assert pending["pending"] == 0
    # Nothing reached the chat after the block; whatever was tried met the 403 and was not retried.
    photos = [c for c in h.api.calls
              if c.method == "sendPhoto" and str(c.params.get("chat_id")) == str(user.chat_id)]
    assert all(c.status == 403 for c in photos) and len(photos) <= 1
    tried = len([c for c in h.api.calls if c.status == 403])
    await asyncio.sleep(1.0)
    assert len([c for c in h.api.calls if c.status == 403]) == tried
