"""A worker restarted under the same name (a container's host.1) after a SIGKILL starts at once,
and a second live worker with that name is still refused."""

from __future__ import annotations

from pathlib import Path

from devkit.redis_server import RedisServer
from devkit.stack import WorkerProcess

FAST = {"WORKER_HEARTBEAT_INTERVAL_S": "1", "WORKER_MAINTENANCE_INTERVAL_S": "1",
        "KANDINSKY_DEVICE": "cpu", "KANDINSKY_DTYPE": "float32", "HF_HUB_OFFLINE": "1"}


def test_killed_worker_name_is_taken_over_but_a_live_one_is_not(tiny_bundle: Path, tmp_path: Path) -> None:
    env = {**FAST, "KANDINSKY_MODEL_DIR": str(tiny_bundle)}
    with RedisServer() as server:
        first = WorkerProcess(server.url, tmp_path / "first.log", env=env, name="gpu-host.1").start()
        first.stop(kill=True)  # SIGKILL: its registration stays behind in Redis
        second = WorkerProcess(server.url, tmp_path / "second.log", env=env, name="gpu-host.1").start()
        try:
            # The live namesake keeps heartbeating: the newcomer gives up with RQ's clear error.
            third = WorkerProcess(server.url, tmp_path / "third.log", env=env, name="gpu-host.1")
            third.start(timeout=1)  # returns at once: the name is registered (by the second one)
            assert third.proc is not None and third.proc.wait(timeout=120) != 0
            assert "active worker named 'gpu-host.1' already" in (tmp_path / "third.log").read_text()
        finally:
            second.stop()
        assert "taking over the name" in (tmp_path / "second.log").read_text()  # flushed on exit
