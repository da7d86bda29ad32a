"""Job statistics in Redis: the worker records every outcome, /stats and the bot's metrics read them.

Counters (not scans of job records) because job records expire after a week while /stats
reports totals since the start; the duration samples are a bounded list per mode.
Imports neither torch nor aiogram.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from typing import Any

from contract.keys import PREFIX

DAY_STATS_TTL = 8 * 24 * 3600
"""Per-day counters back "today" in /stats; a week of them is kept for looking back."""
DURATION_SAMPLES = 1000
"""Median and p95 job time per mode are computed over this many latest jobs."""
OUTCOMES: tuple[str, ...] = ("done", "failed", "cancelled")

TOTAL_KEY = f"{PREFIX}:stats:jobs:total"
"""Hash "<mode>:<outcome>" -> count since the start (no TTL: a handful of fields)."""


WORKER_INFO_TTL = 120
"""Device details are refreshed by a live worker; a dead worker's entry vanishes by itself."""


def worker_info_key(name: str) -> str:
    """Hash a worker keeps fresh (device, host): what RQ's own worker record lacks."""
    return f"{PREFIX}:workerinfo:{name}"


FAMILY_TOTAL_KEY = f"{PREFIX}:stats:families:total"
"""Hash "<family>:<outcome>" -> count since the start: which model made how many images."""


def family_day_key(day: str) -> str:
    """Hash "<family>:<outcome>" -> count for one UTC day (YYYYMMDD)."""
    return f"{PREFIX}:stats:families:{day}"


def day_key(day: str) -> str:
    """Hash "<mode>:<outcome>" -> count for one UTC day (YYYYMMDD)."""
    return f"{PREFIX}:stats:jobs:{day}"


def durations_key(mode: str) -> str:
    """List of the latest job durations (seconds) of a mode, newest first."""
    return f"{PREFIX}:stats:durations:{mode}"


def utc_day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y%m%d")


def record_job(pipe: Any, mode: str, outcome: str, duration_s: float | None, ts: float,
               family: str | None = None) -> None:
    """Queue the writes for one finished job on a Redis pipeline (sync or async); caller executes.
    ``family``: the model family that ran it, counted apart (contract.families)."""
    if family:
        pipe.hincrby(FAMILY_TOTAL_KEY, f"{family}:{outcome}", 1)
        pipe.hincrby(family_day_key(utc_day(ts)), f"{family}:{outcome}", 1)
        pipe.expire(family_day_key(utc_day(ts)), DAY_STATS_TTL)
    field = f"{mode}:{outcome}"
    pipe.hincrby(TOTAL_KEY, field, 1)
    pipe.hincrby(day_key(utc_day(ts)), field, 1)
    pipe.expire(day_key(utc_day(ts)), DAY_STATS_TTL)
    if outcome == "done" and duration_s is not None:
        pipe.lpush(durations_key(mode), f"{duration_s:.3f}")
        pipe.ltrim(durations_key(mode), 0, DURATION_SAMPLES - 1)


def parse_counts(raw: dict[Any, Any]) -> dict[tuple[str, str], int]:
    """{(mode, outcome): count} from a counters hash as Redis returns it."""
    out: dict[tuple[str, str], int] = {}
    for k, v in raw.items():
        field = k.decode() if isinstance(k, bytes) else str(k)
        mode, _, outcome = field.rpartition(":")
        if mode:
            out[(mode, outcome)] = int(v)
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("percentile of an empty list")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return float(statistics.median(values))
