"""Engine configuration: model ids or a local bundle, device and dtype, each family's placement,
from KANDINSKY_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.families import Placement
from contract.spec import SIZE_BUCKETS

SchedulerName = Literal["ddpm", "ddim", "dpmpp-2m"]

DEFAULT_EDIT_THRESHOLD = 0.4
"""CLIPSeg probability from which a pixel belongs to the region an edit names: CLIPSeg's own demos
use 0.3-0.5; 0.4 keeps the background out of "the sky" without losing thin parts."""


class EngineSettings(BaseSettings):
    """Where the weights come from and where they run; the same code path for public ids and the bundle."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_", extra="ignore")

    model_dir: Path | None = None
    """Local bundle: Kandinsky 2.2's prior/, decoder/, decoder_inpaint/, controlnet_depth/, depth/;
    Kandinsky 3.0's kandinsky3/; SDXL's sdxl/ and sdxl_refiner/; rembg/ (an .onnx) for every
    family's stickers."""
    prior_id: str = "kandinsky-community/kandinsky-2-2-prior"
    decoder_id: str = "kandinsky-community/kandinsky-2-2-decoder"
    inpaint_id: str = "kandinsky-community/kandinsky-2-2-decoder-inpaint"
    controlnet_id: str = "kandinsky-community/kandinsky-2-2-controlnet-depth"
    depth_id: str = "Intel/dpt-hybrid-midas"
    segment_id: str = "CIDAS/clipseg-rd64-refined"
    """Text-prompted segmentation of edits by words (CLIPSeg); ``segment/`` in a bundle."""
    edit_threshold: float = Field(default=DEFAULT_EDIT_THRESHOLD, gt=0.0, le=1.0)
    """CLIPSeg probability from which a pixel is in the region an edit names (worker/engine/editing.py)."""
    k3_id: str = "kandinsky-community/kandinsky-3"
    """Kandinsky 3.0 checkpoint (one repo: text encoder, UNet, MoVQ); ``kandinsky3/`` in a bundle."""
    k3_variant: str | None = "fp16"
    """Weight files of the K3 checkpoint to read (the public repo's fp16 ones halve the download)."""
    k3_placement: Placement = Placement.GPU
    """Where Kandinsky 3.0 lives: ``gpu`` (all resident), ``text_encoder_cpu`` (Flan-UL2's encoder on
    the CPU, the UNet and MoVQ on the GPU) or ``model_offload`` (each model on the GPU while it runs)."""
    sdxl_id: str = "stabilityai/stable-diffusion-xl-base-1.0"
    """SDXL base checkpoint; ``sdxl/`` in a bundle."""
    sdxl_refiner_id: str = "stabilityai/stable-diffusion-xl-refiner-1.0"
    """SDXL refiner checkpoint (only its UNet is loaded: the second text encoder and the VAE are the
    base's); ``sdxl_refiner/`` in a bundle."""
    sdxl_variant: str | None = "fp16"
    """Weight files of the SDXL checkpoints to read (the public fp16 ones halve the download)."""
    sdxl_refiner: bool = True
    """Run the refiner as the second expert: the base denoises to ``sdxl_refiner_fraction`` of the
    schedule and hands its latents over (diffusers' ``denoising_end``/``denoising_start``)."""
    sdxl_refiner_fraction: float = Field(default=0.8, gt=0.0, lt=1.0)
    """Where the base hands over to the refiner (the model card's 0.8: the refiner takes the last 20%)."""
    sdxl_vae_id: str | None = None
    """Another VAE for SDXL, e.g. ``madebyollin/sdxl-vae-fp16-fix``: the public VAE overflows in
    float16 and is upcast to float32 for every decode; the fixed one is not."""
    sdxl_vae_upcast: bool | None = None
    """Force (true) or skip (false) the float32 VAE decode; unset: the VAE config's ``force_upcast``."""
    sdxl_placement: Placement = Placement.GPU
    """Where SDXL lives: ``gpu`` (all resident) or ``model_offload`` (each model on the GPU while it runs)."""
    rembg_model: str = "u2net"
    """A rembg model name, or a path to an .onnx file (run with rembg's custom u2net session)."""
    device: str = "auto"
    """"auto" = cuda when available, else cpu."""
    dtype: str = "auto"
    """"auto" = float16 on cuda, float32 on cpu; or float16 | bfloat16 | float32."""
    cpu_offload: bool = False
    preload: bool = True
    """Load every model at start; else each on first use, then resident."""
    cache_dir: Path | None = None

    # Speed options (worker/engine/speed.py): off until a GPU run of bench/bench_engine_gpu.py shows
    # they help there; bench/NOTES.md has each one's prediction and measurement.
    channels_last: bool = False
    """Decoder UNets and MoVQ in NHWC memory format (same numbers, faster convolutions on tensor cores)."""
    compile: bool = False
    """torch.compile the decoder UNets, the MoVQ decode and the prior transformer for fixed shapes."""
    compile_mode: str = "default"
    """torch.compile's mode for the decoders ("default", "max-autotune", ...); on CUDA the prior
    uses CUDA graphs ("reduce-overhead") unless this names another mode."""
    compile_backend: str = "inductor"
    warmup_sizes: tuple[str, ...] = Field(default=("1024x1024",))
    """Buckets ("WxH") compiled at load (with ``preload``), so no user waits for a compile; other
    buckets, and batches of more than one image, compile on their first job."""
    scheduler: SchedulerName = "ddpm"
    """The decoders' scheduler: "ddpm" is the model card's; "ddim" / "dpmpp-2m" need about half
    the steps (pair them with a lower BOT_STEPS) but change the image for a given seed."""

    @field_validator("warmup_sizes")
    @classmethod
    def _warmup_sizes_are_buckets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for size in value:
            if parse_size(size) not in SIZE_BUCKETS:
                raise ValueError(f"warm-up size {size!r} is not one of the size buckets (contract.spec)")
        return value


def parse_size(size: str) -> tuple[int, int]:
    """"1024x576" → (1024, 576); anything else raises ValueError."""
    width, sep, height = size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"size {size!r} is not WIDTHxHEIGHT")
    return int(width), int(height)
