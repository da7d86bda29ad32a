"""SDXL, base + refiner as an ensemble of experts, and its LoRA styles: where a picture's time goes
(text encoders, each expert's UNet steps, the VAE decode), against plain diffusers in the same process.

Per size, one process:

* **engine**: a text → image job through ``Engine.generate`` (the service's code path: the base to
  ``KANDINSKY_SDXL_REFINER_FRACTION`` of the schedule, the refiner after it, the exact-ratio cut);
* **reference**: the model card's ensemble with plain diffusers: ``StableDiffusionXLPipeline`` and a
  ``StableDiffusionXLImg2ImgPipeline`` refiner on its second text encoder and VAE, loaded with
  ``from_pretrained`` from the same folders, the same prompt, seed, steps, guidance and hand-over;
* **styles**: the engine again with two random LoRA adapters loaded (rank ``--lora-rank`` on the base
  UNet's attention, written for the bundle's UNet): a job with no style on (what loaded adapters cost
  when off), a job with one on, and the switch between two styles (``set_adapters``) on its own.

All are timed by forward hooks on the same kinds of module. On this machine these are CPU figures of the
tiny random-weight bundle; the GPU run of bench/gpu_check.sh times the public sizes (the bundle
``bench_fullsize.py --families sdxl --keep-bundle`` writes). Results go to
bench/results/bench_sdxl-<UTC time>.json:

    python bench/bench_sdxl.py                                   # tiny bundle, CPU, 1024x1024
    python bench/bench_sdxl.py --sizes 512x512 --steps 4         # smoke size
"""

from __future__ import annotations

import argparse
import sys
import time
from gc import collect
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import torch
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

from bench import common
from contract.families import Family, describe_family
from contract.loras import LoraChoice
from contract.spec import JobSpec, Mode
from devkit.tiny_lora import ATTENTION, adapter_layers
from worker.engine import Engine, EngineSettings
from worker.engine.families import SDXLEngine
from worker.engine.loras import CATALOGUE_FILE
from worker.engine.settings import parse_size

PROMPT = "a lighthouse on a cliff at dusk, waves breaking, dramatic sky"
SEED = 42
STYLE_WEIGHT = 0.8
SWITCHES = 6
"""Style switches timed (alternating between the two adapters); their mean is reported."""


def spec_for(size: tuple[int, int], steps: int) -> JobSpec:
    return JobSpec(mode=Mode.TEXT2IMAGE, model=Family.SDXL, prompt=PROMPT, width=size[0], height=size[1],
                   seed=SEED, steps=steps)


def parts_of(base: Any, refiner: Any) -> dict[str, list[Any]]:
    return {"text_encoders": [base.text_encoder, base.text_encoder_2], "unet": [base.unet],
            "refiner_unet": [refiner.unet if refiner is not None else None], "vae_decode": [base.vae.decoder]}


def timed_run(parts: dict[str, list[Any]], device: str, job: Any) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    with common.timed_modules(parts, device, seconds, calls), torch.inference_mode():
        common.sync(device)
        started = time.perf_counter()
        job()
        common.sync(device)
        total = time.perf_counter() - started
    return {"total_s": total, "parts_s": seconds, "calls": calls}


def fastest(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: r["total_s"])


def engine_runs(family: SDXLEngine, spec: JobSpec, repeats: int) -> dict[str, Any]:
    family.generate(spec)  # first run: lazy loads and allocator warm-up, not measured
    parts = parts_of(family.base_pipeline(), family.refiner_pipeline() if family.use_refiner else None)
    return fastest([timed_run(parts, family.device, lambda: family.generate(spec)) for _ in range(repeats)])


def reference_runs(family: SDXLEngine, spec: JobSpec, repeats: int) -> dict[str, Any]:
    """The model card's ensemble on its own copies of the same folders."""
    device, dtype, variant = family.device, family._torch_dtype, family._variant
    base: Any = StableDiffusionXLPipeline.from_pretrained(family.model_ids["sdxl"], variant=variant,
                                                          dtype=dtype).to(device)
    base.set_progress_bar_config(disable=True)
    refiner: Any = None
    if family.use_refiner:
        refiner = StableDiffusionXLImg2ImgPipeline.from_pretrained(
            family.model_ids["sdxl_refiner"], variant=variant, text_encoder_2=base.text_encoder_2,
            vae=base.vae, dtype=dtype).to(device)
        refiner.set_progress_bar_config(disable=True)
    handover: dict[str, Any] = {"denoising_end": family.fraction, "output_type": "latent"} if refiner else {}

    def job() -> None:
        generator = torch.Generator(device).manual_seed(SEED)
        out = base(PROMPT, num_inference_steps=spec.steps, guidance_scale=spec.guidance, height=spec.height,
                   width=spec.width, generator=generator, **handover).images
        if refiner is not None:
            refiner(PROMPT, image=out, num_inference_steps=spec.steps, denoising_start=family.fraction,
                    guidance_scale=spec.guidance, generator=generator)

    job()
    return fastest([timed_run(parts_of(base, refiner), device, job) for _ in range(repeats)])


def write_styles(folder: Path, unet: Any, rank: int) -> tuple[str, str]:
    """Two random adapters for ``unet`` and their catalogue in ``folder``."""
    names = ("bench-a", "bench-b")
    for seed, name in enumerate(names):
        layers = adapter_layers(unet, ATTENTION, seed, rank)
        StableDiffusionXLPipeline.save_lora_weights(folder, weight_name=f"{name}.safetensors",
                                                    unet_lora_layers=layers)
    (folder / CATALOGUE_FILE).write_text("".join(
        f'[[style]]\nname = "{n}"\ntitle = "{n}"\nfile = "{n}.safetensors"\nfamily = "sdxl"\n\n'
        for n in names))
    return names


def style_runs(settings: EngineSettings, spec: JobSpec, names: tuple[str, str],
               repeats: int) -> dict[str, Any]:
    family = Engine(settings, families=[Family.SDXL])[Family.SDXL]
    assert isinstance(family, SDXLEngine)
    pipe = family.base_pipeline()
    loaded = list(family.loras.loaded)
    if loaded != list(names):
        raise SystemExit(f"the bench's adapters did not load ({family.loras.refused}); see the log")
    styled = spec.model_copy(update={"loras": (LoraChoice(name=names[0], weight=STYLE_WEIGHT),)})
    off = engine_runs(family, spec, repeats)
    on = engine_runs(family, styled, repeats)
    switches: list[float] = []
    for i in range(SWITCHES):
        choice = (LoraChoice(name=names[i % 2], weight=STYLE_WEIGHT),)
        common.sync(family.device)
        started = time.perf_counter()
        family.loras.apply(pipe, choice)
        common.sync(family.device)
        switches.append(time.perf_counter() - started)
    return {"off": off, "on": on, "switch_s": round(sum(switches) / len(switches), 5)}


def per_call(run: dict[str, Any], part: str) -> float:
    """Seconds of one call of ``part`` (a guided step is one batched UNet call)."""
    return round(run["parts_s"].get(part, 0.0) / max(run["calls"].get(part, 1), 1), 5)


def free(device: str) -> None:
    collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def measure_size(settings: EngineSettings, size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    spec = spec_for(size, args.steps)
    family = Engine(settings, families=[Family.SDXL])[Family.SDXL]
    assert isinstance(family, SDXLEngine)
    engine = engine_runs(family, spec, args.repeats)
    reference = reference_runs(family, spec, args.repeats)
    row: dict[str, Any] = {
        "size": f"{size[0]}x{size[1]}", "steps": spec.steps, "refiner": family.use_refiner,
        "fraction": family.fraction, "engine": engine, "reference": reference,
        "engine_vs_reference": round(engine["total_s"] / reference["total_s"], 3),
    }
    for side, run in (("engine", engine), ("reference", reference)):
        for part in ("unet", "refiner_unet", "vae_decode"):
            row[f"{side}_{part}_call_s"] = per_call(run, part)
    if args.lora_rank:
        with TemporaryDirectory(prefix="bench-sdxl-loras-") as tmp:
            names = write_styles(Path(tmp), family.base_pipeline().unet, args.lora_rank)
            del family
            free(settings.device)
            with_styles = settings.model_copy(update={"lora_dir": Path(tmp)})
            styles = style_runs(with_styles, spec, names, args.repeats)
        row["styles"] = {
            **styles, "rank": args.lora_rank,
            "off_vs_engine": round(styles["off"]["total_s"] / engine["total_s"], 3),
            "on_vs_engine": round(styles["on"]["total_s"] / engine["total_s"], 3),
            "on_unet_call_s": per_call(styles["on"], "unet"),
        }
    free(settings.device)
    return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    meta = common.metadata()
    with common.model_bundle(args) as (bundle, scale):
        settings = EngineSettings(model_dir=bundle, device=args.device, dtype=args.dtype, preload=False,
                                  family_options={Family.SDXL: {"refiner": not args.no_refiner}})
        rows = [measure_size(settings, parse_size(size), args) for size in args.sizes]
    return {**meta, "scale": scale, "device": args.device, "torch_threads": torch.get_num_threads(),
            "rows": rows}


def print_report(report: dict[str, Any]) -> None:
    headers = ("size", "steps", "base step ms", "diffusers", "refiner step ms", "diffusers", "decode s",
               "total s", "diffusers s", "× diffusers")
    rows = [(r["size"], r["steps"], round(1000 * r["engine_unet_call_s"], 1),
             round(1000 * r["reference_unet_call_s"], 1), round(1000 * r["engine_refiner_unet_call_s"], 1),
             round(1000 * r["reference_refiner_unet_call_s"], 1), r["engine_vae_decode_call_s"],
             round(r["engine"]["total_s"], 3), round(r["reference"]["total_s"], 3), r["engine_vs_reference"])
            for r in report["rows"]]
    common.print_table(f"SDXL base + refiner ({report['scale']} models on {report['device']})", headers, rows)
    styled = [r for r in report["rows"] if "styles" in r]
    if styled:
        common.print_table(
            "LoRA styles (the same job; × the engine without adapters)",
            ("size", "rank", "loaded, off ×", "one on ×", "base step ms with one on", "switch ms"),
            [(r["size"], r["styles"]["rank"], r["styles"]["off_vs_engine"], r["styles"]["on_vs_engine"],
              round(1000 * r["styles"]["on_unet_call_s"], 1), round(1000 * r["styles"]["switch_s"], 2))
             for r in styled])


def main(argv: list[str] | None = None) -> int:
    parser = common.model_parser(__doc__, sizes=["1024x1024"], repeats=2,
                                 repeats_help="runs per side; the fastest is reported",
                                 bundle_help="a model folder with sdxl/ and sdxl_refiner/", scale=False)
    parser.add_argument("--steps", type=int, default=describe_family(Family.SDXL).default_steps)
    parser.add_argument("--no-refiner", action="store_true",
                        help="the base alone (KANDINSKY_SDXL_REFINER=false)")
    parser.add_argument("--lora-rank", type=int, default=32, help="the random adapters' rank (0: no styles)")
    args = parser.parse_args(argv)
    if args.steps < 2 or args.repeats < 1 or args.lora_rank < 0:
        parser.error("--steps must be at least 2, --repeats at least 1, --lora-rank not negative")
    return common.run_and_write(run, args, print_report, "bench_sdxl")


if __name__ == "__main__":
    sys.exit(main())
