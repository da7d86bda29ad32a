"""Kandinsky 5.0 Video (/video): where a clip's time goes (text encoders, each DiT step, the VAE
decode, the H.264 encode), against plain diffusers' ``Kandinsky5T2VPipeline`` in the same process.

Per size, one process:

* **engine**: a 5 s text → video job through ``Engine.generate`` (the service's code path: the
  checkpoint's own steps and guidance, the exact-ratio cut, the MP4);
* **reference**: the model card's recipe with plain diffusers, ``Kandinsky5T2VPipeline`` on its own
  copy of the same folder, the same prompt, seed, steps, guidance and frames, frames out as arrays
  (no cut, no encode): the floor the engine cannot go below with diffusers as it ships.

Both are timed by forward hooks on the same kinds of module: the text encoders, the DiT (per step)
and the VAE's decoder; the engine's "mp4" timing is the encode. ``engine / diffusers`` compares the
two totals. On this machine these are CPU figures of the tiny random-weight bundle at a low frame
rate (``--fps``; the checkpoints' 24 make 121 frames); the GPU run of bench/gpu_check.sh times the
public sizes.

    python bench/bench_video.py                            # tiny bundle, CPU, 512x320 and 768x512
    python bench/bench_video.py --sizes 512x320 --fps 1    # smoke size

Results go to bench/results/bench_video-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from diffusers import Kandinsky5T2VPipeline

from bench import common
from contract.families import Family
from contract.spec import JobSpec, Mode
from contract.video import VIDEO_STAGE, VideoKind, video_checkpoint
from worker.engine import Engine, EngineSettings
from worker.engine.families import Kandinsky5Engine
from worker.engine.settings import parse_size

PROMPT = "a red fox running through the snow, the camera follows it"
SEED = 42
SECONDS = 5
PARTS = ("text_encoders", "dit", "vae_decode")
"""The modules both runs are timed on, by forward hooks."""


@contextmanager
def timed(pipe: Any, device: str, seconds: dict[str, float], calls: dict[str, int]) -> Iterator[None]:
    """Each part's seconds and calls while the block runs (common.timed_modules)."""
    vae = pipe.vae
    parts = {"text_encoders": [pipe.text_encoder, pipe.text_encoder_2], "dit": [pipe.transformer],
             "vae_decode": [vae.decoder if vae is not None else None]}
    with common.timed_modules(parts, device, seconds, calls):
        yield


def spec_for(size: tuple[int, int]) -> JobSpec:
    return JobSpec(mode=Mode.VIDEO, model=Family.KANDINSKY5, prompt=PROMPT, width=size[0], height=size[1],
                   seed=SEED, seconds=SECONDS)


def engine_run(family: Kandinsky5Engine, spec: JobSpec) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    with ExitStack() as stack:
        for pipe in (family.video_pipeline(SECONDS), family._encoder):  # the encoders may live apart
            if pipe is not None:
                stack.enter_context(timed(pipe, family.device, seconds, calls))
        out = family.generate(spec)
    video = out.video
    assert video is not None
    return {"total_s": out.timings["total"], "mp4_s": out.timings.get("mp4", 0.0),
            "denoise_and_decode_s": out.timings.get(VIDEO_STAGE, 0.0), "parts_s": seconds, "calls": calls,
            "frames": video.frames, "bytes": len(video.data), "size": [video.width, video.height]}


@torch.no_grad()
def reference_run(folder: Path, spec: JobSpec, fps: int, device: str, dtype: torch.dtype) -> dict[str, Any]:
    pipe: Any = Kandinsky5T2VPipeline.from_pretrained(folder, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    checkpoint = video_checkpoint(VideoKind.DISTILLED, SECONDS)
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    with timed(pipe, device, seconds, calls):
        common.sync(device)
        started = time.perf_counter()
        pipe(prompt=PROMPT, height=spec.height, width=spec.width, num_frames=checkpoint.frames(fps),
             num_inference_steps=checkpoint.steps, guidance_scale=checkpoint.guidance, output_type="np",
             generator=torch.Generator(device).manual_seed(SEED))
        common.sync(device)
        total = time.perf_counter() - started
    return {"total_s": total, "parts_s": seconds, "calls": calls}


def per_step(run: dict[str, Any]) -> float:
    """Seconds of one DiT call (a step without guidance; two calls make a guided step)."""
    return round(run["parts_s"].get("dit", 0.0) / max(run["calls"].get("dit", 1), 1), 4)


def measure_size(family: Kandinsky5Engine, folder: Path, size: tuple[int, int],
                 args: argparse.Namespace) -> dict[str, Any]:
    spec = spec_for(size)
    family.generate(spec)  # first run: lazy loads and allocator warm-up, not measured
    engine = min((engine_run(family, spec) for _ in range(args.repeats)), key=lambda r: r["total_s"])
    dtype = family._torch_dtype
    reference = min((reference_run(folder, spec, args.fps, args.device, dtype) for _ in range(args.repeats)),
                    key=lambda r: r["total_s"])
    steps = video_checkpoint(VideoKind.DISTILLED, SECONDS).steps
    return {
        "size": f"{size[0]}x{size[1]}", "frames": engine["frames"], "steps": steps, "engine": engine,
        "reference": reference,
        "engine_step_s": per_step(engine),
        "reference_step_s": per_step(reference),
        "engine_decode_s": round(engine["parts_s"].get("vae_decode", 0.0), 4),
        "reference_decode_s": round(reference["parts_s"].get("vae_decode", 0.0), 4),
        "encode_s": round(engine["mp4_s"], 4),
        "encode_share": round(engine["mp4_s"] / engine["total_s"], 4),
        "engine_vs_reference": round(engine["total_s"] / reference["total_s"], 3),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    meta = common.metadata()
    with common.model_bundle(args) as (bundle, scale):
        options: dict[str, Any] = {"video_fps": args.fps, "attention_backend": args.attention_backend}
        settings = EngineSettings(model_dir=bundle, device=args.device, dtype=args.dtype, preload=False,
                                  compile=args.compile, family_options={Family.KANDINSKY5: options})
        family = Engine(settings, families=[Family.KANDINSKY5])[Family.KANDINSKY5]
        assert isinstance(family, Kandinsky5Engine)
        folder = Path(family.model_ids[f"video_{SECONDS}s"])
        rows = [measure_size(family, folder, parse_size(size), args) for size in args.sizes]
    return {**meta, "scale": scale, "device": args.device, "fps": args.fps, "seconds": SECONDS,
            "attention_backend": args.attention_backend, "compile": args.compile,
            "torch_threads": torch.get_num_threads(), "rows": rows}


def print_report(report: dict[str, Any]) -> None:
    headers = ("size", "frames", "steps", "step ms", "diffusers step ms", "decode s", "diffusers decode s",
               "H.264 s", "H.264 share", "total s", "diffusers s", "× diffusers")
    rows = [(r["size"], r["frames"], r["steps"], round(1000 * r["engine_step_s"], 1),
             round(1000 * r["reference_step_s"], 1),
             r["engine_decode_s"], r["reference_decode_s"], r["encode_s"], f"{100 * r['encode_share']:.1f} %",
             round(r["engine"]["total_s"], 3), round(r["reference"]["total_s"], 3), r["engine_vs_reference"])
            for r in report["rows"]]
    speed = f", attention {report['attention_backend'] or 'sdpa'}{', compiled' if report['compile'] else ''}"
    common.print_table(f"Kandinsky 5.0 video, {report['seconds']} s at {report['fps']} fps "
                       f"({report['scale']} models on {report['device']}{speed})", headers, rows)


def main(argv: list[str] | None = None) -> int:
    parser = common.model_parser(__doc__, sizes=["512x320", "768x512"], repeats=2,
                                 repeats_help="runs per side; the fastest is reported",
                                 bundle_help="a model folder with the Video Lite folders", scale=False)
    parser.add_argument("--fps", type=int, default=2, help="frames per second (the checkpoints' 24 on a GPU)")
    parser.add_argument("--attention-backend",
                        help="the engine's DiT attention backend (KANDINSKY_K5_ATTENTION_BACKEND)")
    parser.add_argument("--compile", action="store_true",
                        help="the engine's DiT blocks compiled (KANDINSKY_COMPILE)")
    args = parser.parse_args(argv)
    if args.fps < 1 or args.repeats < 1:
        parser.error("--fps and --repeats must be at least 1")
    return common.run_and_write(run, args, print_report, "bench_video")


if __name__ == "__main__":
    sys.exit(main())
