"""Model families through the real bot: /model and /settings choose the model (kept across a
restart), every Kandinsky 3.0 and SDXL mode end to end on the tiny bundle with a real worker, captions name
the model, "again" and "same seed" keep the result's model, a cut prompt is said, a mode the model
lacks is refused before anything is queued (with a button to run it with the model that has it),
and a job whose model has no worker waits, with the user told so."""

from __future__ import annotations

import pytest

from bot.services.user_settings import SettingsStore, UserSettings
from contract.families import Family, describe_family
from contract.queue import family_queue
from contract.spec import JobSpec, Mode, bucket_size, exact_size
from devkit.botapi.models import SentMessage
from tests.bot.conftest import Harness, press
from tests.bot.images import open_image, photo

K3 = "Kandinsky 3.0"
K22 = "Kandinsky 2.2"
SDXL = "SDXL"
K5_IMAGE = "Kandinsky 5.0 Image"
LONG_PROMPT = " ".join(["a red fox in the snow"] * 30)
"""150 words: past the 128 tokens Kandinsky 3.0 reads (and the 77 of 2.2)."""


async def use_model(h: Harness, user_id: int, family: Family, **changes: object) -> None:
    await SettingsStore(h.redis).save(user_id, UserSettings().model_copy(update={"model": family, **changes}))


async def specs_of(h: Harness, user_id: int) -> dict[str, JobSpec]:
    """job id → spec of every job of the user (the job records the bot wrote)."""
    out = {}
    async for raw_key in h.redis.scan_iter(match="kb:job:*"):
        key = raw_key.decode()
        if int(await h.redis.hget(key, "user_id") or 0) == user_id:
            record = await h.queue.job(key.split(":", 2)[2])
            assert record is not None and record.spec is not None
            out[record.job_id] = record.spec
    return out


def caption_of(message: SentMessage) -> str:
    return message.caption or message.text or ""


# --- choosing the model ---------------------------------------------------------------------------


async def test_model_command_and_settings_choose_the_model_and_it_survives_a_restart(
        harness: Harness) -> None:
    h = harness
    user = h.user()
    await user.send_text("/model")
    picker = await h.wait_text(user, "Pick the model")
    assert "Model: Kandinsky 2.2" in (picker.text or "")
    assert [b["text"] for b in picker.inline_buttons] == ["• " + K22, K3, SDXL, K5_IMAGE, "« Back"]
    await press(h, user, picker, K3, expect="Kandinsky 3.0 cannot do")
    assert (await SettingsStore(h.redis).get(user.user_id)).model is Family.KANDINSKY3
    await h.restart()
    before = h.count(user)
    await user.send_text("/settings")
    summary = await h.wait_text(user, "Model: Kandinsky 3.0", after=before)
    assert "Model" in [b["text"] for b in summary.inline_buttons]
    # The submenu of /settings is the same picker; back to 2.2 from there, in Russian too.
    await press(h, user, summary, "Model", expect="Pick the model")
    await press(h, user, summary, K22, expect="Model: Kandinsky 2.2")
    assert (await SettingsStore(h.redis).get(user.user_id)).model is Family.KANDINSKY22
    ru = h.user(language_code="ru")
    await ru.send_text("/model")
    await h.wait_text(ru, "Выберите модель")


async def test_a_mode_the_model_lacks_is_refused_before_queueing_and_the_button_runs_it(
        harness: Harness) -> None:
    h = harness
    user = h.user()
    await use_model(h, user.user_id, Family.KANDINSKY3)
    default_queue = f"rq:queue:{family_queue(Family.KANDINSKY22, high=False)}"
    queued_before = await h.redis.llen(default_queue)  # the shared Redis may hold earlier tests' jobs
    await user.send_text("/depth")
    await h.wait_text(user, "Send me a photo")
    await user.send_photo(photo(320, 320), caption="a bronze statue")
    offer = await h.wait_text(user, "Kandinsky 3.0 cannot do “Keep depth” — Kandinsky 2.2 can")
    assert await specs_of(h, user.user_id) == {}, "nothing recorded"
    assert await h.redis.llen(default_queue) == queued_before, "nothing queued"
    assert [b["text"] for b in offer.inline_buttons] == ["▶️ Draw this one with Kandinsky 2.2"]
    before = h.count(user)
    await press(h, user, offer, "▶️ Draw this one with Kandinsky 2.2")
    await h.wait_text(user, "Your request", after=before)
    specs = list((await specs_of(h, user.user_id)).values())
    assert len(specs) == 1 and specs[0].model is Family.KANDINSKY22 and specs[0].mode is Mode.DEPTH
    assert specs[0].prompt == "a bronze statue" and len(specs[0].inputs) == 1
    assert (await SettingsStore(h.redis).get(user.user_id)).model is Family.KANDINSKY3, "the choice stays"
    # The offer runs once: its button is gone, and the stored request with it.
    assert h.api.message(offer.chat_id, offer.message_id).inline_buttons == []
    assert [k async for k in h.redis.scan_iter(match="kb:switch:*")] == []


async def test_a_switch_offer_is_taken_once_and_only_by_its_user(harness: Harness) -> None:
    from bot.services.jobs import build_spec
    from bot.services.switches import SwitchStore

    h = harness
    store = SwitchStore(h.redis)
    spec = build_spec(mode=Mode.MIX, config=h.settings, user_settings=UserSettings(), user_id=5, chat_id=5,
                      locale="en", inputs=("a", "b"), weights=(0.5, 0.5), model=Family.KANDINSKY22)
    token = await store.offer(spec, Family.KANDINSKY3)
    assert await store.take(token, user_id=6) is None, "someone else's press"
    taken = await store.take(token, user_id=5)
    assert taken is not None and taken.refused_by is Family.KANDINSKY3
    assert JobSpec.from_json(taken.spec).model is Family.KANDINSKY22
    assert await store.take(token, user_id=5) is None, "once"


async def test_a_job_for_a_model_with_no_worker_waits_and_the_user_is_told(harness: Harness) -> None:
    h = harness
    user = h.user()
    await use_model(h, user.user_id, Family.KANDINSKY3)
    await user.send_text("a lighthouse in a storm")
    status = await h.wait_text(user, "No Kandinsky 3.0 worker is running right now")
    assert "position 1" in (status.text or "")
    specs = list((await specs_of(h, user.user_id)).values())
    assert len(specs) == 1 and specs[0].model is Family.KANDINSKY3 and specs[0].steps == 2
    assert await h.redis.llen(f"rq:queue:{family_queue(Family.KANDINSKY3, high=False)}") == 1


# --- every Kandinsky 3.0 mode, with a real worker ---------------------------------------------------


async def test_k3_text_to_image_again_and_same_seed_keep_the_model(live: Harness) -> None:
    h = live
    user = h.user()
    await use_model(h, user.user_id, Family.KANDINSKY3, aspect="16:9")
    await user.send_text("a red fox in the snow")
    result = await h.wait_result(user)
    assert open_image(result.photo_bytes or b"").size == exact_size("16:9", 512)
    assert "Model: Kandinsky 3.0" in caption_of(result) and "was cut" not in caption_of(result)
    # The user moves back to 2.2; the buttons under the 3.0 result still draw with 3.0.
    await use_model(h, user.user_id, Family.KANDINSKY22, aspect="16:9")
    for label in ("🔄 Again", "🎯 Same seed"):
        before = h.count(user)
        await press(h, user, result, label)
        again = await h.wait_result(user, after=before)
        assert "Model: Kandinsky 3.0" in caption_of(again), label
    models = {s.model for s in (await specs_of(h, user.user_id)).values()}
    assert models == {Family.KANDINSKY3}


@pytest.mark.parametrize("family", [Family.KANDINSKY3, Family.SDXL, Family.KANDINSKY5_IMAGE])
async def test_image_plus_text_and_variations(live: Harness, family: Family) -> None:
    h = live
    user = h.user()
    model = f"Model: {describe_family(family).title}"
    await use_model(h, user.user_id, family)
    await user.send_text("/blend")
    await h.wait_text(user, "Send me a photo")
    await user.send_photo(photo(320, 320), caption="in the style of a mosaic")
    blended = await h.wait_result(user)
    assert "Image + text" in caption_of(blended) and model in caption_of(blended)
    before = h.count(user)
    await user.send_text("/variations")
    await h.wait_text(user, "Send me a photo", after=before)
    await user.send_photo(photo(400, 300))
    variation = await h.wait_result(user, after=before)
    assert "Variations" in caption_of(variation) and model in caption_of(variation)
    assert open_image(variation.photo_bytes or b"").size == bucket_size("1:1", 512)


async def test_k3_sticker_and_the_prompt_cut_notice(live: Harness) -> None:
    h = live
    user = h.user()
    await use_model(h, user.user_id, Family.KANDINSKY3)
    await user.send_text(f"/sticker {LONG_PROMPT}")
    sticker = await h.wait_result(user, kind="sticker")
    img = open_image(sticker.sticker_bytes or b"")
    assert img.format == "WEBP" and img.mode == "RGBA" and max(img.size) == 512
    card = await h.wait_message(user, lambda m: m.kind == "text" and "Seed:" in (m.text or ""))
    assert "Model: Kandinsky 3.0" in caption_of(card)
    assert "longer than Kandinsky 3.0 reads (128 tokens)" in caption_of(card)


# --- every SDXL mode, with a real worker (base + refiner) -----------------------------------------


async def test_sdxl_from_the_picker_text_to_image_and_sticker(live: Harness) -> None:
    h = live
    user = h.user()
    await user.send_text("/model")
    picker = await h.wait_text(user, "Pick the model")
    await press(h, user, picker, SDXL, expect="SDXL cannot do")
    assert (await SettingsStore(h.redis).get(user.user_id)).model is Family.SDXL
    before = h.count(user)
    await user.send_text("a red fox in the snow")
    result = await h.wait_result(user, after=before)
    assert open_image(result.photo_bytes or b"").size == bucket_size("1:1", 512)
    assert "Model: SDXL" in caption_of(result)
    before = h.count(user)
    await user.send_text("/sticker a happy cat")
    sticker = await h.wait_result(user, kind="sticker", after=before)
    img = open_image(sticker.sticker_bytes or b"")
    assert img.format == "WEBP" and img.mode == "RGBA" and max(img.size) == 512
    specs = list((await specs_of(h, user.user_id)).values())
    assert {s.model for s in specs} == {Family.SDXL} and {s.steps for s in specs} == {2}


async def test_kandinsky5_image_from_the_picker_reads_russian_itself(live: Harness) -> None:
    h = live
    user = h.user(language_code="ru")
    await use_model(h, user.user_id, Family.KANDINSKY22, aspect="16:9")
    await user.send_text("/model")
    picker = await h.wait_message(user, lambda m: bool(m.inline_buttons))
    await press(h, user, picker, "Kandinsky 5.0 Image", expect="Kandinsky 5.0 Image")
    assert (await SettingsStore(h.redis).get(user.user_id)).model is Family.KANDINSKY5_IMAGE
    before = h.count(user)
    await user.send_text("рыжая лиса в снежном лесу")
    result = await h.wait_result(user, after=before)
    assert open_image(result.photo_bytes or b"").size == exact_size("16:9", 512)
    caption = caption_of(result)
    assert "рыжая лиса в снежном лесу" in caption and "Kandinsky 5.0 Image" in caption
    assert "Kandinsky 5.0 Image сам понимает язык ru: промпт ушёл ему как есть, без перевода." in caption
    [spec] = (await specs_of(h, user.user_id)).values()
    assert spec.model is Family.KANDINSKY5_IMAGE and spec.prompt == "рыжая лиса в снежном лесу"


async def test_sdxl_refuses_keep_depth_before_queueing(harness: Harness) -> None:
    h = harness
    user = h.user()
    await use_model(h, user.user_id, Family.SDXL)
    await user.send_text("/depth")
    await h.wait_text(user, "Send me a photo")
    await user.send_photo(photo(320, 320), caption="a bronze statue")
    offer = await h.wait_text(user, "SDXL cannot do “Keep depth” — Kandinsky 2.2 can")
    assert await specs_of(h, user.user_id) == {}, "nothing recorded"
    assert [b["text"] for b in offer.inline_buttons] == ["▶️ Draw this one with Kandinsky 2.2"]


async def test_a_malformed_sdxl_weighting_is_refused_before_queueing_in_both_languages(
        harness: Harness) -> None:
    h = harness
    user = h.user()
    await use_model(h, user.user_id, Family.SDXL)
    await user.send_text("a (red car in the fog")
    await h.wait_text(user, "unbalanced brackets (1 '(' never closed)")
    await user.send_text("/imagine a (red car:3.5)")
    await h.wait_text(user, "Weights go from 0 to 2")
    ru = h.user(language_code="ru")
    await use_model(h, ru.user_id, Family.SDXL)
    await ru.send_text("a (red car:2.5)")
    await h.wait_text(ru, "Веса — от 0 до 2")
    assert await specs_of(h, user.user_id) == {} and await specs_of(h, ru.user_id) == {}
    assert await h.redis.llen(f"rq:queue:{family_queue(Family.SDXL, high=False)}") == 0
    # Kandinsky reads brackets as words: the same prompt is queued there.
    await use_model(h, user.user_id, Family.KANDINSKY22)
    before = h.count(user)
    await user.send_text("a (red car in the fog")
    await h.wait_text(user, "Your request", after=before)
