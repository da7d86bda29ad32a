"""Depth hint for the depth ControlNet, computed like the Kandinsky 2.2 model card's ``make_hint``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

DEPTH_EPS = 1e-8
"""Keeps a perfectly flat depth map (a blank photo) from dividing by zero."""


@torch.no_grad()
def depth_map(model: Any, processor: Any, image: Image.Image) -> Image.Image:
    """8-bit depth of ``image`` at its own size, as transformers' depth-estimation pipeline returns it."""
    inputs = processor(images=image, return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(device=model.device, dtype=model.dtype)
    predicted = model(pixel_values=pixel_values).predicted_depth
    depth = torch.nn.functional.interpolate(
        predicted.unsqueeze(1), size=(image.height, image.width), mode="bicubic", align_corners=False
    ).squeeze()
    arr = depth.float().cpu().numpy()
    arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), DEPTH_EPS)
    return Image.fromarray((arr * 255).astype("uint8"))


def make_hint(depth: Image.Image, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
    """1×3×H×W float hint in [0, 1] (the depth map repeated on three channels), on the engine's device."""
    arr = np.array(depth)[:, :, None]
    arr = np.concatenate([arr, arr, arr], axis=2)
    hint = torch.from_numpy(arr).float() / 255.0
    return hint.permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype)
