"""A worker outlives a Redis restart in the middle of a job and serves jobs once Redis is back.

RQ's loop asks Redis whether workers are suspended outside its reconnecting dequeue, so before
``KandinskyWorker.check_for_suspension`` waited, a restart at the wrong moment ended the process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from bot.queue import JobQueue, QueueSettings
from contract import keys
from contract.queue import F, JobStatus
from contract.redisconn import RedisTarget, async_client
from devkit.faults import FAULT_HOOKS_ENV
from devkit.redis_server import RedisServer
from devkit.stack import WorkerProcess
from devkit.zygote import Zygote
from tests.queue.conftest import new_spec, wait_until
from tests.queue.test_restart_same_name import FAST

SLOW_STEP_S = 0.5
"""The interrupted job sleeps this long at each of its 4 progress steps: ~2 s plus the tiny engine."""
OUTAGE_S = 8.0
"""Far longer than that job (it must end while Redis is away, even on slow CI cores) and than the
worker's 1 s suspension check and maintenance interval, so both hit the outage."""
JOB_TIMEOUT_S = 120.0
"""A 2-step tiny job takes about a second; two minutes means the worker is gone, not slow."""


async def _wait_status(client: aioredis.Redis, job_id: str, worker: WorkerProcess, log_file: Path,
                       wanted: JobStatus) -> None:
    async def reached() -> bool:
        assert worker.proc is not None and worker.proc.poll() is None, log_file.read_text()[-3000:]
        return bool(await client.hget(keys.job(job_id), F.STATUS) == wanted.value.encode())

    await wait_until(reached, JOB_TIMEOUT_S, f"job {job_id} to be {wanted.value}")


async def test_worker_survives_a_redis_restart_mid_job(tiny_bundle: Path, tmp_path: Path,
                                                      zygote: Zygote) -> None:
    env = {**FAST, "KANDINSKY_MODEL_DIR": str(tiny_bundle), "OMP_NUM_THREADS": "1", **FAULT_HOOKS_ENV}
    log_file = tmp_path / "worker.log"
    with RedisServer(appendonly=True) as server:
        worker = WorkerProcess(server.url, log_file, env=env, name="outage-worker", zygote=zygote).start()
        # Reconnecting like the bot's own client, so the test's side rides out the restart too.
        client = async_client(RedisTarget(url=server.url))
        queue = JobQueue(client, QueueSettings())
        try:
            during = new_spec(f"[fault:slow={SLOW_STEP_S}] during the outage")
            await queue.submit(during)
            await _wait_status(client, during.job_id, worker, log_file, JobStatus.RUNNING)
            await client.bgrewriteaof()  # a clean restart: what was written is kept
            await asyncio.sleep(0.5)
            server.stop()
            await asyncio.sleep(OUTAGE_S)  # the job ends while Redis is away
            assert worker.proc is not None and worker.proc.poll() is None, log_file.read_text()[-3000:]
            assert "as the job ended" in log_file.read_text(), "the job did not end during the outage"
            server.start()
            after = new_spec("after the outage")
            await queue.submit(after)
            await _wait_status(client, after.job_id, worker, log_file, JobStatus.DONE)
            # The job the outage interrupted is re-queued by the abandoned-job sweep and finishes too.
            await _wait_status(client, during.job_id, worker, log_file, JobStatus.DONE)
        finally:
            await queue.close()
            await client.aclose()
            worker.stop()
    assert "Redis unavailable" in log_file.read_text()
