"""Tiny random LoRA styles for the tiny SDXL, in the layout a trainer (peft) saves.

``loras/`` in the bundle holds a catalogue (``styles.toml``, the format worker/engine/loras.py reads)
and two adapters in diffusers' LoRA format: ``ink`` adapts the UNet's attention, ``neon`` the UNet and
both text encoders. Their weights are random (not zero, as a fresh adapter's would be), so each
visibly changes a picture. :func:`write_lora` also makes adapters for any other model, which is how the
tests make one that does not fit SDXL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

FOLDER = "loras"
CATALOGUE = """\
# LoRA styles of the tiny bundle (worker/engine/loras.py reads this format).

[[style]]
name = "ink"
title = "Ink sketch"
file = "ink.safetensors"
family = "sdxl"
triggers = ["ink sketch"]
weight = 0.8

[[style]]
name = "neon"
title = "Neon glow"
file = "neon.safetensors"
family = "sdxl"
triggers = ["neon glow", "night"]
weight = 1.0
"""
ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
"""The UNet's attention projections: where SDXL trainers put their adapters."""
TEXT_ATTENTION = ["q_proj", "k_proj", "v_proj", "out_proj"]
"""The CLIP text encoders' attention projections."""
RANK = 4


def adapter_layers(model: Any, targets: list[str], seed: int, rank: int = RANK) -> dict[str, torch.Tensor]:
    """A random adapter of ``rank`` on ``model``'s linear ``targets`` (a module name or its last parts),
    in peft's state-dict layout (``<module>.lora_A.weight``: rank × in, ``<module>.lora_B.weight``:
    out × rank), as a trainer saves it. Made on the CPU from the modules' shapes: ``model`` is left as it
    was, and a full-size one needs no second copy. B is not zero (a fresh adapter's is), so it shows."""
    generator = torch.Generator().manual_seed(seed)
    layers: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or not any(
                name == t or name.endswith("." + t) for t in targets):
            continue
        layers[f"{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) \
            / module.in_features ** 0.5
        layers[f"{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator) \
            / rank ** 0.5
    if not layers:
        raise ValueError(f"{type(model).__name__} has no linear layer named {targets}")
    return layers


def write_lora(path: Path, unet: Any, seed: int, text_encoders: tuple[Any, Any] | None = None) -> Path:
    """One adapter file (diffusers' format) for ``unet`` (and both text encoders, when given)."""
    from diffusers import StableDiffusionXLPipeline

    layers: dict[str, Any] = {"unet_lora_layers": adapter_layers(unet, ATTENTION, seed)}
    if text_encoders is not None:
        layers["text_encoder_lora_layers"] = adapter_layers(text_encoders[0], TEXT_ATTENTION, seed + 1)
        layers["text_encoder_2_lora_layers"] = adapter_layers(text_encoders[1], TEXT_ATTENTION, seed + 2)
    path = Path(path)
    StableDiffusionXLPipeline.save_lora_weights(path.parent, weight_name=path.name, safe_serialization=True,
                                                **layers)
    return path


def write_tiny_loras(root: Path, seed: int = 0) -> Path:
    """``<root>/loras``: the catalogue and its two adapters, made for ``<root>/sdxl``."""
    from diffusers import StableDiffusionXLPipeline

    from devkit.tiny_sdxl import FOLDER as SDXL_FOLDER
    from devkit.tiny_sdxl import VARIANT

    base: Any = StableDiffusionXLPipeline.from_pretrained(Path(root) / SDXL_FOLDER, variant=VARIANT)
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    write_lora(folder / "ink.safetensors", base.unet, seed + 10)
    write_lora(folder / "neon.safetensors", base.unet, seed + 20, (base.text_encoder, base.text_encoder_2))
    (folder / "styles.toml").write_text(CATALOGUE, encoding="utf-8")
    return folder
