"""What the families without an image prior share (Kandinsky 3.0, SDXL): every image mode is their
text → image or their img2img from the user's photo.

Text → image and stickers come from the family's text → image; image + text and variations are
img2img from the photo, the text's weight (image + text) or VARIATIONS_STRENGTH (variations) being
the strength. Mix and keep-depth need an image embedding to mix or steer, which these families do
not have (contract.modes says so, and the bot refuses them before queueing).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import PIL.Image

from contract.spec import Mode
from worker.engine.base import FamilyEngine, Run, img2img_steps, recipe

VARIATIONS_STRENGTH = 0.5
"""Variations are img2img from the reference at this strength: half the schedule is redrawn, so
the composition and colours stay while the details change with each seed."""

BLEND_MIN_STRENGTH = 0.3
"""Image + text: the prompt's weight is the img2img strength, but never below this, or the prompt
would barely show (the photo's weight can keep at most 70% of it)."""


def blend_strength(text_weight: float, steps: int) -> float:
    """Image + text's img2img strength: the text's weight, at least BLEND_MIN_STRENGTH, and never
    so low that ``steps`` × strength rounds to no step at all."""
    strength = min(1.0, max(text_weight, BLEND_MIN_STRENGTH))
    if img2img_steps(steps, strength) < 1:
        strength = min(1.0, 1.0 / steps + 1e-6)
    return strength


def variations_strength(steps: int) -> float:
    """VARIATIONS_STRENGTH, raised where ``steps`` is too small for it to leave a step."""
    return blend_strength(VARIATIONS_STRENGTH, steps)


def local_variant(folder: Path, variant: str | None) -> str | None:
    """``variant`` when the folder has weight files of that variant (the public fp16 layout), else none."""
    if variant and any(folder.glob(f"*/*.{variant}.safetensors*")):
        return variant
    return None


class TextToImageFamily(FamilyEngine):
    """Text → image and stickers of a family without a prior, from its text → image."""

    @abstractmethod
    def _text_to_images(self, run: Run) -> list[PIL.Image.Image]:
        """The job's prompt drawn from noise."""

    @recipe(Mode.TEXT2IMAGE)
    def _text2image_mode(self, run: Run) -> list[PIL.Image.Image]:
        return self._text_to_images(run)

    @recipe(Mode.STICKER)
    def _sticker(self, run: Run) -> list[PIL.Image.Image]:
        return self.cut_out_stickers(run, self._text_to_images(run))


class Img2ImgFamily(TextToImageFamily):
    """The four image modes of a family without a prior, from its two ways to draw."""

    @abstractmethod
    def _image_to_images(self, run: Run, strength: float) -> list[PIL.Image.Image]:
        """img2img from the job's photo (fitted to the job size) with its prompt, at ``strength``."""

    @recipe(Mode.BLEND)
    def _blend(self, run: Run) -> list[PIL.Image.Image]:
        """Image + text: img2img from the photo with the prompt; the text's weight is the strength."""
        return self._image_to_images(run, blend_strength(run.spec.weights[1], run.spec.steps))

    @recipe(Mode.VARIATIONS)
    def _variations(self, run: Run) -> list[PIL.Image.Image]:
        """img2img from the reference at a moderate strength (the prompt is only the style's), a new
        seed per image."""
        return self._image_to_images(run, variations_strength(run.spec.steps))
