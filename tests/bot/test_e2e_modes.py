"""One conversation per mode, from the first message to the delivered image."""

from __future__ import annotations

from contract.spec import bucket_size
from tests.bot.conftest import Harness
from tests.bot.images import open_image


async def test_text_to_image_plain_text(live: Harness) -> None:
    user = live.user()
    await user.send_text("a red fox in the snow")
    status = await live.wait_text(user, "queue")
    assert status.reply_markup is not None  # the cancel button
    result = await live.wait_result(user)
    img = open_image(result.photo_bytes or b"")
    assert img.size == bucket_size("1:1", 512)
    assert "Seed:" in (result.caption or "") and "a red fox in the snow" in (result.caption or "")
    labels = [b["text"] for b in result.inline_buttons]
    assert any("Again" in label for label in labels) and any("Full size" in label for label in labels)
    assert ("upload_photo" in {a for _, a in live.api.chat_actions})
