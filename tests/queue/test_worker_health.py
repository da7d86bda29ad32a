"""A worker's /healthz tells the truth: 503 while its engine loads, 200 once the engine is resident
and Redis answers, 503 while Redis is away. The docker healthcheck and an orchestrator read it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from devkit.redis_server import RedisServer, free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
HEALTH_POLL_S = 0.02
"""Far shorter than the engine's load (importing torch alone takes seconds), so the test sees it."""
HTTP_TIMEOUT_S = 5.0
"""The check answers at once, or within its Redis timeout (contract.observability.HEALTH_REDIS_TIMEOUT_S)."""
START_TIMEOUT_S = 180.0
"""Import of torch + diffusers and the tiny engine load; slow only on a loaded 2-core box."""
CHANGE_TIMEOUT_S = 30.0
"""Redis stopping or starting shows in the next answer or the one after its 2 s timeout."""
STOP_TIMEOUT_S = 30.0
"""SIGTERM ends an idle worker within a dequeue interval; after this it is killed."""

Answer = tuple[int, str]


def _get(url: str) -> Answer | None:
    """(status, body), or None while nothing listens on the port yet."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None


def _why_it_ended(log_path: Path) -> str:
    """The worker's log from its first error on (what ended it), else its tail."""
    text = log_path.read_text(errors="replace")
    first = min((i for i in (text.find(" ERROR "), text.find("Traceback")) if i >= 0), default=-1)
    return text[first:first + 6000] if first >= 0 else text[-3000:]


def _poll(url: str, proc: subprocess.Popen[bytes], log_path: Path, done: Callable[[Answer], bool],
          timeout: float) -> tuple[Answer, list[Answer]]:
    """Poll until ``done(answer)``; returns that answer and every answer before it."""
    seen: list[Answer] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = _get(url)
        if answer is not None:
            if done(answer):
                return answer, seen
            seen.append(answer)
        assert proc.poll() is None, _why_it_ended(log_path)
        assert time.monotonic() < deadline, f"{url}: still {answer} after {timeout} s"
        time.sleep(HEALTH_POLL_S)


def test_worker_health_follows_its_engine_and_redis(tiny_bundle: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    log_path = tmp_path / "worker.log"
    with RedisServer() as server:
        env = {
            **os.environ,
            "REDIS_URL": server.url,
            "KANDINSKY_MODEL_DIR": str(tiny_bundle),
            "KANDINSKY_DEVICE": "cpu",
            "KANDINSKY_DTYPE": "float32",
            "WORKER_NAME": "health-worker",
            "HEALTH_PORT": str(port),
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=log_file,
                                    stderr=subprocess.STDOUT)
        try:
            healthy, before = _poll(url, proc, log_path, lambda a: a[0] == 200, START_TIMEOUT_S)
            log_then = log_path.read_text(errors="replace")
            loaded_by_then = "engine loaded" in log_then
            registered_by_then = "Listening on" in log_then
            assert healthy == (200, "ok")
            assert before, "the endpoint answered only once the engine was loaded"
            assert set(before) == {(503, "engine not loaded")}
            assert loaded_by_then, "healthy before the engine had loaded"
            # ... and registered with RQ: stopping Redis between the two ended a "healthy" worker.
            assert registered_by_then, "healthy before the worker had registered and was listening"

            server.stop()
            down, _ = _poll(url, proc, log_path, lambda a: a != (200, "ok"), CHANGE_TIMEOUT_S)
            assert down[0] == 503 and down[1].startswith("redis unreachable"), down

            server.start()
            back, _ = _poll(url, proc, log_path, lambda a: a[0] == 200, CHANGE_TIMEOUT_S)
            assert back == (200, "ok")
        finally:
            stop_process(proc, timeout=STOP_TIMEOUT_S)
