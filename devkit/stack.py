"""Start the service's processes on one machine: models, a worker process, readiness checks.

Shared by the offline demo (`make demo`) and the end-to-end tests, so both run the service
exactly as deployed: ``python -m worker`` as its own process, talking to a real redis-server.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
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
BUNDLE_SOURCES = ("devkit/tiny_*.py", "contract/spec.py", "contract/video.py")
"""The code that decides what the tiny bundle holds: its writers and the contract modules they read
(the style words its tokenizers know, the video checkpoints it lays out)."""
BUNDLE_LIBRARIES = ("torch", "diffusers", "transformers")
"""Libraries whose versions the tiny bundle's files depend on (the configs and weights they save)."""
_REAL_MODEL_VARS = (
    "KANDINSKY_MODEL_DIR",
    "KANDINSKY_PRIOR_ID",
    "KANDINSKY_DECODER_ID",
    "KANDINSKY_INPAINT_ID",
    "KANDINSKY_CONTROLNET_ID",
)


def real_models_configured(env: Mapping[str, str] = os.environ) -> bool:
    return any(env.get(name) for name in _REAL_MODEL_VARS)


def tiny_bundle_stamp() -> str:
    """What a written tiny bundle was written by: a digest of the code that decides it
    (BUNDLE_SOURCES) and the versions of the libraries that save it. Read without importing torch."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for source in sorted(path for pattern in BUNDLE_SOURCES for path in REPO.glob(pattern)):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    libraries = " ".join(f"{name}=={version(name)}" for name in BUNDLE_LIBRARIES)
    return f"{digest.hexdigest()[:16]} {libraries}"


def ensure_tiny_bundle(path: Path = DEFAULT_BUNDLE_DIR) -> Path:
    """Write the tiny random-weight bundle once; later runs, the demo and the test processes reuse it
    (one at a time writes it: the others wait on the lock). A bundle whose marker holds another
    :func:`tiny_bundle_stamp` is written again from scratch."""
    stamp = tiny_bundle_stamp()
    marker = path / ".complete"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists() or marker.read_text().strip() != stamp:
            from devkit.tiny_models import write_tiny_bundle

            shutil.rmtree(path, ignore_errors=True)
            write_tiny_bundle(path)
            marker.write_text(stamp + "\n")
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
