"""What the queue adds to the model's own time, and how throughput scales with workers.

Runs a real redis-server (AOF on, as in production), real ``python -m worker`` processes on the
tiny random-weight bundle on the CPU, the bot's JobQueue and EventConsumer. For each worker count
it submits JOBS jobs at once (all in flight) and, per job, splits the time from ``submit()`` to
the DONE event reaching the consumer's handler into:

    end-to-end = blocked + engine + overhead

* engine: the engine's own ``timings["total"]`` (the diffusers pipelines),
* blocked: time the job waited because every worker was busy computing *other* jobs — from its
  submit until its worker finished the job before it (that job's FINISH),
* overhead: everything else — submit (record + RQ enqueue + position), RQ dequeue and bookkeeping,
  reading the record, progress publishing, encoding and storing the result, the DONE event,
  and the consumer's read — i.e. what the queue costs.

Two engine profiles:

* ``cpu`` (default): the tiny bundle computes on this machine's cores, one torch thread per worker.
  Worker scaling then measures the cores: on a 2-core box, 4 workers cannot be faster than 2.
* ``--gpu-standin S``: every step of the engine also sleeps S seconds (``[fault:slow=S]`` in the
  prompt, honoured by the workers' job hooks from devkit.faults). The engine's time is then mostly off
  this CPU, as it is on GPU hosts where each worker has its own device, so the scaling figure shows
  what the queue itself allows (dispatch, locks, Redis) rather than how many cores the box has.
  The sleep counts as engine time, so the overhead figures mean the same in both profiles.

Usage: ``.venv/bin/python -m bench.bench_queue [--jobs 50] [--workers 1 2 4] [--gpu-standin S]``.
Prints a table and writes bench/results/queue.json (or --out) with machine, versions and date.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from bench.common import (
    GPU_STANDIN_ENV,
    REPO,
    RESULTS_DIR,
    add_logs_dir,
    gpu_standin_marker,
    logs_dir,
    versions,
)
from bench.common import percentile as pct
from bot.queue import EventConsumer, JobQueue, QueueSettings
from contract import keys
from contract.events import Event, EventType, JobResult
from contract.queue import F
from contract.spec import JobSpec, Mode, bucket_size
from devkit.redis_server import RedisServer

WORKER_READY_TIMEOUT_S = 180.0
"""torch + diffusers import and the engine load, several processes at once on a small box."""
RUN_TIMEOUT_S = 600.0
"""A whole run of JOBS tiny jobs; past this something is stuck."""
SIZE = bucket_size("16:9", 512)
"""The smallest bucket: keeps the engine part small so the queue's share is visible."""
STEPS = 2
"""The fewest steps the prior accepts."""


@dataclass
class Sample:
    job_id: str
    submit_start: float
    submit_end: float
    received: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    worker: str = ""
    engine_s: float = 0.0
    encode_s: float = 0.0


def start_workers(
    url: str, bundle: Path, count: int, tag: str, log_dir: Path, standin: bool = False
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        name = f"bench-{tag}-{i}"
        env = {
            **os.environ,
            "REDIS_URL": url,
            "KANDINSKY_MODEL_DIR": str(bundle),
            "KANDINSKY_DEVICE": "cpu",
            "KANDINSKY_DTYPE": "float32",
            "WORKER_NAME": name,
            "OMP_NUM_THREADS": "1",  # one core per worker, as one GPU per worker in production
            **(GPU_STANDIN_ENV if standin else {}),
        }
        log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        procs.append(subprocess.Popen([sys.executable, "-m", "worker", "--log-level", "WARNING"],
                                      cwd=REPO, env=env, stdout=log, stderr=log))
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    for i, proc in enumerate(procs):
        while not client.exists(f"rq:worker:bench-{tag}-{i}"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker bench-{tag}-{i} did not start; see {log_dir}")
            time.sleep(0.1)
    client.close()
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run_once(url: str, jobs: int, warmup: int, standin_s: float) -> tuple[list[Sample], float]:
    client = aioredis.Redis.from_url(url)
    queue = JobQueue(client, QueueSettings(per_user_inflight=jobs, max_retries=0))
    samples: dict[str, Sample] = {}
    done = asyncio.Event()
    expected: set[str] = set()

    async def handler(event: Event) -> None:
        if event.type is EventType.PROGRESS:
            return
        if event.type is not EventType.DONE:
            raise SystemExit(f"job {event.job_id} ended: {event!r}")
        sample = samples.get(event.job_id)
        if sample is not None:
            sample.received = time.time()
            expected.discard(event.job_id)
            if not expected:
                done.set()

    consumer = EventConsumer(client, handler, "bench")
    await consumer.ensure_group()
    task = asyncio.create_task(consumer.run())

    marker = gpu_standin_marker(standin_s)

    def spec(i: int) -> JobSpec:
        return JobSpec(mode=Mode.TEXT2IMAGE, prompt=f"{marker}bench cube {i}", width=SIZE[0], height=SIZE[1],
                       steps=STEPS, prior_steps=STEPS, user_id=1, chat_id=1, seed=i)

    # Warm-up: first jobs pay for lazy allocations in each worker; not measured.
    for i in range(warmup):
        s = spec(10_000 + i)
        samples[s.job_id] = Sample(s.job_id, time.time(), 0.0)
        expected.add(s.job_id)
        await queue.submit(s)
    await asyncio.wait_for(done.wait(), RUN_TIMEOUT_S)
    samples.clear()
    done.clear()

    specs = [spec(i) for i in range(jobs)]
    expected.update(s.job_id for s in specs)
    first = time.time()
    for s in specs:
        start = time.time()
        await queue.submit(s)
        samples[s.job_id] = Sample(s.job_id, start, time.time())
    await asyncio.wait_for(done.wait(), RUN_TIMEOUT_S)
    wall = max(x.received for x in samples.values()) - first
    for sample in samples.values():
        raw: Any = await client.hmget(keys.job(sample.job_id), [F.STARTED, F.FINISHED, F.RESULT, F.WORKER])
        sample.started, sample.finished = float(raw[0]), float(raw[1])
        result = JobResult.model_validate_json(raw[2])
        sample.worker = raw[3].decode()
        sample.engine_s = result.timings.get("total") or sum(
            v for k, v in result.timings.items() if k in ("prior", "decoder"))
        sample.encode_s = result.timings.get("encode", 0.0)
    await consumer.stop()
    await task
    await queue.close()
    await client.aclose()
    return list(samples.values()), wall


def overheads(samples: list[Sample]) -> dict[str, list[float]]:
    """Per job, in seconds: the overhead, without result encoding, and its parts."""
    by_worker: dict[str, list[Sample]] = {}
    for s in samples:
        by_worker.setdefault(s.worker, []).append(s)
    parts: dict[str, list[float]] = {
        k: [] for k in ("overhead", "no_encode", "submit", "pickup", "worker", "deliver")
    }
    for runs in by_worker.values():
        runs.sort(key=lambda s: s.started)
        prev_finished = 0.0
        for s in runs:
            blocked = max(0.0, prev_finished - s.submit_end)
            overhead = (s.received - s.submit_start) - blocked - s.engine_s
            parts["overhead"].append(overhead)
            parts["no_encode"].append(overhead - s.encode_s)
            parts["submit"].append(s.submit_end - s.submit_start)
            parts["pickup"].append(s.started - max(s.submit_end, prev_finished))
            parts["worker"].append(s.finished - s.started - s.engine_s - s.encode_s)
            parts["deliver"].append(s.received - s.finished)
            prev_finished = s.finished
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=50, help="jobs in flight per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--bundle", type=Path, default=None, help="a model folder (default: the tiny bundle)")
    parser.add_argument("--gpu-standin", type=float, default=0.0, metavar="S",
                        help="each engine step also sleeps S s (engine time off this CPU, as on GPU hosts)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default bench/results/queue.json, queue-gpu-standin.json)")
    add_logs_dir(parser)
    args = parser.parse_args(argv)
    standin = args.gpu_standin > 0
    if args.out is None:
        args.out = RESULTS_DIR / ("queue-gpu-standin.json" if standin else "queue.json")

    tmp = logs_dir("bench-queue-", args.logs_dir)
    if args.bundle is None:
        from devkit.stack import ensure_tiny_bundle

        bundle = ensure_tiny_bundle()
    else:
        bundle = args.bundle

    rows: list[dict[str, Any]] = []
    load_before = [round(x, 2) for x in os.getloadavg()]
    with RedisServer(appendonly=True) as server:
        for count in args.workers:
            redis.Redis.from_url(server.url).flushall()
            procs = start_workers(server.url, bundle, count, f"w{count}", tmp, standin)
            try:
                samples, wall = asyncio.run(
                    run_once(server.url, args.jobs, max(args.warmup, count), args.gpu_standin))
            finally:
                stop_workers(procs)
            parts = overheads(samples)
            engine = [s.engine_s for s in samples]
            row: dict[str, Any] = {
                "workers": count,
                "jobs": len(samples),
                "wall_s": round(wall, 3),
                "jobs_per_s": round(len(samples) / wall, 3),
                "engine_mean_s": round(statistics.mean(engine), 4),
                "encode_mean_ms": round(statistics.mean(s.encode_s for s in samples) * 1000, 2),
                "workers_used": len({s.worker for s in samples}),
                # Share of the workers' wall time spent in the engine: 1.0 means the queue never
                # kept a worker waiting; below it, dispatch, bookkeeping or delivery did.
                "engine_utilization": round(len(samples) / wall * statistics.mean(engine) / count, 3),
            }
            for name, values in parts.items():
                row[f"{name}_p50_ms"] = round(pct(values, 50) * 1000, 2)
                row[f"{name}_p99_ms"] = round(pct(values, 99) * 1000, 2)
            rows.append(row)
    base = rows[0]["jobs_per_s"]
    for row in rows:
        row["speedup_vs_first"] = round(row["jobs_per_s"] / base, 2)

    profile = f"GPU stand-in: +{args.gpu_standin} s sleep per step" if standin else "engine on the CPU"
    print(f"{args.jobs} jobs in flight, {SIZE[0]}x{SIZE[1]}, {STEPS} steps, tiny bundle, {profile} "
          f"({os.cpu_count()} cores)")
    print(f"{'workers':>7} {'jobs/s':>7} {'speedup':>7} {'util':>5} {'engine s':>8} "
          f"{'ovh p50':>8} {'ovh p99':>8} "
          f"{'-enc p50':>8} {'-enc p99':>8} | p50 ms: "
          f"{'submit':>6} {'pickup':>6} {'worker':>6} {'deliver':>7}")
    for r in rows:
        print(f"{r['workers']:>7} {r['jobs_per_s']:>7.2f} {r['speedup_vs_first']:>7.2f} "
              f"{r['engine_utilization']:>5.2f} "
              f"{r['engine_mean_s']:>8.3f} {r['overhead_p50_ms']:>8.1f} {r['overhead_p99_ms']:>8.1f} "
              f"{r['no_encode_p50_ms']:>8.1f} {r['no_encode_p99_ms']:>8.1f} |         "
              f"{r['submit_p50_ms']:>6.1f} {r['pickup_p50_ms']:>6.1f} {r['worker_p50_ms']:>6.1f} "
              f"{r['deliver_p50_ms']:>7.1f}")
    print("ovh = submit → DONE at the consumer, minus engine time and minus time spent behind other jobs;")
    print("-enc = the same without encoding the result (JPEG or PNG); util = engine time / (wall × workers);")
    print("all times in ms unless marked.")

    report = {
        "bench": "queue",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "loadavg_at_start": load_before,
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": versions(),
        "setup": {"jobs_in_flight": args.jobs, "size": list(SIZE), "steps": STEPS, "device": "cpu",
                  "omp_threads_per_worker": 1, "redis_aof": True,
                  "gpu_standin_sleep_per_step_s": args.gpu_standin},
        "targets": {"overhead_p50_ms": 25, "overhead_p99_ms": 100},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
