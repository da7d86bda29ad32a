"""The RQ job of a voice message: decode, transcribe, send the words back (or why there are none).

The bot stores the recording as a blob, writes the transcription record ``keys.voice(id)`` and
enqueues :func:`run_transcription` on the quick queue (contract.queue.QUICK_QUEUE, which every
worker serves first), so a voice message never waits behind generations. Exactly one TRANSCRIBED
event per transcription leaves here, whatever
happens (the record's status guards a second one); nothing is queued for generation: the user
confirms the words in the chat first.
"""

from __future__ import annotations

import logging
import time

import redis

from contract import keys
from contract.events import TranscribedEvent
from contract.language import TRANSCRIBE_FUNC, Transcription, TranscriptionError
from worker.jobs import current_context

log = logging.getLogger(__name__)

VOICE_DONE = "done"
"""The transcription record's status once its event is written."""

TRANSCRIBED_SCRIPT = """
-- KEYS[1] transcription record, KEYS[2] events stream; ARGV[1] stream maxlen, ARGV[2] event JSON,
-- ARGV[3] text, ARGV[4] language, ARGV[5] error
if redis.call('HGET', KEYS[1], 'status') == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'done', 'text', ARGV[3], 'language', ARGV[4], 'error', ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[2])
return 1
"""
"""The result and its event (stream field contract.events.STREAM_FIELD) in one step, once: a retried
or duplicated job sends nothing more."""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def run_transcription(transcription_id: str) -> str:
    """RQ entry point (contract.language.TRANSCRIBE_FUNC); returns "done", "missing" or "skipped"."""
    ctx = current_context(TRANSCRIBE_FUNC)
    conn = ctx.redis
    record = {_text(k): _text(v) for k, v in conn.hgetall(keys.voice(transcription_id)).items()}
    if not record:
        log.error("transcription %s (worker %s): no record; nothing to do", transcription_id, ctx.worker_name)
        return "missing"
    chat_id, user_id = int(record.get("chat_id") or 0), int(record.get("user_id") or 0)
    if record.get("status") == VOICE_DONE:
        return "skipped"
    started = time.perf_counter()
    language = ctx.language
    max_s = language.settings.voice_max_s if language is not None else 0
    result = Transcription(max_s=max_s, worker=ctx.worker_name)
    timings: dict[str, float] = {}
    try:
        from worker.language.transcribe import AudioRejected, decode_audio

        data = conn.get(record.get("blob", ""))
        if data is None:
            raise AudioRejected(TranscriptionError.EXPIRED, "the recording's blob is gone")
        if language is None:
            raise RuntimeError("this worker has no speech model loaded")
        audio = decode_audio(bytes(data), max_s)  # type: ignore[arg-type]
        timings["decode"] = round(time.perf_counter() - started, 4)
        heard = language.transcriber.transcribe(audio.samples)
        timings["transcribe"] = round(time.perf_counter() - started - timings["decode"], 4)
        result = result.model_copy(update={
            "text": heard.text, "language": heard.language, "duration_s": round(audio.duration_s, 3),
            "model": language.transcriber.model_id,
            "error": None if heard.text.strip() else TranscriptionError.EMPTY,
        })
    except AudioRejected as exc:
        log.info("transcription %s chat %s worker %s: refused (%s): %s", transcription_id, chat_id,
                 ctx.worker_name, exc.error, exc)
        result = result.model_copy(update={"error": exc.error})
    except Exception as exc:  # JobTimeoutException included: the user must hear back whatever failed
        log.exception("transcription %s chat %s worker %s: failed: %s", transcription_id, chat_id,
                      ctx.worker_name, exc)
        result = result.model_copy(update={"error": TranscriptionError.FAILED})
    timings["total"] = round(time.perf_counter() - started, 4)
    result = result.model_copy(update={"timings": timings})
    event = TranscribedEvent(job_id=transcription_id, chat_id=chat_id, user_id=user_id, transcription=result)
    try:
        sent = conn.eval(TRANSCRIBED_SCRIPT, 2, keys.voice(transcription_id), keys.EVENTS_STREAM,
                         keys.EVENTS_STREAM_MAXLEN, event.to_json(), result.text, result.language,
                         result.error.value if result.error else "")
        conn.delete(record.get("blob", ""))
    except redis.RedisError:
        log.exception("transcription %s chat %s worker %s: result not written", transcription_id, chat_id,
                      ctx.worker_name)
        raise
    outcome = result.error.value if result.error else f"{len(result.text)} chars"
    log.info("transcription %s chat %s worker %s: %s in %.2f s (%.1f s of audio)%s", transcription_id,
             chat_id, ctx.worker_name, outcome, timings["total"], result.duration_s,
             "" if sent else " (already done: no event sent)")
    return VOICE_DONE
