"""Memory: resident size of the bot process and of an idle worker process, as deployed.

Starts ``python -m bot`` (polling the project's local Bot API server, hosted in this process) and
``python -m worker`` on the tiny random-weight bundle (CPU), and reads each one's memory from
/proc: VmRSS (resident now), VmHWM (peak resident), and from smaps_rollup Pss (shared pages split
between the processes that map them) and the private (unshared) part.

Samples: the bot idle after start, and after it queued a burst of jobs from new users (no worker
runs then, so the jobs stay queued); the worker idle after its engine loaded, and after one job.
References in the same run: a bare Python interpreter, and one that imported torch + diffusers
(the floor of any worker). The tiny bundle's weights are a few MB; with the public checkpoints the
weights live in GPU memory (several GB there), while the worker's host memory adds the CUDA context
and the loading buffers - that figure needs a GPU run and is not estimated here.

    python bench/bench_memory.py
    python bench/bench_memory.py --burst 10          # smoke size

The default burst (90) stays below the bot's Redis pool of 100 connections: bigger bursts in
polling mode lose updates (NOTES.md, finding 4); ``burst_queued`` says how many were queued.

Results go to bench/results/bench_memory-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench import common
from bench.common import REPO
from contract.queue import DEFAULT_QUEUE, HIGH_QUEUE
from devkit.botapi import LocalBotAPI
from devkit.redis_server import RedisServer
from devkit.stack import WorkerProcess, ensure_tiny_bundle

TOKEN = "777003:BENCH-memory-token"
BURST_TIMEOUT_S = 300.0
"""A few hundred updates take seconds to queue; minutes means the bot is stuck."""
JOB_TIMEOUT_S = 300.0
"""One tiny 512 px job takes 3-10 s on two shared cores."""
STALL_S = 10.0
"""No new queued job for this long: the rest of the burst failed in the bot."""
SETTLE_S = 2.0
"""Let a process finish its start-up work (first poll, sweeps) before reading its memory."""
STOP_TIMEOUT_S = 30.0
"""SIGTERM stops the bot at once; a few seconds more for a delivery in flight."""
REFERENCE_TIMEOUT_S = 300.0
"""Importing torch + diffusers takes up to a minute on busy cores."""
PROMPT = "/imagine a paper boat on a pond, memory bench {n}"


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM from /proc/PID/status, Pss and Private (clean + dirty) from smaps_rollup."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key.lower()] = int(value.split()[0])
    private = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        if key == "Pss":
            out["pss"] = int(value.split()[0])
        elif key in ("Private_Clean", "Private_Dirty"):
            private += int(value.split()[0])
    out["private"] = private
    return out


def reference(code: str) -> dict[str, int]:
    """Memory of a fresh interpreter after running ``code`` (it prints 'ready', then waits)."""
    proc = subprocess.Popen([sys.executable, "-c", f"{code}\nimport sys, time\nprint('ready', flush=True)\n"
                             "sys.stdin.read()"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"reference interpreter failed: {code!r}")
        return memory_kib(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def queued(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.llen(f"rq:queue:{DEFAULT_QUEUE}")) + int(client.llen(f"rq:queue:{HIGH_QUEUE}"))  # type: ignore[arg-type]
    finally:
        client.close()


async def wait_queued(url: str, expected: int) -> int:
    """Wait until ``expected`` jobs are queued, or until the count stops growing (updates the bot
    failed on: see NOTES.md, finding 4); returns how many were queued."""
    count, progress_at = 0, time.monotonic()
    deadline = progress_at + BURST_TIMEOUT_S
    while count < expected and time.monotonic() < deadline:
        now = queued(url)
        if now > count:
            count, progress_at = now, time.monotonic()
        elif time.monotonic() - progress_at > STALL_S:
            break
        await asyncio.sleep(0.1)
    return count


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    bundle = ensure_tiny_bundle()
    logs = common.logs_dir("bench-memory-", args.logs_dir)
    samples: dict[str, dict[str, int]] = {}
    with RedisServer() as redis_server:
        async with LocalBotAPI(token=TOKEN, bot_username="kandinsky_bench_bot") as api:
            env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": api.base_url,
                   "REDIS_URL": redis_server.url, "BOT_LONG_SIDE": "512", "BOT_STEPS": "1",
                   "BOT_PRIOR_STEPS": "2", "BOT_CONSUMER_NAME": "bench-memory"}
            with open(logs / "bot.log", "wb") as log_file:
                bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=REPO, env=env, stdout=log_file,
                                       stderr=subprocess.STDOUT)
            try:
                await api.wait_for(lambda: bot.poll() is not None or len(api.commands) >= 2,
                                   common.BOT_START_TIMEOUT_S)
                if bot.poll() is not None:
                    raise RuntimeError(f"the bot exited at start; see {logs / 'bot.log'}")
                await asyncio.sleep(SETTLE_S)
                samples["bot_idle"] = memory_kib(bot.pid)
                for n in range(args.burst):
                    await api.user(8_000_001 + n).send_text(PROMPT.format(n=n))
                burst_queued = await wait_queued(redis_server.url, args.burst)
                await asyncio.sleep(SETTLE_S)
                samples["bot_after_burst"] = memory_kib(bot.pid)
                # The burst's jobs are not the worker's business: it starts on an empty queue.
                client = redis.Redis.from_url(redis_server.url)
                client.delete(f"rq:queue:{DEFAULT_QUEUE}", f"rq:queue:{HIGH_QUEUE}")
                client.close()
                worker_env = {"KANDINSKY_MODEL_DIR": str(bundle), "KANDINSKY_DEVICE": "cpu",
                              "KANDINSKY_DTYPE": "float32", "HF_HUB_OFFLINE": "1"}
                worker = WorkerProcess(redis_server.url, logs / "worker.log", name="bench-memory-worker",
                                       env=worker_env)
                await asyncio.to_thread(worker.start)
                try:
                    assert worker.proc is not None
                    await asyncio.sleep(SETTLE_S)
                    samples["worker_idle"] = memory_kib(worker.proc.pid)
                    user = api.user(8_900_001)
                    await user.send_text(PROMPT.format(n="one job"))
                    await api.wait_for(lambda: any(m.kind == "photo" for m in api.messages_to(user.chat_id)),
                                       JOB_TIMEOUT_S)
                    await asyncio.sleep(SETTLE_S)
                    samples["worker_after_one_job"] = memory_kib(worker.proc.pid)
                finally:
                    await asyncio.to_thread(worker.stop)
            finally:
                if bot.poll() is None:
                    bot.terminate()
                    try:
                        await asyncio.to_thread(bot.wait, STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        bot.kill()
    samples["ref_python"] = reference("pass")
    samples["ref_import_aiogram_redis"] = reference("import aiogram, redis.asyncio, aiohttp")
    samples["ref_import_torch_diffusers"] = reference("import torch, diffusers")
    return {"samples_kib": samples, "burst_queued": burst_queued, "logs": str(logs)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    meta = common.metadata()
    result = await measure(args)
    s = result["samples_kib"]
    return {
        **meta,
        "bench": "bench_memory",
        "burst_updates": args.burst,
        **result,
        "ratios": {
            "bot_idle_rss_over_aiogram_import": s["bot_idle"]["vmrss"]
            / s["ref_import_aiogram_redis"]["vmrss"],
            "worker_idle_rss_over_torch_import": s["worker_idle"]["vmrss"]
            / s["ref_import_torch_diffusers"]["vmrss"],
        },
        "note": "tiny random-weight bundle on the CPU; real weights live in GPU memory, not measured here",
        "load_average_end": common.load_average(),
    }


def print_report(report: dict[str, Any]) -> None:
    print(f"bench_memory on {report['machine']['cpu']}, load average at start {report['load_average_start']}")
    rows = [[name, round(m["vmrss"] / 1024, 1), round(m["vmhwm"] / 1024, 1), round(m["pss"] / 1024, 1),
             round(m["private"] / 1024, 1)] for name, m in report["samples_kib"].items()]
    common.print_table("resident memory (MiB)", ["process", "RSS", "peak RSS", "PSS", "private"], rows)
    for key, value in report["ratios"].items():
        print(f"{key}: {value:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    common.add_logs_dir(parser)
    parser.add_argument("--burst", type=int, default=90, help="updates the bot queues before the 2nd sample")
    args = parser.parse_args(argv)
    if args.burst < 1:
        parser.error("--burst must be at least 1")
    return common.run_and_write(run, args, print_report, "bench_memory")


if __name__ == "__main__":
    sys.exit(main())
