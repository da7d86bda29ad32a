"""A tiny random-weight SDXL base + refiner, written locally with no network.

Two folders, each what ``save_pretrained`` writes for the public repo, with its fp16 weight files
(``variant="fp16"``):

* ``sdxl/``: stabilityai/stable-diffusion-xl-base-1.0 (``StableDiffusionXLPipeline``: two CLIP text
  encoders, the second with a projection for the pooled embedding, a text-time UNet, an 8x VAE,
  Euler);
* ``sdxl_refiner/``: stabilityai/stable-diffusion-xl-refiner-1.0 (``StableDiffusionXLImg2ImgPipeline``
  without the first text encoder, an aesthetic-score UNet reading only the second encoder).

Both CLIP tokenizers are built in code as devkit/tiny_models.py builds Kandinsky 2.2's (the second
pads with "!" as the public one does). Sizes follow diffusers' own SDXL fast tests; images are noise,
every shape and call is real.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

FOLDER = "sdxl"
REFINER_FOLDER = "sdxl_refiner"
VARIANT = "fp16"
TEXT_DIM = 32
"""Hidden size of each tiny CLIP encoder (768 and 1280 in public); the base UNet reads both (64)."""
TIME_EMBED_DIM = 8
TEXT_MAX_LENGTH = 77

SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
}
"""The public repos' Euler config."""


def build_tokenizer(pad_token: str | None = None) -> CLIPTokenizer:
    """Kandinsky 2.2's tiny byte-level CLIP BPE (devkit/tiny_models.py), padding with ``pad_token``."""
    from devkit.tiny_models import build_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer_files(Path(tmp))
        extra: dict[str, Any] = {"pad_token": pad_token} if pad_token else {}
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=TEXT_MAX_LENGTH, **extra)


def _text_config(tokenizer: CLIPTokenizer) -> Any:
    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_size=TEXT_DIM, projection_dim=TEXT_DIM,
        intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=TEXT_MAX_LENGTH, vocab_size=len(tokenizer), hidden_act="gelu",
    )


def _unet(cross_attention_dim: int, time_ids: int) -> Any:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=time_ids * TIME_EMBED_DIM + TEXT_DIM,
        cross_attention_dim=cross_attention_dim, norm_num_groups=8,
    )


def _vae() -> Any:
    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4, layers_per_block=1, norm_num_groups=4, sample_size=1024,
        scaling_factor=0.13025, force_upcast=True,
    )


def build_pipelines(seed: int = 0) -> tuple[Any, Any]:
    """(base, refiner), float16 weights as the public fp16 files hold them; the refiner's second text
    encoder and VAE are the base's (the public ones are the same weights)."""
    tokenizer, tokenizer_2 = build_tokenizer(), build_tokenizer(pad_token="!")
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config(tokenizer))
    torch.manual_seed(seed + 1)
    text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer_2))
    vae = _vae().half()
    base: Any = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder.half(), text_encoder_2=text_encoder_2.half(),
        tokenizer=tokenizer, tokenizer_2=tokenizer_2,
        unet=_unet(2 * TEXT_DIM, time_ids=6).half(),  # sizes and crop: 6 time ids
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
    )
    refiner = StableDiffusionXLImg2ImgPipeline(
        vae=vae, text_encoder=None, text_encoder_2=base.text_encoder_2, tokenizer=None,
        tokenizer_2=tokenizer_2,
        unet=_unet(TEXT_DIM, time_ids=5).half(),  # size, crop and the aesthetic score: 5
        scheduler=EulerDiscreteScheduler(**SCHEDULER_CONFIG),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
    )
    return base, refiner


def write_tiny_sdxl(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write ``<root>/sdxl`` and ``<root>/sdxl_refiner``; return both."""
    base, refiner = build_pipelines(seed)
    base.save_pretrained(Path(root) / FOLDER, variant=VARIANT)
    refiner.save_pretrained(Path(root) / REFINER_FOLDER, variant=VARIANT)
    return Path(root) / FOLDER, Path(root) / REFINER_FOLDER
