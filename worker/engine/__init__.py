"""The generation engine: a plain library (no Redis, no Telegram) for every mode of every model family."""

from __future__ import annotations

from contract.spec import Mode
from worker.engine.base import (
    FamilyEngine,
    GenerationOutput,
    InputRejected,
    JobCancelled,
    ModelFolderError,
)
from worker.engine.engine import Engine, FamilyNotHeld
from worker.engine.images import EncodedImage, encode_image_list
from worker.engine.settings import EngineSettings


def encode_images(output: GenerationOutput, mode: Mode, photo_format: str = "PNG") -> list[EncodedImage]:
    """Files to store: stickers give PNG then WEBP per image (both with alpha); other modes one
    ``photo_format`` file each ("JPEG" or "PNG")."""
    return encode_image_list(output.images, mode, photo_format)


__all__ = [
    "EncodedImage",
    "Engine",
    "EngineSettings",
    "FamilyEngine",
    "FamilyNotHeld",
    "GenerationOutput",
    "InputRejected",
    "JobCancelled",
    "ModelFolderError",
    "encode_images",
]
