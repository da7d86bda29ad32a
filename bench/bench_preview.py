"""Live previews: what they cost next to the decoder's steps and the whole job.

Issue 16 asks that previews cost under 3 % of a job's engine time at 1024² at the default interval
(a preview every ``DEFAULT_PREVIEW_EVERY`` decoder steps). Three figures per size, all in one process:

* **render**: one preview on the step thread (the fitted linear latent → colour map, the copy of
  a few kilobytes to the host: worker/engine/preview.py), against the median decoder step measured
  in the same run, at the default interval: ``render / (every × step)``;
* **encode**: the side thread's share (upscale to 256 px, JPEG), which competes for the CPU, not
  for the device;
* **job**: whole jobs with previews on (every offer rendered and encoded on the step thread, the
  worst case) against the same jobs with previews off, median of ``--repeats``: the figure the
  issue's goal is about. For reference, a MoVQ decode at 1/8 of the latent size (the other cheap
  preview one could make) is timed too.

On this machine: the tiny random-weight bundle on the CPU (``--sizes 512x512 1024x1024``). On a GPU:
``--bundle-dir DIR --scale public --device cuda`` uses the GPU bench's full-size random-weight bundle
(bench/engine_gpu/models.py; bench/gpu_check.sh runs both benches).

    python bench/bench_preview.py                          # tiny bundle, CPU, 512² and 1024²
    python bench/bench_preview.py --sizes 512x256 --steps 4 --repeats 1   # smoke size

Results go to bench/results/bench_preview-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench import common
from contract.families import Family
from contract.spec import JobSpec, Mode
from worker.engine import Engine, EngineSettings
from worker.engine.families import Kandinsky22Engine
from worker.engine.preview import DEFAULT_PREVIEW_EVERY, preview_jpeg
from worker.engine.settings import parse_size

GOAL_FRACTION = 0.03
"""Previews must cost under 3 % of a job's engine time (issue 16)."""
PROMPT = "a lighthouse on a cliff at dusk"
MICRO_REPEATS = 30
"""Renders, encodes and tiny decodes timed per size: each is milliseconds or less."""


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _median_s(fn: Callable[[], Any], repeats: int, device: str) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _engine(args: argparse.Namespace, bundle: Path) -> Engine:
    return Engine.load(EngineSettings(model_dir=bundle, device=args.device, dtype=args.dtype),
                       families=[Family.KANDINSKY22])


def _job(engine: Engine, size: tuple[int, int], steps: int, *, previews: bool) -> tuple[float, list[float]]:
    """(engine seconds, seconds between decoder steps) of one text → image job."""
    ticks: list[float] = []

    def on_progress(stage: str, step: int, total: int) -> None:
        if stage == "decoder":
            ticks.append(time.perf_counter())

    def on_preview(stage: str, step: int, total: int, render: Any) -> None:
        preview_jpeg(render())  # the worst case: every offer rendered and encoded on this thread

    spec = JobSpec(mode=Mode.TEXT2IMAGE, prompt=PROMPT, width=size[0], height=size[1], steps=steps,
                   prior_steps=2, seed=11)
    out = engine.generate(spec, on_progress=on_progress, on_preview=on_preview if previews else None,
                          preview_every=DEFAULT_PREVIEW_EVERY if previews else 0)
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return out.timings["total"], gaps


def measure_size(engine: Engine, size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    family = engine[Family.KANDINSKY22]
    assert isinstance(family, Kandinsky22Engine)
    decoder = family.decoder_pipeline()
    movq = decoder.movq
    preview = family._previews.for_movq(movq)  # fitted once, as the first job's preview would
    param = next(movq.parameters())
    latents = torch.randn(1, 4, size[1] // 8, size[0] // 8, device=param.device, dtype=param.dtype)
    render_s = _median_s(lambda: preview.pixels(latents), MICRO_REPEATS, args.device)
    pixels = preview.pixels(latents)
    encode_s = _median_s(lambda: preview_jpeg(pixels), MICRO_REPEATS, "cpu")
    small = F.avg_pool2d(latents, 8)

    @torch.no_grad()
    def tiny_decode() -> None:
        movq.decode(small, force_not_quantize=True)

    tiny_decode_s = _median_s(tiny_decode, max(3, MICRO_REPEATS // 5), args.device)

    _job(engine, size, args.steps, previews=False)  # warm every path once
    off: list[float] = []
    on: list[float] = []
    gaps: list[float] = []
    for repeat in range(args.repeats):  # interleaved, alternating which goes first: drift on a
        for previews in (False, True) if repeat % 2 == 0 else (True, False):  # shared machine hits both
            total, step_gaps = _job(engine, size, args.steps, previews=previews)
            (on if previews else off).append(total)
            gaps += step_gaps
    step_s = statistics.median(gaps)
    job_off, job_on = statistics.median(off), statistics.median(on)
    per_interval = render_s / (DEFAULT_PREVIEW_EVERY * step_s)
    return {
        "size": f"{size[0]}x{size[1]}",
        "steps": args.steps,
        "preview_every": DEFAULT_PREVIEW_EVERY,
        "decoder_step_ms": step_s * 1000,
        "render_ms": render_s * 1000,
        "encode_ms": encode_s * 1000,
        "tiny_movq_decode_ms": tiny_decode_s * 1000,
        "render_per_interval": per_interval,
        "tiny_decode_per_interval": tiny_decode_s / (DEFAULT_PREVIEW_EVERY * step_s),
        "job_off_s": job_off,
        "job_on_s": job_on,
        "job_overhead": job_on / job_off - 1,
        "goal": GOAL_FRACTION,
        "met": per_interval < GOAL_FRACTION and job_on / job_off - 1 < GOAL_FRACTION,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    meta = common.metadata()
    with common.model_bundle(args) as (bundle, scale):
        engine = _engine(args, bundle)
        rows = [measure_size(engine, parse_size(size), args) for size in args.sizes]
    return {**meta, "scale": scale, "device": args.device, "torch_threads": torch.get_num_threads(),
            "rows": rows}


def print_report(report: dict[str, Any]) -> None:
    headers = ("size", "step ms", "render ms", "encode ms", "1/8 decode ms", "render/interval",
               "job off s", "job on s", "job +%", "< 3 %")
    rows = [(r["size"], r["decoder_step_ms"], r["render_ms"], r["encode_ms"], r["tiny_movq_decode_ms"],
             f"{100 * r['render_per_interval']:.2f} %", r["job_off_s"], r["job_on_s"],
             f"{100 * r['job_overhead']:+.1f} %", "met" if r["met"] else "missed") for r in report["rows"]]
    common.print_table(f"live previews ({report['scale']} models on {report['device']}, a preview every "
                       f"{DEFAULT_PREVIEW_EVERY} steps)", headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = common.model_parser(__doc__, sizes=["512x512", "1024x1024"], repeats=3,
                                 repeats_help="jobs per size with and without previews")
    parser.add_argument("--steps", type=int, default=20, help="decoder steps per job")
    args = parser.parse_args(argv)
    if args.steps < DEFAULT_PREVIEW_EVERY + 1 or args.repeats < 1:
        parser.error(f"--steps must be above {DEFAULT_PREVIEW_EVERY} (one preview at least), --repeats ≥ 1")
    threads = torch.get_num_threads()
    try:
        return common.run_and_write(run, args, print_report, "bench_preview")
    finally:
        torch.set_num_threads(threads)  # a caller's torch (a test session's) keeps its own threads


if __name__ == "__main__":
    sys.exit(main())
