"""Routing across model families with real worker processes: a Kandinsky 3.0 job waits in its
family's queue and only a worker holding 3.0 takes it; a 2.2-only worker never does, even idle;
with no 3.0 worker the job waits (and the submission says so); and a worker whose families,
queues or model folder cannot work refuses to start, naming why."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.queue import JobQueue, Submission
from contract import keys
from contract.events import DoneEvent
from contract.families import Family
from contract.queue import QUICK_QUEUE, F, JobStatus, family_queue, family_queues, queues_for
from devkit.faults import slow_marker
from tests.queue.conftest import Collector, WorkerPool, new_spec, text

K3_QUEUE = family_queue(Family.KANDINSKY3, high=False)


def k3_spec(prompt: str = "a red fox", **kw: Any) -> Any:
    return new_spec(prompt, model=Family.KANDINSKY3, steps=2, **kw)


def test_queue_names_per_family_and_priority() -> None:
    assert family_queues(Family.KANDINSKY22) == ("kb-high", "kb-default"), "2.2 keeps the old names"
    assert family_queues(Family.KANDINSKY3) == ("kb-kandinsky3-high", "kb-kandinsky3-default")
    assert queues_for([Family.KANDINSKY3, Family.KANDINSKY22]) == (
        "kb-high", "kb-kandinsky3-high", "kb-default", "kb-kandinsky3-default")
    assert queues_for([Family.KANDINSKY22]) == ("kb-high", "kb-default")


def test_every_worker_serves_the_quick_queue_first_whatever_it_holds() -> None:
    """Voice messages are transcribed by any worker: a host holding only Kandinsky 3.0 too."""
    from worker.config import WorkerSettings

    settings = WorkerSettings.model_validate({})
    assert settings.queues_to_serve((Family.KANDINSKY3,)) == (
        QUICK_QUEUE, "kb-kandinsky3-high", "kb-kandinsky3-default")
    assert settings.queues_to_serve((Family.KANDINSKY22,))[0] == QUICK_QUEUE
    chosen = WorkerSettings.model_validate({"queues": ["kb-default"]})
    assert chosen.queues_to_serve((Family.KANDINSKY22,)) == ("kb-default",), "an operator's list as given"


async def test_k3_jobs_reach_only_the_worker_holding_k3(workers: WorkerPool, job_queue: JobQueue,
                                                        collector: Collector,
                                                        redis_client: redis.Redis) -> None:
    """While ``a`` (both families) is busy with a slow 3.0 job, ``b`` (2.2 only) is idle: the next
    3.0 job still waits for ``a``, and a 2.2 job submitted after it is taken by ``b`` at once."""
    slow = await job_queue.submit(k3_spec("a slow fox " + slow_marker(1.0)))
    await wait_running(redis_client, slow.job_id)
    waiting = await job_queue.submit(k3_spec("a second fox"))
    assert isinstance(waiting, Submission) and waiting.position == 1
    other = await job_queue.submit(new_spec("a blue cube"))
    events = {sub.job_id: await collector.wait_terminal(sub.job_id) for sub in (slow, waiting, other)}
    assert all(isinstance(e, DoneEvent) for e in events.values()), events
    worker_of = {job: text(redis_client.hget(keys.job(job), F.WORKER)) for job in events}
    assert worker_of[slow.job_id] == worker_of[waiting.job_id] == workers.names["a"]
    assert worker_of[other.job_id] == workers.names["b"], "the idle 2.2 worker took the 2.2 job"
    assert text(redis_client.hget(keys.job(waiting.job_id), F.QUEUE)) == K3_QUEUE
    started_second = float(text(redis_client.hget(keys.job(waiting.job_id), F.STARTED)))
    finished_first = float(text(redis_client.hget(keys.job(slow.job_id), F.FINISHED)))
    assert started_second >= finished_first - 0.5, "it waited for a, not for b"
    done = events[waiting.job_id]
    assert isinstance(done, DoneEvent) and "kandinsky3" in done.result.model_ids
    assert ("families kandinsky22, kandinsky3, sdxl, kandinsky5, kandinsky5_image, queues kb-quick, kb-high, "
            "kb-kandinsky3-high, kb-sdxl-high, kb-kandinsky5-high, kb-kandinsky5_image-high, kb-default, "
            "kb-kandinsky3-default, kb-sdxl-default, kb-kandinsky5-default, "
            "kb-kandinsky5_image-default") in workers.log("a")
    assert "families kandinsky22, queues kb-default" in workers.log("b")


async def test_a_k3_job_with_no_k3_worker_waits_and_says_so(idle_redis_url: str) -> None:
    """No worker listens on this database: the job is queued, counted in its family's line only."""
    import redis.asyncio as aioredis

    from tests.queue.conftest import TEST_QUEUE_SETTINGS

    client = aioredis.Redis.from_url(idle_redis_url)
    queue = JobQueue(client, TEST_QUEUE_SETTINGS)
    try:
        first22 = await queue.submit(new_spec("a cube"))
        k3 = await queue.submit(k3_spec())
        assert first22.position == 1 and k3.position == 1, "2.2 jobs are not ahead of a 3.0 job"
        assert k3.workers == 0 and first22.workers == 0
        record = await queue.job(k3.job_id)
        assert record is not None and record.status is JobStatus.QUEUED and record.queue == K3_QUEUE
        assert await queue.position(k3.job_id) == 1
        admin_k3 = await queue.submit(k3_spec("an admin fox"), is_admin=True)
        assert admin_k3.position == 1 and await queue.position(k3.job_id) == 2
    finally:
        await queue.close()
        await client.aclose()


# --- a worker that cannot work refuses to start ----------------------------------------------------


def run_worker(monkeypatch: pytest.MonkeyPatch, redis_url: str, bundle: Path, **env: str) -> int:
    from worker.runner import main

    for name, value in {"REDIS_URL": redis_url, "KANDINSKY_MODEL_DIR": str(bundle), "KANDINSKY_DEVICE": "cpu",
                        "KANDINSKY_PRELOAD": "false", "WORKER_NAME": "refusing-worker", **env}.items():
        monkeypatch.setenv(name, value)
    return main(["--burst"])


@pytest.mark.parametrize(("env", "message"), [
    ({"WORKER_FAMILIES": '["sdxl9"]'},
     "families.0: Input should be 'kandinsky22', 'kandinsky3', 'sdxl', 'kandinsky5' or 'kandinsky5_image'"),
    ({"WORKER_FAMILIES": '["kandinsky22"]', "WORKER_QUEUES": json.dumps([K3_QUEUE])},
     "names kb-kandinsky3-default, the queue(s) of a model family this worker does not hold"),
])
def test_a_worker_with_impossible_routing_refuses_to_start(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, redis_url: str, tiny_bundle: Path,
        env: dict[str, str], message: str) -> None:
    with caplog.at_level(logging.ERROR, logger="worker.runner"):
        assert run_worker(monkeypatch, redis_url, tiny_bundle, **env) == 2
    assert "refusing to start" in caplog.text and message in caplog.text


def test_a_worker_whose_family_folder_is_incomplete_names_the_missing_file(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, redis_url: str, tiny_bundle: Path,
        tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "kandinsky3" / "movq" / "config.json").unlink()
    with caplog.at_level(logging.ERROR, logger="worker.runner"):
        assert run_worker(monkeypatch, redis_url, bundle) == 2
    assert "refusing to start" in caplog.text and "kandinsky3/movq/config.json" in caplog.text
    client = redis.Redis.from_url(redis_url)
    assert not client.exists("rq:worker:refusing-worker"), "it never registered"
    client.close()


async def wait_running(client: redis.Redis, job_id: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text(client.hget(keys.job(job_id), F.STATUS) or b"") != JobStatus.RUNNING.value:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"job {job_id} never started")
        await asyncio.sleep(0.05)

