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

from contract import keys

DURATION_SAMPLES = 1000
"""Median and p95 job time per mode are computed over this many latest jobs."""
OUTCOMES: tuple[str, ...] = ("done", "failed", "cancelled")


def utc_day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y%m%d")


def record_job(pipe: Any, mode: str, outcome: str, duration_s: float | None, ts: float,
               family: str | None = None) -> None:
    """Queue the writes for one finished job on a Redis pipeline (sync or async); caller executes.
    ``family``: the model family that ran it, counted apart (contract.families)."""
    if family:
        pipe.hincrby(keys.STATS_FAMILIES_TOTAL, f"{family}:{outcome}", 1)
        pipe.hincrby(keys.stats_families_day(utc_day(ts)), f"{family}:{outcome}", 1)
        pipe.expire(keys.stats_families_day(utc_day(ts)), keys.STATS_DAY_TTL)
    field = f"{mode}:{outcome}"
    pipe.hincrby(keys.STATS_TOTAL, field, 1)
    pipe.hincrby(keys.stats_day(utc_day(ts)), field, 1)
    pipe.expire(keys.stats_day(utc_day(ts)), keys.STATS_DAY_TTL)
    if outcome == "done" and duration_s is not None:
        pipe.lpush(keys.stats_durations(mode), f"{duration_s:.3f}")
        pipe.ltrim(keys.stats_durations(mode), 0, DURATION_SAMPLES - 1)


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
