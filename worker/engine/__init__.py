"""Kandinsky 2.2 generation engine: a plain library (no Redis, no Telegram) for every mode."""

from __future__ import annotations

from contract.spec import Mode
from worker.engine.engine import Engine, GenerationOutput, JobCancelled
from worker.engine.images import EncodedImage, encode_image_list
from worker.engine.settings import EngineSettings


def encode_images(output: GenerationOutput, mode: Mode) -> list[EncodedImage]:
    """Files to store: stickers give PNG then WEBP per image (both with alpha); other modes one PNG each."""
    return encode_image_list(output.images, mode)


__all__ = [
    "EncodedImage",
    "Engine",
    "EngineSettings",
    "GenerationOutput",
    "JobCancelled",
    "encode_images",
]
