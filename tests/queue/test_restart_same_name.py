"""A worker restarted under the same name (a container's host.1) after a SIGKILL starts at once
instead of being refused by RQ until the dead worker's registration expires."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from devkit.redis_server import RedisServer
from devkit.stack import WorkerProcess
from devkit.zygote import Zygote

FAST = {"WORKER_HEARTBEAT_INTERVAL_S": "1", "WORKER_MAINTENANCE_INTERVAL_S": "1",
        "KANDINSKY_DEVICE": "cpu", "KANDINSKY_DTYPE": "float32", "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1"}


def test_killed_worker_name_is_taken_over(tiny_bundle: Path, tmp_path: Path, zygote: Zygote) -> None:
    env = {**FAST, "KANDINSKY_MODEL_DIR": str(tiny_bundle)}
    with RedisServer() as server:
        first = WorkerProcess(server.url, tmp_path / "first.log", env=env, name="gpu-host.1",
                              zygote=zygote).start()
        first.stop(kill=True)  # SIGKILL: its registration stays behind in Redis
        # start() returns at once (the dead one is still listed); wait for the newcomer's own birth.
        second = WorkerProcess(server.url, tmp_path / "second.log", env=env, name="gpu-host.1",
                              zygote=zygote).start()
        client = redis.Redis.from_url(server.url)
        try:
            assert second.proc is not None
            deadline = time.monotonic() + 120
            while client.hget("rq:worker:gpu-host.1", "pid") != str(second.proc.pid).encode():
                assert second.proc.poll() is None, (tmp_path / "second.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the restarted worker never registered"
                time.sleep(0.2)
        finally:
            client.close()
            second.stop()
        assert "taking over the name" in (tmp_path / "second.log").read_text()
