"""System overhead as a user feels it, and worker scaling, through the whole running service.

Everything runs as deployed, on this machine: a redis-server, ``python -m bot`` (polling) against
the project's local Telegram Bot API server (devkit.botapi, hosted in this process, which also plays
the users), and ``python -m worker`` processes on the tiny random-weight bundle (CPU, one torch
thread each, so the engine does not starve the bot of the two cores it shares them with).

Per job it measures: a simulated user sends ``/imagine …`` (SimUser.send_text) → the bot writes the
job record and enqueues it → a worker picks it → runs the engine → the DONE event → the bot's
sendPhoto reaches the Bot API server. From the job record it takes the engine's own time and the
time the job waited while every worker was busy with other jobs, and reports

    own overhead = (sendPhoto received − message sent) − engine time − waiting behind other jobs

where "waiting behind other jobs" runs from the enqueue until the job's worker finished the job it
ran before (the split bench/bench_queue.py uses, so queue and system overheads compare); each gap
between two jobs on a worker is counted once, as the pickup of the job that follows it.

split into its stages (ingress: message → job record; pickup: free worker → job started; worker:
started → finished minus the engine; egress: finished → sendPhoto received), p50/p95/p99 with
1, 10 and 50 jobs kept in flight (closed loop: a new user writes as soon as a result arrives; every
job comes from a new user, so per-user quotas never refuse one). Goal: p50 < 25 ms, p99 < 100 ms.

Worker scaling: throughput (results delivered per second) with 1, 2 and 4 worker processes, each
kept busy (2 jobs in flight per worker), as a ratio to the 1-worker run of the same process and to
linear scaling; "where cores allow" means min(workers, usable cores).

    python bench/bench_system.py                        # the full run (a few minutes)
    python bench/bench_system.py --inflight 1 --jobs 3 --workers 1 --scaling-jobs 2   # smoke size

Results go to bench/results/bench_system-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from bench import common
from bench.common import REPO
from contract.events import JobResult
from contract.queue import F
from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer
from devkit.stack import WorkerProcess, ensure_tiny_bundle

TOKEN = "777001:BENCH-token-not-a-secret"
BOT_STOP_TIMEOUT_S = 30.0
"""SIGTERM stops polling at once; a delivery in flight may take a few seconds more."""
JOB_TIMEOUT_S = 1800.0
"""One tiny 512 px job takes 3-10 s on two shared cores; the last of 50 queued behind one worker waits
50 of them, so up to ten minutes is normal and half an hour means something is stuck."""
COLLECT_POLL_S = 0.005
"""How often the driver looks at the server's recorded calls; timestamps come from the server, so
this only delays the next user's message, never a measurement."""
RECORD_WAIT_S = 10.0
"""The job record is complete before the DONE event is sent; a few seconds covers a busy Redis."""
JOBS_PER_WORKER_IN_FLIGHT = 2
"""Enough queued work that a worker never waits for the bot between two jobs."""
RESULT_FILE = re.compile(r"^[0-9A-Za-z_-]+-\d+\.(png|webp|jpe?g)$")
"""Delivery names result uploads ``<job id>-<n>.<fmt>``; progress previews are ``preview.png``."""
STAGES = ("ingress", "pickup", "worker", "egress")
"""A job's own overhead, in the order it happens (``JobTiming.stages_ms``)."""
GOAL_P50_MS = 25.0
GOAL_P99_MS = 100.0
PROMPT = "/imagine {marker}a lighthouse on a cliff at dusk, bench job {n}"


@dataclass
class JobTiming:
    """One job's timestamps (unix seconds, one clock: every process is on this machine)."""

    chat_id: int
    job_id: str
    worker: str
    sent: float
    created: float
    started: float
    finished: float
    delivered: float
    engine_s: float
    encode_s: float
    blocked_s: float = 0.0
    """Time between enqueue and start spent behind other jobs on the job's worker (blocked_time)."""

    @property
    def e2e_s(self) -> float:
        return self.delivered - self.sent

    @property
    def own_overhead_s(self) -> float:
        return self.e2e_s - self.engine_s - self.blocked_s

    def stages_ms(self) -> dict[str, float]:
        return {
            "ingress": (self.created - self.sent) * 1e3,
            "pickup": (self.started - self.created - self.blocked_s) * 1e3,
            "worker": (self.finished - self.started - self.engine_s) * 1e3,
            "egress": (self.delivered - self.finished) * 1e3,
        }


def blocked_time(job: JobTiming, others: Sequence[JobTiming]) -> float:
    """Seconds from the job's enqueue until its worker finished the job it ran just before.

    That wait is other jobs' time (their engine and their own overhead, each counted with its own
    job); what follows - RQ handing the job over - is this job's pickup. The same split as
    bench/bench_queue.py, so the two benches' overheads compare.
    """
    before = [o for o in others if o is not job and o.worker == job.worker and o.finished <= job.started]
    if not before:
        return 0.0
    previous = max(before, key=lambda o: o.finished)
    return max(0.0, previous.finished - job.created)


class Service:
    """Redis, the bot process and worker processes around one in-process LocalBotAPI."""

    def __init__(self, api: LocalBotAPI, redis_server: RedisServer, bundle: Path, logs: Path,
                 torch_threads: int, gpu_standin_s: float = 0.0) -> None:
        self.api = api
        self.gpu_standin_s = gpu_standin_s
        self.marker = common.gpu_standin_marker(gpu_standin_s)
        self.redis_server = redis_server
        self.bundle = bundle
        self.logs = logs
        self.torch_threads = torch_threads
        self.bot: subprocess.Popen[bytes] | None = None
        self.workers: list[WorkerProcess] = []
        self._user_ids = itertools.count(5_000_001)
        self._seen = 0
        self._waiting: dict[int, asyncio.Future[float]] = {}

    async def start_bot(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": self.api.base_url,
            "REDIS_URL": self.redis_server.url,
            "BOT_LONG_SIDE": "512",
            "BOT_STEPS": "1",
            "BOT_PRIOR_STEPS": "2",
            "BOT_CONSUMER_NAME": "bench-bot",
            **(extra_env or {}),
        }
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "bot.log", "ab") as log_file:
            self.bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=REPO, env=env, stdout=log_file,
                                        stderr=subprocess.STDOUT)
        bot = self.bot
        try:
            await self.api.wait_for(lambda: bot.poll() is not None or len(self.api.commands) >= 2,
                                    timeout=common.BOT_START_TIMEOUT_S)
        except TimeoutError:
            bot.kill()
            raise
        if bot.poll() is not None:
            tail = (self.logs / "bot.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the bot exited at start:\n{tail}")
        return bot

    async def add_workers(self, count: int) -> None:
        """Start ``count`` more workers (in parallel) and wait until each is registered."""
        env = {
            "KANDINSKY_MODEL_DIR": str(self.bundle),
            "KANDINSKY_DEVICE": "cpu",
            "KANDINSKY_DTYPE": "float32",
            "OMP_NUM_THREADS": str(self.torch_threads),
            "MKL_NUM_THREADS": str(self.torch_threads),
            "HF_HUB_OFFLINE": "1",
            **(common.GPU_STANDIN_ENV if self.gpu_standin_s > 0 else {}),
        }
        numbers = range(len(self.workers) + 1, len(self.workers) + count + 1)
        new = [WorkerProcess(self.redis_server.url, self.logs / f"worker-{n}.log", env=env,
                             name=f"bench-worker-{n}") for n in numbers]
        self.workers += new
        await asyncio.gather(*(asyncio.to_thread(w.start) for w in new))

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
        if self.bot is not None and self.bot.poll() is None:
            self.bot.terminate()
            try:
                await asyncio.to_thread(self.bot.wait, BOT_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.bot.kill()

    def check_alive(self) -> None:
        if self.bot is not None and self.bot.poll() is not None:
            raise RuntimeError(f"the bot died (exit {self.bot.returncode}); see {self.logs / 'bot.log'}")
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is not None:
                raise RuntimeError(f"worker {w.name} died; see {w.log_path}")

    async def watch(self) -> None:
        """Resolve each waiting chat's future with the time its result's sendPhoto arrived."""
        while True:
            calls = self.api.calls
            for call in calls[self._seen:]:
                if call.method.lower() != "sendphoto" or not call.ok:
                    continue
                if not any(RESULT_FILE.match(f.filename or "") for f in call.files.values()):
                    continue
                chat_id = int(call.params.get("chat_id", 0))
                future = self._waiting.pop(chat_id, None)
                if future is not None and not future.done():
                    future.set_result(call.time)
            self._seen = len(calls)
            await asyncio.sleep(COLLECT_POLL_S)

    async def one_job(self, n: int) -> tuple[int, float, float]:
        """A new user asks for one image; returns (chat id, sent, delivered)."""
        user = self.api.user(next(self._user_ids))
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[user.chat_id] = future
        sent = time.time()
        await user.send_text(PROMPT.format(marker=self.marker, n=n))
        try:
            delivered = await asyncio.wait_for(future, timeout=JOB_TIMEOUT_S)
        except TimeoutError:
            self.check_alive()
            raise TimeoutError(f"no result for chat {user.chat_id} within {JOB_TIMEOUT_S} s") from None
        return user.chat_id, sent, delivered

    async def closed_loop(self, inflight: int, jobs: int) -> tuple[list[tuple[int, float, float]], float]:
        """Keep ``inflight`` jobs in flight until ``jobs`` are delivered; returns them and the wall time."""
        counter = itertools.count()
        done: list[tuple[int, float, float]] = []

        async def user_loop() -> None:
            while (n := next(counter)) < jobs:
                done.append(await self.one_job(n))

        started = time.perf_counter()
        await asyncio.gather(*(user_loop() for _ in range(min(inflight, jobs))))
        return done, time.perf_counter() - started

    def job_records(self, chats: dict[int, tuple[float, float]]) -> list[JobTiming]:
        """Read each chat's (single) job record from Redis and join it with the driver's times."""
        client = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        try:
            by_chat: dict[int, dict[str, str]] = {}
            deadline = time.monotonic() + RECORD_WAIT_S
            while True:
                for key in client.scan_iter(match="kb:job:*", count=1000):
                    record: dict[str, str] = {str(k): str(v) for k, v in client.hgetall(key).items()}
                    if record.get(F.CHAT) and int(record[F.CHAT]) in chats and record.get(F.RESULT):
                        by_chat[int(record[F.CHAT])] = {**record, "job_id": str(key).split(":", 2)[2]}
                if len(by_chat) == len(chats) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            client.close()
        missing = set(chats) - set(by_chat)
        if missing:
            raise RuntimeError(f"no finished job record for chats {sorted(missing)[:5]}")
        out = []
        for chat_id, (sent, delivered) in chats.items():
            found = by_chat[chat_id]
            result = JobResult.model_validate_json(found[F.RESULT])
            out.append(JobTiming(
                chat_id=chat_id, job_id=found["job_id"], worker=found.get(F.WORKER, ""), sent=sent,
                created=float(found[F.CREATED]), started=float(found[F.STARTED]),
                finished=float(found[F.FINISHED]), delivered=delivered,
                engine_s=float(result.timings["total"]), encode_s=float(result.timings.get("encode", 0.0)),
            ))
        return out


def calls_per_result(calls: Sequence[Any], chats: set[int]) -> dict[str, float]:
    """Bot API calls to the measured jobs' chats per delivered result, by method (each job is a new
    user's first request, alone in its chat), and their total: the whole bot may send ~30 a second,
    so each call a result needs is capacity no GPU can use."""
    counts: dict[str, int] = {}
    for call in calls:
        chat = call.params.get("chat_id")
        if call.ok and chat is not None and int(chat) in chats:
            counts[call.method] = counts.get(call.method, 0) + 1
    per_result = {method: n / len(chats) for method, n in sorted(counts.items())} if chats else {}
    return {**per_result, "total": sum(per_result.values())}


def _ms(values: Sequence[float]) -> dict[str, float]:
    return {k: (v if k == "n" else v * 1e3) for k, v in common.summary(values).items()}


def _stage_summary(jobs: Sequence[JobTiming]) -> dict[str, dict[str, float]]:
    return {name: common.summary([j.stages_ms()[name] for j in jobs]) for name in STAGES}


def latency_level(jobs: list[JobTiming], workers: int, inflight: int, wall_s: float) -> dict[str, Any]:
    for job in jobs:
        job.blocked_s = blocked_time(job, jobs)
    stages = _stage_summary(jobs)
    own = _ms([j.own_overhead_s for j in jobs])
    # The first ``inflight`` messages arrive as one burst (the loop's start), so they queue on the
    # bot's core; the jobs after them arrive one per finished job, as users in a steady state do.
    steady = sorted(jobs, key=lambda j: j.sent)[inflight:]
    return {
        "inflight": inflight,
        "workers": workers,
        "jobs": len(jobs),
        "wall_s": wall_s,
        "own_overhead_ms": own,
        "steady_own_overhead_ms": _ms([j.own_overhead_s for j in steady]) if steady else None,
        "steady_stages_ms": _stage_summary(steady) if steady else None,
        "e2e_ms": _ms([j.e2e_s for j in jobs]),
        "engine_ms": _ms([j.engine_s for j in jobs]),
        "blocked_behind_other_jobs_ms": _ms([j.blocked_s for j in jobs]),
        "stages_ms": stages,
        "engine_share_of_e2e": sum(j.engine_s for j in jobs) / sum(j.e2e_s for j in jobs),
        "goal_p50_met": own["p50"] < GOAL_P50_MS,
        "goal_p99_met": own["p99"] < GOAL_P99_MS,
        "load_average": common.load_average(),
        "timings": [{**asdict(j), "own_overhead_s": j.own_overhead_s} for j in jobs],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    meta = common.metadata()
    bundle = ensure_tiny_bundle()
    logs = common.logs_dir("bench-system-", args.logs_dir)
    report: dict[str, Any] = {
        **meta,
        "bench": "bench_system",
        "setup": {
            "bot": "python -m bot, polling, against devkit.botapi.LocalBotAPI in the bench process",
            "workers": f"python -m worker, tiny bundle, cpu float32, {args.torch_threads} torch thread(s)",
            "job": "/imagine <prompt>: text2image 512x512, 2 prior + 1 decoder step, a new user per job",
            "overhead": "sendPhoto received - message sent - engine total - wait for the previous job",
            "gpu_standin_s_per_step": args.gpu_standin,
            "logs": str(logs),
        },
        "goal_ms": {"p50": GOAL_P50_MS, "p99": GOAL_P99_MS},
    }
    with RedisServer() as redis_server:
        async with LocalBotAPI(token=TOKEN, bot_username="kandinsky_bench_bot") as api:
            service = Service(api, redis_server, bundle, logs, args.torch_threads, args.gpu_standin)
            watcher = asyncio.create_task(service.watch())
            measured_chats: set[int] = set()
            try:
                await service.start_bot()
                await service.add_workers(1)
                await service.closed_loop(1, args.warmup)  # first jobs pay lazy initialisation
                levels = []
                for inflight in args.inflight:
                    done, wall = await service.closed_loop(inflight, max(args.jobs, inflight))
                    measured_chats.update(chat for chat, _, _ in done)
                    timings = service.job_records({c: (s, d) for c, s, d in done})
                    levels.append(latency_level(timings, 1, inflight, wall))
                    print(f"  {inflight} in flight: {len(done)} jobs in {wall:.1f} s", flush=True)
                report["latency"] = levels
                scaling = []
                for workers in sorted(args.workers):
                    if workers > len(service.workers):
                        await service.add_workers(workers - len(service.workers))
                        await service.closed_loop(workers, workers)  # warm the new workers
                    inflight = JOBS_PER_WORKER_IN_FLIGHT * workers
                    jobs = args.scaling_jobs * workers
                    done, wall = await service.closed_loop(inflight, jobs)
                    timings = service.job_records({c: (s, d) for c, s, d in done})
                    first = min(j.sent for j in timings)
                    last = max(j.delivered for j in timings)
                    scaling.append({
                        "workers": workers,
                        "inflight": inflight,
                        "jobs": len(timings),
                        "wall_s": last - first,
                        "jobs_per_s": len(timings) / (last - first),
                        "engine_ms": _ms([j.engine_s for j in timings]),
                        "jobs_per_worker": {w: sum(j.worker == w for j in timings)
                                            for w in sorted({j.worker for j in timings})},
                        "load_average": common.load_average(),
                    })
                    print(f"  {workers} worker(s): {len(timings)} jobs, "
                          f"{scaling[-1]['jobs_per_s']:.2f} jobs/s", flush=True)
                cores = len(os.sched_getaffinity(0))
                base = scaling[0]["jobs_per_s"] / scaling[0]["workers"] if scaling else 0.0
                for entry in scaling:
                    w = entry["workers"]
                    entry["speedup_vs_first"] = entry["jobs_per_s"] / scaling[0]["jobs_per_s"]
                    entry["efficiency_vs_linear"] = entry["jobs_per_s"] / (base * w)
                    entry["efficiency_where_cores_allow"] = entry["jobs_per_s"] / (base * min(w, cores))
                report["scaling"] = scaling
                report["scaling_note"] = (
                    f"{cores} usable core(s), shared by the bot, redis-server, the bench process and every "
                    "worker (and, on this machine, other people's work): beyond that many workers, linear "
                    "scaling is not physically possible here"
                )
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                await service.stop()
            report["bot_api_calls_per_result"] = calls_per_result(api.calls, measured_chats)
            report["botapi_violations"] = list(api.violations)
            report["botapi_server_errors"] = list(api.server_errors)
    report["load_average_end"] = common.load_average()
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"bench_system on {report['machine']['cpu']} ({report['machine']['cpus_usable']} cores), "
          f"load average at start {report['load_average_start']}")
    common.print_table(
        "own overhead per job (ms) = delivered - sent - engine - waiting behind other jobs; 1 worker",
        ["in flight", "jobs", "p50", "p95", "p99", "ingress p50", "pickup p50", "worker p50", "egress p50",
         "e2e p50", "engine p50", "goal"],
        [[lv["inflight"], lv["jobs"], lv["own_overhead_ms"]["p50"], lv["own_overhead_ms"]["p95"],
          lv["own_overhead_ms"]["p99"], lv["stages_ms"]["ingress"]["p50"], lv["stages_ms"]["pickup"]["p50"],
          lv["stages_ms"]["worker"]["p50"], lv["stages_ms"]["egress"]["p50"], lv["e2e_ms"]["p50"],
          lv["engine_ms"]["p50"],
          "met" if lv["goal_p50_met"] and lv["goal_p99_met"] else "MISSED"] for lv in report["latency"]],
    )
    steady = [lv for lv in report["latency"] if lv.get("steady_own_overhead_ms")]
    if steady:
        common.print_table(
            "the same, without each level's opening burst (the first `in flight` jobs, sent at once)",
            ["in flight", "jobs", "p50", "p95", "p99", "ingress p50", "pickup p50", "worker p50",
             "egress p50"],
            [[lv["inflight"], lv["steady_own_overhead_ms"]["n"], lv["steady_own_overhead_ms"]["p50"],
              lv["steady_own_overhead_ms"]["p95"], lv["steady_own_overhead_ms"]["p99"],
              *(lv["steady_stages_ms"][name]["p50"] for name in STAGES)]
             for lv in steady],
        )
    if report.get("scaling"):
        common.print_table(
            "worker scaling through the whole service",
            ["workers", "jobs", "jobs/s", "x 1 worker", "x linear", "x where cores allow", "engine p50 ms"],
            [[s["workers"], s["jobs"], f"{s['jobs_per_s']:.2f}", f"{s['speedup_vs_first']:.2f}",
              f"{s['efficiency_vs_linear']:.2f}", f"{s['efficiency_where_cores_allow']:.2f}",
              s["engine_ms"]["p50"]] for s in report["scaling"]],
        )
    calls = report.get("bot_api_calls_per_result") or {}
    if calls:
        by_method = ", ".join(f"{m} {n:.2f}" for m, n in calls.items() if m != "total")
        print(f"Bot API calls per delivered result: {calls['total']:.2f} ({by_method})")


def _positive(values: Sequence[int]) -> Iterator[int]:
    for v in values:
        if v < 1:
            raise SystemExit(f"counts must be at least 1, got {v}")
        yield v


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    common.add_logs_dir(parser)
    parser.add_argument("--inflight", type=int, nargs="+", default=[1, 10, 50],
                        help="jobs kept in flight, one latency run each (default 1 10 50)")
    parser.add_argument("--jobs", type=int, default=20,
                        help="jobs measured per in-flight level (at least the level; default 20)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4],
                        help="worker counts for the scaling run (default 1 2 4)")
    parser.add_argument("--scaling-jobs", type=int, default=6, help="jobs per worker in a scaling run")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured jobs before the first level")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--gpu-standin", type=float, default=0.0, metavar="S",
                        help="every engine step also sleeps S seconds, off the CPU (as on a GPU host)")
    args = parser.parse_args(argv)
    args.inflight = list(_positive(args.inflight))
    args.workers = list(_positive(args.workers))
    for name in ("jobs", "scaling_jobs", "warmup", "torch_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return common.run_and_write(run, args, print_report, "bench_system")


if __name__ == "__main__":
    sys.exit(main())
