"""Progress publishing: what it adds to each step of the denoising loop.

Issue 3 asks that publishing progress "must not slow the step loop measurably". The step loop calls
``ProgressPublisher.on_progress`` and ``should_cancel`` once per step while the publisher's side
thread writes progress events to a real redis-server. This bench times those two calls per step,
against a reference loop in the same process whose step callback does nothing, with the thread
publishing (throttle 0: every step that the thread sees is published) and throttled as deployed.

Two loops, each against its own reference:

* hot: the hooks back to back (the model's work left out), the pure cost of the calls;
* paced: each step also sleeps ``--step-ms`` with the GIL released, as the loop does while the GPU
  works, so the thread really publishes (almost) every step and any GIL contention it causes shows.

A decoder step of the real model takes milliseconds on a GPU (tens at 1024²), so the figure to
compare with is microseconds per step.

    python bench/bench_progress.py                              # 200 000 hot, 1000 paced steps
    python bench/bench_progress.py --steps 2000 --paced-steps 50   # smoke size

Results go to bench/results/bench_progress-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import redis

from bench import common
from contract.spec import JobSpec, Mode
from devkit.redis_server import RedisServer
from worker.config import DEFAULT_CANCEL_POLL_S, DEFAULT_PROGRESS_THROTTLE_S
from worker.jobs import ProgressPublisher

STEPS_PER_STAGE = 50
"""The decoder's default step count: the (step, total) pairs cycle through it."""


def _noop(stage: str, step: int, total: int) -> None:
    return None


def _loop(callback: Any, cancelled: Any, steps: int, step_s: float = 0.0) -> float:
    """Seconds for ``steps`` steps that call the step hooks, each after ``step_s`` of "GPU work"."""
    started = time.perf_counter()
    for i in range(steps):
        if step_s:
            time.sleep(step_s)
        callback("decoder", i % STEPS_PER_STAGE + 1, STEPS_PER_STAGE)
        cancelled()
    return time.perf_counter() - started


async def run(args: argparse.Namespace) -> dict[str, Any]:
    meta = common.metadata()
    spec = JobSpec(mode=Mode.TEXT2IMAGE, prompt="bench", width=512, height=512, steps=STEPS_PER_STAGE,
                   prior_steps=2, user_id=1, chat_id=1)
    runs: dict[str, Any] = {}
    step_s = args.step_ms / 1000
    with RedisServer() as server:
        conn = redis.Redis.from_url(server.url)
        try:
            for loop, steps, pace in (("hot", args.steps, 0.0), ("paced", args.paced_steps, step_s)):
                reference_s = _loop(_noop, lambda: False, steps, pace)
                runs[f"{loop}: reference, no-op hooks"] = {
                    "loop": loop, "us_per_step": reference_s / steps * 1e6, "events_published": 0,
                    "added_us_per_step": 0.0}
                for throttle in (0.0, DEFAULT_PROGRESS_THROTTLE_S):
                    publisher = ProgressPublisher(conn, spec, "bench", throttle_s=throttle,
                                                  cancel_poll_s=DEFAULT_CANCEL_POLL_S)
                    with publisher as pub:
                        elapsed = _loop(pub.on_progress, pub.should_cancel, steps, pace)
                    runs[f"{loop}: publisher, throttle {throttle} s"] = {
                        "loop": loop, "us_per_step": elapsed / steps * 1e6, "events_published": pub.published,
                        "added_us_per_step": (elapsed - reference_s) / steps * 1e6}
        finally:
            conn.close()
    return {**meta, "bench": "bench_progress", "steps": args.steps, "paced_steps": args.paced_steps,
            "step_ms": args.step_ms, "runs": runs}


def print_report(report: dict[str, Any]) -> None:
    print(f"bench_progress on {report['machine']['cpu']}, load average at start "
          f"{report['load_average_start']}; {report['steps']} hot steps, {report['paced_steps']} paced steps "
          f"of {report['step_ms']} ms")
    rows = [[name, round(r["us_per_step"], 3), round(r["added_us_per_step"], 3), r["events_published"]]
            for name, r in report["runs"].items()]
    common.print_table("step hooks (on_progress + should_cancel)",
                       ["run", "us per step", "added us per step", "events published"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--steps", type=int, default=200_000, help="steps per hot run")
    parser.add_argument("--paced-steps", type=int, default=1000, help="steps per paced run")
    parser.add_argument("--step-ms", type=float, default=2.0, help="simulated GPU time per paced step")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.paced_steps < 1:
        parser.error("--steps and --paced-steps must be at least 1")
    return common.run_and_write(run, args, print_report, "bench_progress")


if __name__ == "__main__":
    sys.exit(main())
