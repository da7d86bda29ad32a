"""A tiny random-weight Kandinsky 5.0: a Video Lite checkpoint per length and Image Lite's two, written
locally with no network.

Each folder is what ``Kandinsky5T2VPipeline.save_pretrained`` writes for
kandinskylab/Kandinsky-5.0-T2V-Lite-*-Diffusers: model_index.json, scheduler/ (flow matching),
text_encoder/ (``Qwen2_5_VLForConditionalGeneration``), tokenizer/, text_encoder_2/ (``CLIPTextModel``),
tokenizer_2/, transformer/ (``Kandinsky5Transformer3DModel``), vae/ (``AutoencoderKLHunyuanVideo``), in
the shapes diffusers' own tests use, so a 2-step video of a few frames takes about a second on the CPU.

The tokenizer: the public folder holds a ``Qwen2VLProcessor``, whose video processor needs
torchvision, and no torchvision wheel loads beside the CPU torch this project pins. The pipelines only
tokenize text with it (``images=None, videos=None``), so the tiny folder holds the processor's
tokenizer alone: a Qwen2 byte-level BPE with Qwen's special tokens, trained here in code on the
prompt template and a few sentences (any text still tokenizes, byte by byte).

Image Lite (``kandinsky5_image/``: ``Kandinsky5T2IPipeline``; ``kandinsky5_image_edit/``:
``Kandinsky5I2IPipeline``) shares the text encoders; its DiTs read the FLUX ``AutoencoderKL``'s
latents, the editing one with the photo's latents as extra channels. Image → image also shows the photo
to Qwen2.5-VL's vision tower, so the edit folder's tokenizer/ holds the image processor's config too
(``preprocessor_config.json``, small patches for a tiny tower) and its model_index.json names a
``Qwen2VLProcessor`` as the public one does (the engine builds it without torchvision).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderKLHunyuanVideo,
    FlowMatchEulerDiscreteScheduler,
    Kandinsky5I2IPipeline,
    Kandinsky5I2VPipeline,
    Kandinsky5T2IPipeline,
    Kandinsky5T2VPipeline,
    Kandinsky5Transformer3DModel,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from contract.video import IMAGE_TO_VIDEO, VIDEO_SECONDS, VideoKind, video_checkpoint

FOLDERS = (*(video_checkpoint(VideoKind.DISTILLED, s).folder for s in VIDEO_SECONDS), IMAGE_TO_VIDEO.folder)
"""The bundle's Video Lite folders: text → video per length, and image → video (the same tiny
weights in each: the public DiTs share one architecture, the first frame's latents in its
``visual_cond`` channels)."""
IMAGE_FOLDER = "kandinsky5_image"
"""Image Lite text → image (worker/engine/families/kandinsky5_image.py reads the same names)."""
EDIT_FOLDER = "kandinsky5_image_edit"
"""Image Lite image → image."""
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
"""Qwen2.5-VL's special tokens that its config and the pipelines' prompt template name."""
QWEN_DIM = 16
"""Qwen's hidden size = the transformer's ``in_text_dim`` (3584 for the public 7B)."""
CLIP_DIM = 32
"""CLIP's hidden size = the transformer's ``in_text_dim2`` (768 for ViT-L)."""
SCHEDULER_SHIFT = 5.0
"""The distilled checkpoint's flow shift (its scheduler config)."""
_CORPUS = (
    "You are a prompt engineer. Describe the video in detail. Describe how the camera moves or shakes, "
    "describe the zoom and view angle, whether it follows the objects. Describe the location of the "
    "video, main characters or objects and their action.",
    "a cat dancing in the rain, a red fox in a snowy forest, a lighthouse in a storm at night",
    "кот танцует под дождём, рыжая лиса в снежном лесу, маяк в шторм ночью",
)


def build_tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE with Qwen's special tokens (the pad is Qwen's ``<|endoftext|>``)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # type: ignore[assignment]
    bpe.decoder = decoders.ByteLevel()  # type: ignore[assignment]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_CORPUS, trainer)
    special: dict[str, Any] = {"unk_token": None, "bos_token": None, "eos_token": "<|im_end|>",
                               "pad_token": "<|endoftext|>"}  # Qwen's: no unknown or start token
    return Qwen2Tokenizer(tokenizer_object=bpe, model_max_length=4096, **special)


TRANSFORMER_CONFIG: dict[str, Any] = {
    "in_visual_dim": 4, "out_visual_dim": 4, "in_text_dim": QWEN_DIM, "in_text_dim2": CLIP_DIM,
    "time_dim": 32, "patch_size": (1, 2, 2), "model_dim": 48, "ff_dim": 128, "num_text_blocks": 1,
    "num_visual_blocks": 1, "axes_dims": (8, 8, 8), "visual_cond": True,
}
"""The DiT of diffusers' Kandinsky 5 tests (the public Lite: model_dim 1792, 32 visual blocks)."""
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "spatial_compression_ratio": 8, "temporal_compression_ratio": 4,
    "latent_channels": 4, "block_out_channels": (4, 4, 4, 4), "layers_per_block": 1, "norm_num_groups": 2,
}
"""HunyuanVideo's VAE with the public compression (8× in space, 4× in time), at tiny widths: its 3D
convolutions run at full resolution on every frame, so at 4 channels (half diffusers' tests' 8) 17
frames at 512×320 decode in 3.5 s on this CPU instead of 6."""


def qwen_special_ids(tokenizer: Any) -> dict[str, Any]:
    """The vision token ids Qwen2.5-VL's config names, as ``tokenizer`` numbers them."""
    return {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("vision_token_id", "<|vision_pad|>"), ("image_token_id", "<|image_pad|>"),
        ("video_token_id", "<|video_pad|>"))}


IMAGE_TRANSFORMER_CONFIG: dict[str, Any] = {**TRANSFORMER_CONFIG, "visual_cond": False}
"""Image Lite's text → image DiT (public: model_dim 2560, 50 visual blocks), on the FLUX VAE's latents."""
EDIT_TRANSFORMER_CONFIG: dict[str, Any] = {**TRANSFORMER_CONFIG, "visual_cond": True}
"""Its image → image DiT: the photo's latents and a mask channel beside the noise."""
IMAGE_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "block_out_channels": (8, 8, 8, 8), "layers_per_block": 1,
    "latent_channels": 4, "norm_num_groups": 4, "use_quant_conv": False, "use_post_quant_conv": False,
    "scaling_factor": 0.3611, "shift_factor": 0.1159,
}
"""FLUX.1's VAE layout (8× in space, no quant convs, its scaling and shift) at tiny widths."""
IMAGE_PROCESSOR_CONFIG: dict[str, Any] = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2,
                                          "min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}
"""Qwen2.5-VL's patches (the public 14 px, merged 2×2), at most 16 image tokens for the tiny tower."""


def build_image_processor() -> Any:
    return Qwen2VLImageProcessorPil(**IMAGE_PROCESSOR_CONFIG)


def build_qwen(tokenizer: Qwen2Tokenizer) -> Any:
    top: dict[str, Any] = {"hidden_size": QWEN_DIM, "vocab_size": len(tokenizer),
                           **qwen_special_ids(tokenizer)}
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": QWEN_DIM, "intermediate_size": QWEN_DIM, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "rope_theta": 1000000.0, "bos_token_id": None,
                     "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")},
        vision_config={"depth": 1, "hidden_size": QWEN_DIM, "intermediate_size": QWEN_DIM, "num_heads": 2,
                       "out_hidden_size": QWEN_DIM},
        **top,
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def build_clip(tokenizer: Any) -> Any:
    """CLIP's text model on the bundle's CLIP tokenizer (it pools at that tokenizer's end token)."""
    config = CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, hidden_size=CLIP_DIM,
                            intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                            vocab_size=1000, projection_dim=CLIP_DIM)
    return CLIPTextModel(config).eval()


def build_transformer() -> Any:
    model: Any = Kandinsky5Transformer3DModel(**TRANSFORMER_CONFIG)
    return model.eval()


def build_vae() -> Any:
    model: Any = AutoencoderKLHunyuanVideo(**VAE_CONFIG)
    return model.eval()


def build_image_transformer(edit: bool = False) -> Any:
    config = EDIT_TRANSFORMER_CONFIG if edit else IMAGE_TRANSFORMER_CONFIG
    model: Any = Kandinsky5Transformer3DModel(**config)
    return model.eval()


def build_image_vae() -> Any:
    model: Any = AutoencoderKL(**IMAGE_VAE_CONFIG)
    return model.eval()


def build_video_pipeline(seed: int = 0) -> Any:
    """The tiny text → video pipeline (float32: the CPU's)."""
    from devkit.tiny_models import _tokenizer

    tokenizer, clip_tokenizer = build_tokenizer(), _tokenizer()
    torch.manual_seed(seed)
    vae = build_vae()
    torch.manual_seed(seed)
    text_encoder = build_qwen(tokenizer)
    torch.manual_seed(seed)
    text_encoder_2 = build_clip(clip_tokenizer)
    torch.manual_seed(seed)
    transformer = build_transformer()
    return Kandinsky5T2VPipeline(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=clip_tokenizer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=SCHEDULER_SHIFT))


def build_image_pipelines(seed: int = 0) -> tuple[Any, Any]:
    """The tiny Image Lite pipelines (text → image, image → image), sharing the video's text encoders."""
    video = build_video_pipeline(seed)
    encoders = {name: video.components[name] for name in ("text_encoder", "tokenizer", "text_encoder_2",
                                                          "tokenizer_2")}
    torch.manual_seed(seed)
    vae = build_image_vae()
    torch.manual_seed(seed)
    transformer = build_image_transformer()
    torch.manual_seed(seed)
    edit_transformer = build_image_transformer(edit=True)
    scheduler = FlowMatchEulerDiscreteScheduler()
    text_to_image = Kandinsky5T2IPipeline(transformer=transformer, vae=vae, scheduler=scheduler, **encoders)
    image_to_image = Kandinsky5I2IPipeline(transformer=edit_transformer, vae=vae, scheduler=scheduler,
                                           **encoders)
    return text_to_image, image_to_image


def write_tiny_kandinsky5(root: Path, seed: int = 0) -> list[Path]:
    """Write one Video Lite folder per length and Image Lite's two under ``root`` (a bundle); returns them."""
    pipe = build_video_pipeline(seed)
    written = [Path(root) / name for name in FOLDERS]
    for folder in written:
        if folder.name == IMAGE_TO_VIDEO.folder:
            from_image: Any = Kandinsky5I2VPipeline(**pipe.components)
            from_image.save_pretrained(folder)
        else:
            pipe.save_pretrained(folder)
    text_to_image, image_to_image = build_image_pipelines(seed)
    text_to_image.save_pretrained(Path(root) / IMAGE_FOLDER)
    image_to_image.save_pretrained(Path(root) / EDIT_FOLDER)
    edit = Path(root) / EDIT_FOLDER
    build_image_processor().save_pretrained(edit / "tokenizer")
    index = json.loads((edit / "model_index.json").read_text())
    index["tokenizer"] = ["transformers", "Qwen2VLProcessor"]  # the public folder's: a processor
    (edit / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return [*written, Path(root) / IMAGE_FOLDER, Path(root) / EDIT_FOLDER]
