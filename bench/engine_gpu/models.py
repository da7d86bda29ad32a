"""Kandinsky 2.2 models at public (or CPU-sized) configs with random weights, written as a bundle.

The bundle has the layout of ``devkit.tiny_models.write_tiny_bundle`` (prior, decoder,
decoder_inpaint, controlnet_depth, depth, rembg), so ``worker.engine.Engine`` loads it through the
service's own ``from_pretrained`` path. Random weights time exactly like trained ones: the FLOPs and
memory traffic depend on the shapes only.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.engine_gpu.measure import free_device_memory
from contract.spec import bucket_size
from devkit.tiny_models import (
    DECODER_SCHEDULER_CONFIG,
    PRIOR_SCHEDULER_CONFIG,
    REMBG_ONNX_NAME,
    SUBFOLDERS,
    build_segmentation_onnx,
    build_tokenizer_files,
    depth_processor,
)
from devkit.tiny_segment import FOLDER as SEGMENT_FOLDER
from devkit.tiny_segment import write_tiny_segmenter

MARKER_NAME = "BENCH_BUNDLE.json"
"""Written last: a bundle folder without it is a build that did not finish, and is rebuilt."""

REMBG_MODEL_LABEL = "small random seg net, not u2net"
"""A full-size U2-Net cannot be built here (no weights, no public config in diffusers/transformers):
sticker rows time rembg with the tiny bundle's 2-conv segmentation net, and say so."""

Size = tuple[int, int]
"""(width, height) of a job, one of ``contract.spec.SIZE_BUCKETS``."""

WIDE_BUCKET: Size = bucket_size("16:9", 1024)
"""The one wide bucket the issue asks for, at the largest tier."""


@dataclass(frozen=True)
class Scale:
    """Model configs and default run sizes for one bench scale."""

    name: str
    text_encoder: dict[str, Any]
    image_encoder: dict[str, Any]
    prior: dict[str, Any]
    unet: dict[str, Any]
    movq: dict[str, Any]
    depth: dict[str, Any]
    depth_image_size: int
    sizes: tuple[Size, ...]
    batch_size_for: Size
    steps: int
    prior_steps: int
    repeats: int


_UNET_BLOCKS: dict[str, Any] = {
    "out_channels": 8,  # mean and learned variance, as in the public decoders
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

UNET_VARIANTS: dict[str, tuple[int, str]] = {
    "decoder": (4, "image"),
    "decoder_inpaint": (9, "image"),  # latents + masked-image latents + mask
    # The depth hint is encoded to 4 latent channels and concatenated to the latents inside the
    # UNet (diffusers' "image_hint" embedding), so the controlnet UNet takes 4 + 4 channels.
    "controlnet_depth": (8, "image_hint"),
}
"""Bundle folder → (UNet in_channels, addition_embed_type), as in devkit/tiny_models.py."""

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
    # Intel/dpt-hybrid-midas: ViT-B/16 on a BiT-R50 stem (DPTConfig's hybrid backbone defaults),
    # with the hybrid head sizes transformers' DPT-hybrid conversion uses. Written from that
    # conversion's settings, not fetched from the hub (no network here); 122 M parameters, as public.
    depth={
        "is_hybrid": True,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "image_size": 384,
        "patch_size": 16,
        "backbone_out_indices": [2, 5, 8, 11],
        "readout_type": "project",
        "neck_hidden_sizes": [256, 512, 768, 768],
        "reassemble_factors": [1, 1, 1, 0.5],
        "fusion_hidden_size": 256,
        "backbone_featmap_shape": [1, 1024, 24, 24],
        "neck_ignore_stages": [0, 1],
    },
    depth_image_size=384,
    sizes=((1024, 1024), (512, 512), (768, 768), WIDE_BUCKET),
    batch_size_for=(1024, 1024),
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
    # devkit/tiny_models.py::_write_depth's settings.
    depth={
        "image_size": 32,
        "patch_size": 16,
        "num_channels": 3,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "backbone_out_indices": [0, 1],
        "num_attention_heads": 4,
        "intermediate_size": 37,
        "neck_hidden_sizes": [16, 32],
        "fusion_hidden_size": 16,
        "reassemble_factors": [4, 2],
        "is_hybrid": False,
        "head_in_index": -1,
    },
    depth_image_size=32,
    sizes=((512, 512),),  # the smallest square bucket; the models, not the image, are what is small
    batch_size_for=(512, 512),
    steps=2,
    prior_steps=2,
    repeats=1,
)

SCALES: dict[str, Scale] = {s.name: s for s in (PUBLIC, SMALL)}

# --- Kandinsky 3.0 (kandinsky-community/kandinsky-3), written here: no download -----------------------

K3_FOLDER = "kandinsky3"
"""The family's folder in a bundle (worker.engine.families.kandinsky3.FOLDER)."""

K3_TEXT_ENCODER_PUBLIC: dict[str, Any] = {
    # google/flan-ul2's T5 config (its encoder is kandinsky-3's text_encoder/, a T5EncoderModel):
    # 32 encoder layers of d_model 4096, 16 heads of 256, gated-SiLU feed-forward of 16384.
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 256,
    "d_ff": 16384,
    "num_layers": 32,
    "num_decoder_layers": 32,
    "num_heads": 16,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
    "feed_forward_proj": "gated-silu",
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}
K3_UNET_PUBLIC: dict[str, Any] = {
    # kandinsky-3's unet/config.json (= Kandinsky3UNet's defaults; the original repo's get_T2I_unet:
    # model_channels 384, dim_mult 1-2-4-8, 3 blocks per level, context 4096).
    "in_channels": 4,
    "time_embedding_dim": 1536,
    "groups": 32,
    "attention_head_dim": 64,
    "layers_per_block": 3,
    "block_out_channels": (384, 768, 1536, 3072),
    "cross_attention_dim": 4096,
    "encoder_hid_dim": 4096,
}
K3_MOVQ_PUBLIC: dict[str, Any] = {
    # Sber-MoVQGAN 270M (the original repo's get_movq: ch 256, ch_mult 1-2-2-4, 2 res blocks,
    # attention at the lowest level), in diffusers' VQModel keys as kandinsky-3's movq/config.json.
    **_MOVQ_BLOCKS,
    "block_out_channels": (256, 512, 512, 1024),
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "num_vq_embeddings": 16384,
}


def k3_configs(scale: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(text encoder T5Config kwargs, Kandinsky3UNet kwargs, VQModel kwargs) at ``scale``
    ("public", or "small"/"tiny": devkit.tiny_kandinsky3's sizes)."""
    if scale == "public":
        return dict(K3_TEXT_ENCODER_PUBLIC), dict(K3_UNET_PUBLIC), dict(K3_MOVQ_PUBLIC)
    from devkit import tiny_kandinsky3 as tiny

    text = {"vocab_size": len(tiny.build_tokenizer()), "d_model": tiny.TEXT_DIM, "d_kv": 8, "d_ff": 37,
            "num_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 8,
            "feed_forward_proj": "gated-silu", "pad_token_id": 0, "eos_token_id": 1}
    return text, dict(tiny.UNET_CONFIG), dict(tiny.MOVQ_CONFIG)


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Modules built inside are created in ``dtype``: an 8.7B model never exists in float32."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def write_kandinsky3(root: Path, scale: Scale, device: str, dtype: torch.dtype) -> None:
    """``kandinsky3/`` as the public repo lays it out (one saved Kandinsky3Pipeline), at ``scale``;
    the T5 tokenizer is devkit.tiny_kandinsky3's, built in code."""
    from diffusers import DDPMScheduler, Kandinsky3Pipeline, Kandinsky3UNet, VQModel
    from transformers import T5Config, T5EncoderModel

    from devkit.tiny_kandinsky3 import SCHEDULER_CONFIG, build_tokenizer

    text, unet_config, movq_config = k3_configs(scale.name)
    shutil.rmtree(root / K3_FOLDER, ignore_errors=True)
    torch.manual_seed(0)
    with torch.device(device), default_dtype(dtype):
        text_encoder: Any = T5EncoderModel(T5Config(**text))
        unet: Any = Kandinsky3UNet(**unet_config)
        movq: Any = VQModel(**movq_config)
    pipe: Any = Kandinsky3Pipeline(
        tokenizer=build_tokenizer(), text_encoder=text_encoder.to(dtype), unet=unet.to(dtype),
        scheduler=DDPMScheduler(**SCHEDULER_CONFIG),  # type: ignore[arg-type]
        movq=movq.to(dtype),
    )
    pipe.save_pretrained(root / K3_FOLDER, max_shard_size="5GB")
    del pipe, text_encoder, unet, movq
    free_device_memory(device)


def _write_prior(root: Path, scale: Scale, device: str, dtype: torch.dtype) -> None:
    from diffusers import KandinskyV22PriorPipeline, PriorTransformer, UnCLIPScheduler
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
        # Zero clip_std would make post_process_latents return zeros; public weights have real stats.
        prior.clip_std = torch.nn.Parameter(torch.ones_like(prior.clip_std))
    size = scale.image_encoder["image_size"]
    processor = CLIPImageProcessor(crop_size=size, size=size, resample=3, do_center_crop=True)
    pipe: Any = KandinskyV22PriorPipeline(
        prior=prior,
        image_encoder=image_encoder,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=UnCLIPScheduler(**PRIOR_SCHEDULER_CONFIG),  # type: ignore[arg-type]
        image_processor=processor,
    )
    pipe.to(dtype=dtype)
    pipe.save_pretrained(root / "prior")
    shutil.rmtree(root / "tokenizer-src", ignore_errors=True)


def _write_decoders(root: Path, scale: Scale, device: str, dtype: torch.dtype) -> None:
    """One UNet at a time (each is ~2.5 GB in fp16 at public size); one MoVQ saved with each."""
    from diffusers import (
        DDPMScheduler,
        KandinskyV22ControlnetPipeline,
        KandinskyV22InpaintPipeline,
        KandinskyV22Pipeline,
        UNet2DConditionModel,
        VQModel,
    )

    classes: dict[str, Any] = {
        "decoder": KandinskyV22Pipeline,
        "decoder_inpaint": KandinskyV22InpaintPipeline,
        "controlnet_depth": KandinskyV22ControlnetPipeline,
    }
    torch.manual_seed(0)
    with torch.device(device):
        movq: Any = VQModel(**scale.movq)
    movq.to(dtype)
    for folder, (in_channels, embed_type) in UNET_VARIANTS.items():
        torch.manual_seed(0)
        with torch.device(device):
            unet: Any = UNet2DConditionModel(
                **scale.unet, in_channels=in_channels, addition_embed_type=embed_type
            )
        unet.to(dtype)
        scheduler = DDPMScheduler(**DECODER_SCHEDULER_CONFIG)  # type: ignore[arg-type]
        pipe: Any = classes[folder](unet=unet, scheduler=scheduler, movq=movq)
        pipe.save_pretrained(root / folder)
        del pipe, unet
        free_device_memory(device)


def _write_depth(root: Path, scale: Scale, device: str, dtype: torch.dtype) -> None:
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(0)
    with torch.device(device):
        model: Any = DPTForDepthEstimation(DPTConfig(**scale.depth))
    model.to(dtype)
    model.eval()
    model.save_pretrained(root / "depth")
    depth_processor(scale.depth_image_size).save_pretrained(root / "depth")


def read_marker(root: Path) -> dict[str, Any] | None:
    path = root / MARKER_NAME
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def build_bundle(root: Path, scale: Scale, device: str, dtype: torch.dtype, kandinsky3: bool = False) -> Path:
    """Every model the engine can load, at ``scale``, saved like the public repos (Kandinsky 3.0's
    too with ``kandinsky3``); marker last."""
    import onnx

    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER_NAME).unlink(missing_ok=True)
    for folder in SUBFOLDERS:
        shutil.rmtree(root / folder, ignore_errors=True)
    _write_prior(root, scale, device, dtype)
    free_device_memory(device)
    _write_decoders(root, scale, device, dtype)
    _write_depth(root, scale, device, dtype)
    free_device_memory(device)
    (root / "rembg").mkdir(exist_ok=True)
    onnx.save(build_segmentation_onnx(), str(root / "rembg" / REMBG_ONNX_NAME))
    # Edits by words time CLIPSeg's tiny stand-in (like rembg's): segmentation runs once per job,
    # not per step, so its size does not move the per-step figures.
    write_tiny_segmenter(root / SEGMENT_FOLDER)
    if kandinsky3:
        write_kandinsky3(root, scale, device, dtype)
    marker = {
        "scale": scale.name,
        "dtype": str(dtype).removeprefix("torch."),
        "rembg_model": REMBG_MODEL_LABEL,
        "kandinsky3": kandinsky3,
    }
    (root / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")
    return root


def ensure_bundle(
    root: Path, scale: Scale, device: str, dtype: torch.dtype, kandinsky3: bool = False
) -> tuple[bool, float]:
    """Reuse a finished bundle of the same scale at ``root``, else build it there; a reused one
    without Kandinsky 3.0 gets its folder added when ``kandinsky3`` asks for it.

    Returns (reused, seconds spent). A finished bundle of another scale is refused, not overwritten.
    """
    marker = read_marker(root)
    started = time.perf_counter()
    if marker is not None:
        if marker.get("scale") != scale.name:
            raise SystemExit(
                f"{root} holds a {marker.get('scale')!r} bundle, not {scale.name!r}: "
                "pick another --bundle-dir"
            )
        if kandinsky3 and not marker.get("kandinsky3"):
            (root / MARKER_NAME).unlink()
            write_kandinsky3(root, scale, device, dtype)
            (root / MARKER_NAME).write_text(json.dumps({**marker, "kandinsky3": True}, indent=2) + "\n")
            return True, time.perf_counter() - started
        return True, 0.0
    build_bundle(root, scale, device, dtype, kandinsky3)
    return False, time.perf_counter() - started


# --- SDXL (stabilityai/stable-diffusion-xl-base-1.0 and -refiner-1.0), their config.json contents ---

SDXL_TEXT_ENCODER_PUBLIC: dict[str, Any] = {  # CLIP ViT-L/14's text tower
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
SDXL_TEXT_ENCODER_2_PUBLIC: dict[str, Any] = {  # OpenCLIP ViT-bigG/14's text tower, with its projection
    "vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
    "num_attention_heads": 20, "max_position_embeddings": 77, "hidden_act": "gelu", "projection_dim": 1280,
}
SDXL_UNET_PUBLIC: dict[str, Any] = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10), "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048, "use_linear_projection": True, "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816,
}
SDXL_REFINER_UNET_PUBLIC: dict[str, Any] = {
    "sample_size": 128, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": (384, 768, 1536, 1536),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": 4, "attention_head_dim": (6, 12, 24, 24),
    "cross_attention_dim": 1280, "use_linear_projection": True, "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2560,
}
SDXL_VAE_PUBLIC: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "sample_size": 1024, "scaling_factor": 0.13025,
    "force_upcast": True,
}


def sdxl_builders(scale: str) -> dict[str, Callable[[], Any]]:
    """Builders of SDXL's models by contract.families' names, at ``scale`` ("public", or
    "small"/"tiny": devkit.tiny_sdxl's sizes). The text encoders take the bundle's tokenizers' ids."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from devkit import tiny_sdxl as tiny

    tokenizer, tokenizer_2 = tiny.build_tokenizer(), tiny.build_tokenizer(pad_token="!")
    if scale != "public":
        return {
            "text_encoder": lambda: CLIPTextModel(tiny._text_config(tokenizer)),
            "text_encoder_2": lambda: CLIPTextModelWithProjection(tiny._text_config(tokenizer_2)),
            "unet": lambda: tiny._unet(2 * tiny.TEXT_DIM, time_ids=6),
            "refiner_unet": lambda: tiny._unet(tiny.TEXT_DIM, time_ids=5),
            "vae": tiny._vae,
        }

    def ids(t: Any) -> dict[str, int]:
        return {"bos_token_id": t.bos_token_id, "eos_token_id": t.eos_token_id,
                "pad_token_id": t.pad_token_id}

    return {
        "text_encoder": lambda: CLIPTextModel(CLIPTextConfig(**SDXL_TEXT_ENCODER_PUBLIC, **ids(tokenizer))),
        "text_encoder_2": lambda: CLIPTextModelWithProjection(
            CLIPTextConfig(**SDXL_TEXT_ENCODER_2_PUBLIC, **ids(tokenizer_2))),
        "unet": lambda: UNet2DConditionModel(**SDXL_UNET_PUBLIC),
        "refiner_unet": lambda: UNet2DConditionModel(**SDXL_REFINER_UNET_PUBLIC),
        "vae": lambda: AutoencoderKL(**SDXL_VAE_PUBLIC),
    }


K5_QWEN_TEXT_PUBLIC: dict[str, Any] = {
    "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 128000,
    "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "tie_word_embeddings": False,
}
"""Qwen2.5-VL-7B-Instruct's language model (Kandinsky 5.0's first text encoder)."""
K5_QWEN_VISION_PUBLIC: dict[str, Any] = {
    "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
    "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3, "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
}
"""Its vision tower: loaded with the model though the pipelines only read text."""
K5_CLIP_PUBLIC: dict[str, Any] = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "vocab_size": 49408, "max_position_embeddings": 77, "projection_dim": 768,
}
"""CLIP ViT-L/14's text model (the second text encoder)."""
K5_VIDEO_TRANSFORMER_PUBLIC: dict[str, Any] = {
    "in_visual_dim": 16, "out_visual_dim": 16, "time_dim": 512, "patch_size": (1, 2, 2), "model_dim": 1792,
    "ff_dim": 7168, "num_text_blocks": 2, "num_visual_blocks": 32, "axes_dims": (16, 24, 24),
    "visual_cond": True, "in_text_dim": 3584, "in_text_dim2": 768,
}
"""Video Lite's 2B DiT (the Kandinsky 5 repo's k5_lite configs)."""


K5_IMAGE_TRANSFORMER_PUBLIC: dict[str, Any] = {
    **K5_VIDEO_TRANSFORMER_PUBLIC, "model_dim": 2560, "ff_dim": 10240, "num_visual_blocks": 50,
    "axes_dims": (32, 48, 48), "visual_cond": False,
}
"""Image Lite's 6B DiT (the Kandinsky 5 repo's t2i config)."""
FLUX_VAE_PUBLIC: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2, "latent_channels": 16, "norm_num_groups": 32, "use_quant_conv": False,
    "use_post_quant_conv": False, "scaling_factor": 0.3611, "shift_factor": 0.1159,
}
"""FLUX.1's VAE, Image Lite's."""


def k5_image_builders(scale: str) -> dict[str, Callable[[], Any]]:
    """Builders of Kandinsky 5.0 Image Lite's text → image models by contract.families' names, at
    ``scale`` (the text encoders are Video Lite's)."""
    from diffusers import AutoencoderKL, Kandinsky5Transformer3DModel

    from devkit import tiny_kandinsky5 as tiny

    encoders = {name: build for name, build in k5_builders(scale).items() if name.startswith("text_encoder")}
    if scale != "public":
        return {**encoders, "transformer": tiny.build_image_transformer, "vae": tiny.build_image_vae}
    return {**encoders, "transformer": lambda: Kandinsky5Transformer3DModel(**K5_IMAGE_TRANSFORMER_PUBLIC),
            "vae": lambda: AutoencoderKL(**FLUX_VAE_PUBLIC)}


def k5_builders(scale: str) -> dict[str, Callable[[], Any]]:
    """Builders of Kandinsky 5.0 Video Lite's models by contract.families' names, at ``scale``
    ("public", or "small"/"tiny": devkit.tiny_kandinsky5's sizes), on the bundle's tokenizers' ids.
    HunyuanVideo's VAE at its public size is diffusers' default config."""
    from diffusers import AutoencoderKLHunyuanVideo, Kandinsky5Transformer3DModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
    )

    from devkit import tiny_kandinsky5 as tiny
    from devkit.tiny_models import _tokenizer

    tokenizer, clip_tokenizer = tiny.build_tokenizer(), _tokenizer()
    if scale != "public":
        return {
            "text_encoder": lambda: tiny.build_qwen(tokenizer),
            "text_encoder_2": lambda: tiny.build_clip(clip_tokenizer),
            "video_transformer": tiny.build_transformer,
            "video_vae": tiny.build_vae,
        }

    def qwen() -> Any:
        top = {"vocab_size": 152064, "tie_word_embeddings": False, **tiny.qwen_special_ids(tokenizer)}
        config = Qwen2_5_VLConfig(text_config=dict(K5_QWEN_TEXT_PUBLIC),
                                  vision_config=dict(K5_QWEN_VISION_PUBLIC), **top)
        return Qwen2_5_VLForConditionalGeneration(config)

    def clip() -> Any:
        ids = {"bos_token_id": clip_tokenizer.bos_token_id, "eos_token_id": clip_tokenizer.eos_token_id,
               "pad_token_id": clip_tokenizer.pad_token_id}
        return CLIPTextModel(CLIPTextConfig(**K5_CLIP_PUBLIC, **ids))

    return {
        "text_encoder": qwen,
        "text_encoder_2": clip,
        "video_transformer": lambda: Kandinsky5Transformer3DModel(**K5_VIDEO_TRANSFORMER_PUBLIC),
        "video_vae": lambda: AutoencoderKLHunyuanVideo(),
    }
