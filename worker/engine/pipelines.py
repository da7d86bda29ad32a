"""diffusers' Kandinsky 2.2 prior pipelines with the zero-image embedding cached.

The prior's negative branch embeds an all-zero image through the CLIP vision tower on every
call; that embedding never changes, so one copy per (batch, device, dtype) is kept instead.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import KandinskyV22PriorEmb2EmbPipeline, KandinskyV22PriorPipeline

ZeroEmbedCache = dict[tuple[int, str, str], torch.Tensor]


class _ZeroEmbedCacheMixin:
    """Overrides ``get_zero_embed``; the cache dict is shared by every prior built on the same encoder."""

    image_encoder: Any
    device: torch.device
    zero_embed_cache: ZeroEmbedCache

    def attach_zero_embed_cache(self, cache: ZeroEmbedCache) -> None:
        # object.__setattr__: DiffusionPipeline.__setattr__ would try to register these as config.
        object.__setattr__(self, "zero_embed_cache", cache)

    @torch.no_grad()
    def get_zero_embed(self, batch_size: int = 1, device: torch.device | str | None = None) -> torch.Tensor:
        device = torch.device(device or self.device)
        dtype = self.image_encoder.dtype
        cache: ZeroEmbedCache | None = getattr(self, "zero_embed_cache", None)
        if cache is None:
            cache = {}
            self.attach_zero_embed_cache(cache)
        key = (batch_size, str(device), str(dtype))
        cached = cache.get(key)
        if cached is None:
            size = self.image_encoder.config.image_size
            zero_img = torch.zeros(1, 3, size, size, device=device, dtype=dtype)
            zero_image_emb = self.image_encoder(zero_img)["image_embeds"]
            cached = zero_image_emb.repeat(batch_size, 1)
            cache[key] = cached
        return cached.clone()  # callers own their copy; the cache stays pristine


class CachedPriorPipeline(_ZeroEmbedCacheMixin, KandinskyV22PriorPipeline):  # type: ignore[misc]
    """``KandinskyV22PriorPipeline`` whose zero-image embedding is computed once."""


class CachedPriorEmb2EmbPipeline(_ZeroEmbedCacheMixin, KandinskyV22PriorEmb2EmbPipeline):  # type: ignore[misc]
    """``KandinskyV22PriorEmb2EmbPipeline`` sharing the prior's modules and zero-embedding cache."""
