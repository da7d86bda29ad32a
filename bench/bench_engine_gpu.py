"""Engine speed on a GPU: text → image at 512² / 768² / 1024², split by stage, as ratios.

Builds the Kandinsky 2.2 prior and decoder at their public sizes (configs of the public repos)
with random weights, writes them as a bundle, and times three ways of running the same job:

* ``engine``   — worker.engine.Engine loaded from the bundle (the service's code path);
* ``plain``    — the model-card recipe: stock prior + decoder pipelines, fp16, resident on the GPU;
* ``offload``  — ``KandinskyV22CombinedPipeline`` with ``enable_model_cpu_offload()`` (how many bots run it).

It reports seconds per stage (prior, UNet loop, MoVQ decode), the engine's ratio to each baseline,
the UNet FLOP count per job (torch's FlopCounterMode) and the achieved TFLOP/s. A FLOP-floor ratio
is printed only when the device's peak is known from its datasheet table below. Every number
written is measured in this run; nothing is estimated.

    python bench/bench_engine_gpu.py                 # GPU, public sizes, 50 decoder steps
    python bench/bench_engine_gpu.py --small         # CPU-sized models and images, 2 steps

Results go to bench/results/bench_engine_gpu-<device>-<scale>-<utc time>.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import write_results  # noqa: E402
from contract.spec import LONG_SIDES, JobSpec, Mode  # noqa: E402
from worker.tiny_models import (  # noqa: E402
    DECODER_SCHEDULER_CONFIG,
    PRIOR_SCHEDULER_CONFIG,
    REMBG_ONNX_NAME,
    build_segmentation_onnx,
    build_tokenizer_files,
)

DEFAULT_RESULTS = REPO / "bench" / "results"

PEAK_DENSE_FP16_TFLOPS: dict[str, float] = {
    "H100": 989.0,  # SXM datasheet, dense fp16/bf16 tensor cores
    "H200": 989.0,
    "A100": 312.0,
}
"""Datasheet peaks by GPU name fragment; used only to turn a measured time into a floor ratio."""


@dataclass(frozen=True)
class Scale:
    """Model configs and run sizes for one bench scale."""

    name: str
    text_encoder: dict[str, Any]
    image_encoder: dict[str, Any]
    prior: dict[str, Any]
    unet: dict[str, Any]
    movq: dict[str, Any]
    sizes: tuple[int, ...]
    steps: int
    prior_steps: int
    repeats: int


_UNET_BLOCKS: dict[str, Any] = {
    "in_channels": 4,
    "out_channels": 8,
    "addition_embed_type": "image",
    "encoder_hid_dim_type": "image_proj",
    "down_block_types": (
        "ResnetDownsampleBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
        "SimpleCrossAttnDownBlock2D",
    ),
    "up_block_types": (
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "SimpleCrossAttnUpBlock2D",
        "ResnetUpsampleBlock2D",
    ),
    "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "resnet_time_scale_shift": "scale_shift",
    "class_embed_type": None,
}
_MOVQ_BLOCKS: dict[str, Any] = {
    "down_block_types": (
        "DownEncoderBlock2D",
        "DownEncoderBlock2D",
        "DownEncoderBlock2D",
        "AttnDownEncoderBlock2D",
    ),
    "up_block_types": ("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "vq_embed_dim": 4,
    "norm_type": "spatial",
}

PUBLIC = Scale(
    name="public",
    # kandinsky-2-2-prior: OpenCLIP ViT-bigG/14 text and vision towers, 1280-d embeddings.
    text_encoder={
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_attention_heads": 20,
        "num_hidden_layers": 32,
        "projection_dim": 1280,
        "vocab_size": 49408,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
    },
    image_encoder={
        "hidden_size": 1664,
        "intermediate_size": 8192,
        "num_attention_heads": 16,
        "num_hidden_layers": 48,
        "projection_dim": 1280,
        "image_size": 224,
        "patch_size": 14,
        "hidden_act": "gelu",
    },
    prior={"num_attention_heads": 32, "attention_head_dim": 64, "num_layers": 20, "embedding_dim": 1280},
    unet={
        **_UNET_BLOCKS,
        "block_out_channels": (384, 768, 1152, 1536),
        "layers_per_block": 3,
        "attention_head_dim": 64,
        "cross_attention_dim": 768,
        "encoder_hid_dim": 1280,
        "addition_embed_type_num_heads": 64,
    },
    movq={
        **_MOVQ_BLOCKS,
        "block_out_channels": (128, 256, 256, 512),
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "num_vq_embeddings": 16384,
    },
    sizes=(512, 768, 1024),
    steps=50,
    prior_steps=25,
    repeats=3,
)

SMALL = Scale(
    name="small",
    text_encoder={
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "projection_dim": 32,
        "vocab_size": 1000,
        "max_position_embeddings": 77,
    },
    image_encoder={
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "projection_dim": 32,
        "image_size": 224,
        "patch_size": 14,
    },
    prior={"num_attention_heads": 2, "attention_head_dim": 12, "num_layers": 1, "embedding_dim": 32},
    unet={
        **_UNET_BLOCKS,
        "down_block_types": ("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        "up_block_types": ("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "attention_head_dim": 4,
        "cross_attention_dim": 64,
        "encoder_hid_dim": 32,
    },
    movq={
        **_MOVQ_BLOCKS,
        "block_out_channels": (32, 32, 32, 32),
        "layers_per_block": 0,
        "norm_num_groups": 8,
        "num_vq_embeddings": 12,
    },
    sizes=(512,),  # the smallest square bucket; the models, not the image, are what is small
    steps=2,
    prior_steps=2,
    repeats=1,
)


def build_bundle(root: Path, scale: Scale, device: str, dtype: torch.dtype) -> Path:
    """Random-weight prior + decoder at ``scale``, saved like the public repos (text2image needs no more)."""
    from diffusers import DDPMScheduler, KandinskyV22Pipeline, PriorTransformer, UnCLIPScheduler, VQModel
    from diffusers import KandinskyV22PriorPipeline as PriorPipeline
    from diffusers import UNet2DConditionModel as UNet
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    build_tokenizer_files(root / "tokenizer-src")
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer-src", model_max_length=77)
    torch.manual_seed(0)
    with torch.device(device):  # initialise big tensors where they will run: fast on a GPU
        text_encoder = CLIPTextModelWithProjection(
            CLIPTextConfig(
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **scale.text_encoder,
            )
        )
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**scale.image_encoder))
        prior: Any = PriorTransformer(**scale.prior)
        prior.clip_std = torch.nn.Parameter(torch.ones_like(prior.clip_std))
        unet = UNet(**scale.unet)
        movq = VQModel(**scale.movq)
    size = scale.image_encoder["image_size"]
    processor = CLIPImageProcessor(crop_size=size, size=size, resample=3, do_center_crop=True)
    prior_pipe: Any = PriorPipeline(
        prior=prior,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=UnCLIPScheduler(**PRIOR_SCHEDULER_CONFIG),  # type: ignore[arg-type]
        image_processor=processor,
    )
    prior_pipe.to(dtype=dtype)
    prior_pipe.save_pretrained(root / "prior")
    decoder: Any = KandinskyV22Pipeline(
        unet=unet,
        scheduler=DDPMScheduler(**DECODER_SCHEDULER_CONFIG),  # type: ignore[arg-type]
        movq=movq,
    )
    decoder.to(dtype=dtype)
    decoder.save_pretrained(root / "decoder")
    del prior_pipe, decoder, text_encoder, image_encoder, prior, unet, movq
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    # text2image with preload=False never opens these; the engine only checks that they exist.
    for folder in ("decoder_inpaint", "controlnet_depth", "depth", "rembg"):
        (root / folder).mkdir(exist_ok=True)
    import onnx

    onnx.save(build_segmentation_onnx(), str(root / "rembg" / REMBG_ONNX_NAME))
    return root


@dataclass
class StageTimes:
    prior: float
    unet_loop: float
    decode: float
    total: float


@dataclass
class Measurement:
    variant: str
    size: int
    runs: list[StageTimes] = field(default_factory=list)
    skipped: str | None = None

    def median(self) -> StageTimes | None:
        if not self.runs:
            return None
        fields = ("prior", "unet_loop", "decode", "total")
        return StageTimes(*(statistics.median(getattr(r, f) for r in self.runs) for f in fields))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class _LastStepClock:
    """Time stamp of the decoder's last step (synchronised), to split the UNet loop from the decode."""

    def __init__(self, device: str, total: int) -> None:
        self.device, self.total, self.at = device, total, 0.0

    def mark(self) -> None:
        _sync(self.device)
        self.at = time.perf_counter()


def time_engine(engine: Any, spec: JobSpec) -> tuple[StageTimes, np.ndarray]:
    clock = _LastStepClock(engine.device, spec.steps)

    def on_progress(stage: str, step: int, total: int) -> None:
        if stage == "decoder" and step == total:
            clock.mark()

    _sync(engine.device)
    started = time.perf_counter()
    out = engine.generate(spec, on_progress=on_progress)
    _sync(engine.device)
    ended = time.perf_counter()
    decode = ended - clock.at
    times = StageTimes(out.timings["prior"], out.timings["decoder"] - decode, decode, ended - started)
    return times, np.asarray(out.images[0])


def _recipe(
    run_prior: Callable[[torch.Generator], Any],
    run_decoder: Callable[[Any, torch.Generator, Callable[..., Any]], Any],
    device: str,
    spec: JobSpec,
    generator_device: str,
) -> tuple[StageTimes, np.ndarray]:
    clock = _LastStepClock(device, spec.steps)

    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if step + 1 == spec.steps:
            clock.mark()
        return kwargs

    generator = torch.Generator(device=generator_device).manual_seed(spec.seed)
    _sync(device)
    started = time.perf_counter()
    embeds = run_prior(generator)
    _sync(device)
    prior_done = time.perf_counter()
    images = run_decoder(embeds, generator, on_step_end)
    _sync(device)
    ended = time.perf_counter()
    decode = ended - clock.at
    times = StageTimes(prior_done - started, clock.at - prior_done, decode, ended - started)
    return times, np.asarray(images[0])


def time_plain(prior: Any, decoder: Any, spec: JobSpec, device: str) -> tuple[StageTimes, np.ndarray]:
    """The model-card recipe, resident on the device; one generator from prior to decoder."""

    def run_prior(generator: torch.Generator) -> Any:
        return prior(
            spec.effective_prompt,
            num_inference_steps=spec.prior_steps,
            guidance_scale=spec.prior_guidance,
            generator=generator,
        ).to_tuple()

    def run_decoder(embeds: Any, generator: torch.Generator, cb: Callable[..., Any]) -> Any:
        image_emb, zero_emb = embeds
        return decoder(
            image_embeds=image_emb,
            negative_image_embeds=zero_emb,
            height=spec.height,
            width=spec.width,
            num_inference_steps=spec.steps,
            guidance_scale=spec.guidance,
            generator=generator,
            callback_on_step_end=cb,
        ).images

    return _recipe(run_prior, run_decoder, device, spec, device)


def time_offload(combined: Any, spec: JobSpec) -> tuple[StageTimes, np.ndarray]:
    """The combined pipeline with model CPU offload: prior and decoder in one call."""
    clock = _LastStepClock("cuda", spec.steps)
    marks: dict[str, float] = {}

    def prior_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if step + 1 == spec.prior_steps:
            _sync("cuda")
            marks["prior"] = time.perf_counter()
        return kwargs

    def decoder_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if step + 1 == spec.steps:
            clock.mark()
        return kwargs

    generator = torch.Generator(device="cpu").manual_seed(spec.seed)  # offload runs start on the CPU
    _sync("cuda")
    started = time.perf_counter()
    images = combined(
        prompt=spec.effective_prompt,
        height=spec.height,
        width=spec.width,
        num_inference_steps=spec.steps,
        prior_num_inference_steps=spec.prior_steps,
        guidance_scale=spec.guidance,
        prior_guidance_scale=spec.prior_guidance,
        generator=generator,
        prior_callback_on_step_end=prior_end,
        callback_on_step_end=decoder_end,
    ).images
    _sync("cuda")
    ended = time.perf_counter()
    prior = marks["prior"] - started
    times = StageTimes(prior, clock.at - started - prior, ended - clock.at, ended - started)
    return times, np.asarray(images[0])


def unet_flops_per_job(unet: Any, size: int, steps: int, device: str, dtype: torch.dtype) -> int:
    """FLOPs of the decoder UNet for one job: one CFG-batched forward (batch 2) per step."""
    from torch.utils.flop_counter import FlopCounterMode

    latent = size // 8
    sample = torch.randn(2, unet.config.in_channels, latent, latent, device=device, dtype=dtype)
    embeds = torch.randn(2, unet.config.encoder_hid_dim, device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        unet(sample, 500, encoder_hidden_states=None, added_cond_kwargs={"image_embeds": embeds})
    return int(counter.get_total_flops()) * steps


def peak_tflops(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_DENSE_FP16_TFLOPS.items() if key in name), None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffusers import KandinskyV22CombinedPipeline, KandinskyV22Pipeline, KandinskyV22PriorPipeline

    from worker.engine import Engine, EngineSettings

    scale = SMALL if args.small else PUBLIC
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = "float16" if device.startswith("cuda") else "float32"
    dtype = getattr(torch, dtype_name)
    sizes = tuple(args.sizes) if args.sizes else scale.sizes
    steps = args.steps or scale.steps
    prior_steps = args.prior_steps or scale.prior_steps
    repeats = args.repeats or scale.repeats

    workdir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    try:
        started = time.perf_counter()
        bundle = build_bundle(workdir / "bundle", scale, device, dtype)
        build_s = time.perf_counter() - started
        engine = Engine.load(
            EngineSettings(model_dir=bundle, device=device, dtype=dtype_name, preload=False)
        )
        plain_prior: Any = KandinskyV22PriorPipeline.from_pretrained(bundle / "prior", torch_dtype=dtype)
        plain_decoder: Any = KandinskyV22Pipeline.from_pretrained(bundle / "decoder", torch_dtype=dtype)
        for pipe in (plain_prior, plain_decoder):
            pipe.to(device)
            pipe.set_progress_bar_config(disable=True)
        combined: Any = None
        offload_skip: str | None = None
        if device.startswith("cuda"):
            # Separate copies from disk so offloading does not move the resident baseline's modules.
            cpu_prior: Any = KandinskyV22PriorPipeline.from_pretrained(bundle / "prior", torch_dtype=dtype)
            cpu_decoder: Any = KandinskyV22Pipeline.from_pretrained(bundle / "decoder", torch_dtype=dtype)
            prior_parts = {f"prior_{k}": v for k, v in cpu_prior.components.items()}
            combined = KandinskyV22CombinedPipeline(**cpu_decoder.components, **prior_parts)
            combined.enable_model_cpu_offload()
            combined.set_progress_bar_config(disable=True)
        else:
            offload_skip = "enable_model_cpu_offload needs a CUDA device"

        results: list[dict[str, Any]] = []
        for size in sizes:
            spec = JobSpec(
                mode=Mode.TEXT2IMAGE,
                prompt="red cat, 4k photo",
                width=size,
                height=size,
                seed=42,
                steps=steps,
                prior_steps=prior_steps,
            )
            measurements = {name: Measurement(name, size) for name in ("engine", "plain", "offload")}
            if offload_skip:
                measurements["offload"].skipped = offload_skip
            images: dict[str, np.ndarray] = {}
            for attempt in range(repeats + 1):  # the first pass warms caches and kernels
                timed: dict[str, tuple[StageTimes, np.ndarray]] = {
                    "engine": time_engine(engine, spec),
                    "plain": time_plain(plain_prior, plain_decoder, spec, device),
                }
                if combined is not None:
                    timed["offload"] = time_offload(combined, spec)
                for name, (times, image) in timed.items():
                    images[name] = image
                    if attempt > 0:
                        measurements[name].runs.append(times)
            flops = unet_flops_per_job(engine.decoder_pipeline().unet, size, steps, device, dtype)
            engine_median = measurements["engine"].median()
            assert engine_median is not None
            entry: dict[str, Any] = {
                "size": size,
                "unet_flops_per_job": flops,
                "achieved_unet_tflops": flops / engine_median.unet_loop / 1e12,
                "variants": {},
                "engine_vs_plain_max_pixel_diff": int(
                    np.abs(images["engine"].astype(np.int16) - images["plain"].astype(np.int16)).max()
                ),
            }
            peak = peak_tflops(device)
            if peak is not None:
                floor_s = flops / (peak * 1e12)
                entry["unet_floor_s"] = floor_s
                entry["unet_time_over_floor"] = engine_median.unet_loop / floor_s
            for name, m in measurements.items():
                median = m.median()
                entry["variants"][name] = {
                    "skipped": m.skipped,
                    "median": asdict(median) if median else None,
                    "runs": [asdict(r) for r in m.runs],
                }
                if median and name != "engine":
                    entry[f"engine_speedup_vs_{name}"] = median.total / engine_median.total
            results.append(entry)
        return {
            "bench": "bench_engine_gpu",
            "scale": scale.name,
            "device": device,
            "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            "dtype": dtype_name,
            "torch": torch.__version__,
            "steps": steps,
            "prior_steps": prior_steps,
            "repeats": repeats,
            "bundle_build_s": build_s,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "results": results,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['bench']} on {report['device_name']} ({report['dtype']}), {report['scale']} models")
    for entry in report["results"]:
        print(f"  {entry['size']}²: UNet {entry['unet_flops_per_job'] / 1e12:.3f} TFLOP/job, "
              f"engine achieves {entry['achieved_unet_tflops']:.4f} TFLOP/s")
        if "unet_time_over_floor" in entry:
            print(f"    UNet loop / FLOP floor: {entry['unet_time_over_floor']:.2f}x")
        for name, variant in entry["variants"].items():
            if variant["skipped"]:
                print(f"    {name:8s} skipped: {variant['skipped']}")
                continue
            m = variant["median"]
            print(f"    {name:8s} prior {m['prior']:.3f}s  unet {m['unet_loop']:.3f}s  "
                  f"decode {m['decode']:.3f}s  total {m['total']:.3f}s")
        for key in ("engine_speedup_vs_plain", "engine_speedup_vs_offload"):
            if key in entry:
                print(f"    {key}: {entry[key]:.2f}x")
        print(f"    engine vs plain max pixel diff: {entry['engine_vs_plain_max_pixel_diff']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="CPU-sized models and images, 2 steps")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--sizes", type=int, nargs="+", choices=LONG_SIDES, help="square sides to time")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--prior-steps", type=int)
    parser.add_argument("--repeats", type=int, help="timed runs per size after one warm-up")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    if not args.small and not torch.cuda.is_available() and args.device in (None, "cuda"):
        print("no CUDA device: run with --small for the CPU-sized check", file=sys.stderr)
        return 2
    report = run(args)
    print_report(report)
    path = write_results(report, args.out_dir, f"bench_engine_gpu-{report['device']}-{report['scale']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
