"""A tiny random-weight Kandinsky 3.0 checkpoint, written locally with no network.

The folder is what ``Kandinsky3Pipeline.save_pretrained`` writes for kandinsky-community/kandinsky-3
with the public repo's fp16 weight files (``variant="fp16"``): model_index.json, scheduler/,
tokenizer/ (a T5 Unigram tokenizer built in code with the ``tokenizers`` library), text_encoder/
(``T5EncoderModel``), unet/ (``Kandinsky3UNet``), movq/ (``VQModel``). Same classes and config keys as
the public checkpoint, only the sizes are tiny (about half a million parameters in all, most in the
MoVQ), so a K3 job takes well under a second on the CPU. Images from it are noise; every shape is real.

Size constraints honoured here (diffusers' unet_kandinsky3.py): every channel count the blocks use
(``block_out_channels``, their halves, the time embedding) is a multiple of ``groups`` and of the
attention head dim; ``layers_per_block`` is at least 2 (an up block's last resnet changes channels).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler, Kandinsky3Pipeline, Kandinsky3UNet, VQModel
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from contract.spec import STICKER_SUFFIX, STYLE_SUFFIXES

FOLDER = "kandinsky3"
"""Where the checkpoint lives in the tiny bundle (and in any KANDINSKY_MODEL_DIR)."""
VARIANT = "fp16"
"""The public repo ships fp16 weight files; so does this one (really float16)."""
TEXT_DIM = 32
"""T5 d_model = the UNet's encoder_hid_dim (4096 for Flan-UL2)."""
TOKENIZER_MAX_LENGTH = 512
"""T5's model_max_length; Kandinsky 3.0's pipelines read 128 of them."""

SCHEDULER_CONFIG: dict[str, object] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "beta_end": 0.02,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "thresholding": False,
    "timestep_spacing": "leading",
    "variance_type": "fixed_small",
}
"""A linear DDPM schedule over 1000 steps, as Kandinsky 3.0 was trained."""

UNET_CONFIG: dict[str, Any] = {
    "in_channels": 4,
    "time_embedding_dim": 16,
    "groups": 4,
    "attention_head_dim": 8,
    "layers_per_block": 2,
    "block_out_channels": (16, 32),
    "cross_attention_dim": 32,
    "encoder_hid_dim": TEXT_DIM,
}
MOVQ_CONFIG: dict[str, Any] = {
    "block_out_channels": (32, 32, 32, 32),
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D",
                         "AttnDownEncoderBlock2D"),
    "up_block_types": ("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"),
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 0,
    "norm_num_groups": 8,
    "norm_type": "spatial",
    "num_vq_embeddings": 12,
    "vq_embed_dim": 4,
}
"""Four levels (an 8x latent, as the public MoVQ), the smallest widths SpatialNorm allows."""

_WORDS = (
    "a an the of and in on with at to for by from cat dog fox red blue green portrait photo painting "
    "landscape city forest sea sky sun night cute robot house tree flower girl boy man woman lighthouse "
    "storm snow cube"
)
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?-'\"():;/абвгдеёжзийклмнопрстуфхцчшщъыьэюя"


def build_tokenizer() -> T5Tokenizer:
    """A T5 Unigram tokenizer: whole common words (those of the styles and the sticker suffix too)
    as single pieces, every other word spelled by characters, so token counts behave like the real
    one's: a style adds a dozen tokens, a long paste goes past 128."""
    words = set(_WORDS.split())
    for text in (*STYLE_SUFFIXES.values(), STICKER_SUFFIX):
        words.update(w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1)
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    vocab += [(f"▁{word}", -2.0) for word in sorted(words)]
    vocab += [(char, -6.0) for char in _CHARS]
    vocab += [(f"▁{char}", -5.5) for char in _CHARS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=TOKENIZER_MAX_LENGTH)


def build_pipeline(seed: int = 0) -> Any:
    """The tiny pipeline, float16 weights as the public fp16 files hold them."""
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config: Any = T5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, feed_forward_proj="gated-silu", pad_token_id=0, eos_token_id=1,
    )
    text_encoder = T5EncoderModel(config)
    torch.manual_seed(seed)
    unet: Any = Kandinsky3UNet(**UNET_CONFIG)
    torch.manual_seed(seed)
    movq: Any = VQModel(**MOVQ_CONFIG)
    pipe = Kandinsky3Pipeline(
        tokenizer=tokenizer, text_encoder=text_encoder.half(), unet=unet.half(),
        scheduler=DDPMScheduler(**SCHEDULER_CONFIG),  # type: ignore[arg-type]
        movq=movq.half(),
    )
    return pipe


def write_tiny_kandinsky3(path: Path, seed: int = 0) -> Path:
    """Write the checkpoint folder at ``path`` (e.g. ``<bundle>/kandinsky3``) and return it."""
    path = Path(path)
    build_pipeline(seed).save_pretrained(path, variant=VARIANT)
    return path


def parameter_count(pipe: Any) -> int:
    """Parameters of the three models of a Kandinsky 3.0 pipeline."""
    models = (getattr(pipe, name) for name in ("text_encoder", "unet", "movq"))
    return sum(p.numel() for model in models for p in model.parameters())
