"""SDXL's LoRA styles through the real bot: /settings offers what workers published for the user's
model (and nothing for a model that takes none), picks and weights are kept within the limits, stale
buttons are refused against what Redis holds now, and with a real worker the styles reach the job,
the picture and its caption; a style the worker does not hold is said, in the user's language."""

from __future__ import annotations

import asyncio
import time

import redis as redis_sync

from bot.services.user_settings import SettingsStore
from contract import keys
from contract.families import Family
from contract.loras import LoraChoice, LoraStyle
from devkit.botapi.models import SentMessage
from devkit.botapi.sim import SimUser
from tests.bot.conftest import Harness, press
from tests.bot.test_e2e_families import caption_of, specs_of, use_model
from worker.metrics import publish_worker_info

INK = LoraStyle(name="ink", title="Ink sketch", file="ink.safetensors", family=Family.SDXL,
                triggers="ink sketch", weight=0.8)
NEON = LoraStyle(name="neon", title="Neon glow", file="neon.safetensors", family=Family.SDXL, weight=1.0)
CLAY = LoraStyle(name="clay", title="Clay", file="clay.safetensors", family=Family.SDXL, weight=0.6)
PAPER = LoraStyle(name="paper", title="Paper cut", file="paper.safetensors", family=Family.SDXL)
PUBLISH_TIMEOUT_S = 30
"""A worker publishes its styles at its first maintenance, right after it registers."""


def publish(h: Harness, *styles: LoraStyle, worker: str = "lora-test-worker") -> None:
    """What a worker holding these styles writes (worker.metrics.publish_worker_info)."""
    client = redis_sync.Redis.from_url(h.settings.redis_url.get_secret_value())
    try:
        publish_worker_info(client, worker, "cpu", (Family.SDXL.value,), {Family.SDXL.value: styles})
    finally:
        client.close()


def labels(message: SentMessage) -> list[str]:
    return [b["text"] for b in message.inline_buttons]


async def current(h: Harness, message: SentMessage) -> SentMessage:
    return h.api.message(message.chat_id, message.message_id)


async def tap(h: Harness, user: SimUser, menu: SentMessage, label: str, *, changes: bool = True) -> str:
    """Press ``label`` on the menu as it is now; with ``changes``, wait for the menu's buttons to change."""
    shown = await current(h, menu)
    before = [dict(b) for b in shown.inline_buttons]  # the message object is edited in place
    query = await press(h, user, shown, label)
    if changes:
        await h.api.wait_for(lambda: h.api.message(menu.chat_id, menu.message_id).inline_buttons != before,
                             timeout=10)
    return query


async def styles_menu(h: Harness, user: SimUser) -> SentMessage:
    """An SDXL user's /settings, opened at its LoRA styles."""
    await use_model(h, user.user_id, Family.SDXL)
    before = h.count(user)
    await user.send_text("/settings")
    menu = await h.wait_text(user, "Aspect ratio:", after=before)
    await tap(h, user, menu, "🎨 LoRA styles")
    return menu


async def test_settings_offer_the_published_styles_of_the_users_model(harness: Harness) -> None:
    h = harness
    await h.redis.delete(keys.lora_styles(Family.SDXL.value))
    publish(h, INK, NEON, CLAY, PAPER)
    user = h.user()
    await user.send_text("/settings")
    k22 = await h.wait_text(user, "Aspect ratio:")
    assert "🎨 LoRA styles" not in labels(k22) and "LoRA styles:" not in (k22.text or ""), \
        "Kandinsky 2.2 takes no styles"
    await use_model(h, user.user_id, Family.SDXL)
    before = h.count(user)
    await user.send_text("/settings")
    menu = await h.wait_text(user, "LoRA styles: —", after=before)
    await tap(h, user, menu, "🎨 LoRA styles")
    menu = await current(h, menu)
    assert "LoRA styles for SDXL" in (menu.text or "")
    assert labels(menu) == ["Clay", "Ink sketch", "Neon glow", "Paper cut", "« Back"], "by title"
    await tap(h, user, menu, "Ink sketch")
    assert labels(await current(h, menu))[1:4] == ["✓ Ink sketch · 0.8", "−", "+"], "at the style's weight"
    for _ in range(3):
        await tap(h, user, menu, "+")
    assert "✓ Ink sketch · 1.1" in labels(await current(h, menu))
    await tap(h, user, menu, "Neon glow")
    for _ in range(10):
        await tap(h, user, menu, "−")
    await tap(h, user, menu, "−", changes=False)  # past the floor: it stays at 0.1
    menu = await current(h, menu)
    assert "✓ Ink sketch · 0.1" in labels(menu) and "✓ Neon glow · 1" in labels(menu)
    await tap(h, user, menu, "Clay")
    query = await tap(h, user, menu, "Paper cut", changes=False)
    assert h.api.callback_queries[query].show_alert
    assert h.api.callback_queries[query].answer_text == "At most 3 LoRA styles at once. Turn one off first."
    saved = (await SettingsStore(h.redis).get(user.user_id)).loras
    assert saved == (LoraChoice(name="ink", weight=0.1), LoraChoice(name="neon", weight=1.0),
                     LoraChoice(name="clay", weight=0.6))
    await tap(h, user, menu, "✓ Clay · 0.6")  # off again
    await press(h, user, await current(h, menu), "« Back", expect="LoRA styles: Ink sketch 0.1, Neon glow 1")


async def test_stale_style_buttons_are_refused_against_what_redis_holds_now(harness: Harness) -> None:
    h = harness
    await h.redis.delete(keys.lora_styles(Family.SDXL.value))
    publish(h, INK, NEON)
    user = h.user()
    menu = await styles_menu(h, user)
    await tap(h, user, menu, "Ink sketch")
    await h.redis.delete(keys.lora_styles(Family.SDXL.value))  # the last worker holding them is gone
    publish(h, INK)
    await tap(h, user, menu, "Neon glow", changes=False)  # no worker publishes it now
    assert (await SettingsStore(h.redis).get(user.user_id)).loras == (INK.choice(),)
    await use_model(h, user.user_id, Family.KANDINSKY22, loras=(INK.choice(),))
    await tap(h, user, menu, "+", changes=False)  # Kandinsky 2.2 takes no styles
    assert (await SettingsStore(h.redis).get(user.user_id)).loras == (INK.choice(),), "nothing changed"
    refused = [r.getMessage() for r in h.log_records if "refused LoRA style" in r.getMessage()]
    assert len(refused) == 2 and "'neon'" in refused[0] and "'ink'" in refused[1]


async def test_a_pick_no_worker_holds_any_more_is_listed_to_take_off_and_left_out_of_jobs(
        harness: Harness) -> None:
    h = harness
    await h.redis.delete(keys.lora_styles(Family.SDXL.value))
    publish(h, INK)
    user = h.user(language_code="ru")
    await use_model(h, user.user_id, Family.SDXL, loras=(INK.choice(),
                                                        LoraChoice(name="gone", weight=1.0)))
    await user.send_text("/settings")
    menu = await h.wait_text(user, "LoRA-стили: Ink sketch 0.8, gone 1")
    await tap(h, user, menu, "🎨 LoRA-стили")
    assert labels(await current(h, menu))[:7] == ["✓ Ink sketch · 0.8", "−", "+", "✓ gone · 1", "−", "+",
                                                  "« Назад"]
    before = h.count(user)
    await user.send_text("a red fox in the snow")
    await h.wait_text(user, "Ваш запрос", after=before)
    [spec] = (await specs_of(h, user.user_id)).values()
    assert spec.loras == (INK.choice(),), "only what a worker holds"
    await tap(h, user, menu, "✓ gone · 1")
    assert (await SettingsStore(h.redis).get(user.user_id)).loras == (INK.choice(),)
    await h.redis.delete(keys.lora_styles(Family.SDXL.value))
    before = h.count(user)
    await user.send_text("/settings")
    empty = await h.wait_text(user, "Пропорции:", after=before)
    await tap(h, user, empty, "🎨 LoRA-стили")
    assert labels(await current(h, empty)) == ["✓ ink · 0.8", "−", "+", "« Назад"], "by name: no title now"
    await tap(h, user, empty, "✓ ink · 0.8")
    assert "Для SDXL на этом боте пока нет LoRA-стилей" in ((await current(h, empty)).text or "")


async def test_styles_reach_the_job_the_picture_and_its_caption(live: Harness) -> None:
    """The worker of the bot tests loads the tiny bundle's two styles (KANDINSKY_LORA_DIR) and
    publishes them; a style the bot offers but that worker lacks fails the job, and the user is told."""
    h = live
    deadline = time.monotonic() + PUBLISH_TIMEOUT_S
    while not await h.redis.hexists(keys.lora_styles(Family.SDXL.value), "neon"):  # type: ignore[misc]
        assert time.monotonic() < deadline, "the worker did not publish the bundle's styles"
        await asyncio.sleep(0.1)
    user = h.user()
    menu = await styles_menu(h, user)
    await tap(h, user, menu, "Ink sketch")
    await tap(h, user, menu, "Neon glow")
    before = h.count(user)
    await user.send_text("a lighthouse at dusk")
    result = await h.wait_result(user, after=before)
    assert "🎨 LoRA: Ink sketch 0.8, Neon glow 1" in caption_of(result)
    [spec] = (await specs_of(h, user.user_id)).values()
    assert spec.loras == (LoraChoice(name="ink", weight=0.8), LoraChoice(name="neon", weight=1.0))
    publish(h, PAPER, worker="another-host")  # a host the job does not reach holds this one
    await use_model(h, user.user_id, Family.SDXL, loras=(PAPER.choice(),))
    before = h.count(user)
    await user.send_text("a lighthouse at dusk")
    await h.wait_text(user, "A LoRA style of this request is no longer on the server", after=before,
                      timeout=120)
    await h.redis.hdel(keys.lora_styles(Family.SDXL.value), "paper")
