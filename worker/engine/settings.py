"""Engine configuration: model ids or a local bundle, device and dtype, from KANDINSKY_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class EngineSettings(BaseSettings):
    """Where the weights come from and where they run; the same code path for public ids and the bundle."""

    model_config = SettingsConfigDict(env_prefix="KANDINSKY_", extra="ignore")

    model_dir: Path | None = None
    """Local bundle with prior/, decoder/, decoder_inpaint/, controlnet_depth/, depth/, rembg/ (an .onnx)."""
    prior_id: str = "kandinsky-community/kandinsky-2-2-prior"
    decoder_id: str = "kandinsky-community/kandinsky-2-2-decoder"
    inpaint_id: str = "kandinsky-community/kandinsky-2-2-decoder-inpaint"
    controlnet_id: str = "kandinsky-community/kandinsky-2-2-controlnet-depth"
    depth_id: str = "Intel/dpt-hybrid-midas"
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
