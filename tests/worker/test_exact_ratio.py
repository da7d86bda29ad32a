"""Exact aspect ratios (issue 17): every tier of every ratio is generated at the nearest larger bucket
(sides multiples of 64) and centre-cropped once to the ratio the user chose, in every family, before a
sticker's 512 px rule and an animation's encoder. Before, 16:9 at 512 came out 512x256 (2:1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from contract.animation import Animation
from contract.families import Family
from contract.spec import (
    ASPECT_RATIOS,
    LEGACY_BUCKETS,
    LONG_SIDES,
    SIDE_MULTIPLE,
    SIZE_BUCKETS,
    JobSpec,
    Mode,
    bucket_size,
    crop_box,
    exact_size,
)
from worker.engine import Engine, base
from worker.engine.base import Run, StepProgress

TIERS = [(aspect, side) for side in LONG_SIDES for aspect in ASPECT_RATIOS]
STEPS = 2


def ratio(aspect: str) -> float:
    rw, rh = ASPECT_RATIOS[aspect]
    return rw / rh


def spec_at(aspect: str, side: int, mode: Mode = Mode.TEXT2IMAGE, **fields: Any) -> JobSpec:
    width, height = bucket_size(aspect, side)
    return JobSpec(mode=mode, prompt="a lighthouse", width=width, height=height, aspect=aspect,
                   steps=STEPS, prior_steps=2, seed=3, **fields)


@pytest.mark.parametrize(("aspect", "side"), TIERS)
def test_every_tier_generates_a_larger_bucket_and_crops_to_the_exact_ratio(aspect: str, side: int) -> None:
    width, height = bucket_size(aspect, side)
    out_w, out_h = exact_size(aspect, side)
    assert width % SIDE_MULTIPLE == 0 and height % SIDE_MULTIPLE == 0
    assert max(width, height) == side == max(out_w, out_h)
    assert width >= out_w and height >= out_h
    assert min(width, height) - min(out_w, out_h) < SIDE_MULTIPLE  # the nearest larger bucket
    # Within a pixel of the exact ratio: the short side is the true one, rounded.
    long_px, short_px = max(out_w, out_h), min(out_w, out_h)
    exact_short = long_px / max(ratio(aspect), 1 / ratio(aspect))
    assert abs(short_px - exact_short) <= 0.5
    assert (out_w >= out_h) == (ratio(aspect) >= 1)
    even_w, even_h = exact_size(aspect, side, even=True)
    assert even_w % 2 == 0 and even_h % 2 == 0 and abs(min(even_w, even_h) - exact_short) <= 1
    assert spec_at(aspect, side).output_size() == (out_w, out_h)
    left, top, right, bottom = crop_box(width, height, out_w, out_h)
    assert (right - left, bottom - top) == (out_w, out_h)
    assert abs(left - (width - right)) <= 1 and abs(top - (height - bottom)) <= 1  # centred


def test_16_9_at_512_is_no_longer_2_to_1() -> None:
    assert bucket_size("16:9", 512) == (512, 320)
    assert exact_size("16:9", 512) == (512, 288)
    assert (512, 320) in SIZE_BUCKETS and (512, 256) not in SIZE_BUCKETS


def test_a_spec_whose_size_is_not_its_aspects_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="not the 16:9 bucket"):
        JobSpec(mode=Mode.TEXT2IMAGE, prompt="x", width=512, height=512, aspect="16:9")
    with pytest.raises(ValueError, match="unknown aspect ratio"):
        JobSpec(mode=Mode.TEXT2IMAGE, prompt="x", width=512, height=512, aspect="5:4")


def test_a_spec_from_before_exact_ratios_still_parses_and_is_not_cropped() -> None:
    spec = JobSpec.parse({"mode": "text2image", "prompt": "x", "width": 512, "height": 256})
    assert spec.aspect is None and spec.output_size() == (512, 256)
    assert (512, 256) in LEGACY_BUCKETS


@pytest.mark.parametrize("family", [Family.KANDINSKY22, Family.KANDINSKY3])
def test_every_family_crops_every_tier_once(engine: Engine, family: Family) -> None:
    """The crop step of each family on pictures of each bucket: the exact size, the centre kept,
    and a second call (a sticker's result coming back through ``generate``) changes nothing."""
    family_engine = engine[family]
    for aspect, side in TIERS:
        spec = spec_at(aspect, side, model=family)
        pixels = np.arange(spec.width * spec.height * 3, dtype=np.uint32).reshape(spec.height, spec.width, 3)
        picture = Image.fromarray((pixels % 251).astype(np.uint8), "RGB")
        run = Run(spec, [], None, [torch.Generator()], StepProgress(None, None), {})
        (once,) = family_engine.exact_ratio(run, [picture])
        assert once.size == exact_size(aspect, side), (family, aspect, side)
        left, top, *_ = crop_box(spec.width, spec.height, *once.size)
        assert once.getpixel((0, 0)) == picture.getpixel((left, top))
        assert family_engine.exact_ratio(run, [once])[0] is once


@pytest.mark.parametrize("family", [Family.KANDINSKY22, Family.KANDINSKY3])
def test_a_real_generation_comes_out_at_the_exact_ratio(engine: Engine, family: Family) -> None:
    for aspect in ("16:9", "3:2", "2:3"):
        out = engine.generate(spec_at(aspect, 512, model=family))
        assert [im.size for im in out.images] == [exact_size(aspect, 512)], (family, aspect)


@pytest.mark.parametrize("family", [Family.KANDINSKY22, Family.KANDINSKY3])
def test_a_sticker_is_cropped_before_its_512_rule(engine: Engine, family: Family,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut-out the 512 px rule gets is already the exact 16:9 picture (the rule itself runs)."""
    seen: list[tuple[int, int]] = []
    rule = base.sticker_from_cutout

    def spy(cutout: Image.Image) -> Image.Image:
        seen.append(cutout.size)
        return rule(cutout)

    monkeypatch.setattr(base, "sticker_from_cutout", spy)
    out = engine.generate(spec_at("16:9", 512, Mode.STICKER, model=family))
    assert seen == [exact_size("16:9", 512)]
    assert max(out.images[0].size) == 512


def test_an_animation_is_encoded_at_the_exact_ratio_with_even_sides(engine: Engine) -> None:
    spec = spec_at("3:2", 512, Mode.ANIMATE, animation=Animation(frames=2, fps=2))
    video = engine.generate(spec).video
    assert video is not None
    assert (video.width, video.height) == exact_size("3:2", 512, even=True) == (512, 342)
