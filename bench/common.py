"""Helpers every bench script shares: run metadata, JSON results, percentiles, tables.

Absolute times move from machine to machine (and on a shared box from minute to minute), so a
result is only worth keeping with the machine, the versions, the date and the load it ran under.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from devkit.faults import FAULT_HOOKS_ENV, slow_marker

REPO = Path(__file__).resolve().parents[1]
"""The checkout (results, git, subprocesses started in it)."""
RESULTS_DIR = REPO / "bench" / "results"
PACKAGES: tuple[str, ...] = (
    "torch", "diffusers", "transformers", "aiogram", "aiohttp", "rq", "redis", "pydantic", "onnxruntime",
    "rembg",
)
"""The libraries whose speed the service's numbers depend on."""
GIT_TIMEOUT_S = 5.0
"""`git rev-parse` answers at once; a hung git must not hang a bench."""
PERCENTILES: tuple[int, ...] = (50, 95, 99)
GPU_STANDIN_ENV = dict(FAULT_HOOKS_ENV)
"""Workers honour the slow-step marker only with the fault hooks loaded (WORKER_JOB_HOOKS)."""


def gpu_standin_marker(seconds: float) -> str:
    """Prompt prefix that makes every engine step also sleep ``seconds`` (GIL released, no CPU):
    the engine's time moves off this machine's cores, as it is on a GPU host. Empty for 0."""
    return slow_marker(seconds)


BOT_START_TIMEOUT_S = 60.0
"""``python -m bot`` imports aiogram and registers its commands in a few seconds; 60 on busy cores."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_server_version() -> str | None:
    path = shutil.which("redis-server")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=GIT_TIMEOUT_S).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((part.split("=", 1)[1] for part in out.split() if part.startswith("v=")), out.strip() or None)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["redis-server"] = _redis_server_version()
    return out


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: on a shared machine they say how much the numbers mean."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_total_kib": _meminfo_kib("MemTotal"),
    }


def _meminfo_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def metadata() -> dict[str, Any]:
    """What every results file starts with; call it when the run starts (its load average too)."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "machine": machine(),
        "versions": versions(),
        "load_average_start": load_average(),
    }


def write_results(report: dict[str, Any], out_dir: Path, stem: str) -> Path:
    """Write ``report`` as ``<out_dir>/<stem>-<UTC stamp>.json``; adds the machine metadata it lacks."""
    full = {**metadata(), **report}
    full.setdefault("load_average_end", load_average())
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{stem}-{stamp}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(full, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); ValueError on no data."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], ps: Iterable[int] = PERCENTILES) -> dict[str, float]:
    """n, mean, min, max and the percentiles (``p50``, ...) of ``values``."""
    if not values:
        raise ValueError("summary of no values")
    out: dict[str, float] = {"n": len(values), "mean": sum(values) / len(values), "min": min(values),
                             "max": max(values)}
    for p in ps:
        out[f"p{p}"] = percentile(values, p)
    return out


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain aligned text table; floats get 1 decimal below 100 and none above."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    print(title)
    print(format_table(headers, rows))
    print()


def install_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, so a killed bench still stops the processes it started
    (a background job started from a script ignores SIGINT; SIGTERM's default skips every finally)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def sync(device: str) -> None:
    """Wait for the device's queued work, so a clock reads what it did (no-op on the CPU)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@contextmanager
def timed_modules(parts: Mapping[str, Sequence[Any]], device: str, seconds: dict[str, float],
                  calls: dict[str, int]) -> Iterator[None]:
    """Forward hooks adding each part's seconds (synchronised around each call) and its calls while
    the block runs; a part's module may be None (a pipeline without it)."""
    handles = []
    for part, found in parts.items():
        for module in (m for m in found if m is not None):
            def before(_m: Any, _a: Any) -> None:
                sync(device)
                seconds["_started"] = time.perf_counter()

            def after(_m: Any, _a: Any, _o: Any, part: str = part) -> None:
                sync(device)
                seconds[part] = seconds.get(part, 0.0) + time.perf_counter() - seconds.pop("_started")
                calls[part] = calls.get(part, 0) + 1

            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A bench script's parser: its docstring as the help, and ``--out-dir`` for its results."""
    made = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    return made


def add_logs_dir(made: argparse.ArgumentParser) -> None:
    """``--logs-dir`` for a bench that starts processes: where the folder of their logs goes."""
    made.add_argument("--logs-dir", type=Path,
                      help="parent of the run's folder of process logs (default: the system's temp folder)")


def logs_dir(prefix: str, parent: Path | None) -> Path:
    """A new folder for one run's process logs, kept after it (the report names it)."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def model_parser(doc: str | None, *, sizes: list[str], repeats: int, repeats_help: str | None = None,
                 bundle_help: str = "a GPU bench bundle instead of the tiny one",
                 scale: bool = True) -> argparse.ArgumentParser:
    """A parser for a bench of model runs: ``--sizes`` and ``--repeats``, where they run (``--device``,
    ``--dtype``, ``--threads``) and on which models (``--bundle-dir``, ``--scale``: see model_bundle)."""
    made = parser(doc)
    made.add_argument("--sizes", nargs="+", default=sizes)
    made.add_argument("--repeats", type=int, default=repeats, help=repeats_help)
    made.add_argument("--device", default="cpu")
    made.add_argument("--dtype", default="auto")
    made.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    made.add_argument("--bundle-dir", type=Path, help=bundle_help)
    if scale:
        made.add_argument("--scale", default="public", help="with --bundle-dir: the GPU bench's scale")
    return made


def run_and_write(
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
    args: argparse.Namespace,
    print_report: Callable[[dict[str, Any]], None],
    stem: str,
) -> int:
    """The end of every script's ``main``: run the bench (a SIGTERM still stops what it started),
    print its report and write it to ``args.out_dir`` as ``<stem>-<UTC stamp>.json``."""
    install_sigterm()
    report = asyncio.run(run(args))
    print_report(report)
    path = write_results(report, args.out_dir, stem)
    print(f"wrote {path}")
    return 0


@contextmanager
def model_bundle(args: argparse.Namespace) -> Iterator[tuple[Path, str]]:
    """The models a bench runs on, and their scale's name: the tiny bundle (written once under .cache,
    devkit.stack.ensure_tiny_bundle), or ``--bundle-dir`` (with ``--scale``: the GPU bench's random-weight
    bundle at that scale, built there for ``--device`` unless it is already). Sets ``--threads`` first."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bundle_dir is None:
        from devkit.stack import ensure_tiny_bundle

        yield ensure_tiny_bundle(), "tiny"
    elif getattr(args, "scale", None) is None:
        yield args.bundle_dir, "given"
    else:
        from bench.engine_gpu.models import SCALES, ensure_bundle

        dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
        ensure_bundle(args.bundle_dir, SCALES[args.scale], args.device, dtype)
        yield args.bundle_dir, args.scale
