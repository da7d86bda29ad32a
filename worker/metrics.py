"""Prometheus metrics, health check and job statistics of a worker process.

The endpoint runs in a daemon thread (contract.observability), so it answers while the GPU is
busy. Job outcomes also go to Redis counters (contract.stats) that /stats and the bot's
``kb_jobs`` metric read, so totals survive worker restarts and add up across hosts.
Never imports aiogram; imports torch only to read GPU memory when CUDA is in use.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import ThreadingHTTPServer
from typing import Any

import redis as redis_sync
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from contract import keys, redisconn
from contract import stats as jobstats
from contract.loras import LoraStyle, encode_published
from contract.observability import HEALTH_REDIS_TIMEOUT_S, serve
from contract.redisconn import RedisTarget

log = logging.getLogger(__name__)

STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
"""From a tiny CPU test job (tens of ms) to the ten-minute job cap."""


def gpu_memory() -> dict[str, float]:
    """Allocated and reserved CUDA memory in bytes; empty when torch or CUDA is absent."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    return {
        "allocated": float(torch.cuda.memory_allocated()),
        "reserved": float(torch.cuda.memory_reserved()),
        "max_allocated": float(torch.cuda.max_memory_allocated()),
    }


def _gpu_reader(kind: str) -> Callable[[], float]:
    def read() -> float:
        return gpu_memory().get(kind, 0.0)

    return read


class WorkerMetrics:
    """One registry per worker process (no module-level globals)."""

    def __init__(self, worker_name: str = "") -> None:
        self.worker_name = worker_name or socket.gethostname()
        self.registry = CollectorRegistry()
        self.jobs = Counter("kb_worker_jobs", "Jobs finished by this worker, by mode and outcome",
                            ["mode", "outcome"], registry=self.registry)
        self.job_seconds = Histogram("kb_worker_job_seconds", "Run time of finished jobs", ["mode"],
                                     buckets=STAGE_BUCKETS, registry=self.registry)
        self.stage_seconds = Histogram("kb_worker_stage_seconds", "Time per engine stage", ["stage"],
                                       buckets=STAGE_BUCKETS, registry=self.registry)
        self.gpu_memory = Gauge("kb_worker_gpu_memory_bytes", "CUDA memory of this process", ["kind"],
                                registry=self.registry)
        self.engine_loaded = Gauge("kb_worker_engine_loaded", "1 once the engine is resident",
                                   registry=self.registry)
        self.warmup_seconds = Gauge(
            "kb_worker_warmup_seconds",
            "Seconds each start-up warm-up job took (compile time when KANDINSKY_COMPILE is on)",
            ["mode", "size"], registry=self.registry,
        )
        for kind in ("allocated", "reserved", "max_allocated"):
            self.gpu_memory.labels(kind).set_function(_gpu_reader(kind))

    def observe_warmup(self, timings: Mapping[str, float]) -> None:
        """``Engine.warmup_timings`` ("<mode> <WxH>": seconds), so compile time shows apart from jobs."""
        for key, seconds in timings.items():
            mode, _, size = key.partition(" ")
            self.warmup_seconds.labels(mode, size).set(seconds)

    def observe_job(self, mode: str, outcome: str, duration_s: float | None,
                    timings: Mapping[str, float] | None = None) -> None:
        self.jobs.labels(mode, outcome).inc()
        if duration_s is not None and outcome == "done":
            self.job_seconds.labels(mode).observe(duration_s)
        for stage, seconds in (timings or {}).items():
            self.stage_seconds.labels(stage).observe(seconds)


def record_job(
    client: redis_sync.Redis,
    mode: str,
    outcome: str,
    duration_s: float | None,
    *,
    timings: Mapping[str, float] | None = None,
    metrics: WorkerMetrics | None = None,
    job_id: str = "",
    family: str | None = None,
) -> None:
    """Count one finished job in Redis (for /stats and the bot, by mode and by model family) and in
    this worker's metrics.

    Statistics must never fail a job: a Redis error here is logged and swallowed.
    """
    if metrics is not None:
        metrics.observe_job(mode, outcome, duration_s, timings)
    try:
        with client.pipeline(transaction=False) as pipe:
            jobstats.record_job(pipe, mode, outcome, duration_s, time.time(), family=family)
            pipe.execute()
    except redis_sync.RedisError as exc:
        log.warning("job %s: statistics not recorded: %s", job_id, exc)


def publish_worker_info(client: redis_sync.Redis, name: str, device: str,
                        families: tuple[str, ...] = (),
                        styles: Mapping[str, Sequence[LoraStyle]] | None = None,
                        refused: Sequence[str] = ()) -> None:
    """What /workers shows beside RQ's record: the device this worker computes on, the model families
    it holds and its LoRA styles, those it loaded and the files it refused (comma-separated); and, for
    /settings, the styles it loaded per family (added to what other workers of the family publish)."""
    names = [style.name for family_styles in (styles or {}).values() for style in family_styles]
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.hset(keys.worker_info(name), mapping={"device": device, "host": socket.gethostname(),
                                                      "families": ",".join(families),
                                                      "styles": ",".join(names),
                                                      "refused": ",".join(refused)})
            pipe.expire(keys.worker_info(name), keys.WORKER_INFO_TTL)
            for family, loaded in (styles or {}).items():
                if loaded:
                    published: dict[Any, Any] = encode_published(loaded)
                    pipe.hset(keys.lora_styles(family), mapping=published)
                    pipe.expire(keys.lora_styles(family), keys.LORA_STYLES_TTL)
            pipe.execute()
    except redis_sync.RedisError as exc:
        log.warning("worker %s: info not published: %s", name, exc)


HealthCheck = Callable[[], tuple[bool, str]]


def health_check(client: redis_sync.Redis, engine_loaded: Callable[[], bool]) -> HealthCheck:
    """Healthy = Redis answers and the engine is resident (a worker without either does no work)."""

    def check() -> tuple[bool, str]:
        if not engine_loaded():
            return False, "engine not loaded"
        try:
            client.ping()
        except redis_sync.RedisError as exc:
            return False, f"redis unreachable: {type(exc).__name__}"
        return True, "ok"

    return check


def start_worker_metrics(
    port: int,
    redis_url: str | RedisTarget,
    engine_loaded: Callable[[], bool],
    *,
    worker_name: str = "",
    host: str = "0.0.0.0",
) -> tuple[WorkerMetrics, ThreadingHTTPServer]:
    """Serve /metrics and /healthz on ``port`` for this worker."""
    target = redis_url if isinstance(redis_url, RedisTarget) else RedisTarget(url=redis_url)
    client: Any = redisconn.sync_client(target, socket_timeout=HEALTH_REDIS_TIMEOUT_S,
                                        socket_connect_timeout=HEALTH_REDIS_TIMEOUT_S)
    metrics = WorkerMetrics(worker_name)
    metrics.engine_loaded.set_function(lambda: 1.0 if engine_loaded() else 0.0)
    server = serve(port, metrics.registry, health_check(client, engine_loaded), host=host)
    log.info("worker %s: metrics and health on port %s", metrics.worker_name, port)
    return metrics, server
