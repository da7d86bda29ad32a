"""The bad-input corpus against the running service: every file and prompt gets a clear answer in
the user's language, nothing bad is queued, no worker dies, and the bot's memory stays bounded."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from pathlib import Path

import pytest

from bot.ui.i18n import I18n
from contract.queue import JobStatus
from devkit.botapi.models import SentMessage
from devkit.botapi.sim import SimUser
from tests.reliability.conftest import WORKER_NAMES, Rel, Tally, Workers, account, job_records, self_rss_mb
from tests.reliability.make_corpus import (
    CHECK_IN_LIMIT_BYTES,
    DATA_DIR,
    PROMPTS,
    Sample,
    load,
    manifest,
    samples,
)

BOT_RSS_GROWTH_MB = 300
"""The corpus holds a 25 MB document and 900-MP bombs: decoding one would cost gigabytes; keeping
every download alive would cost ~30 MB per pass. Growth past this means something is kept or decoded."""
ANSWER_TIMEOUT_S = 30
"""A refusal needs no engine: it comes within a second or two even on busy cores."""
REFUSAL_KEYS = ("input-too-large", "input-not-image", "input-unsupported-format", "input-too-many-pixels",
                "input-animated", "input-corrupt")
I18N = I18n()


def refusal_texts(locale: str) -> list[str]:
    """The fixed part of every input refusal in this locale (before the first variable)."""
    out = []
    for key in REFUSAL_KEYS:
        text = I18N.get(locale, key, limit_mb=20, limit_mp=40, format="X")
        out.append(text.split("20")[0].split("40")[0].split("X")[0][:25])
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Sample, Path]]:
    return load(tmp_path_factory.mktemp("corpus"))


def test_checked_in_corpus_matches_its_script() -> None:
    """tests/data/bad-inputs holds what make_corpus makes (run it after changing the list)."""
    built = samples()
    assert manifest() == [sample for sample, _ in built]
    assert len(built) >= 30
    for sample, data in built:
        path = DATA_DIR / sample.name
        assert path.exists() == (len(data) <= CHECK_IN_LIMIT_BYTES), sample.name
        if path.exists():
            assert abs(path.stat().st_size - len(data)) <= len(data) // 10 + 64, sample.name
    assert json.loads((DATA_DIR / "prompts.json").read_text()) == PROMPTS


async def _answer_after(h: Rel, user: SimUser, after: int) -> SentMessage:
    await h.api.wait_for(lambda: len([m for m in h.api.messages_to(user.chat_id)[after:] if m.from_bot]) > 0,
                         timeout=ANSWER_TIMEOUT_S)
    return next(m for m in h.api.messages_to(user.chat_id)[after:] if m.from_bot)


async def _send(user: SimUser, sample: Sample, data: bytes) -> None:
    if sample.as_photo:
        await user.send_photo(data)
    else:
        await user.send_document(data, sample.name, sample.mime)


@pytest.mark.slow
@pytest.mark.parametrize("locale", ["en", "ru"])
async def test_corpus_files_get_a_clear_answer_in_the_users_language(
        live: Rel, workers: Workers, corpus: list[tuple[Sample, Path]], locale: str, tally: Tally) -> None:
    h = live
    user = h.user(language_code=locale)
    expected_refusals = refusal_texts(locale)
    ask = I18N.get(locale, "variations-ask-photo")
    gc.collect()
    rss_before = self_rss_mb()
    accepted_names = []
    in_dialog = False
    # Refusals first (they keep the dialog open), then the valid-but-odd ones, one job each. Those
    # run in English only: their answer is a picture, the same in every language, and engine time
    # on two shared cores is what bounds this suite.
    refuse = [(s, p) for s, p in corpus if s.expect == "refuse"]
    accept = [(s, p) for s, p in corpus if s.expect == "accept"] if locale == "en" else []
    for sample, path in refuse + accept:
        data = path.read_bytes()
        if not in_dialog:
            before = h.count(user)
            await user.send_text("/variations")
            await h.wait_text(user, ask, after=before)
            in_dialog = True
        jobs_before = len(await job_records(h, [user]))
        before = h.count(user)
        await _send(user, sample, data)
        answer = await _answer_after(h, user, before)
        tally.bad_inputs += 1
        text = answer.text or answer.caption or ""
        if sample.expect == "refuse":
            assert any(fragment in text for fragment in expected_refusals), (sample.name, text)
            await asyncio.sleep(0.2)
            assert len(await job_records(h, [user])) == jobs_before, f"{sample.name} was queued"
        else:
            # Accepted: a job is queued for it (and must be answered, checked below).
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while len(await job_records(h, [user])) == jobs_before:
                assert time.monotonic() < deadline, (sample.name, text)
                await asyncio.sleep(0.1)
            accepted_names.append(sample.name)
            in_dialog = False
        del data
    gc.collect()
    growth = self_rss_mb() - rss_before
    tally.figures.append(f"bad input ({locale}): {len(refuse)} refused, {len(accepted_names)} accepted "
                         f"odd images, bot RSS growth {growth:.0f} MB")
    assert growth < BOT_RSS_GROWTH_MB, f"bot RSS grew by {growth:.0f} MB"
    failure_texts = tuple(I18N.get(locale, k) for k in ("failed-bad_input", "failed-engine_error"))
    acc = await account(h, [user], tally, failure_texts=failure_texts)
    assert acc.accepted == len(accepted_names)
    assert all(workers.alive(n) for n in WORKER_NAMES), "a worker died on the corpus"


@pytest.mark.parametrize("locale", ["en", "ru"])
async def test_bad_prompts_are_refused_clearly_or_delivered_escaped(
        live: Rel, workers: Workers, locale: str, tally: Tally) -> None:
    h = live
    user = h.user(language_code=locale)
    empty = I18N.get(locale, "prompt-empty")
    too_long = I18N.get(locale, "prompt-too-long", length=len(PROMPTS["too-long-10000"].strip()), limit=1000)
    too_long_client = I18N.get(locale, "prompt-too-long", length=len(PROMPTS["client-maximum-4096"].strip()),
                               limit=1000)

    def raw_text(text: str) -> None:
        """A text no Telegram client would send (too long, or blank): pushed as a raw update."""
        h.api._push_update("message", {
            "message_id": h.api.next_message_id(user.chat_id), "date": int(time.time()),
            "chat": {"id": user.chat_id, "type": "private", "first_name": user.first_name},
            "from": user.to_json(), "text": text})

    async def ask(text: str, expect: str) -> None:
        before = h.count(user)
        await user.send_text(text)
        tally.bad_inputs += 1
        await h.wait_text(user, expect, after=before, timeout=ANSWER_TIMEOUT_S)

    # "/imagine" alone asks for the description; a blank one is refused and the question stays.
    before = h.count(user)
    await user.send_text("/imagine")
    await h.wait_message(user, lambda m: m.from_bot, after=before)
    before = h.count(user)
    raw_text(PROMPTS["empty"])
    tally.bad_inputs += 1
    await h.wait_text(user, empty, after=before, timeout=ANSWER_TIMEOUT_S)
    await user.send_text("/cancel")
    await ask(PROMPTS["client-maximum-4096"], too_long_client)
    # 10 000 characters: more than a client may send.
    before = h.count(user)
    raw_text(PROMPTS["too-long-10000"])
    tally.bad_inputs += 1
    await h.wait_text(user, too_long, after=before, timeout=ANSWER_TIMEOUT_S)
    assert await job_records(h, [user]) == {}, "a refused prompt was queued"
    # The rest are fine prompts in odd clothes: drawn, and the caption shows them escaped.
    odd = ["only-emoji", "control-characters", "right-to-left", "html-markup"]
    if locale == "ru":
        odd = ["html-markup"]  # the same code path; the engine time goes to the English run
    for name in odd:
        await user.send_text(PROMPTS[name])
        tally.bad_inputs += 1
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while len(await job_records(h, [user])) < len(odd):  # accepted before they are accounted for
        assert time.monotonic() < deadline, "the bot did not queue every odd prompt"
        await asyncio.sleep(0.1)
    acc = await account(h, [user], tally)
    assert acc.accepted == len(odd)
    assert set(acc.statuses.values()) == {JobStatus.DONE.value}
    captions = [m.caption or "" for m in h.bot_messages(user) if m.kind == "photo"]
    if "html-markup" in odd:
        # The local Bot API parsed the caption as HTML (a broken one would have been a 400):
        # the user sees the markup as text.
        assert any("<script>alert(1)</script>" in c for c in captions), captions
    if "only-emoji" in odd:
        assert any("🐱🌈🚀" in c for c in captions), captions
