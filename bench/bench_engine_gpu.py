"""Engine speed on a GPU: every mode, size and batch, split by stage, as ratios to two baselines.

Builds the Kandinsky 2.2 prior (with its ViT-bigG text and image encoders), decoder, inpaint and
controlnet-depth UNets, MoVQ and DPT depth model at their public sizes with random weights, writes
them as a bundle the service's ``Engine`` loads, and times, on the same inputs in the same process:

* ``engine``    — ``worker.engine.Engine.generate`` from the bundle (the service's code path);
* variants      — extra ``Engine``s with ``EngineSettings`` fields overridden (``--variant``);
* ``plain``     — the model-card code: stock pipelines, fp16, resident, the same steps as ours (b);
* ``offload``   — the combined pipelines with ``enable_model_cpu_offload()`` and their default
  steps (100 decoder, 25 prior in diffusers 0.42): the seed's recipe (a).

Per cell (mode × size × batch): seconds per image, images per minute, stages (prior, decoder steps,
MoVQ decode, depth, rembg), peak GPU memory, UNet and prior FLOPs per job (FlopCounterMode on the
inputs the UNet really got), achieved UNet TFLOP/s and its fraction of the bf16 matmul rate measured
on the same device. Every number is measured in this run; nothing is estimated.

Work runs in priority order (text2image at the first size against plain, the other modes, the
other sizes, the batch sweep, then the offload recipe) and the JSON is rewritten after every cell,
so a run cut short by ``--budget-s`` or a kill still leaves every finished cell on disk.

    python bench/bench_engine_gpu.py --bundle-dir /tmp/k22-bundle --budget-s 500   # GPU, public sizes
    python bench/bench_engine_gpu.py --small          # CPU-sized models, 2 steps: checks the code path

Results: <out-dir>/bench_engine_gpu-<device>-<scale>-<utc time>.json (default bench/results/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from bench.common import REPO, format_table, install_sigterm, load_average, metadata
from bench.engine_gpu.kandinsky3 import K3_BENCH_MODES, K3EngineRecipe, K3PlainRecipe
from bench.engine_gpu.measure import (
    MemoryWatch,
    Probe,
    StageTimes,
    forward_flops,
    free_device_memory,
    is_oom,
    matmul_rate,
    resident_bytes,
    sync,
)
from bench.engine_gpu.models import (
    REMBG_MODEL_LABEL,
    SCALES,
    Scale,
    Size,
    ensure_bundle,
)
from bench.engine_gpu.recipes import (
    BENCH_MODES,
    EngineRecipe,
    Inputs,
    OffloadRecipe,
    PlainRecipe,
    RunOutput,
    job_spec,
    mode_inputs,
)
from contract.spec import MAX_IMAGES_PER_JOB, SIZE_BUCKETS, JobSpec, Mode

DEFAULT_RESULTS = REPO / "bench" / "results"

DEFAULT_VARIANTS: tuple[str, ...] = (
    "nhwc:channels_last=true",
    "compiled:channels_last=true,compile=true",
    "dpm25:scheduler=dpmpp-2m,spec.steps=25",
)
"""The engine's opt-in speed settings (worker/engine/speed.py), each timed besides ``engine``:
channels-last alone; torch.compile on top of it (the gain of compiling is compiled ÷ nhwc; the
first run of each cell, ``first_run_s``, holds its compile time); DPM-Solver++ 2M at half the
steps (a different image for the same seed: its pixel difference to plain is expected to be large)."""

SPEC_PREFIX = "spec."

DEFAULT_BATCHES: tuple[int, ...] = (1, 2, 4)
"""Up to MAX_IMAGES_PER_JOB, the most one job may ask for."""

BATCH_HELPS = 1.05
"""A batch "helps" when its images per minute beat the previous batch's by at least 5%."""

DEFAULT_OFFLOAD_REPEATS = 1
"""The offload recipe runs 100 steps with weights crossing PCIe: one timed run after the warm-up."""

RESERVED_NAMES = frozenset({"engine", "plain", "offload"})

K22, K3 = "kandinsky22", "kandinsky3"
"""contract.families.Family values, as cells and the report name them."""
FAMILIES = (K22, K3)

PEAK_DENSE_BF16_TFLOPS: dict[str, float] = {
    "H100": 989.0,  # SXM datasheet, dense fp16/bf16 tensor cores
    "H200": 989.0,
    "A100": 312.0,
}
"""Datasheet peaks by GPU name fragment: extra information only; ratios use the measured rate."""

K3_DEFAULT_STEPS = 25
"""Kandinsky 3.0's model-card steps (contract.families), its cells' steps at public size."""

GOAL = {"mode": "text2image", "size": (1024, 1024), "steps": 50, "s_per_image": 1.0, "speedup_vs_plain": 1.5}
"""Issue 7's target for text → image at 1024², 50 decoder steps, batch 1 (on an H100)."""


class Recipe(Protocol):
    name: str

    def skip_reason(self, mode: Mode) -> str | None: ...
    def prepare(self, mode: Mode) -> None: ...
    def weights(self, mode: Mode) -> list[Any]: ...
    def probe(self, spec: JobSpec) -> Probe: ...
    def run(self, spec: JobSpec, inputs: Inputs, probe: Probe) -> RunOutput: ...
    def free(self) -> None: ...


@dataclass(frozen=True)
class Cell:
    """One unit of work, timed and written as a whole."""

    section: str  # "compare" (engine, variants, plain), "batch" (engine, variants), "offload"
    mode: Mode
    size: Size
    batch: int
    family: str = K22
    """Kandinsky 2.2 (every section, the variants) or 3.0 (compare cells: engine vs plain only)."""

    def key(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "section": self.section,
            "mode": str(self.mode),
            "width": self.size[0],
            "height": self.size[1],
            "batch": self.batch,
        }


@dataclass
class Timed:
    """Everything one recipe measured in one cell."""

    runs: list[StageTimes] = field(default_factory=list)
    first_run_s: float | None = None
    load_s: float | None = None
    peaks: list[float] = field(default_factory=list)
    device_peaks: list[float] = field(default_factory=list)
    image: np.ndarray | None = None
    probe: Probe | None = None
    oom: str | None = None
    error: str | None = None


# --- arguments --------------------------------------------------------------------------------------


def parse_size(text: str) -> Size:
    """``WxH`` or one side (square); must be a bucket of contract.spec."""
    from worker.engine.settings import parse_size as parse_wxh

    try:
        w, h = parse_wxh(text) if "x" in text.lower() else (int(text), int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH or a side") from None
    if (w, h) not in SIZE_BUCKETS:
        buckets = ", ".join(f"{a}x{b}" for a, b in sorted(SIZE_BUCKETS))
        raise argparse.ArgumentTypeError(f"size {w}x{h} is not a bucket; buckets: {buckets}")
    return (w, h)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value[,key=value...]``; values are JSON where they parse, else strings.

    Keys are ``EngineSettings`` fields, or ``spec.FIELD`` for a JobSpec field the variant changes
    in every job it runs (``spec.steps=25`` for a scheduler that needs fewer steps).
    """
    from worker.engine import EngineSettings

    name, colon, rest = text.partition(":")
    if not colon or not name:
        raise argparse.ArgumentTypeError(f"variant {text!r}: expected NAME:key=value[,key=value...]")
    if name in RESERVED_NAMES:
        raise argparse.ArgumentTypeError(f"variant name {name!r} is taken by a recipe")
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, raw = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"variant {name}: {item!r} is not key=value")
        if key.startswith(SPEC_PREFIX):
            if key.removeprefix(SPEC_PREFIX) not in JobSpec.model_fields:
                raise argparse.ArgumentTypeError(f"variant {name}: JobSpec has no field {key!r}")
        elif key not in EngineSettings.model_fields:
            # EngineSettings ignores unknown keys; a misspelt option must not time the plain engine.
            raise argparse.ArgumentTypeError(f"variant {name}: EngineSettings has no field {key!r}")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return name, overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="CPU-sized models, 512², 2 steps")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument(
        "--sizes",
        type=parse_size,
        nargs="+",
        help="WxH or a side; default 1024, 512, 768, 1024x576 (small: 512)",
    )
    parser.add_argument(
        "--modes", type=Mode, nargs="+", choices=list(BENCH_MODES), help="default: every mode timed here"
    )
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=list(DEFAULT_BATCHES),
        choices=range(1, MAX_IMAGES_PER_JOB + 1),
        help="batch sweep (num_images)",
    )
    parser.add_argument("--batch-size-for", type=parse_size, help="size of the batch sweep (default 1024)")
    parser.add_argument(
        "--batch-modes",
        type=Mode,
        nargs="+",
        choices=list(BENCH_MODES),
        help="modes of the batch sweep (default: --modes)",
    )
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        help="Kandinsky 2.2 and/or 3.0 (3.0: compare cells, engine vs plain)")
    parser.add_argument("--k3-steps", type=int, help="Kandinsky 3.0 steps (default: its 25; small: 2)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--prior-steps", type=int)
    parser.add_argument("--repeats", type=int, help="timed runs per cell after one warm-up")
    parser.add_argument("--offload-repeats", type=int, default=DEFAULT_OFFLOAD_REPEATS)
    parser.add_argument("--no-offload", action="store_true", help="skip the offload section")
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        help="NAME:key=value,... an extra Engine with EngineSettings fields overridden",
    )
    parser.add_argument("--no-default-variants", action="store_true", help="ignore DEFAULT_VARIANTS")
    parser.add_argument("--bundle-dir", type=Path, help="reuse the bundle there, or build it there")
    parser.add_argument("--budget-s", type=float, help="start no new cell past this many seconds")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_RESULTS)
    return parser


# --- planning ---------------------------------------------------------------------------------------


def plan(
    modes: list[Mode],
    sizes: list[Size],
    batch_size: Size,
    batches: list[int],
    batch_modes: list[Mode],
    offload: bool,
    families: tuple[str, ...] = (K22,),
) -> list[Cell]:
    """Cells in priority order: text2image first, the first size first, then batches, then offload.
    A sweep's batch 1 is the compare cell at that size when there is one (not timed twice).
    Kandinsky 3.0's compare cells (its modes at the first size, then text2image at the others)
    follow 2.2's first cell, so a short run measures both families; its models are freed after."""
    first = [m for m in modes if m is Mode.TEXT2IMAGE] + [m for m in modes if m is not Mode.TEXT2IMAGE]
    ordered_sizes = [batch_size] + [s for s in sizes if s != batch_size] if batch_size in sizes else sizes
    k3: list[Cell] = []
    if K3 in families:
        k3_modes = [m for m in first if m in K3_BENCH_MODES]
        k3 = [Cell("compare", m, ordered_sizes[0], 1, K3) for m in k3_modes]
        if Mode.TEXT2IMAGE in k3_modes:
            k3 += [Cell("compare", Mode.TEXT2IMAGE, s, 1, K3) for s in ordered_sizes[1:]]
    if K22 not in families:
        return k3
    cells = [Cell("compare", m, s, 1) for s in ordered_sizes for m in first]
    cells[1:1] = k3
    for m in [m for m in first if m in batch_modes]:
        cells += [
            Cell("batch", m, batch_size, n) for n in sorted(set(batches)) if n > 1 or batch_size not in sizes
        ]
    if offload:
        cells += [Cell("offload", m, s, 1) for s in ordered_sizes for m in first]
    return cells


# --- timing -----------------------------------------------------------------------------------------


def time_once(
    recipe: Recipe, spec: JobSpec, inputs: Inputs, device: str
) -> tuple[StageTimes, Any, Probe, tuple[float | None, float | None]]:
    probe = recipe.probe(spec)
    memory = MemoryWatch(device)
    own = resident_bytes(recipe.weights(spec.mode)) if device.startswith("cuda") else 0
    memory.begin()
    with probe.attached():
        sync(device)
        started = time.perf_counter()
        out = recipe.run(spec, inputs, probe)
        sync(device)
        total = time.perf_counter() - started
    times = StageTimes(out.prior, probe.decoder_steps(), probe.movq_decode(), out.depth, out.rembg, total)
    return times, out.images[0], probe, memory.peaks(own)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


def _pixel_diff(a: np.ndarray | None, b: np.ndarray | None) -> int | None:
    if a is None or b is None or a.shape != b.shape:
        return None
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


class Bench:
    """The run's state: recipes, matmul rate, finished cells; ``report()`` is what gets written."""

    def __init__(self, args: argparse.Namespace, scale: Scale, device: str, dtype_name: str) -> None:
        self.args, self.scale, self.device, self.dtype_name = args, scale, device, dtype_name
        self.steps: int = args.steps or scale.steps
        self.prior_steps: int = args.prior_steps or scale.prior_steps
        self.repeats: int = args.repeats or scale.repeats
        self.k3_steps: int = args.k3_steps or (K3_DEFAULT_STEPS if scale.name == "public" else scale.steps)
        self.cells: list[dict[str, Any]] = []
        self.not_run: list[dict[str, Any]] = []
        self.loaded: set[tuple[str, str, Mode]] = set()
        self.oom_modes: dict[Mode, int] = {}
        self.failed_variants: dict[str, str] = {}
        """A variant whose run raised (an untried speed setting on new hardware, say): its error,
        kept once, and the variant is left out of later cells instead of ending the whole run."""
        self.info: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.meta = metadata()

    # --- one cell ---

    def run_cell(self, cell: Cell, recipes: list[Recipe]) -> dict[str, Any]:
        from contract.families import Family

        steps = self.k3_steps if cell.family == K3 else self.steps
        spec = job_spec(cell.mode, cell.size, cell.batch, steps, self.prior_steps, Family(cell.family))
        inputs = mode_inputs(cell.mode)
        repeats = self.args.offload_repeats if cell.section == "offload" else self.repeats
        entry: dict[str, Any] = {**cell.key(), "recipes": {}}
        started = time.perf_counter()
        timed: dict[str, Timed] = {}
        for recipe in recipes:
            reason = recipe.skip_reason(cell.mode)
            if recipe.name in self.failed_variants:
                reason = f"failed in an earlier cell: {self.failed_variants[recipe.name]}"
            if reason:
                entry["recipes"][recipe.name] = {"skipped": reason}
                continue
            timed[recipe.name] = t = Timed()
            if (cell.family, recipe.name, cell.mode) not in self.loaded:  # first use: timed apart
                load_started = time.perf_counter()
                try:
                    recipe.prepare(cell.mode)
                except Exception as exc:
                    self._variant_failed(recipe, t, exc, "loading")
                    continue
                sync(self.device)
                t.load_s = time.perf_counter() - load_started
                self.loaded.add((cell.family, recipe.name, cell.mode))
        for attempt in range(repeats + 1):  # the first pass warms kernels and caches (and compiles)
            for recipe in recipes:
                t = timed.get(recipe.name) or Timed(oom="skipped")
                if t.oom or t.error:
                    continue
                try:
                    times, image, probe, (peak, device_peak) = time_once(recipe, spec, inputs, self.device)
                except Exception as exc:
                    if is_oom(exc):
                        t.oom = f"out of memory at attempt {attempt}: {_first_line(exc)}"
                        free_device_memory(self.device)
                    else:
                        self._variant_failed(recipe, t, exc, f"attempt {attempt}")
                    continue
                t.image = image
                if attempt == 0:
                    t.first_run_s, t.probe = times.total, probe
                    continue
                t.runs.append(times)
                if peak is not None and device_peak is not None:
                    t.peaks.append(peak)
                    t.device_peaks.append(device_peak)
        self._summarise(entry, cell, spec, timed)
        entry["wall_s"] = time.perf_counter() - started
        return entry

    def _variant_failed(self, recipe: Recipe, t: Timed, exc: Exception, when: str) -> None:
        """Record a variant's error and leave it out from here on; the engine's own path or a
        baseline failing is the result itself, so that error ends the run."""
        if recipe.name in RESERVED_NAMES:
            raise exc
        t.error = f"{type(exc).__name__} at {when}: {_first_line(exc)}"
        self.failed_variants[recipe.name] = t.error
        free_device_memory(self.device)

    def _summarise(self, entry: dict[str, Any], cell: Cell, spec: JobSpec, timed: dict[str, Timed]) -> None:
        flops = self._count_flops(timed)
        entry.update(flops)
        matmul = self.info["matmul"]["tflops"]
        for name, t in timed.items():
            block: dict[str, Any] = {
                "skipped": None,
                "oom": t.oom,
                "error": t.error,
                "load_s": t.load_s,
                "first_run_s": t.first_run_s,
                "runs": [r.as_dict() for r in t.runs],
            }
            if t.probe is not None:
                block["unet_calls_per_job"] = t.probe.calls["unet"]
                block["prior_calls_per_job"] = t.probe.calls["prior"]
            if t.runs:
                median = StageTimes.median_of(t.runs)
                block["median"] = median.as_dict()
                block["s_per_image"] = median.total / cell.batch
                block["images_per_minute"] = 60.0 * cell.batch / median.total
                block["peak_gpu_gib"] = max(t.peaks) if t.peaks else None
                block["device_peak_gpu_gib"] = max(t.device_peaks) if t.device_peaks else None
                per_forward = flops.get("unet_flops_per_forward")
                if per_forward and t.probe is not None and median.decoder_steps:
                    job_flops = per_forward * t.probe.calls["unet"]
                    block["unet_flops_per_job"] = job_flops
                    block["achieved_unet_tflops"] = job_flops / median.decoder_steps / 1e12
                    block["unet_fraction_of_matmul_rate"] = block["achieved_unet_tflops"] / matmul
            entry["recipes"][name] = block
        if cell.mode is Mode.STICKER:
            entry["rembg_model"] = REMBG_MODEL_LABEL
        self._ratios(entry, timed)

    def _count_flops(self, timed: dict[str, Timed]) -> dict[str, Any]:
        """FLOPs of one UNet and one prior forward on the inputs the first timed recipe fed them
        (every recipe of a cell feeds the same shapes), and per job for the engine."""
        out: dict[str, Any] = {}
        for t in timed.values():
            probe = t.probe
            if probe is None or "unet" not in probe.first_inputs:
                continue
            unet = forward_flops(probe.modules["unet"], probe.first_inputs["unet"])
            prior = (
                forward_flops(probe.modules["prior"], probe.first_inputs["prior"])
                if "prior" in probe.first_inputs
                else 0
            )
            out["unet_flops_per_forward"] = unet
            out["unet_flops_per_job"] = unet * probe.calls["unet"] if unet is not None else None
            out["prior_flops_per_forward"] = prior
            out["prior_flops_per_job"] = prior * probe.calls["prior"] if prior is not None else None
            break
        return out

    def _ratios(self, entry: dict[str, Any], timed: dict[str, Timed]) -> None:
        recipes = entry["recipes"]

        def total(name: str) -> float | None:
            median = recipes.get(name, {}).get("median")
            return median["total"] if median else None

        engine, plain = total("engine"), total("plain")
        if engine:
            for key in (
                "achieved_unet_tflops",
                "unet_fraction_of_matmul_rate",
                "s_per_image",
                "images_per_minute",
                "peak_gpu_gib",
            ):
                entry[key] = recipes["engine"].get(key)
        if engine and plain:
            entry["engine_speedup_vs_plain"] = plain / engine
        if "engine" in timed and "plain" in timed:
            entry["engine_vs_plain_max_pixel_diff"] = _pixel_diff(timed["engine"].image, timed["plain"].image)
        variants = [n for n in timed if n not in RESERVED_NAMES]
        if variants:
            entry["variant_speedup_vs_engine"] = {
                n: engine / v for n in variants if engine and (v := total(n))
            }
            entry["variant_speedup_vs_plain"] = {n: plain / v for n in variants if plain and (v := total(n))}
            if "plain" in timed:
                entry["variant_vs_plain_max_pixel_diff"] = {
                    n: _pixel_diff(timed[n].image, timed["plain"].image) for n in variants
                }

    def attach_offload(self, entry: dict[str, Any]) -> None:
        """Put the offload recipe's speedup on the matching compare cell, and the engine's on it."""
        offload = entry["recipes"].get("offload", {}).get("median")
        for cell in self.cells:
            if (cell["family"], cell["section"], cell["mode"], cell["width"], cell["height"],
                    cell["batch"]) != (
                entry["family"],
                "compare",
                entry["mode"],
                entry["width"],
                entry["height"],
                entry["batch"],
            ):
                continue
            if offload and cell.get("recipes", {}).get("engine", {}).get("median"):
                ratio = offload["total"] / cell["recipes"]["engine"]["median"]["total"]
                cell["engine_speedup_vs_offload"] = entry["engine_speedup_vs_offload"] = ratio
            elif not offload:
                cell["offload_skipped"] = entry["recipes"].get("offload", {}).get("skipped") or entry[
                    "recipes"
                ].get("offload", {}).get("oom")

    # --- the report ---

    def batch_summary(self) -> dict[str, Any]:
        """Per mode at the sweep size: images per minute by batch, and the largest batch that helps."""
        size = self.info.get("batch_size_for")
        out: dict[str, Any] = {}
        for cell in self.cells:
            if cell["section"] == "offload" or cell["family"] != K22:
                continue
            if [cell["width"], cell["height"]] != size:
                continue
            ipm = cell["recipes"].get("engine", {}).get("images_per_minute")
            if ipm:
                out.setdefault(cell["mode"], {"images_per_minute": {}})["images_per_minute"][
                    cell["batch"]
                ] = ipm
        out = {mode: summary for mode, summary in out.items() if len(summary["images_per_minute"]) > 1}
        for summary in out.values():  # only where a sweep ran: one batch alone says nothing
            by_batch = dict(sorted(summary["images_per_minute"].items()))
            best, previous = None, None
            for n, ipm in by_batch.items():
                if previous is None or ipm >= previous * BATCH_HELPS:
                    best = n
                else:
                    break
                previous = ipm
            summary["images_per_minute"] = by_batch
            summary["largest_batch_that_helps"] = best
        return out

    def goal(self) -> dict[str, Any] | None:
        for cell in self.cells:
            if (cell["family"], cell["section"], cell["mode"], (cell["width"], cell["height"]),
                    cell["batch"]) == (
                K22,
                "compare",
                GOAL["mode"],
                GOAL["size"],
                1,
            ) and self.steps == GOAL["steps"]:
                s = cell.get("s_per_image")
                speedup = cell.get("engine_speedup_vs_plain")
                return {
                    "target": GOAL,
                    "s_per_image": s,
                    "engine_speedup_vs_plain": speedup,
                    "pixel_diff_vs_plain": cell.get("engine_vs_plain_max_pixel_diff"),
                    "s_per_image_met": s is not None and s <= GOAL["s_per_image"],
                    "speedup_met": speedup is not None and speedup >= GOAL["speedup_vs_plain"],
                }
        return None

    def report(self, complete: bool) -> dict[str, Any]:
        return {
            **self.meta,
            "bench": "bench_engine_gpu",
            "complete": complete,
            "scale": self.scale.name,
            "device": self.device,
            "device_name": torch.cuda.get_device_name() if self.device.startswith("cuda") else "cpu",
            "dtype": self.dtype_name,
            "steps": self.steps,
            "prior_steps": self.prior_steps,
            "k3_steps": self.k3_steps,
            "families": list(self.args.families),
            "repeats": self.repeats,
            "offload_repeats": self.args.offload_repeats,
            **self.info,
            "elapsed_s": time.perf_counter() - self.started,
            "cells": self.cells,
            "not_run": self.not_run,
            "batch_summary": self.batch_summary(),
            "goal_text2image_1024": self.goal(),
            "load_average_end": load_average(),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def write_json(report: dict[str, Any], path: Path) -> None:
    """Rewrite the one results file of this run (atomically: a kill never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    tmp.replace(path)


def estimate_s(cell: Cell, done: list[tuple[Cell, float]]) -> float:
    """Wall time the next cell will likely take: the last finished cell of the same section (any
    section if none yet), scaled by pixels × batch. Only used to decide whether to start it."""
    same = [(c, s) for c, s in done if c.section == cell.section] or done
    if not same:
        return 0.0
    last, seconds = same[-1]
    work = cell.size[0] * cell.size[1] * cell.batch
    return seconds * work / (last.size[0] * last.size[1] * last.batch)


def run(args: argparse.Namespace, results_path: list[Path]) -> dict[str, Any]:
    from contract.families import Family
    from worker.engine import Engine, EngineSettings

    scale = SCALES["small" if args.small else "public"]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = "float16" if device.startswith("cuda") else "float32"
    dtype = getattr(torch, dtype_name)
    bench = Bench(args, scale, device, dtype_name)
    sizes: list[Size] = list(args.sizes or scale.sizes)
    batch_size: Size = args.batch_size_for or scale.batch_size_for
    modes: list[Mode] = list(args.modes or BENCH_MODES)
    variant_specs = [] if args.no_default_variants else [parse_variant(v) for v in DEFAULT_VARIANTS]
    variant_specs += args.variant
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out_dir / f"bench_engine_gpu-{device}-{scale.name}-{stamp}.json"
    results_path.append(path)

    workdir = None if args.bundle_dir else Path(tempfile.mkdtemp(prefix="bench-engine-"))
    bundle = args.bundle_dir or (workdir / "bundle")  # type: ignore[operator]
    try:
        families = tuple(args.families)
        reused, build_s = ensure_bundle(bundle, scale, device, dtype, kandinsky3=K3 in families)
        bench.info.update(
            {
                "bundle_dir": str(bundle),
                "bundle_reused": reused,
                "bundle_build_s": build_s,
                "sizes": [list(s) for s in sizes],
                "modes": [str(m) for m in modes],
                "batches": sorted(set(args.batches)),
                "batch_size_for": list(batch_size),
                "variants": {name: overrides for name, overrides in variant_specs},
                "budget_s": args.budget_s,
                "rembg_model": REMBG_MODEL_LABEL,
                "matmul": matmul_rate(device),
                "datasheet_dense_bf16_tflops": next(
                    (
                        v
                        for k, v in PEAK_DENSE_BF16_TFLOPS.items()
                        if device.startswith("cuda") and k in torch.cuda.get_device_name()
                    ),
                    None,
                ),
            }
        )
        bench.info["matmul_tflops_measured"] = bench.info["matmul"]["tflops"]

        base_settings: dict[str, Any] = {
            "model_dir": bundle, "device": device, "dtype": dtype_name, "preload": False,
        }

        def engine(**overrides: Any) -> Any:
            """The service's Kandinsky 2.2 family engine (the bundle's models, the variant's settings)."""
            return Engine.load(EngineSettings(**{**base_settings, **overrides}),
                               families=[Family.KANDINSKY22])[Family.KANDINSKY22]

        k3_recipes: list[Recipe] = []
        if K3 in families:  # the whole Engine: generate() routes the spec to its family
            k3_engine = Engine.load(EngineSettings(**base_settings), families=[Family.KANDINSKY3])
            k3_recipes = [K3EngineRecipe(k3_engine), K3PlainRecipe(bundle, device, dtype)]
            del k3_engine
        engines: list[Recipe] = [EngineRecipe("engine", engine())] if K22 in families else []
        for name, overrides in variant_specs if K22 in families else []:
            settings = {k: v for k, v in overrides.items() if not k.startswith(SPEC_PREFIX)}
            spec = {k.removeprefix(SPEC_PREFIX): v for k, v in overrides.items() if k.startswith(SPEC_PREFIX)}
            engines.append(EngineRecipe(name, engine(**settings), spec))
        plain = PlainRecipe(bundle, device, dtype)
        offload = OffloadRecipe(bundle, device, dtype)
        bench.info["offload_steps"] = offload.defaults
        cells = plan(
            modes, sizes, batch_size, args.batches, list(args.batch_modes or modes), not args.no_offload,
            families,
        )
        last_k3 = max((i for i, c in enumerate(cells) if c.family == K3), default=-1)
        done: list[tuple[Cell, float]] = []
        section = ""
        for index, cell in enumerate(cells):
            if index == last_k3 + 1 and k3_recipes:  # 3.0's cells are done: its copies go
                for recipe in k3_recipes:
                    recipe.free()
                k3_recipes = []
            if cell.section != section:  # free what the finished section no longer needs
                if section == "compare":
                    plain.free()
                if cell.section == "offload":
                    for recipe in engines:
                        recipe.free()
                    engines = []
                section = cell.section
            elapsed = time.perf_counter() - bench.started
            estimate = estimate_s(cell, done)
            if args.budget_s is not None and done and elapsed + estimate > args.budget_s:
                reason = (
                    f"budget: {elapsed:.0f} s of {args.budget_s:.0f} s spent, "
                    f"next cell likely {estimate:.0f} s"
                )
                bench.not_run += [{**c.key(), "reason": reason} for c in cells[index:]]
                break
            if cell.section == "batch" and cell.mode in bench.oom_modes:
                reason = f"batch {bench.oom_modes[cell.mode]} ran out of memory"
                bench.not_run.append({**cell.key(), "reason": reason})
                continue
            by_section: dict[str, list[Recipe]] = {
                "compare": [*engines, plain],
                "batch": engines,
                "offload": [offload],
            }
            recipes = k3_recipes if cell.family == K3 else by_section[cell.section]
            entry = bench.run_cell(cell, recipes)
            bench.cells.append(entry)
            if cell.section == "batch" and entry["recipes"].get("engine", {}).get("oom"):
                bench.oom_modes[cell.mode] = cell.batch
            if cell.section == "offload":
                bench.attach_offload(entry)
            done.append((cell, entry["wall_s"]))
            write_json(bench.report(complete=False), path)
        report = bench.report(complete=True)
        write_json(report, path)
        return report
    except KeyboardInterrupt as exc:  # SIGTERM (a device time limit): keep what was measured
        report = bench.report(complete=False)
        report["interrupted"] = str(exc) or "interrupted"
        write_json(report, path)
        raise
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def print_report(report: dict[str, Any]) -> None:
    matmul = report["matmul"]
    print(
        f"{report['bench']} on {report['device_name']} ({report['dtype']}), {report['scale']} models, "
        f"{report['steps']} decoder / {report['prior_steps']} prior steps; measured {matmul['dtype']} "
        f"matmul {matmul['side']}³: {matmul['tflops']:.3g} TFLOP/s"
    )
    rows: list[list[str]] = []
    for cell in report["cells"]:
        for name, block in cell["recipes"].items():
            if block.get("skipped") or not block.get("median"):
                continue
            if name == "engine":
                vs_plain, vs_offload = (
                    cell.get("engine_speedup_vs_plain"),
                    cell.get("engine_speedup_vs_offload"),
                )
            elif name == "plain":
                vs_plain, vs_offload = 1.0, None
            elif name == "offload":
                vs_plain, vs_offload = None, 1.0
            else:
                vs_plain, vs_offload = cell.get("variant_speedup_vs_plain", {}).get(name), None
            rows.append(
                [
                    cell["mode"] if cell["family"] == K22 else f"{cell['family']}/{cell['mode']}",
                    f"{cell['width']}x{cell['height']}",
                    str(cell["batch"]),
                    name,
                    _fmt(block["s_per_image"]),
                    _fmt(block["images_per_minute"]),
                    _fmt(vs_plain),
                    _fmt(vs_offload),
                    _fmt(block.get("achieved_unet_tflops")),
                    _fmt(block.get("unet_fraction_of_matmul_rate")),
                    _fmt(block.get("peak_gpu_gib")),
                ]
            )
    headers = [
        "mode",
        "size",
        "batch",
        "recipe",
        "s/image",
        "images/min",
        "× plain",
        "× offload",
        "UNet TFLOP/s",
        "of matmul",
        "peak GiB",
    ]
    print(format_table(headers, rows))
    skipped = {
        (name, block["skipped"])
        for cell in report["cells"]
        for name, block in cell["recipes"].items()
        if block.get("skipped")
    }
    for name, reason in sorted(skipped):
        print(f"  skipped {name}: {reason}")
    for mode, summary in report["batch_summary"].items():
        print(f"  {mode}: largest batch that helps: {summary['largest_batch_that_helps']}")
    for cell in report["cells"]:
        if "engine_vs_plain_max_pixel_diff" in cell:
            print(
                f"  {cell['family']} {cell['mode']} {cell['width']}x{cell['height']}: "
                "engine vs plain max pixel diff "
                f"{cell['engine_vs_plain_max_pixel_diff']}"
            )
    if report["not_run"]:
        print(f"  not run: {len(report['not_run'])} cells ({report['not_run'][0]['reason']})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.small and not torch.cuda.is_available() and args.device in (None, "cuda"):
        print("no CUDA device: run with --small for the CPU-sized check", file=sys.stderr)
        return 2
    previous = signal.getsignal(signal.SIGTERM)
    install_sigterm()  # a SIGTERM (device time limit) still writes what was measured
    paths: list[Path] = []
    try:
        report = run(args, paths)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_report(report)
    print(f"wrote {paths[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
