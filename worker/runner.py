"""``python -m worker``: an RQ worker that keeps the engine resident on the GPU.

RQ's default Worker forks a work horse per job, which would reload every model and breaks CUDA
after fork. KandinskyWorker runs jobs in its own process (SimpleWorker) and puts back what the
fork gave: heartbeats while a long job runs (from a side thread), RQ's job timeout (SIGALRM death
penalty in the main thread), warm shutdown on SIGTERM (the current job finishes first), and a
short sweep for jobs abandoned by a dead worker (SIGKILL, OOM) so they are re-queued within
seconds, or reported as FAILED(WORKER_LOST) once their retries are spent.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import redis
from pydantic import ValidationError
from rq import Queue, SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry, clean_registries
from rq.timeouts import JobTimeoutException
from rq.utils import now, utcparse
from rq.worker import WorkerStatus
from rq.worker_registration import clean_worker_registry

from contract import keys, redisconn
from contract.events import FailureReason
from contract.queue import F, JobStatus
from worker.config import WorkerSettings
from worker.hooks import HooksError, JobHooks, load_job_hooks
from worker.jobs import WorkerContext, bound, fail_job, spec_timeout_s

if TYPE_CHECKING:
    from worker.engine import Engine
    from worker.language import Language
    from worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

MAINTENANCE_LOCK_TTL_S = 30
"""One worker sweeps a queue at a time; if it dies mid-sweep another takes over after this
(RQ's own lock lasts 15 minutes, which would stall recovery after exactly the crash it is for)."""
IDLE_WORKER_TTL_S = 30
"""An idle worker's registration outlives its last heartbeat by this (RQ adds 60 s): a killed
worker drops out of /workers and of the bot's wait estimate in about a minute and a half, not RQ's eight."""
NAME_TAKEOVER_WAIT_BEATS = 2
"""A restarted worker (same name, e.g. a container's host.1) waits at most this many abandon
periods for its killed predecessor's registration to go stale; a live namesake is an error."""
NAME_TAKEOVER_POLL_S = 1.0
"""How often a restarted worker looks again at its namesake's last heartbeat."""
REDIS_RETRY_PAUSE_S = 1.0
"""Pause between tries while Redis is away: a restart takes about a second, a failover a few."""
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""What RQ's loop would quit on (outside its dequeue) while Redis restarts or fails over."""
EXIT_BAD_HOOKS = 2
"""Exit status when WORKER_JOB_HOOKS cannot be loaded (as for a usage error: a restart won't help)."""
EXIT_BAD_SETTINGS = 2
"""Exit status for settings or model folders that cannot work (an unknown family, a family folder
missing a file, a queue of a family not held): a restart won't help either."""
STOP_CHECK_S = 1
"""An idle worker's longest single wait on its queues (one BLPOP): it sees a stop request within this,
so ``docker stop`` or a restart does not wait out the maintenance interval."""
PUBSUB_STOP_TIMEOUT_S = 2.0
"""How long a stopping worker waits for RQ's pubsub thread (commands like ``rq suspend``). redis-py
joins it with no bound, and a thread that saw the unsubscribe first sleeps out RQ's 60 s wait for a
new subscription: the stop took a minute. The daemon thread ends with the process."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class KandinskyWorker(SimpleWorker):
    """A non-forking RQ worker bound to one resident engine."""

    def __init__(
        self,
        queues: list[str] | tuple[str, ...],
        *,
        connection: redis.Redis,
        settings: WorkerSettings,
        engine: Engine,
        metrics: WorkerMetrics | None = None,
        hooks: JobHooks | None = None,
        language: Language | None = None,
        on_started: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings  # RQ's __init__ already reads dequeue_timeout
        super().__init__(
            list(queues),
            name=settings.name,
            connection=connection,
            maintenance_interval=settings.maintenance_interval_s,
            job_monitoring_interval=settings.heartbeat_interval_s,
            worker_ttl=IDLE_WORKER_TTL_S,
            **kwargs,
        )
        self.engine = engine
        self.metrics = metrics
        self.on_started = on_started
        """Called once the worker is registered with RQ and listening (the health endpoint's "ready")."""
        self._stranded_seen: dict[str, dict[str, float]] = {}
        """Per queue: job id -> when this worker first saw it stranded (see _requeue_stranded)."""
        self.hooks = hooks
        self.language = language
        self.log_result_lifespan = False
        self.log_job_description = False
        self.push_exc_handler(self._on_job_exception)

    # --- registration -----------------------------------------------------------------------

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """RQ's, then ``on_started``: a worker is healthy once it is registered and listening, not as
        soon as its engine is loaded (Redis stopped in between ended a worker that said it was ready)."""
        super().bootstrap(*args, **kwargs)
        if self.on_started is not None:
            self.on_started()

    def register_birth(self) -> None:
        """Take over the name from a predecessor that was killed (its registration lingers and RQ
        would refuse to start), but never from a worker that is still heartbeating."""
        deadline = time.monotonic() + NAME_TAKEOVER_WAIT_BEATS * self.settings.abandon_after_s
        while True:
            raw = self.connection.hmget(self.key, ["death", "last_heartbeat"])
            death, beat = raw[0], raw[1]
            if death is not None or beat is None:
                break  # no registration, or a clean death: RQ takes it from here
            beat_text = beat.decode() if isinstance(beat, bytes) else beat
            age = (now() - utcparse(beat_text)).total_seconds()
            if age > self.settings.abandon_after_s:
                log.warning("worker %s: taking over the name from a worker silent for %.0f s",
                            self.name, age)
                self.connection.hset(self.key, "death", now().isoformat())
                break
            if time.monotonic() > deadline:
                break  # still alive: RQ refuses with its own clear error
            time.sleep(NAME_TAKEOVER_POLL_S)
        super().register_birth()

    # --- timing -----------------------------------------------------------------------------

    @property
    def dequeue_timeout(self) -> int:
        """Short idle waits: a stop request is seen within STOP_CHECK_S, and the sweep for abandoned
        jobs (RQ's maintenance, at its own interval) is never late."""
        return min(STOP_CHECK_S, self.settings.maintenance_interval_s)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """How long a started job stays ours without a heartbeat: short, the heartbeat thread renews it."""
        return self.settings.abandon_after_s

    # --- stopping ---------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """SIGTERM/SIGINT: only ask the loop to stop; it stops at its next safe point.

        RQ raises StopRequested from inside the signal handler when the worker is not busy, at
        whatever line the signal interrupted. Between BLPOP taking a job off its queue and the job
        entering the started registry (a few Redis round trips, just after a job ends and the next
        is waiting) that lost the job: in no queue, in no registry, QUEUED forever (the intermittent
        failure of the SIGTERM scenario in tests/reliability). Now a busy worker finishes its job
        and an idle one returns from its dequeue wait (at most STOP_CHECK_S), putting back a
        job it took after the signal."""
        self._stop_requested = True
        log.info("worker %s: stop requested; stopping after the current job (if any)", self.name)

    def unsubscribe(self) -> None:
        """RQ's, with the wait for its pubsub thread bounded (PUBSUB_STOP_TIMEOUT_S)."""
        if self.pubsub_thread is None or self.pubsub is None:
            return
        log.info("worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        self.pubsub.unsubscribe()
        self.pubsub_thread.stop(timeout=PUBSUB_STOP_TIMEOUT_S)
        self.pubsub.close()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None,
                                     max_idle_time: int | None = None) -> tuple[Job, Queue] | None:
        """RQ's dequeue, one wait at a time so a stop request is seen between waits; a job taken
        after the stop was asked for goes back to the front of its queue for another worker."""
        if timeout is None or max_idle_time is not None:  # burst mode, or an idle limit: RQ's loop
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        else:
            result = None
            while result is None and not self._stop_requested:
                try:
                    result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time=timeout)
                except REDIS_DOWN as exc:
                    # RQ marks the worker idle before its reconnecting wait, outside it: a Redis
                    # restart at the start of a wait ended the worker. A job Redis moved for this
                    # worker before the error is put back by the stranded-job sweep.
                    log.warning("worker %s: Redis unavailable (%s); retrying in %.0f s", self.name, exc,
                                REDIS_RETRY_PAUSE_S)
                    time.sleep(REDIS_RETRY_PAUSE_S)
        if result is not None and self._stop_requested:
            job, queue = result
            queue.push_job_id(job.id, at_front=True)
            log.info("job %s worker %s: taken as the stop came; put back first in %s", job.id,
                     self.name, queue.name)
            return None
        return result

    # --- running a job ----------------------------------------------------------------------

    def _job_timeout_s(self, job_id: str) -> int:
        """The job's time limit, from its record's spec; a still job's when there is no readable record."""
        base = self.settings.job_timeout_s
        try:
            raw = self.connection.hget(keys.job(job_id), F.SPEC)
        except REDIS_DOWN:
            return base
        return spec_timeout_s(raw.decode() if isinstance(raw, bytes) else str(raw), base) if raw else base

    def execute_job(self, job: Job, queue: Queue) -> None:
        cap = self._job_timeout_s(job.id)
        if not job.timeout or job.timeout < 0 or job.timeout > cap:
            job.timeout = cap
        execution = self.prepare_execution(job)
        beat = _Heartbeat(self, job, execution)
        beat.start()
        ctx = WorkerContext(engine=self.engine, redis=self.connection, settings=self.settings,
                            worker_name=self.name, metrics=self.metrics, hooks=self.hooks,
                            language=self.language)
        try:
            with bound(ctx):
                self.perform_job(job, queue, execution)
            self.set_state(WorkerStatus.IDLE)
        except REDIS_DOWN as exc:
            # Redis went away as the job ended, so neither its result nor its failure could be
            # recorded. The worker must not die for that: the job stays in the started registry and
            # the abandoned-job sweep re-queues it once Redis is back; the dequeue loop waits for it.
            log.warning("job %s worker %s: Redis unavailable as the job ended (%s); it will be re-queued",
                        job.id, self.name, exc)
        finally:
            beat.stop()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's loop beats right after each job; with Redis away that must not end the process (the
        next dequeue waits for Redis and reconnects)."""
        try:
            super().heartbeat(timeout, pipeline)
        except REDIS_DOWN as exc:
            log.warning("worker %s: heartbeat failed, Redis unavailable (%s)", self.name, exc)

    def _on_job_exception(
        self, job: Job, exc_type: type[BaseException] | None, exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Turn an RQ-level failure into a FAILED event once no retry will follow."""
        abandoned = exc_type is not None and issubclass(exc_type, AbandonedJobError)
        if job.should_retry:
            if abandoned:
                log.warning("job %s worker %s: its worker was lost; re-queued (%s retries left)",
                            job.id, self.name, job.retries_left)
                self.connection.hset(keys.job(job.id), F.STATUS, JobStatus.QUEUED.value)
            return True
        if abandoned:
            reason, message = FailureReason.WORKER_LOST, "the worker running it died and no retries are left"
        elif exc_type is not None and issubclass(exc_type, JobTimeoutException):
            reason, message = FailureReason.TIMEOUT, "job ran longer than its timeout"
        elif exc_type is not None and not issubclass(exc_type, Exception):
            reason = FailureReason.WORKER_LOST
            message = f"worker stopped during the job ({exc_type.__name__})"
        else:
            reason = FailureReason.ENGINE_ERROR
            message = f"{exc_type.__name__ if exc_type else 'error'}: {exc_value}"
        try:
            fail_job(self.connection, job.id, reason, message, self.name, self.metrics)
        except redis.RedisError:
            log.exception("job %s worker %s: could not record the failure", job.id, self.name)
        return True

    # --- maintenance ------------------------------------------------------------------------

    def check_for_suspension(self, burst: bool) -> None:
        """RQ asks Redis for ``rq suspend`` outside its reconnecting dequeue, so a Redis restart
        between two jobs would end the worker there: wait for Redis instead."""
        while True:
            try:
                super().check_for_suspension(burst)
                return
            except REDIS_DOWN as exc:
                if self._stop_requested:
                    return
                log.warning("worker %s: Redis unavailable (%s); retrying in %.0f s",
                            self.name, exc, REDIS_RETRY_PAUSE_S)
                time.sleep(REDIS_RETRY_PAUSE_S)

    def run_maintenance_tasks(self) -> None:
        """Skipped while Redis is away; the next interval runs it again."""
        try:
            super().run_maintenance_tasks()
            self.publish_info()
        except REDIS_DOWN as exc:
            log.warning("worker %s: maintenance skipped, Redis unavailable (%s)", self.name, exc)

    def publish_info(self) -> None:
        """What /workers shows beside RQ's record (kept fresh by maintenance and the heartbeat)."""
        from worker.metrics import publish_worker_info

        lora_styles = getattr(self.engine, "lora_styles", None)
        refused = getattr(self.engine, "lora_refused", None)
        publish_worker_info(self.connection, self.name, str(getattr(self.engine, "device", "unknown")),
                            families=tuple(getattr(self.engine, "held", ())),
                            styles=lora_styles() if lora_styles is not None else None,
                            refused=refused() if refused is not None else ())

    def clean_registries(self) -> None:
        """RQ's registry maintenance, under a short lock (see MAINTENANCE_LOCK_TTL_S)."""
        for queue in self.queues:
            if not self._lock(queue):
                continue
            try:
                clean_registries(queue, self._exc_handlers)
                clean_worker_registry(queue)
                self._requeue_stranded(queue)
            finally:
                self.connection.delete(queue.registry_cleaning_key)
        self.last_cleaned_at = now()  # type: ignore[assignment]

    def _requeue_stranded(self, queue: Queue) -> None:
        """Put back jobs left in the queue's intermediate list: Redis moved them there for a worker
        that never got the reply (Redis restarted, or the connection broke, mid-dequeue). RQ's own
        check fails such a job after a minute; this one re-queues it, first in line, once this
        worker has seen it stranded (not started) for longer than an abandoned job may go silent."""
        stranded = queue.intermediate_queue
        seen = self._stranded_seen.setdefault(queue.name, {})
        now_s = time.monotonic()
        current = {job_id for job_id in stranded.get_job_ids() if job_id not in queue.started_job_registry}
        for job_id in set(seen) - current:
            del seen[job_id]  # started (or gone) since: a later stay starts a new count
        for job_id in current:
            first = seen.setdefault(job_id, now_s)
            if now_s - first <= self.settings.abandon_after_s:
                continue
            del seen[job_id]
            if not self.connection.lrem(stranded.key, 1, job_id):
                continue  # another worker put it back first
            if queue.fetch_job(job_id) is None:
                continue  # expired or deleted meanwhile: nothing to run
            queue.push_job_id(job_id, at_front=True)
            log.warning("job %s worker %s: stranded between %s and a worker for %.0f s; put back first",
                        job_id, self.name, queue.name, now_s - first)

    def sweep_abandoned(self) -> None:
        """Re-queue (or fail) jobs whose worker stopped heartbeating; safe from a side thread."""
        for queue in self.queues:
            if not self._lock(queue):
                continue
            try:
                StartedJobRegistry(queue.name, connection=self.connection, job_class=self.job_class,
                                   serializer=self.serializer).cleanup(exception_handlers=self._exc_handlers)
            finally:
                self.connection.delete(queue.registry_cleaning_key)

    def _lock(self, queue: Queue) -> bool:
        return bool(self.connection.set(queue.registry_cleaning_key, self.name, nx=True,
                                         ex=MAINTENANCE_LOCK_TTL_S))


class _Heartbeat:
    """Keeps a running job's execution alive in RQ's registries and sweeps for abandoned jobs,
    from a side thread, while the main thread is busy inside the engine."""

    def __init__(self, worker: KandinskyWorker, job: Job, execution: Execution) -> None:
        self._worker = worker
        self._job = job
        self._execution = execution
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        settings = self._worker.settings
        next_sweep = time.monotonic() + settings.maintenance_interval_s
        while not self._stop.wait(timeout=settings.heartbeat_interval_s):
            try:
                self._worker.maintain_heartbeats(self._job, self._execution)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + settings.maintenance_interval_s
                    self._worker.sweep_abandoned()
                    self._worker.publish_info()
            except redis.RedisError as exc:
                log.warning("job %s worker %s: heartbeat failed: %s", self._job.id, self._worker.name, exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description="Run a Kandinsky queue worker.")
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--max-jobs", type=int, default=None, help="quit after this many jobs")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        log.error("worker: refusing to start: invalid settings: %s", problems)
        return EXIT_BAD_SETTINGS
    try:
        hooks = load_job_hooks(settings.job_hooks) if settings.job_hooks else None
    except HooksError as exc:
        log.error("worker %s: refusing to start: %s", settings.name, exc)
        return EXIT_BAD_HOOKS
    if hooks is not None:
        log.warning("worker %s: job hooks %s are on (tests and benches only)", settings.name,
                    settings.job_hooks)
    target = settings.redis_target()
    engine_ready = threading.Event()  # set once the engine is loaded and the worker registered with RQ
    metrics = None
    if settings.health_port is not None:
        from worker.metrics import start_worker_metrics

        # Served before the (possibly minutes-long) load, answering 503 "engine not loaded" until
        # it is done: a healthcheck or orchestrator sees a worker that is starting, not a dead one.
        metrics, _server = start_worker_metrics(
            settings.health_port, target, engine_ready.is_set, worker_name=settings.name
        )
    from worker.engine import Engine, EngineSettings, ModelFolderError

    started = time.monotonic()
    try:
        # Every model of every family it holds, then the warm-up jobs when compiling.
        engine = Engine.load(EngineSettings(), families=settings.families)
        queues = settings.queues_to_serve(engine.held)
    except (ModelFolderError, ValueError) as exc:
        log.error("worker %s: refusing to start: %s", settings.name, exc)
        return EXIT_BAD_SETTINGS
    log.info("worker %s: engine loaded in %.1f s: families %s, queues %s", settings.name,
             time.monotonic() - started, ", ".join(engine.held), ", ".join(queues))
    from worker.language import Language, LanguageSettings

    language = Language.load(LanguageSettings())  # prompts' translation and voice messages' speech model
    if metrics is not None:
        metrics.observe_warmup(engine.warmup_timings)
    # A plain REDIS_URL or a Sentinel-managed master; either way it reconnects (to the new master
    # after a failover) and retries (contract.redisconn); RQ's own loop rides out longer outages.
    connection = redisconn.sync_client(target)
    log.info("worker %s: redis: %s", settings.name, target.describe())
    worker = KandinskyWorker(
        queues, connection=connection, settings=settings, engine=engine, metrics=metrics,
        hooks=hooks, language=language, on_started=engine_ready.set,
    )
    worker.work(burst=args.burst, max_jobs=args.max_jobs, logging_level=args.log_level.upper(),
                log_format=LOG_FORMAT)
    return 0
