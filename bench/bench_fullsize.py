"""A full-size check without weights: every family at its public configs, random weights, one job.

For each family (``--families``) this script

1. builds every model on torch's meta device from the public ``config.json`` contents (written
   here, nothing downloads) and counts its parameters, next to ``contract.families``' counts;
2. writes a model folder like the public repos': the tiny bundle's layout (``devkit.tiny_models``),
   with the folders text → image loads replaced by public-size models, materialised one component at
   a time (in the target dtype from the start, saved with ``save_pretrained`` in small shards, freed
   before the next), so the peak is the largest component, not the family;
3. loads it through the service's own path (``worker.engine.Engine`` with ``model_dir``, the same
   family code as production) and runs one text → image job at the smallest bucket with one or two
   steps, measuring peak memory around each model's forward calls (hooks; on Linux the peak RSS is
   reset per stage through ``/proc/self/clear_refs``; on CUDA ``max_memory_allocated`` too).

It proves the production shapes and dtypes work before any GPU run. Weights are random, so images
are noise; memory and shapes are the production ones. A family (or a component) whose bytes would
not fit in this host's available memory is not materialised: it is reported as not run, with the
memory it needs computed from its parameter counts, so the same command runs it on a bigger host.
``--text-encoder-layers N`` builds Kandinsky 3.0's Flan-UL2 encoder with N of its 32 layers (every
tensor shape as public, 1/16 of the bytes at N=2), so that family's path runs on a 23 GB host; its
full-depth memory is then the computed figure.

    python bench/bench_fullsize.py --families kandinsky22                 # K2.2 at public size
    python bench/bench_fullsize.py --families kandinsky3 --text-encoder-layers 2
    python bench/bench_fullsize.py --scale tiny                           # seconds: checks the code path

Results: <out-dir>/bench_fullsize-<utc time>.json (default bench/results/).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.common import RESULTS_DIR, format_table, install_sigterm, metadata, write_results
from bench.engine_gpu.models import PUBLIC as K22_PUBLIC
from bench.engine_gpu.models import SMALL as K22_SMALL
from bench.engine_gpu.models import (
    default_dtype,
    k3_configs,
    k5_builders,
    k5_image_builders,
    sdxl_builders,
)
from contract.families import Family, describe_family, parse_family
from contract.spec import SIZE_BUCKETS, JobSpec, Mode

GIB = 2**30
KIB = 1024
PROMPT = "red cat, 4k photo"
SEED = 42
SHARD_SIZE = "2GB"
"""save_pretrained serialises one shard at a time (safetensors copies it into bytes first): small
shards keep the save's extra memory at ~2 GB instead of the 5-10 GB default shard."""
BUILD_MARGIN_GIB = 2.0
"""Memory left free beyond what a component is expected to take when it is built (the interpreter,
the save's shard copy, other processes' growth): a component that would leave less is not built."""
RUN_ALLOWANCE_GIB = 2.0
"""Host memory a CPU job needs beyond the weights (activations at the smallest bucket, allocator
slack, the loaders' transient copies), used only to decide whether a family's run can start here."""
BUNDLE_CLIP_TOKENS = (772, 773, 773)
"""bos, eos, pad ids of the tiny bundle's CLIP tokenizer (the prior folder keeps it)."""
DEFAULT_JOBS = 2
"""The first job of a family pages its mapped weights in; the second measures each forward alone."""
DEFAULT_STEPS = 1
DEFAULT_PRIOR_STEPS = 2
ENSEMBLE_MIN_STEPS = {Family.SDXL: 2}
"""SDXL's base and refiner split one schedule: with fewer steps than this the refiner runs none."""
"""The fewest the spec allows (JobSpec.prior_steps ≥ 2)."""

# Public configs: bench/engine_gpu/models.py (the config.json contents of the public repos, written
# there and shared with the GPU bench).


@dataclass(frozen=True)
class ComponentPlan:
    """One model of a family's text → image run: how to build it and where it is saved."""

    name: str
    """As contract.families names it."""
    folder: str
    """Path under the bundle root (``prior/text_encoder``)."""
    build: Callable[[], Any]
    """Constructs the module (called under a device context: meta to count, the host to build)."""
    variant: str | None = None


@dataclass
class FamilyPlan:
    family: Family
    components: list[ComponentPlan]
    note: str = ""
    reduced: dict[str, str] = field(default_factory=dict)
    """Components built smaller than public, and how (their full figures are computed)."""


# --- memory probes --------------------------------------------------------------------------------


def proc_status() -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in bytes (empty off Linux)."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * KIB
    except OSError:
        pass
    return out


def mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * KIB
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset the kernel's peak RSS (VmHWM) to the current RSS; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def trim() -> None:
    """Free Python garbage and give freed heap back to the OS, so the next stage starts clean."""
    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Window:
    """Peak host (and CUDA) memory between ``open()`` and ``close()``, above the start."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")
        self.start: dict[str, int] = {}
        self.cuda_start = 0
        self.resettable = False

    def open(self) -> None:
        self.resettable = reset_peak()
        self.start = proc_status()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_start = torch.cuda.memory_allocated()

    def close(self) -> dict[str, float | None]:
        end = proc_status()
        peak = end.get("VmHWM") if self.resettable else None
        out: dict[str, float | None] = {
            "rss_before_gib": _gib(self.start.get("VmRSS")),
            "rss_after_gib": _gib(end.get("VmRSS")),
            "rss_anon_after_gib": _gib(end.get("RssAnon")),
            "rss_file_after_gib": _gib(end.get("RssFile")),
            "peak_rss_gib": _gib(peak),
            "peak_rss_above_before_gib": _gib(peak - self.start["VmRSS"]) if peak and self.start else None,
        }
        if self.cuda:
            torch.cuda.synchronize()
            out["cuda_peak_allocated_gib"] = _gib(torch.cuda.max_memory_allocated())
            out["cuda_peak_above_before_gib"] = _gib(torch.cuda.max_memory_allocated() - self.cuda_start)
        return out


def _gib(value: int | None) -> float | None:
    return None if value is None else round(value / GIB, 3)


def param_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def tensor_bytes(module: Any) -> int:
    """Bytes of a module's parameters and buffers, each storage once."""
    seen: set[int] = set()
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type == "meta" or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


# --- the families' components -----------------------------------------------------------------------


def kandinsky22_plan(scale: str) -> FamilyPlan:
    """The text → image models of Kandinsky 2.2: the prior's CLIP text and image towers and prior
    (kandinsky-2-2-prior), the decoder UNet and MoVQ (kandinsky-2-2-decoder). Configs:
    bench/engine_gpu/models.py (PUBLIC), shared with the GPU bench."""
    from diffusers import PriorTransformer, UNet2DConditionModel, VQModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    cfg = K22_PUBLIC if scale == "public" else K22_SMALL
    # Token ids of the bundle's CLIP tokenizer (devkit.tiny_models.build_tokenizer_files), which the
    # folder keeps: the text model pools at its end token.
    text = {"bos_token_id": BUNDLE_CLIP_TOKENS[0], "eos_token_id": BUNDLE_CLIP_TOKENS[1],
            "pad_token_id": BUNDLE_CLIP_TOKENS[2], **cfg.text_encoder}

    def prior() -> Any:
        model: Any = PriorTransformer(**cfg.prior)
        # Zero clip_std would make the prior's output all zeros; public weights have real stats.
        if model.clip_std.device.type != "meta":
            model.clip_std = torch.nn.Parameter(torch.ones_like(model.clip_std))
        return model

    return FamilyPlan(
        Family.KANDINSKY22,
        [
            ComponentPlan("text_encoder", "prior/text_encoder",
                          lambda: CLIPTextModelWithProjection(CLIPTextConfig(**text))),
            ComponentPlan("image_encoder", "prior/image_encoder",
                          lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg.image_encoder))),
            ComponentPlan("prior", "prior/prior", prior),
            ComponentPlan("decoder", "decoder/unet", lambda: UNet2DConditionModel(
                **cfg.unet, in_channels=4, addition_embed_type="image")),
            ComponentPlan("movq", "decoder/movq", lambda: VQModel(**cfg.movq)),
        ],
        note="text → image loads the prior and decoder folders; the bundle's other folders "
             "(inpaint, controlnet, depth, segment, rembg) are the tiny bundle's and are not loaded",
    )


def kandinsky3_plan(scale: str, text_encoder_layers: int | None) -> FamilyPlan:
    """Kandinsky 3.0 (kandinsky-community/kandinsky-3): Flan-UL2's encoder, the 3B UNet, MoVQ."""
    from diffusers import Kandinsky3UNet, VQModel
    from transformers import T5Config, T5EncoderModel

    text, unet, movq = k3_configs(scale)
    reduced: dict[str, str] = {}
    if text_encoder_layers is not None and text_encoder_layers != text["num_layers"]:
        reduced["text_encoder"] = (f"{text_encoder_layers} of {text['num_layers']} layers, every tensor "
                                   "shape as public; its full-depth figures are computed")
        text["num_layers"] = text_encoder_layers
    return FamilyPlan(
        Family.KANDINSKY3,
        [
            ComponentPlan("text_encoder", "kandinsky3/text_encoder",
                          lambda: T5EncoderModel(T5Config(**text))),
            ComponentPlan("unet", "kandinsky3/unet", lambda: Kandinsky3UNet(**unet)),
            ComponentPlan("movq", "kandinsky3/movq", lambda: VQModel(**movq)),
        ],
        note="the kandinsky3 folder: tokenizer and scheduler as the tiny bundle's, models at scale",
        reduced=reduced,
    )


def sdxl_plan(scale: str) -> FamilyPlan:
    """SDXL base (stable-diffusion-xl-base-1.0: two CLIP text encoders, the UNet, the VAE) and the
    refiner's UNet (-refiner-1.0; its second text encoder and VAE are the base's), in the fp16 files
    the engine reads."""
    builders = sdxl_builders(scale)
    folders = {"text_encoder": "sdxl/text_encoder", "text_encoder_2": "sdxl/text_encoder_2",
               "unet": "sdxl/unet", "refiner_unet": "sdxl_refiner/unet", "vae": "sdxl/vae"}
    return FamilyPlan(
        Family.SDXL,
        [ComponentPlan(name, folders[name], build, variant="fp16") for name, build in builders.items()],
        note="the sdxl and sdxl_refiner folders: tokenizers and schedulers as the tiny bundle's, "
             "models at scale",
    )


def kandinsky5_plan(scale: str) -> FamilyPlan:
    """Kandinsky 5.0 Video Lite (kandinskylab/Kandinsky-5.0-T2V-Lite-*-5s-Diffusers): Qwen2.5-VL 7B and
    CLIP ViT-L, the 2B DiT, HunyuanVideo's VAE, in the 5 s folder the engine reads."""
    from contract.video import VideoKind, video_checkpoint

    folder = video_checkpoint(VideoKind.DISTILLED, 5).folder
    folders = {"text_encoder": "text_encoder", "text_encoder_2": "text_encoder_2",
               "video_transformer": "transformer", "video_vae": "vae"}
    return FamilyPlan(
        Family.KANDINSKY5,
        [ComponentPlan(name, f"{folder}/{folders[name]}", build)
         for name, build in k5_builders(scale).items()],
        note=f"the {folder} folder: tokenizers and scheduler as the tiny bundle's, models at scale; "
             "the job is a 5 s video at 1 frame per second (5 frames) with the checkpoint's 16 steps",
    )


def kandinsky5_image_plan(scale: str) -> FamilyPlan:
    """Kandinsky 5.0 Image Lite (kandinskylab/Kandinsky-5.0-T2I-Lite-sft-Diffusers): Qwen2.5-VL 7B and
    CLIP ViT-L, the 6B DiT, FLUX.1's VAE, in the text → image folder the engine reads."""
    from worker.engine.families.kandinsky5_image import IMAGE_FOLDER

    return FamilyPlan(
        Family.KANDINSKY5_IMAGE,
        [ComponentPlan(name, f"{IMAGE_FOLDER}/{name}", build)
         for name, build in k5_image_builders(scale).items()],
        note=f"the {IMAGE_FOLDER} folder: tokenizers and scheduler as the tiny bundle's, models at scale; "
             "the job is drawn at the trained size nearest its ratio (1280x768 for 512x320)",
    )


def family_plan(family: Family, scale: str, text_encoder_layers: int | None) -> FamilyPlan:
    if family is Family.KANDINSKY22:
        return kandinsky22_plan(scale)
    if family is Family.SDXL:
        return sdxl_plan(scale)
    if family is Family.KANDINSKY5:
        return kandinsky5_plan(scale)
    if family is Family.KANDINSKY5_IMAGE:
        return kandinsky5_image_plan(scale)
    return kandinsky3_plan(scale, text_encoder_layers)


def full_params(family: Family, scale: str) -> dict[str, int]:
    """Parameters of each component at the full (unreduced) config, counted on the meta device."""
    plan = family_plan(family, scale, None)
    out: dict[str, int] = {}
    for component in plan.components:
        with torch.device("meta"):
            out[component.name] = param_count(component.build())
    return out


# --- the bench --------------------------------------------------------------------------------------


def smallest_bucket() -> tuple[int, int]:
    return min(SIZE_BUCKETS, key=lambda s: (s[0] * s[1], -s[0]))


def build_component(component: ComponentPlan, root: Path, dtype: torch.dtype, device: str,
                    params: int, entry: dict[str, Any], force: bool) -> bool:
    """Materialise one component with random weights, save it, free it; False if it cannot fit."""
    need = params * torch.empty((), dtype=dtype).element_size()
    available = mem_available()
    entry["build_need_gib"] = round((need + BUILD_MARGIN_GIB * GIB) / GIB, 2)
    if not force and device == "cpu" and available is not None and need + BUILD_MARGIN_GIB * GIB > available:
        entry["not_built"] = (f"needs {need / GIB:.1f} GiB + {BUILD_MARGIN_GIB:.0f} GiB margin, "
                              f"{available / GIB:.1f} GiB available here: run on a bigger host")
        return False
    window = Window(device)
    trim()
    window.open()
    started = time.perf_counter()
    torch.manual_seed(SEED)
    with torch.device(device), default_dtype(dtype):
        model = component.build()
    model.to(dtype)
    built = time.perf_counter()
    target = root / component.folder
    shutil.rmtree(target, ignore_errors=True)
    model.save_pretrained(target, max_shard_size=SHARD_SIZE, variant=component.variant)
    entry["params_built"] = param_count(model)
    entry["param_bytes_built"] = tensor_bytes(model)
    del model
    trim()
    entry["build"] = {**window.close(), "init_s": round(built - started, 1),
                      "save_s": round(time.perf_counter() - built, 1)}
    return True


def run_need_bytes(family: Family, counts: dict[Family, dict[str, dict[str, Any]]],
                   dtype: torch.dtype) -> int:
    """Host memory one job of ``family`` needs on the CPU: its built weights plus RUN_ALLOWANCE_GIB."""
    size = torch.empty((), dtype=dtype).element_size()
    return sum(e["params_built_plan"] for e in counts[family].values()) * size + int(RUN_ALLOWANCE_GIB * GIB)


def run_shortfall(family: Family, counts: dict[Family, dict[str, dict[str, Any]]],
                  dtype: torch.dtype) -> str | None:
    """Why ``family``'s job cannot run on this host (its memory need past what is available), or None."""
    need, available = run_need_bytes(family, counts, dtype), mem_available()
    if available is None or need <= available:
        return None
    return (f"the family's job needs {need / GIB:.1f} GiB (weights + {RUN_ALLOWANCE_GIB:.0f} GiB), "
            f"{available / GIB:.1f} GiB available here: run on a bigger host "
            "(or, for Kandinsky 3.0, --text-encoder-layers N)")


def write_bundle(root: Path, plans: list[FamilyPlan], dtype: torch.dtype, device: str,
                 counts: dict[Family, dict[str, dict[str, Any]]], force: bool) -> dict[Family, bool]:
    """The tiny bundle's layout (a copy of the one under .cache), then each planned component replaced
    at scale. Returns, per family, whether every component was built."""
    from devkit.stack import ensure_tiny_bundle

    shutil.copytree(ensure_tiny_bundle(), root, dirs_exist_ok=True)
    complete: dict[Family, bool] = {}
    for plan in plans:
        ok = True
        # A family whose run could not start here is not built at all: building its largest model
        # alone would fill the host's memory and prove nothing the meta-device count does not.
        short = None if force or device != "cpu" else run_shortfall(plan.family, counts, dtype)
        for component in plan.components:
            entry = counts[plan.family][component.name]
            if short is not None:
                entry["not_built"] = short
                ok = False
                continue
            if not ok:
                entry["not_built"] = "an earlier component of the family was not built"
                continue
            ok = build_component(component, root, dtype, device, entry["params_built_plan"], entry, force)
        complete[plan.family] = ok
    return complete


STAGE_MODULES: dict[Family, dict[str, Callable[[Any], Any]]] = {
    Family.KANDINSKY22: {
        "text_encoder": lambda e: e.prior_pipeline().text_encoder,
        "image_encoder": lambda e: e.prior_pipeline().image_encoder,
        "prior": lambda e: e.prior_pipeline().prior,
        "decoder": lambda e: e.decoder_pipeline().unet,
        "movq": lambda e: e.decoder_pipeline().movq,
    },
    Family.KANDINSKY3: {
        "text_encoder": lambda e: (e._encoder or e.text2image_pipeline()).text_encoder,
        "unet": lambda e: e.text2image_pipeline().unet,
        "movq": lambda e: e.text2image_pipeline().movq,
    },
    Family.SDXL: {
        "text_encoder": lambda e: e.base_pipeline().text_encoder,
        "text_encoder_2": lambda e: e.base_pipeline().text_encoder_2,
        "unet": lambda e: e.base_pipeline().unet,
        "refiner_unet": lambda e: e.refiner_pipeline().unet,
        "vae": lambda e: e.base_pipeline().vae,
    },
    Family.KANDINSKY5: {
        "text_encoder": lambda e: (e._encoder or e.video_pipeline(5)).text_encoder,
        "text_encoder_2": lambda e: (e._encoder or e.video_pipeline(5)).text_encoder_2,
        "video_transformer": lambda e: e.video_pipeline(5).transformer,
        "video_vae": lambda e: e.video_pipeline(5).vae,
    },
    Family.KANDINSKY5_IMAGE: {
        "text_encoder": lambda e: e._encoder_of(e.text2image_pipeline()).text_encoder,
        "text_encoder_2": lambda e: e._encoder_of(e.text2image_pipeline()).text_encoder_2,
        "transformer": lambda e: e.text2image_pipeline().transformer,
        "vae": lambda e: e.text2image_pipeline().vae,
    },
}
"""Each component's module in a loaded family engine (K3's text encoder lives apart under
``text_encoder_cpu``). The MoVQ's stage is its decoder's forward (the decode of the latents)."""


def load_family(family_engine: Any) -> None:
    if family_engine.family is Family.KANDINSKY22:
        family_engine.prior_pipeline()
        family_engine.decoder_pipeline()
    elif family_engine.family is Family.SDXL:
        family_engine.base_pipeline()
        family_engine.refiner_pipeline()
    elif family_engine.family is Family.KANDINSKY5:
        family_engine.video_pipeline(5)
    else:
        family_engine.text2image_pipeline()


@contextmanager
def stage_hooks(modules: dict[str, Any], device: str, stages: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Around each forward of each module: a memory window and a clock; the peak over its calls."""
    handles = []
    for name, module in modules.items():
        decoder = name in ("movq", "vae", "video_vae")  # decode() skips forward()
        target = module.decoder if decoder else module
        window = Window(device)
        record = stages.setdefault(name, {"calls": 0, "seconds": 0.0})

        def before(_m: Any, _args: Any, window: Window = window, record: dict[str, Any] = record) -> None:
            window.open()
            record["_started"] = time.perf_counter()

        def after(_m: Any, _args: Any, _out: Any, window: Window = window,
                  record: dict[str, Any] = record) -> None:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            record["calls"] += 1
            record["seconds"] += time.perf_counter() - record.pop("_started")
            measured = window.close()
            for key in ("peak_rss_gib", "peak_rss_above_before_gib", "cuda_peak_above_before_gib"):
                value = measured.get(key)
                if value is not None and value >= (record.get(key) or float("-inf")):
                    record[key] = value

        handles.append(target.register_forward_pre_hook(before))
        handles.append(target.register_forward_hook(after))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_family(root: Path, family: Family, device: str, dtype_name: str, size: tuple[int, int],
               steps: int, prior_steps: int, placement: str | None, jobs_to_run: int) -> dict[str, Any]:
    """Load the family from the bundle through Engine and run one text → image job, measured."""
    from worker.engine import Engine, EngineSettings

    settings: dict[str, Any] = {"model_dir": root, "device": device, "dtype": dtype_name, "preload": False}
    options: dict[str, Any] = {"video_fps": 1} if family is Family.KANDINSKY5 else {}  # 5 frames
    if placement and family is Family.KANDINSKY22:
        options["cpu_offload"] = placement == "model_offload"
    elif placement:
        options["placement"] = placement
    settings["family_options"] = {family: options}
    out: dict[str, Any] = {}
    trim()
    window = Window(device)
    window.open()
    started = time.perf_counter()
    engine = Engine(EngineSettings(**settings), families=[family])
    family_engine = engine[family]
    load_family(family_engine)
    out["load"] = {**window.close(), "seconds": round(time.perf_counter() - started, 1)}
    modules = {name: get(family_engine) for name, get in STAGE_MODULES[family].items()}
    out["loaded"] = {
        name: {"params": param_count(m), "param_bytes": tensor_bytes(m),
               "dtype": str(main_dtype(m)).removeprefix("torch."),
               "device": str(next(m.parameters()).device)}
        for name, m in modules.items()
    }
    description = describe_family(family)
    video = family is Family.KANDINSKY5  # a family of videos runs one 5 s video
    spec = JobSpec(mode=Mode.VIDEO if video else Mode.TEXT2IMAGE, model=family, prompt=PROMPT, width=size[0],
                   height=size[1], seed=SEED, steps=max(steps, ENSEMBLE_MIN_STEPS.get(family, 1)),
                   prior_steps=prior_steps, guidance=description.default_guidance, seconds=5 if video else 0)
    out["steps"] = spec.steps
    jobs: list[dict[str, Any]] = []
    for _ in range(jobs_to_run):
        stages: dict[str, dict[str, Any]] = {}
        trim()
        job = Window(device)
        job.open()
        started = time.perf_counter()
        with torch.inference_mode(), stage_hooks(modules, device, stages):
            result = engine.generate(spec)
        for record in stages.values():
            record["seconds"] = round(record["seconds"], 2)
        jobs.append({**job.close(), "seconds": round(time.perf_counter() - started, 1),
                     "timings": {k: round(v, 2) for k, v in result.timings.items()}, "stages": stages})
    if result.video is not None:
        out["image"] = {"size": [result.video.width, result.video.height], "mode": "RGB",
                        "frames": result.video.frames}
    else:
        image = result.images[0]
        out["image"] = {"size": list(image.size), "mode": image.mode}
    # The first job pages the weights in (from_pretrained maps the safetensors files: RSS counts them
    # as file pages once touched); a later one shows what each forward needs above resident weights.
    out["jobs"] = jobs
    out["job"] = jobs[-1]
    out["stages"] = jobs[-1]["stages"]
    out["stages_first_job"] = jobs[0]["stages"]
    del result, engine, family_engine, modules
    trim()
    return out


def main_dtype(module: Any) -> torch.dtype:
    """The dtype most of a module's parameters are in (Kandinsky 5's DiT keeps its small time and
    modulation layers in float32 whatever it is loaded in)."""
    by_dtype: dict[torch.dtype, int] = {}
    for p in module.parameters():
        by_dtype[p.dtype] = by_dtype.get(p.dtype, 0) + p.numel()
    return max(by_dtype, key=lambda d: by_dtype[d])


def computed(family: Family, params: dict[str, int], dtype_bytes: int) -> dict[str, Any]:
    """Weights per component and per placement from the parameter counts (contract.families' rule)."""
    description = describe_family(family)
    weights = {name: round(n * dtype_bytes / GIB, 2) for name, n in params.items()}
    return {
        "weights_gib": weights,
        "total_weights_gib": round(sum(weights.values()), 2),
        "contract_params": {c.name: c.params for c in description.components},
        "placements": {p.value: {"device_weights_gib": round(description.device_weights_gib(p), 2),
                                 "needs_gib": description.memory_gib(p)}
                       for p in description.placements},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device or "cpu"
    dtype = getattr(torch, args.dtype)
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    size = args.size or smallest_bucket()
    families = [parse_family(f) for f in args.families]
    plans = [family_plan(f, args.scale, args.text_encoder_layers) for f in families]
    report: dict[str, Any] = {
        **metadata(),  # the date and load average at the start (write_results adds the end's)
        "bench": "bench_fullsize", "scale": args.scale, "device": device, "dtype": args.dtype,
        "size": list(size), "steps": args.steps, "prior_steps": args.prior_steps,
        "text_encoder_layers": args.text_encoder_layers, "peak_reset": reset_peak(),
        "mem_available_start_gib": _gib(mem_available()), "families": {},
    }
    counts: dict[Family, dict[str, dict[str, Any]]] = {}
    for plan in plans:
        full = full_params(plan.family, args.scale)
        entries: dict[str, dict[str, Any]] = {}
        for component in plan.components:
            with torch.device("meta"):
                planned = param_count(component.build())
            entries[component.name] = {"params_full": full[component.name], "params_built_plan": planned,
                                       "folder": component.folder}
        counts[plan.family] = entries
        report["families"][plan.family.value] = {
            "title": describe_family(plan.family).title, "note": plan.note, "reduced": plan.reduced,
            "components": entries, "computed": computed(plan.family, full, dtype_bytes),
        }
    workdir = Path(tempfile.mkdtemp(prefix="bench-fullsize-", dir=args.work_dir))
    root = workdir / "bundle"
    try:
        started = time.perf_counter()
        complete = write_bundle(root, plans, dtype, device, counts, args.force)
        report["bundle_write_s"] = round(time.perf_counter() - started, 1)
        for plan in plans:
            block = report["families"][plan.family.value]
            if not complete[plan.family]:
                block["not_run"] = "a component could not be built on this host (see components)"
                continue
            block["run_need_gib"] = round(run_need_bytes(plan.family, counts, dtype) / GIB, 2)
            short = None if args.force or device != "cpu" else run_shortfall(plan.family, counts, dtype)
            if short is not None:
                block["not_run"] = short
                continue
            block["run"] = run_family(root, plan.family, device, args.dtype, size, args.steps,
                                      args.prior_steps, args.placement, args.jobs)
    finally:
        if args.keep_bundle:
            report["bundle_dir"] = str(root)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["mem_available_end_gib"] = _gib(mem_available())
    return report


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def print_report(report: dict[str, Any]) -> None:
    print(f"bench_fullsize: {report['scale']} configs, {report['dtype']} on {report['device']}, "
          f"{report['size'][0]}x{report['size'][1]}, {report['steps']} step(s) "
          f"({report['prior_steps']} prior)")
    rows: list[list[str]] = []
    for family, block in report["families"].items():
        run_block = block.get("run", {})
        for name, entry in block["components"].items():
            build = entry.get("build", {})
            stage = run_block.get("stages", {}).get(name, {})
            first = run_block.get("stages_first_job", {}).get(name, {})
            loaded = run_block.get("loaded", {}).get(name, {})
            rows.append([
                family, name, f"{entry['params_full'] / 1e6:.1f}",
                _fmt(block["computed"]["weights_gib"][name]),
                f"{entry['params_built_plan'] / 1e6:.1f}",
                _fmt(loaded.get("param_bytes", 0) / GIB if loaded else None),
                _fmt(build.get("peak_rss_above_before_gib")),
                _fmt(first.get("peak_rss_above_before_gib")),
                _fmt(stage.get("peak_rss_above_before_gib")),
                _fmt(stage.get("peak_rss_gib")),
                _fmt(stage.get("seconds")),
                entry.get("not_built", ""),
            ])
    print(format_table(["family", "component", "M params (public)", "GiB (computed)", "M params built",
                        "GiB loaded", "build peak +GiB", "1st job forward +GiB", "forward +GiB",
                        "forward peak RSS GiB", "forward s", "not built"], rows))
    for family, block in report["families"].items():
        run_block = block.get("run")
        if run_block is None:
            print(f"  {family}: not run: {block.get('not_run')}")
            continue
        load = run_block["load"]
        jobs = ", ".join(f"{j['seconds']} s (peak RSS {j['peak_rss_gib']} GiB, file pages "
                         f"{j['rss_file_after_gib']} GiB)" for j in run_block["jobs"])
        print(f"  {family}: load {load['seconds']} s, RSS {load['rss_after_gib']} GiB after load "
              f"(peak {load['peak_rss_gib']}); jobs {jobs}; image {run_block['image']['size']}")
        for name, why in block["reduced"].items():
            print(f"  {family}: {name} reduced: {why}")


def build_parser() -> argparse.ArgumentParser:
    from worker.engine.settings import parse_size

    def size(text: str) -> tuple[int, int]:
        try:
            parsed = parse_size(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH") from None
        if parsed not in SIZE_BUCKETS:
            raise argparse.ArgumentTypeError(f"size {text} is not a bucket of contract.spec")
        return parsed

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [f.value for f in Family]
    parser.add_argument("--families", nargs="+", default=names, choices=names)
    parser.add_argument("--scale", choices=("public", "tiny"), default="public",
                        help="public configs (the check), or tiny ones (seconds: the code path only)")
    parser.add_argument("--device", help="default cpu (cuda runs the same check on a GPU)")
    parser.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    parser.add_argument("--size", type=size, help="WxH bucket; default the smallest")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--prior-steps", type=int, default=DEFAULT_PRIOR_STEPS)
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, choices=range(1, 5),
                        help="jobs per family: the first pages the weights in, the last is reported")
    parser.add_argument("--text-encoder-layers", type=int,
                        help="Kandinsky 3.0's text encoder with this many layers (full width)")
    parser.add_argument("--placement", choices=("gpu", "text_encoder_cpu", "model_offload"),
                        help="placement setting for the engine (on a GPU host)")
    parser.add_argument("--force", action="store_true", help="build and run even where memory looks short")
    parser.add_argument("--work-dir", type=Path, help="where the bundle is written (default: the temp dir)")
    parser.add_argument("--keep-bundle", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    install_sigterm()
    report = run(args)
    print_report(report)
    path = write_results(report, args.out_dir, "bench_fullsize")
    print(f"wrote {path}")
    print(json.dumps({f: b.get("not_run", "ran") for f, b in report["families"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
