"""Start the service's processes on one machine: models, a worker process, readiness checks.

Shared by the offline demo (`make demo`) and the end-to-end tests, so both run the service
exactly as deployed: ``python -m worker`` as its own process, talking to a real redis-server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from devkit.zygote import ForkedProcess, Zygote

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE_DIR = REPO / ".cache" / "tiny-bundle"
WORKER_START_TIMEOUT_S = 180.0
"""Loading the tiny bundle takes seconds; real checkpoints on a cold disk take minutes."""
WORKER_STOP_TIMEOUT_S = 30.0
"""SIGTERM lets a worker finish its current job; after this it is killed."""
TINY_BUNDLE_VERSION = "kandinsky5-image-vae4"
"""The bundle's layout: a new name whenever devkit.tiny_models writes another folder or model (not
derived from it: that module loads torch)."""
_REAL_MODEL_VARS = (
    "KANDINSKY_MODEL_DIR",
    "KANDINSKY_PRIOR_ID",
    "KANDINSKY_DECODER_ID",
    "KANDINSKY_INPAINT_ID",
    "KANDINSKY_CONTROLNET_ID",
)


def real_models_configured(env: Mapping[str, str] = os.environ) -> bool:
    return any(env.get(name) for name in _REAL_MODEL_VARS)


def ensure_tiny_bundle(path: Path = DEFAULT_BUNDLE_DIR) -> Path:
    """Write the tiny random-weight bundle once; later runs reuse it. A bundle of an older layout
    (its marker names another TINY_BUNDLE_VERSION) is written again: the same seed gives the same
    weights, and the folders it lacked are added."""
    marker = path / ".complete"
    if not marker.exists() or marker.read_text().strip() != TINY_BUNDLE_VERSION:
        from devkit.tiny_models import write_tiny_bundle

        write_tiny_bundle(path)
        marker.write_text(TINY_BUNDLE_VERSION + "\n")
    return path


class WorkerProcess:
    """``python -m worker`` as a child process, its output in a log file; or, given a ``zygote``,
    the same ``worker.__main__.main`` forked from it without importing torch again."""

    def __init__(self, redis_url: str, log_path: Path, env: Mapping[str, str] | None = None,
                 name: str = "local-worker", zygote: Zygote | None = None) -> None:
        self.redis_url = redis_url
        self.log_path = log_path
        self.name = name
        self.env = {**os.environ, "REDIS_URL": redis_url, "WORKER_NAME": name, **(env or {})}
        self.zygote = zygote
        self.proc: subprocess.Popen[bytes] | ForkedProcess | None = None

    def start(self, timeout: float = WORKER_START_TIMEOUT_S) -> WorkerProcess:
        """Start and wait until the worker registered itself in Redis (its engine is loaded)."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> WorkerProcess:
        """Start without waiting: several workers load their engines at the same time."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.zygote is not None:
            self.proc = self.zygote.spawn(self.env, self.log_path)
        else:
            with open(self.log_path, "ab") as log_file:
                self.proc = subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=self.env,
                                             stdout=log_file, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = WORKER_START_TIMEOUT_S) -> WorkerProcess:
        """Wait until the launched worker registered itself in Redis (its engine is loaded)."""
        assert self.proc is not None, "launch() first"
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        try:
            while not any(m.decode().endswith(self.name) for m in client.smembers("rq:workers")):  # type: ignore[union-attr]
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop(kill=True)
                    tail = self.log_path.read_text(errors="replace")[-4000:]
                    raise RuntimeError(f"worker {self.name} did not start:\n{tail}")
                time.sleep(0.2)
        finally:
            client.close()
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
