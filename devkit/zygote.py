"""Worker processes forked from one parent that has already imported the worker's libraries.

``python -m worker`` spends most of its start (about 6 s of CPU on this machine, of 8) importing torch,
diffusers and transformers before it loads a model. A suite that starts workers dozens of times (the
reliability scenarios kill and restart them) paid that on every start. The zygote imports them once;
each start forks it, and the child runs ``worker.__main__.main`` with its own environment and log,
so what runs is the deployed code from there on: the settings, the engine load, the RQ loop.

Tests and benches only: a deployment starts ``python -m worker``. Protocol, one JSON line each way:
``{"env": {...}, "log": path}`` in on stdin, ``{"pid": N}`` out on the reply pipe; the zygote reaps
its children and writes each one's exit status to ``<status dir>/<pid>``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

PRELOAD = (
    "worker.runner",
    "worker.engine",
    "worker.engine.families.kandinsky22",
    "worker.engine.families.kandinsky3",
    "worker.engine.families.sdxl",
    "worker.language",
    "rembg",
)
"""What ``python -m worker`` imports before its engine loads, and rembg, which its engine imports
while it loads (numba's cached functions, about a second of a restart); the rest a child imports
itself. A child sets its own torch threads (rembg's import resets them in the zygote)."""
REAP_INTERVAL_S = 0.05
"""How often the zygote collects exited children while it waits for a request."""
POLL_INTERVAL_S = 0.05
"""How often a handle looks for its child's exit status."""
REPLY_TIMEOUT_S = 120.0
"""The zygote imports torch and diffusers before its first answer: seconds, more on busy cores."""


class ForkedProcess:
    """A child of the zygote, with the part of ``subprocess.Popen``'s interface tests use."""

    def __init__(self, pid: int, status_dir: Path) -> None:
        self.pid = pid
        self._status = status_dir / str(pid)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self._status.exists():
            text = self._status.read_text().strip()
            if text:
                self.returncode = int(text)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker pid {self.pid}", timeout or 0.0)
            time.sleep(POLL_INTERVAL_S)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The forking parent, as a child process of the caller; one per test session is enough."""

    def __init__(self, env: Mapping[str, str], status_dir: Path, log_path: Path, cwd: Path) -> None:
        """``env``: the environment torch and the hub client read at import (threads, offline mode);
        each start passes its own on top."""
        status_dir.mkdir(parents=True, exist_ok=True)
        self.status_dir = status_dir
        read_fd, self._reply_fd = os.pipe()
        with open(log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "devkit.zygote", str(status_dir), str(self._reply_fd)],
                cwd=cwd, env=dict(env), stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT,
                pass_fds=(self._reply_fd,),
            )
        os.close(self._reply_fd)
        self._replies: IO[bytes] = os.fdopen(read_fd, "rb")

    def spawn(self, env: Mapping[str, str], log_path: Path) -> ForkedProcess:
        if self._proc.poll() is not None or self._proc.stdin is None:
            raise RuntimeError(f"the worker zygote exited ({self._proc.returncode})")
        request = json.dumps({"env": dict(env), "log": str(log_path)}) + "\n"
        self._proc.stdin.write(request.encode())
        self._proc.stdin.flush()
        ready, _, _ = select.select([self._replies], [], [], REPLY_TIMEOUT_S)
        line = self._replies.readline() if ready else b""
        if not line:
            raise RuntimeError("the worker zygote did not answer")
        return ForkedProcess(int(json.loads(line)["pid"]), self.status_dir)

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # end of input: the zygote exits
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._replies.close()


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: become ``python -m worker`` with the request's environment and log."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log_fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.environ.clear()
    os.environ.update(request["env"])
    code = 1
    try:
        threads = os.environ.get("OMP_NUM_THREADS")
        if threads:  # OpenMP read the zygote's environment when torch was imported
            import torch

            torch.set_num_threads(int(threads))
        from worker.__main__ import main

        code = main([])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reap(status_dir: Path) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        tmp = status_dir / f".{pid}"
        tmp.write_text(f"{code}\n")
        tmp.replace(status_dir / str(pid))  # whole, or not there yet


def serve(status_dir: Path, reply_fd: int) -> int:
    for name in PRELOAD:
        importlib.import_module(name)
    replies = os.fdopen(reply_fd, "w")
    stdin = sys.stdin.buffer
    while True:
        _reap(status_dir)
        ready, _, _ = select.select([stdin], [], [], REAP_INTERVAL_S)
        if not ready:
            continue
        line = stdin.readline()
        if not line:
            break
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            replies.close()
            _run_child(request)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
    _reap(status_dir)
    return 0


if __name__ == "__main__":
    sys.exit(serve(Path(sys.argv[1]), int(sys.argv[2])))
