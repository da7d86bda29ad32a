"""Commands, dialogs, settings and refusals over the real Bot API wire, without a worker."""

from __future__ import annotations

import io

from PIL import Image

from bot.app import COMMANDS
from bot.services.inputs import MAX_DOWNLOAD_BYTES
from bot.ui.keyboards import MENU_MODES
from contract.spec import MAX_PROMPT_CHARS, Style, bucket_size
from tests.bot.conftest import Harness, press
from tests.bot.images import encode, photo
from tests.bot.test_inputs import _png_header_only


async def test_start_help_and_command_menu(harness: Harness) -> None:
    h = harness
    en = {c["command"] for c in h.api.commands[next(k for k in h.api.commands if k[1] == "")]}
    ru_key = next(k for k in h.api.commands if k[1] == "ru")
    assert en == set(COMMANDS) == {c["command"] for c in h.api.commands[ru_key]}
    assert any("Картинка" in c["description"] for c in h.api.commands[ru_key])

    user = h.user(first_name="<b>Ann</b>")
    await user.send_text("/start")
    greeting = await h.wait_text(user, "Hi, ")
    # The name was HTML-escaped on the wire, so the client shows it raw.
    assert "&lt;b&gt;" not in (greeting.text or "") and "<b>Ann</b>" in (greeting.text or "")
    labels = [b["text"] for b in greeting.inline_buttons]
    assert len(labels) == len(MENU_MODES) and "⚙️ Settings" in labels and "🎞 Animation" in labels
    await user.send_text("/help")
    help_msg = await h.wait_text(user, "What I can do")
    for command in COMMANDS:
        assert f"/{command}" in (help_msg.text or "")


async def test_russian_from_telegram_language(harness: Harness) -> None:
    user = harness.user(language_code="ru")
    await user.send_text("/start")
    greeting = await harness.wait_text(user, "Привет")
    assert "🎨 Картинка по тексту" in [b["text"] for b in greeting.inline_buttons]
    await user.send_text("/imagine")
    await harness.wait_text(user, "Что нарисовать?")


async def test_menu_dialog_asks_for_what_is_missing(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/start")
    menu = await h.wait_text(user, "Hi, ")
    entries = (
        ("🏷 Sticker", "What should the sticker show?"), ("🎨 Text to image", "What should I draw?"),
        ("🔀 Mix two images", "Send me two photos"), ("🔁 Variations", "draw variations of it"),
        ("🗿 Keep depth", "I will keep its shapes"), ("⚙️ Settings", "Images per request"),
    )
    for label, asks in entries:
        before = h.count(user)
        await press(h, user, menu, label)
        await h.wait_text(user, asks, after=before)
    before = h.count(user)
    await press(h, user, menu, "🖼 Image + text")
    ask = await h.wait_text(user, "Send me a photo", after=before)
    assert [b["text"] for b in ask.inline_buttons][:3] == ["30/70", "• 50/50", "70/30"]
    await user.send_text("a watercolor city")
    await h.wait_text(user, "Now send the photo to mix with this text")
    await user.send_text("another text")
    await h.wait_text(user, "I need a photo here")
    assert await h.queue.user_jobs(user.user_id) == []
    # A command inside the dialog is a command, not the missing input; the dialog starts over.
    await user.send_text("/variations")
    await h.wait_text(user, "Send me a photo and I will draw variations")
    before = h.count(user)
    await user.send_text("/blend a watercolor city")
    await h.wait_text(user, "Now send the photo to mix with this text", after=before)
    await user.send_photo(photo(300, 200))
    status = await h.wait_text(user, "in the queue")
    [job_id] = await h.queue.user_jobs(user.user_id)
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None
    assert record.spec.mode == "blend" and record.spec.prompt == "a watercolor city"
    assert record.spec.weights == (0.5, 0.5) and len(record.spec.inputs) == 1
    assert status.reply_to_message_id is not None


async def test_mix_weights_and_album(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/mix")
    ask = await h.wait_text(user, "Send me two photos")
    await press(h, user, ask, "• 50/50")  # already chosen: Telegram answers "not modified", quietly ignored
    await press(h, user, ask, "30/70")
    await h.api.wait_for(lambda: "• 30/70" in [b["text"] for b in h.api.message(ask.chat_id, ask.message_id)
                                               .inline_buttons])
    await user.send_album([photo(200, 200, (255, 0, 0)), photo(240, 180, (0, 0, 255))])
    await h.wait_text(user, "in the queue")
    assert not any("second photo" in (m.text or "") for m in h.api.messages_to(user.chat_id))
    assert not any("went wrong" in (m.text or "") for m in h.api.messages_to(user.chat_id))
    assert any("message is not modified" in (c.description or "") for c in h.api.calls)
    [job_id] = await h.queue.user_jobs(user.user_id)
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None
    assert record.spec.mode == "mix" and len(record.spec.inputs) == 2
    assert record.spec.weights == (0.3, 0.7)
    blob = await h.queue.result_bytes(record.spec.inputs[1])
    assert blob is not None and Image.open(io.BytesIO(blob)).format == "PNG"


async def test_mix_one_by_one_with_weights_argument(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/mix 2/8")
    await h.wait_text(user, "Send me two photos")
    await user.send_document(encode(Image.new("RGB", (100, 80), (1, 2, 3)), "PNG"), "a.png", "image/png")
    await h.wait_text(user, "Now send the second photo")
    await user.send_photo(photo())
    await h.wait_text(user, "in the queue")
    [job_id] = await h.queue.user_jobs(user.user_id)
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None and record.spec.weights == (0.2, 0.8)


async def test_bad_inputs_are_refused_and_nothing_is_queued(harness: Harness) -> None:
    h = harness
    user = h.user()
    gif = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    jpeg = photo(400, 300)
    cases = [
        (b"%PDF-1.4 this is no image" * 20, "cat.jpg", "image/jpeg", "does not look like an image"),
        (gif.getvalue(), "anim.gif", "image/gif", "Animated images are not supported"),
        (_png_header_only(12_000, 12_000), "bomb.png", "image/png", "too many pixels"),
        (jpeg[: len(jpeg) // 3], "cut.jpg", "image/jpeg", "seems to be damaged"),
        (encode(Image.new("RGB", (32, 32)), "ICO"), "icon.ico", "image/x-icon", "ICO format"),
    ]
    await user.send_text("/variations")
    await h.wait_text(user, "Send me a photo")
    for data, name, mime, expected in cases:
        before = h.count(user)
        await user.send_document(data, name, mime)
        await h.wait_text(user, expected, after=before)
    # Over Telegram's getFile limit: refused from the declared size, never downloaded.
    before = h.count(user)
    get_files = len([c for c in h.api.calls if c.method.lower() == "getfile"])
    await user.send_document(b"\xff\xd8\xff" + b"\0" * MAX_DOWNLOAD_BYTES, "huge.jpg", "image/jpeg")
    await h.wait_text(user, "too large: the limit is 20 MB", after=before)
    assert len([c for c in h.api.calls if c.method.lower() == "getfile"]) == get_files
    # Text where a photo is needed.
    await user.send_text("hello")
    await h.wait_text(user, "I need a photo here")
    assert await h.queue.user_jobs(user.user_id) == [] and await h.jobs_of(user) == []
    # Prompts: too long, and an empty caption-less dialog step.
    await user.send_text("/cancel")
    await h.wait_text(user, "Cancelled")
    before = h.count(user)
    await user.send_text("x" * (MAX_PROMPT_CHARS + 5))
    expected = f"too long: {MAX_PROMPT_CHARS + 5:,} characters, the limit is {MAX_PROMPT_CHARS:,}"
    await h.wait_text(user, expected, after=before)
    await user.send_text("/imagine    ")
    await h.wait_text(user, "What should I draw?")
    await user.send_photo(photo())
    await h.wait_text(user, "I need a text here")
    assert await h.jobs_of(user) == []


async def test_bad_second_photo_keeps_the_first(harness: Harness) -> None:
    h = harness
    user = h.user(language_code="ru")
    await user.send_text("/mix")
    await user.send_photo(photo())
    await h.wait_text(user, "Теперь пришлите вторую")
    before = h.count(user)
    await user.send_document(b"not an image at all", "x.png", "image/png")
    await h.wait_text(user, "Это не похоже на картинку", after=before)
    assert await h.jobs_of(user) == []
    await user.send_photo(photo(200, 300))
    await h.wait_text(user, "в очереди")
    [job_id] = await h.queue.user_jobs(user.user_id)
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None and len(record.spec.inputs) == 2
    assert record.spec.locale == "ru"


async def test_settings_reach_the_job_spec_and_survive_a_restart(harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/settings")
    panel = await h.wait_text(user, "Settings")
    await press(h, user, panel, "Style", expect="Pick a style")
    await press(h, user, panel, "Anime", expect="Style: Anime")

    await press(h, user, panel, "Aspect ratio", expect="Pick an aspect ratio")
    await press(h, user, panel, "16:9", expect="Aspect ratio: 16:9")
    await press(h, user, panel, "Images", expect="How many images")
    await press(h, user, panel, "2", expect="Images per request: 2")
    await press(h, user, panel, "Negative prompt", expect="should NOT be")
    await user.send_text("blurry, <watermark>")
    saved = await h.wait_text(user, "Negative prompt saved")
    assert "&lt;watermark&gt;" not in (saved.text or "") and "<watermark>" in (saved.text or "")
    await press(h, user, saved, "Language", expect="Pick a language")
    await press(h, user, saved, "Русский", expect="Язык: Русский")

    # A restart: a new bot process reads the same Redis.
    await h.restart()
    before = h.count(user)
    await user.send_text("a castle on a hill")
    await h.wait_text(user, "Ваш запрос в очереди", after=before)
    [job_id] = await h.queue.user_jobs(user.user_id)
    record = await h.queue.job(job_id)
    assert record is not None and record.spec is not None
    spec = record.spec
    assert spec.style is Style.ANIME and (spec.width, spec.height) == bucket_size("16:9", 512)
    assert spec.num_images == 2 and spec.negative_prompt == "blurry, <watermark>" and spec.locale == "ru"
    assert spec.steps == 2 and spec.prior_steps == 2


async def test_unknown_command_gets_a_hint_in_the_users_language(harness: Harness) -> None:
    h = harness
    user, russian = h.user(), h.user(language_code="ru")
    await user.send_text("/frobnicate")
    hint = await h.wait_text(user, "I don't know this command")
    assert "/help" in (hint.text or "") and len(hint.inline_buttons) == len(MENU_MODES)
    await russian.send_text("/stats")  # an admin command from a non-admin: just an unknown command
    await h.wait_text(russian, "Такой команды я не знаю")
    assert await h.queue.user_jobs(user.user_id) == [] and await h.queue.user_jobs(russian.user_id) == []

