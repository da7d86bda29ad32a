"""The RQ job: run one generation request from its job record, report progress, deliver the result.

RQ calls :func:`run_job` with the job id only. Everything else comes from Redis: the job record
the bot wrote (spec, user, chat), the input blobs, the cancel flag. The resident engine, the Redis
connection and the worker's settings arrive through a ContextVar that the worker sets around each
job (see worker.runner), so nothing loads at import time and nothing travels through RQ's pickles.

Every way a job can end writes exactly one terminal event (contract.queue.FINISH_SCRIPT refuses a
second one): DONE, CANCELLED, or FAILED with a FailureReason the bot turns into a message.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from PIL import Image, UnidentifiedImageError
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from contract import keys
from contract.events import (
    CancelledEvent,
    DoneEvent,
    FailedEvent,
    Failure,
    FailureReason,
    FileKind,
    JobResult,
    Progress,
    ProgressEvent,
    ResultFile,
    TerminalEvent,
)
from contract.families import DEFAULT_FAMILY
from contract.language import PromptTranslation, TranslationStatus
from contract.queue import (
    DURATIONS_KEEP,
    FINISH_SCRIPT,
    STATUS_OF,
    TERMINAL_STATUSES,
    F,
    JobStatus,
    add_event,
    finish_args,
)
from contract.spec import JobSpec, SpecError
from worker.language.prompts import engine_spec, translate_prompts

if TYPE_CHECKING:
    from worker.config import WorkerSettings
    from worker.engine import Engine
    from worker.engine.preview import PreviewRender
    from worker.hooks import JobHooks, ProgressCallback
    from worker.language import Language
    from worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

MAX_INPUT_PIXELS = 4096 * 4096
"""The bot normalises inputs to at most 1024 px; anything far larger is not one of ours."""
ERROR_CHARS = 500
"""Operators get one readable line of an error in the record, not a traceback."""


@dataclass(frozen=True)
class WorkerContext:
    """What a job needs from the worker process that runs it."""

    engine: Engine
    redis: redis.Redis
    settings: WorkerSettings
    worker_name: str
    metrics: WorkerMetrics | None = None
    """Prometheus metrics of this process, when it serves them (HEALTH_PORT)."""
    hooks: JobHooks | None = None
    """WORKER_JOB_HOOKS (tests and benches only): called around each generation; None in production."""
    language: Language | None = None
    """Resident translation and speech models (worker.language); None: prompts reach the engine as
    typed (a spec's carried translation still applies) and voice messages cannot be transcribed."""


_context: ContextVar[WorkerContext] = ContextVar("kandinsky_worker_context")


@contextmanager
def bound(ctx: WorkerContext) -> Iterator[None]:
    """Make ``ctx`` visible to run_job for the duration of one job."""
    token = _context.set(ctx)
    try:
        yield
    finally:
        _context.reset(token)


class JobFailure(Exception):
    """A job that must not be retried: the reason goes to the user, the message to the logs."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def current_context(func: str = "worker.jobs.run_job") -> WorkerContext:
    """The worker process's context for the job RQ is running now (set by worker.runner)."""
    ctx = _context.get(None)
    if ctx is None:
        raise RuntimeError(
            f"{func} needs the resident engine: run it in worker.runner.KandinskyWorker "
            "(python -m worker), not in a plain RQ worker"
        )
    return ctx


def run_job(job_id: str) -> str:
    """RQ entry point; returns the job's final status (RQ keeps it briefly for dashboards)."""
    ctx = current_context()
    rq_job = get_current_job()
    retries_left = rq_job.retries_left if rq_job is not None else None
    return _JobRun(ctx, job_id, retries_left).run()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def finish(
    conn: redis.Redis, event: TerminalEvent, fields: dict[str, str | int | float] | None = None,
) -> bool:
    """Write the terminal status and its event once; False when the job had already ended."""
    key_args, argv = finish_args(event, fields)
    return bool(conn.eval(FINISH_SCRIPT, len(key_args), *key_args, *argv))


def fail_job(
    conn: redis.Redis, job_id: str, reason: FailureReason, message: str, worker_name: str,
    metrics: WorkerMetrics | None = None,
) -> bool:
    """FAILED event for a job known only by id (abandoned-job sweep, errors outside run_job)."""
    raw = conn.hmget(keys.job(job_id), [F.USER, F.CHAT, F.SPEC, F.STARTED])
    if raw[0] is None:
        log.error("job %s (worker %s): cannot report %s, job record is gone", job_id, worker_name, reason)
        return False
    user_id, chat_id = int(_text(raw[0])), int(_text(raw[1] or b"0"))
    event = FailedEvent(job_id=job_id, chat_id=chat_id, user_id=user_id,
                        failure=Failure(reason=reason, message=message))
    sent = finish(conn, event, {F.ERROR: message[:ERROR_CHARS], F.WORKER: worker_name})
    if sent:
        log.warning(
            "job %s chat %s worker %s: FAILED (%s): %s", job_id, chat_id, worker_name, reason, message
        )
        started = float(_text(raw[3])) if raw[3] else None
        duration = time.time() - started if started else None
        raw_spec = _text(raw[2] or b"")
        record_outcome(conn, metrics, job_id, spec_mode(raw_spec), JobStatus.FAILED, duration,
                       family=spec_family(raw_spec))
    return sent


def spec_timeout_s(raw_spec: str, base_s: int) -> int:
    """The time limit of a stored spec's job (its mode's description: an animation's grows with its
    frames); ``base_s`` for a spec that does not parse, which fails at once anyway."""
    try:
        return JobSpec.from_json(raw_spec).job_timeout_s(base_s)
    except ValueError:
        return base_s


def spec_mode(raw_spec: str) -> str:
    """The mode of a stored spec for statistics, even when the spec itself is refused."""
    try:
        mode = json.loads(raw_spec).get("mode")
    except (ValueError, AttributeError):
        return "unknown"
    return mode if isinstance(mode, str) and mode.isidentifier() else "unknown"


def spec_family(raw_spec: str) -> str:
    """The model family of a stored spec for statistics (specs from before families: 2.2's)."""
    try:
        family = json.loads(raw_spec).get("model", DEFAULT_FAMILY.value)
    except (ValueError, AttributeError):
        return "unknown"
    return family if isinstance(family, str) and family.isidentifier() else "unknown"


def record_outcome(
    conn: redis.Redis, metrics: WorkerMetrics | None, job_id: str, mode: str, status: JobStatus,
    duration_s: float | None, timings: dict[str, float] | None = None, family: str | None = None,
) -> None:
    """Job statistics for /stats and Prometheus; never fails the job (worker.metrics logs errors)."""
    from worker.metrics import record_job

    record_job(conn, mode, status.value, duration_s, timings=timings, metrics=metrics, job_id=job_id,
               family=family)


class _JobRun:
    def __init__(self, ctx: WorkerContext, job_id: str, retries_left: int | None) -> None:
        self.ctx = ctx
        self.conn = ctx.redis
        self.job_id = job_id
        self.retries_left = retries_left
        self.user_id = 0
        self.chat_id = 0
        self.mode = "unknown"
        self.family = "unknown"
        self.started = time.time()

    def _log(self, level: int, msg: str, *args: Any) -> None:
        log.log(
            level, "job %s chat %s worker %s: " + msg, self.job_id, self.chat_id, self.ctx.worker_name, *args
        )

    def run(self) -> str:
        record = {_text(k): _text(v) for k, v in self.conn.hgetall(keys.job(self.job_id)).items()}
        if not record:
            self._log(logging.ERROR, "no job record (expired or never written); nothing to run or report")
            return "missing"
        self.user_id = int(record.get(F.USER) or 0)
        self.chat_id = int(record.get(F.CHAT) or 0)
        self.mode = spec_mode(record.get(F.SPEC, ""))
        self.family = spec_family(record.get(F.SPEC, ""))
        status = record.get(F.STATUS, "")
        if status in TERMINAL_STATUSES:
            self._log(logging.INFO, "already %s; skipping", status)
            return status
        if self.conn.exists(keys.cancel_flag(self.job_id)):
            self._finish(CancelledEvent(job_id=self.job_id, chat_id=self.chat_id, user_id=self.user_id))
            self._log(logging.INFO, "cancelled before it started")
            return JobStatus.CANCELLED.value
        started = self.started = time.time()
        attempt = self._mark_running(record, started)
        try:
            return self._generate(record, started)
        except JobFailure as exc:
            self._fail(exc.reason, str(exc))
            return JobStatus.FAILED.value
        except JobTimeoutException:
            self._fail(FailureReason.TIMEOUT, f"job ran longer than its timeout (attempt {attempt})")
            return JobStatus.FAILED.value
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if self._final_attempt(attempt):
                self._fail(FailureReason.ENGINE_ERROR, f"{message} (attempt {attempt}, no retries left)")
            else:
                self.conn.hset(
                    keys.job(self.job_id), mapping={F.STATUS: JobStatus.QUEUED.value, F.ERROR: message}
                )
                self._log(logging.WARNING, "engine error on attempt %d, will retry: %s", attempt, message)
            raise  # RQ records the traceback and re-queues while retries remain

    def _final_attempt(self, attempt: int) -> bool:
        return not self.retries_left or attempt > self.ctx.settings.max_retries

    def _mark_running(self, record: dict[str, str], started: float) -> int:
        key = keys.job(self.job_id)
        with self.conn.pipeline() as pipe:
            pipe.hincrby(key, F.ATTEMPTS, 1)
            pipe.hset(key, mapping={F.STATUS: JobStatus.RUNNING.value, F.STARTED: started,
                                    F.WORKER: self.ctx.worker_name})
            pipe.expire(key, keys.JOB_RECORD_TTL)
            attempt = int(pipe.execute()[0])
        created = float(record.get(F.CREATED) or 0)
        if attempt == 1 and created:
            with self.conn.pipeline(transaction=False) as pipe:
                pipe.lpush(keys.WAIT_TIMES, round(started - created, 4))
                pipe.ltrim(keys.WAIT_TIMES, 0, DURATIONS_KEEP - 1)
                pipe.expire(keys.WAIT_TIMES, keys.DURATIONS_TTL)
                pipe.execute()
        self._log(logging.INFO, "started (attempt %d)", attempt)
        return attempt

    def _generate(self, record: dict[str, str], started: float) -> str:
        from worker.engine import InputRejected, JobCancelled, encode_images
        from worker.engine.base import StyleUnavailable
        from worker.engine.editing import RegionNotFound

        try:
            spec = JobSpec.from_json(record.get(F.SPEC, ""))
        except SpecError as exc:
            raise JobFailure(FailureReason.BAD_SPEC, str(exc)) from None
        images = [self._load_image(key, "RGB") for key in spec.inputs]
        translation, translate_s = self._translate(spec, record)
        mask = self._load_image(spec.mask, "L") if spec.mask else None
        hooks = self.ctx.hooks
        settings = self.ctx.settings
        with ProgressPublisher(
            self.conn, spec, self.ctx.worker_name,
            throttle_s=settings.progress_throttle_s,
            cancel_poll_s=settings.cancel_poll_s,
            preview_interval_s=settings.preview_interval_s if settings.preview_every_steps else None,
        ) as progress:
            on_progress: ProgressCallback = progress.on_progress
            if hooks is not None:
                hooks.before_generate(spec)
                on_progress = hooks.wrap_progress(spec, on_progress)
            try:
                out = self.ctx.engine.generate(
                    engine_spec(spec, translation), images=images, mask=mask, on_progress=on_progress,
                    should_cancel=progress.should_cancel, on_preview=progress.on_preview,
                    preview_every=settings.preview_every_steps,
                )
            except JobCancelled:
                out = None
            except RegionNotFound as exc:  # an edit by words whose region is not in the picture
                raise JobFailure(FailureReason.REGION_NOT_FOUND, str(exc)) from None
            except StyleUnavailable as exc:  # a LoRA style this worker does not hold
                raise JobFailure(FailureReason.STYLE_UNAVAILABLE, str(exc)) from None
            except InputRejected as exc:  # only the engine's own checks: anything else is retried
                raise JobFailure(FailureReason.BAD_INPUT, f"engine refused the inputs: {exc}") from None
        # The publisher has flushed its last progress: the terminal event comes after it.
        if out is None:
            self._finish(CancelledEvent(job_id=self.job_id, chat_id=self.chat_id, user_id=self.user_id))
            self._log(logging.INFO, "cancelled while running")
            return JobStatus.CANCELLED.value
        encode_started = time.perf_counter()
        encoded = encode_images(out, spec.mode, self.ctx.settings.result_format.upper())
        encode_s = time.perf_counter() - encode_started
        files = []
        with self.conn.pipeline(transaction=False) as pipe:
            for index, item in enumerate(encoded):
                fmt = item.format.lower()
                key = keys.result(self.job_id, index, fmt)
                pipe.set(key, item.data, ex=keys.RESULT_TTL)
                files.append(ResultFile(key=key, format=fmt, width=item.width, height=item.height,
                                        kind=item.kind, index=item.index))
            video = out.video
            if video is not None:  # an animation or a video: its MP4 (encoded by the engine) is the result
                key = keys.result(self.job_id, 0, video.format)
                pipe.set(key, video.data, ex=keys.RESULT_TTL)
                files.append(ResultFile(key=key, format=video.format, width=video.width, height=video.height,
                                        kind=FileKind.motion(spec.output), index=0))
            pipe.execute()
        elapsed = time.time() - started
        # The engine's own stages (and its "total"), then what the worker added around them.
        timings = {
            **{k: float(v) for k, v in out.timings.items()},
            "translate": round(translate_s, 4),
            "encode": round(encode_s, 4),
            "job": round(elapsed, 4),
            "queue_wait": round(max(0.0, started - float(record.get(F.CREATED) or started)), 4),
        }
        result = JobResult(
            job_id=self.job_id, seed=int(out.seeds[0]) if out.seeds else spec.seed,
            seeds=[int(s) for s in out.seeds], files=files, timings=timings,
            model_ids=dict(out.model_ids), worker=self.ctx.worker_name, translation=translation,
            prompt_truncated=out.prompt_truncated,
        )
        # Recorded before the event: the bot's next estimate of the wait already counts this job.
        with self.conn.pipeline(transaction=False) as pipe:
            pipe.lpush(keys.DURATIONS, round(elapsed, 4))
            pipe.ltrim(keys.DURATIONS, 0, DURATIONS_KEEP - 1)
            pipe.expire(keys.DURATIONS, keys.DURATIONS_TTL)
            pipe.execute()
        sent = self._finish(
            DoneEvent(job_id=self.job_id, chat_id=self.chat_id, user_id=self.user_id, result=result),
            timings=dict(out.timings),
        )
        late = "" if sent else " (it had already ended: no event sent)"
        self._log(logging.INFO, "done in %.2f s, %d file(s)%s", elapsed, len(files), late)
        return JobStatus.DONE.value

    def _translate(self, spec: JobSpec, record: dict[str, str]) -> tuple[PromptTranslation, float]:
        """What the model reads for the prompt fields (worker.language), stored in the job record
        before the engine runs; an earlier attempt's translation is reused, so a retry reads the same."""
        started = time.perf_counter()
        stored = None
        if record.get(F.TRANSLATION):
            with contextlib.suppress(ValueError):
                stored = PromptTranslation.model_validate_json(record[F.TRANSLATION])
        language = self.ctx.language
        if language is not None:
            translation = language.translate_prompts(spec, stored)
        else:
            translation = translate_prompts(spec, None, enabled=False, stored=stored)
        self.conn.hset(keys.job(self.job_id), F.TRANSLATION, translation.model_dump_json())
        elapsed = time.perf_counter() - started
        for t in translation.fields():
            if t.status is not TranslationStatus.ENGLISH:
                self._log(logging.INFO, "prompt in %s: %s (%.3f s)", t.language, t.status.value, elapsed)
        return translation, elapsed

    def _load_image(self, key: str, mode: str) -> Image.Image:
        data = self.conn.get(key)
        if data is None:
            raise JobFailure(FailureReason.INPUT_EXPIRED, f"input {key} is gone (its TTL expired)")
        try:
            image = Image.open(io.BytesIO(bytes(data)))  # type: ignore[arg-type]
            if image.width * image.height > MAX_INPUT_PIXELS:
                raise JobFailure(FailureReason.BAD_INPUT, f"input {key} is {image.width}x{image.height}")
            image.load()
            return image.convert(mode)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise JobFailure(FailureReason.BAD_INPUT, f"input {key} is not a readable image: {exc}") from None

    def _finish(
        self, event: TerminalEvent, fields: dict[str, str | int | float] | None = None,
        timings: dict[str, float] | None = None,
    ) -> bool:
        sent = finish(self.conn, event, {F.WORKER: self.ctx.worker_name, **(fields or {})})
        if sent:
            duration = time.time() - self.started
            status = STATUS_OF[event.type]
            record_outcome(self.conn, self.ctx.metrics, self.job_id, self.mode, status, duration, timings,
                           family=self.family)
        return sent

    def _fail(self, reason: FailureReason, message: str) -> None:
        self._finish(
            FailedEvent(job_id=self.job_id, chat_id=self.chat_id, user_id=self.user_id,
                        failure=Failure(reason=reason, message=message)),
            {F.ERROR: message[:ERROR_CHARS]},
        )
        self._log(logging.INFO if reason.users_input else logging.WARNING, "FAILED (%s): %s", reason, message)


class ProgressPublisher:
    """Publishes step progress and watches for a cancel request, from a side thread.

    The step loop only stores the latest (stage, step, total) and sets an event: no Redis call,
    no lock held across I/O, so publishing cannot slow the denoising loop. The thread coalesces
    updates that arrive faster than the throttle; events leave in step order.

    Live previews (``preview_interval_s`` set): the engine offers a render every few steps; it is
    taken at most once per interval (a declined offer costs the device nothing), kept as raw pixels,
    and the side thread encodes it, stores it under ``keys.preview`` and names it in the next event.
    """

    def __init__(
        self, conn: redis.Redis, spec: JobSpec, worker_name: str, *, throttle_s: float, cancel_poll_s: float,
        preview_interval_s: float | None = None,
    ) -> None:
        self._conn = conn
        self._spec = spec
        self._worker = worker_name
        self._throttle_s = throttle_s
        self._cancel_poll_s = cancel_poll_s
        self._latest: tuple[str, int, int] | None = None
        self._version = 0
        self._preview_interval_s = preview_interval_s
        self._preview_taken_at = -float("inf")
        self._preview: Any = None
        """The newest preview not yet published: set by the step thread, taken by the side thread."""
        self.previews = 0
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-{spec.job_id}", daemon=True)
        self.published = 0

    def __enter__(self) -> ProgressPublisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._wake.set()
        self._thread.join()

    def on_progress(self, stage: str, step: int, total: int) -> None:
        self._latest = (stage, step, total)
        self._version += 1
        self._wake.set()

    def should_cancel(self) -> bool:
        return self._cancelled.is_set()

    def on_preview(self, stage: str, step: int, total: int, render: PreviewRender) -> None:
        """The engine's offer of a preview at this step: rendered only when the interval has passed."""
        if self._preview_interval_s is None:
            return
        now = time.monotonic()
        if now - self._preview_taken_at < self._preview_interval_s:
            return
        self._preview_taken_at = now
        self._preview = render()
        self._wake.set()

    def _loop(self) -> None:
        seen = 0
        last_publish = 0.0
        last_poll = 0.0
        while not self._closed.is_set():
            self._wake.wait(timeout=self._cancel_poll_s)
            self._wake.clear()
            now = time.monotonic()
            try:
                if now - last_poll >= self._cancel_poll_s:
                    last_poll = now
                    if self._conn.exists(keys.cancel_flag(self._spec.job_id)):
                        self._cancelled.set()
                latest, version = self._latest, self._version
                if latest is not None and version != seen:
                    wait = self._throttle_s - (now - last_publish)
                    if wait > 0 and self._closed.wait(timeout=wait):
                        break
                    latest, version = self._latest, self._version
                    assert latest is not None
                    self._publish(*latest)
                    seen, last_publish = version, time.monotonic()
            except redis.RedisError as exc:  # progress is best effort; the job goes on
                log.warning("job %s chat %s worker %s: progress not published: %s",
                            self._spec.job_id, self._spec.chat_id, self._worker, exc)
        latest = self._latest
        if latest is not None and self._version != seen:
            # The last step always goes out, so the status message ends at 100 %.
            try:
                self._publish(*latest)
            except redis.RedisError as exc:
                log.warning("job %s chat %s worker %s: progress not published: %s",
                            self._spec.job_id, self._spec.chat_id, self._worker, exc)

    def _publish(self, stage: str, step: int, total: int) -> None:
        from worker.engine.preview import preview_jpeg

        self.published += 1
        spec = self._spec
        pixels, self._preview = self._preview, None
        preview_key = keys.preview(spec.job_id) if pixels is not None else None
        progress = Progress(stage=stage, step=step, total=total, seq=self.published, worker=self._worker,
                            preview=preview_key)
        event = ProgressEvent(job_id=spec.job_id, chat_id=spec.chat_id, user_id=spec.user_id,
                              progress=progress)
        with self._conn.pipeline(transaction=False) as pipe:
            if preview_key is not None:
                pipe.set(preview_key, preview_jpeg(pixels), ex=keys.PREVIEW_TTL)
                self.previews += 1
            pipe.set(keys.progress(spec.job_id), progress.model_dump_json(exclude_none=True),
                     ex=keys.PROGRESS_TTL)
            add_event(pipe, event)
            pipe.execute()
