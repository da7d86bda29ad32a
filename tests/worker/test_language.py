"""The worker's language models on the tiny bundle: script detection, translation of prompt fields
(equal to plain transformers on the same inputs), audio decoding with its refusals, and Whisper
transcription equal to transformers' speech-recognition pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

from contract import keys
from contract.events import TranscribedEvent, parse_event
from contract.language import PromptTranslation, TranscriptionError, Translation, TranslationStatus
from contract.spec import JobSpec, Mode, Style
from devkit.audio import make_voice, ogg_opus_duration
from worker.config import WorkerSettings
from worker.jobs import WorkerContext, bound
from worker.language import Language, LanguageSettings, engine_spec, translate_prompts
from worker.language.detect import detect_language
from worker.language.jobs import run_transcription
from worker.language.transcribe import SAMPLE_RATE, AudioRejected, decode_audio

RU = "рыжая лиса в заснеженном лесу"


@pytest.fixture(scope="module")
def language(tiny_bundle: Path) -> Language:
    return Language.load(LanguageSettings(model_dir=tiny_bundle, device="cpu", dtype="float32"))


def spec(prompt: str, negative: str = "", **kw: Any) -> JobSpec:
    return JobSpec(mode=kw.pop("mode", Mode.TEXT2IMAGE), prompt=prompt, negative_prompt=negative,
                   width=512, height=512, **kw)


@pytest.mark.parametrize(("text", "language"), [
    ("a red fox in a snowy forest", "en"),
    ("Pokémon café, naïve art by Dürer", "en"),
    (RU, "ru"),
    ("кот в стиле Van Gogh, oil painting", "ru"),
    ("ёжик в тумане", "ru"),
    ("їжак у тумані", "uk"),
    ("кіт на даху", "uk"),
    ("вожык у тумане, ўсход", "be"),
    ("ђак у школи", "sr"),
    ("қызыл түлкі", "kk"),
    ("猫が屋根の上に座っている", "ja"),
    ("屋顶上的猫", "zh"),
    ("고양이", "ko"),
    ("γάτα στη στέγη", "el"),
    ("a π symbol", "en"),
    ("1234 !!! 🙂", "und"),
])
def test_detect_language_by_script(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_translator_equals_plain_transformers(language: Language, tiny_bundle: Path) -> None:
    """The same checkpoint through the model card's recipe (tokenizer → generate → decode)."""
    assert language.translator is not None
    texts = [RU, "красный кот"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_bundle / "translate")
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_bundle / "translate").eval()
    with torch.no_grad():
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        out = model.generate(**batch, **language.translator.generate_kwargs())
    reference = tokenizer.batch_decode(out, skip_special_tokens=True)
    assert language.translator.translate(texts) == [" ".join(r.split()) for r in reference]
    assert all(t.strip() for t in reference)


def test_russian_prompt_and_negative_are_translated_in_one_batch(language: Language) -> None:
    job = spec(RU, "размытое фото", style=Style.ANIME)
    assert language.translator is not None
    expected = language.translator.translate([RU, "размытое фото"])
    got = language.translate_prompts(job)
    assert got.prompt == Translation(source=RU, text=expected[0], language="ru",
                                     status=TranslationStatus.TRANSLATED, model=language.translator.model_id)
    assert got.negative_prompt is not None and got.negative_prompt.text == expected[1]
    assert got.translated and not got.unsupported_languages
    engine = engine_spec(job, got)
    assert engine.prompt == expected[0] and engine.negative_prompt == expected[1]
    # The style suffix stays English, after the translation.
    assert engine.effective_prompt.endswith("studio ghibli, detailed illustration")
    assert job.prompt == RU  # the user's spec keeps the user's words


@pytest.mark.parametrize("mode", [Mode.STICKER, Mode.BLEND, Mode.DEPTH])
def test_every_prompt_mode_is_translated(language: Language, mode: Mode) -> None:
    kw: dict[str, Any] = {"inputs": ("kb:blob:x",)} if mode is not Mode.STICKER else {}
    if mode is Mode.BLEND:
        kw["weights"] = (0.5, 0.5)
    got = language.translate_prompts(spec(RU, mode=mode, **kw))
    assert got.prompt is not None and got.prompt.status is TranslationStatus.TRANSLATED


def test_english_prompt_is_untouched(language: Language) -> None:
    job = spec("a red fox in a snowy forest", "blurry")
    got = language.translate_prompts(job)
    assert got.prompt == Translation(source=job.prompt, text=job.prompt, language="en",
                                     status=TranslationStatus.ENGLISH)
    assert not got.translated
    assert engine_spec(job, got) == job


def test_a_language_the_model_cannot_read_passes_through(language: Language) -> None:
    got = language.translate_prompts(spec("їжак у тумані"))
    assert got.prompt is not None and got.prompt.status is TranslationStatus.UNSUPPORTED
    assert got.prompt.text == "їжак у тумані"
    assert got.unsupported_languages == ["uk"]


def test_translation_off_passes_prompts_as_typed() -> None:
    got = translate_prompts(spec(RU), None, enabled=False)
    assert got.prompt is not None and got.prompt.status is TranslationStatus.OFF and got.prompt.text == RU


def test_a_carried_translation_is_reused_for_the_same_text_only() -> None:
    carried = PromptTranslation(
        prompt=Translation(source=RU, text="a ginger fox", language="ru",
                           status=TranslationStatus.TRANSLATED),
        negative_prompt=Translation(source="старое", text="old", language="ru",
                                    status=TranslationStatus.TRANSLATED))
    # No model at all: the prompt's translation comes from the spec, the changed negative cannot.
    got = translate_prompts(spec(RU, "новое", translation=carried), None, enabled=True)
    assert got.prompt is not None and got.prompt.text == "a ginger fox"
    assert got.negative_prompt is not None and got.negative_prompt.status is TranslationStatus.OFF
    # The record's copy (an earlier attempt) counts as well.
    again = translate_prompts(spec(RU), None, enabled=True, stored=carried)
    assert again.prompt == carried.prompt


def test_old_specs_without_translation_still_parse() -> None:
    raw = json.loads(spec("a cat").to_json())
    raw.pop("translation")
    assert JobSpec.from_json(json.dumps(raw)).translation is None


def test_voice_audio_decodes_to_16k_mono() -> None:
    data = make_voice(2.5)
    assert ogg_opus_duration(data) == pytest.approx(2.5, abs=0.02)
    audio = decode_audio(data, max_s=60)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.duration_s == pytest.approx(2.5, abs=0.05)
    assert decode_audio(make_voice(1.5, fmt="m4a"), max_s=60).duration_s == pytest.approx(1.5, abs=0.1)


@pytest.mark.parametrize(("data", "error"), [
    (b"", TranscriptionError.EMPTY),
    (b"OggS" + b"\0" * 200, TranscriptionError.UNDECODABLE),
    (b"definitely not audio" * 50, TranscriptionError.UNDECODABLE),
    ("silence", TranscriptionError.EMPTY),
    ("long", TranscriptionError.TOO_LONG),
])
def test_bad_audio_is_refused(data: bytes | str, error: TranscriptionError) -> None:
    if data == "silence":
        data = make_voice(2, "silence")
    elif data == "long":
        data = make_voice(4)
    with pytest.raises(AudioRejected) as caught:
        decode_audio(data, max_s=3)  # type: ignore[arg-type]
    assert caught.value.error is error


def test_transcriber_equals_the_speech_pipeline(language: Language) -> None:
    """transformers' own automatic-speech-recognition pipeline, same checkpoint, same samples."""
    samples = decode_audio(make_voice(3), max_s=60).samples
    t = language.transcriber
    asr = pipeline("automatic-speech-recognition", model=t.model, tokenizer=t.processor.tokenizer,
                   feature_extractor=t.processor.feature_extractor)
    reference = asr(samples, generate_kwargs=t.generate_kwargs(), return_language=True)
    heard = t.transcribe(samples)
    assert heard.text == reference["text"].strip() and heard.text
    assert heard.language == reference["chunks"][0]["language"][:2]  # "english" -> "en"


def test_recordings_over_one_window_are_transcribed_whole(language: Language) -> None:
    samples = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE * 35).astype(np.float32)
    one = language.transcriber.transcribe(samples[: SAMPLE_RATE * 30]).text
    whole = language.transcriber.transcribe(samples).text
    assert whole.startswith(one) and len(whole) > len(one)


def _transcribe_via_job(language: Language, conn: redis.Redis, audio: bytes | None) -> TranscribedEvent:
    tid = f"vtest{time.monotonic_ns()}"
    blob = keys.blob(tid)
    if audio is not None:
        conn.set(blob, audio)
    conn.hset(keys.voice(tid), mapping={"user_id": 7, "chat_id": 8, "blob": blob, "status": "queued"})
    ctx = WorkerContext(engine=None, redis=conn, settings=WorkerSettings(name="lang-test"),  # type: ignore[arg-type]
                        worker_name="lang-test", language=language)
    with bound(ctx):
        assert run_transcription(tid) == "done"
        assert run_transcription(tid) == "skipped"  # a second run sends nothing
    entries = conn.xrange(keys.EVENTS_STREAM)
    events = [e for e in (parse_event(f) for _, f in entries) if e.job_id == tid]
    assert len(events) == 1 and isinstance(events[0], TranscribedEvent)
    assert not conn.exists(blob)
    return events[0]


def test_transcription_job_sends_one_event(language: Language, redis_client: redis.Redis) -> None:
    event = _transcribe_via_job(language, redis_client, make_voice(2))
    heard = event.transcription
    assert heard.error is None and heard.text and heard.duration_s == pytest.approx(2, abs=0.05)
    assert (event.chat_id, event.user_id) == (8, 7)
    assert redis_client.hget(keys.voice(event.job_id), "text") == heard.text.encode()
    assert set(heard.timings) == {"decode", "transcribe", "total"}


@pytest.mark.parametrize(("audio", "error"), [
    (None, TranscriptionError.EXPIRED),
    (b"not audio at all" * 10, TranscriptionError.UNDECODABLE),
    ("silence", TranscriptionError.EMPTY),
    ("long", TranscriptionError.TOO_LONG),
])
def test_transcription_job_refusals(language: Language, redis_client: redis.Redis, audio: bytes | str | None,
                                    error: TranscriptionError) -> None:
    if audio == "silence":
        audio = make_voice(1, "silence")
    elif audio == "long":
        audio = make_voice(language.settings.voice_max_s + 1)
    event = _transcribe_via_job(language, redis_client, audio)  # type: ignore[arg-type]
    assert event.transcription.error is error and event.transcription.text == ""


def test_whispers_own_deprecation_notice_is_dropped_and_other_notices_are_not() -> None:
    """Every transcription makes transformers warn about arguments its Whisper code passes itself
    (worker/notices.py): the operator's log must not fill with it, but keeps every other warning."""
    import logging

    from worker.notices import GENERATION_LOGGER, quiet_library_notices

    quiet_library_notices()
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger(GENERATION_LOGGER)
    handler = Keep()
    logger.addHandler(handler)
    try:
        orders = ("{'begin_suppress_tokens', 'suppress_tokens'}",
                  "{'suppress_tokens', 'begin_suppress_tokens'}")
        for arguments in orders:  # a set, printed in either order
            logger.warning("Passing `generation_config` together with generation-related "
                           f"arguments=({arguments}) is deprecated")
        logger.warning("Setting `pad_token_id` to `eos_token_id`")
    finally:
        logger.removeHandler(handler)
    assert seen == ["Setting `pad_token_id` to `eos_token_id`"]
