"""Engine configuration: model ids or a local bundle, device and dtype, each family's placement,
from KANDINSKY_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.families import Family
from contract.spec import SIZE_BUCKETS

SchedulerName = Literal["ddpm", "ddim", "dpmpp-2m"]

DEFAULT_EDIT_THRESHOLD = 0.4
"""CLIPSeg probability from which a pixel belongs to the region an edit names: CLIPSeg's own demos
use 0.3-0.5; 0.4 keeps the background out of "the sky" without losing thin parts."""


class FamilyOptions(BaseSettings):
    """One family's own settings: its module subclasses this with its ``KANDINSKY_<FAMILY>_`` prefix,
    so a family's ids, variants and placement live beside its engine, not in every worker's settings."""

    model_config = SettingsConfigDict(extra="ignore")


class DiTOptions(FamilyOptions):
    """Speed settings of a family whose denoiser is a diffusers DiT (Kandinsky 5.0's)."""

    attention_backend: str | None = None
    """diffusers' attention backend for the DiT (``flash``, ``_native_cudnn``, ``sage``, …; unset: torch's
    scaled-dot-product attention). A ``*_hub`` backend fetches its kernel from the Hub at load."""

    @field_validator("attention_backend")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from diffusers.models.attention_dispatch import AttentionBackendName

        known = sorted(b.value for b in AttentionBackendName)
        if value.lower() not in known:
            raise ValueError(f"unknown attention backend {value!r}; diffusers has {', '.join(known)}")
        return value.lower()


class EngineSettings(BaseSettings):
    """Where the weights come from and where they run; the same code path for public ids and the bundle."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_", extra="ignore")

    model_dir: Path | None = None
    """Local bundle: Kandinsky 2.2's prior/, decoder/, decoder_inpaint/, controlnet_depth/, depth/;
    Kandinsky 3.0's kandinsky3/; SDXL's sdxl/ and sdxl_refiner/; rembg/ (an .onnx) for every
    family's stickers."""
    segment_id: str = "CIDAS/clipseg-rd64-refined"
    """Text-prompted segmentation of edits by words (CLIPSeg); ``segment/`` in a bundle."""
    edit_threshold: float = Field(default=DEFAULT_EDIT_THRESHOLD, gt=0.0, le=1.0)
    """CLIPSeg probability from which a pixel is in the region an edit names (worker/engine/editing.py)."""
    rembg_model: str = "u2net"
    """A rembg model name, or a path to an .onnx file (run with rembg's custom u2net session)."""
    device: str = "auto"
    """"auto" = cuda when available, else cpu."""
    dtype: str = "auto"
    """"auto" = float16 on cuda, float32 on cpu; or float16 | bfloat16 | float32."""
    preload: bool = True
    """Load every model at start; else each on first use, then resident."""
    cache_dir: Path | None = None
    lora_dir: Path | None = None
    """The operator's LoRA styles: ``styles.toml`` and the ``.safetensors`` files it names
    (worker/engine/loras.py); each held family that takes styles loads its own at start."""
    family_options: dict[Family, dict[str, Any]] = Field(default_factory=dict)
    """Each family's own settings, keyed by the family, over its ``KANDINSKY_<FAMILY>_*`` variables
    (e.g. ``{"sdxl": {"refiner": false}}``): what a test or a bench sets without touching the environment."""

    # Speed options (worker/engine/speed.py): off until a GPU run of bench/bench_engine_gpu.py shows
    # they help there; bench/NOTES.md has each one's prediction and measurement.
    channels_last: bool = False
    """Decoder UNets and MoVQ in NHWC memory format (same numbers, faster convolutions on tensor cores)."""
    compile: bool = False
    """torch.compile the decoder UNets, the MoVQ decode and the prior transformer for fixed shapes, and
    a DiT's repeated blocks (Kandinsky 5.0)."""
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

    @field_validator("lora_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``KANDINSKY_LORA_DIR=`` (compose's default) means no styles, not the working directory."""
        return None if value == "" else value

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
