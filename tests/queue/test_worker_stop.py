"""A stop signal that lands just after the worker took a job off its queue loses no job.

RQ's handler raised StopRequested wherever the signal interrupted an idle worker: between BLPOP
taking a job off the queue and the job entering the started registry, the job was then in no queue
and no registry (the intermittent failure of the SIGTERM scenario in tests/reliability). Here the
signal is sent from exactly there, in a real KandinskyWorker on a real redis-server, in this
process's main thread (signals reach no other).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, cast

import redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus

from contract.queue import RUN_JOB_FUNC
from worker.config import WorkerSettings
from worker.runner import PUBSUB_STOP_TIMEOUT_S, STOP_CHECK_S, KandinskyWorker

QUEUE = "kb-test-stop"
"""A queue no worker process of the test pool listens to."""


class SignalledWorker(KandinskyWorker):
    """Gets SIGTERM right after its dequeue returned a job, before the job is registered as started."""

    def prepare_execution(self, job: Job) -> Execution:
        os.kill(os.getpid(), signal.SIGTERM)
        return super().prepare_execution(job)


def test_sigterm_between_dequeue_and_start_runs_the_job_then_stops(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=conn)
    # A job whose record is gone: run_job ends it at once ("missing") without touching the engine.
    job = queue.enqueue(RUN_JOB_FUNC, "no-such-record", job_id="stop-race-1")
    later = queue.enqueue(RUN_JOB_FUNC, "no-such-record-2", job_id="stop-race-2")
    settings = WorkerSettings(name="stop-race-worker", queues=(QUEUE,), heartbeat_interval_s=1,
                              maintenance_interval_s=1)
    worker = SignalledWorker(settings.queues, connection=conn, settings=settings, engine=cast(Any, None))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.work()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert job.get_status(refresh=True) == JobStatus.FINISHED  # RQ's own handler lost it: queued, in no list
    assert job.return_value() == "missing"
    assert queue.job_ids == [later.id]  # the worker stopped after that job; the next one waits for another
    assert conn.hget(worker.key, "death") is not None  # a clean, registered death
    conn.close()


MAINTENANCE_S = 30
"""A long maintenance interval: the stop must not wait it out."""
STOP_MARGIN_S = 5.0
"""Beyond one short dequeue wait: registering the death and unsubscribing, on busy cores."""


def test_sigterm_to_an_idle_worker_stops_it_after_one_short_dequeue_wait(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    settings = WorkerSettings(name="stop-idle-worker", queues=(QUEUE,), heartbeat_interval_s=1,
                              maintenance_interval_s=MAINTENANCE_S)
    worker = KandinskyWorker(settings.queues, connection=conn, settings=settings, engine=cast(Any, None))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    signal.setitimer(signal.ITIMER_REAL, 0.5)  # SIGTERM half a second into the blocking dequeue
    started = time.monotonic()
    try:
        assert worker.work() is False  # returns: no job done, no hang
        stopped_after = time.monotonic() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert conn.hget(worker.key, "death") is not None
    assert worker.dequeue_timeout == STOP_CHECK_S
    assert stopped_after < 0.5 + STOP_CHECK_S + STOP_MARGIN_S, f"it waited {stopped_after:.1f} s"
    conn.close()


def test_a_stop_does_not_wait_out_the_pubsub_threads_sleep(redis_url: str) -> None:
    """The stop that took a minute: RQ's pubsub thread had read the unsubscribe and sat in redis-py's
    60 s wait for a new subscription, and redis-py's stop() joined it with no bound. Made certain
    here: the thread is in that wait before the worker stops."""
    conn = redis.Redis.from_url(redis_url)
    settings = WorkerSettings(name="stop-pubsub-worker", queues=(QUEUE,), heartbeat_interval_s=1,
                              maintenance_interval_s=1)
    worker = KandinskyWorker(settings.queues, connection=conn, settings=settings, engine=cast(Any, None))
    worker.subscribe()
    assert worker.pubsub is not None and worker.pubsub_thread is not None
    worker.pubsub.unsubscribe()
    deadline = time.monotonic() + 10
    while worker.pubsub.subscribed:  # the thread read the unsubscribe: it now waits for a subscription
        assert time.monotonic() < deadline, "the unsubscribe was never read"
        time.sleep(0.05)
    time.sleep(0.2)
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < PUBSUB_STOP_TIMEOUT_S + 1.0
    conn.close()
