"""Edits on the tiny bundle, on the CPU: a region named in words repainted inside its feathered mask
only, a region not found refused, zoom out and pan keeping the original's pixels exactly, and live
previews of the latents offered at the interval. Smallest bucket, 2 steps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from contract.editing import ZOOM_FACTORS, EditRequestError, PanDirection, parse_edit_request
from contract.families import Family
from contract.spec import JobSpec, Mode, SpecError, bucket_size, exact_size
from worker.engine import Engine, EngineSettings, InputRejected
from worker.engine.editing import (
    PAN_FRACTION,
    RegionNotFound,
    blend_feathered,
    pan_canvas,
    region_mask,
    zoom_out_canvas,
)
from worker.engine.families import Kandinsky22Engine
from worker.engine.preview import LatentPreview, fit_latent_preview

WIDE = bucket_size("16:9", 512)  # (512, 320): the larger bucket 16:9 is cropped from
STEPS = 2


def smooth(seed: int, size: tuple[int, int] = WIDE) -> Image.Image:
    """A photo-like input (smooth gradients), so CLIPSeg sees structure."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = [127 + 120 * np.sin(xx / rng.uniform(20, 60) + rng.uniform(0, 6))
                * np.cos(yy / rng.uniform(20, 60)) for _ in range(3)]
    return Image.fromarray(np.stack(channels, axis=2).clip(0, 255).astype(np.uint8), "RGB")


def spec(mode: Mode, **fields: Any) -> JobSpec:
    base: dict[str, Any] = {"mode": mode, "width": WIDE[0], "height": WIDE[1], "seed": 3, "steps": STEPS,
                            "prior_steps": STEPS, "inputs": ("a",)}
    return JobSpec(**{**base, **fields})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def k22(engine: Engine) -> Kandinsky22Engine:
    family = engine[Family.KANDINSKY22]
    assert isinstance(family, Kandinsky22Engine)
    return family


# --- edit by words ------------------------------------------------------------------------------


def test_edit_repaints_inside_the_feathered_mask_and_nothing_outside(engine: Engine,
                                                                     k22: Kandinsky22Engine) -> None:
    picture = smooth(1)
    job = spec(Mode.EDIT, prompt="a stormy sky", region="the sky")
    out = engine.generate(job, [picture]).images[0]
    region = k22.segmenter().region(picture, "the sky", k22.settings.edit_threshold)
    alpha = np.asarray(region.alpha)
    outside = alpha == 0
    assert 0.05 < outside.mean() < 0.95, "the tiny CLIPSeg must leave some of the picture out"
    assert out.size == picture.size
    assert np.array_equal(pixels(out)[outside], pixels(picture)[outside])
    inside = alpha == 255
    assert np.abs(pixels(out)[inside].astype(int) - pixels(picture)[inside]).mean() > 5
    # The repaint mask covers every pixel the feather touches (the decoder painted all it blends).
    assert np.array_equal(np.asarray(region.repaint) > 0, alpha > 0)


PLAIN_GREY = (128, 128, 128)
"""A picture with nothing in it: the tiny CLIPSeg finds no cat there (probabilities under 0.25)."""


def test_a_region_not_found_is_refused_before_anything_is_painted(tiny_bundle: Path) -> None:
    lazy = Engine(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", preload=False))
    grey = Image.new("RGB", WIDE, PLAIN_GREY)
    with pytest.raises(RegionNotFound, match="'the cat'") as caught:
        lazy.generate(spec(Mode.EDIT, prompt="a tiger", region="the cat"), [grey])
    assert isinstance(caught.value, InputRejected)  # bad input, never retried
    family = lazy[Family.KANDINSKY22]
    assert isinstance(family, Kandinsky22Engine)
    assert family._prior is None and family._inpaint is None, "no model but the segmenter ran"


def test_the_threshold_is_the_operator_s(tiny_bundle: Path) -> None:
    """KANDINSKY_EDIT_THRESHOLD: at 1.0 no region is ever certain enough."""
    strict = Engine(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", preload=False,
                                   edit_threshold=1.0))
    with pytest.raises(RegionNotFound):
        strict.generate(spec(Mode.EDIT, prompt="a stormy sky", region="the sky"), [smooth(1)])


def test_a_nearly_empty_map_is_not_found_and_a_small_region_grows_and_feathers() -> None:
    with pytest.raises(RegionNotFound):
        region_mask(np.zeros((64, 64), np.float32), (512, 256), words="x", threshold=0.4)
    speck = np.zeros((64, 64), np.float32)
    speck[0, 0] = 1.0  # 1/4096 of the picture: under the floor
    with pytest.raises(RegionNotFound):
        region_mask(speck, (512, 256), words="x", threshold=0.4)
    probs = np.zeros((64, 64), np.float32)
    probs[16:48, 16:48] = 0.9  # the middle quarter
    region = region_mask(probs, (512, 256), words="x", threshold=0.4)
    alpha = np.asarray(region.alpha)
    assert region.coverage == pytest.approx(0.25, abs=0.02)
    assert alpha[128, 256] == 255 and alpha[0, 0] == 0
    assert 0.25 < (alpha > 0).mean() < 0.45  # grown past the quarter, far from everything
    assert set(np.unique(alpha)) - {0, 255}, "the edge is feathered, not hard"


def test_the_feathered_blend_keeps_every_untouched_pixel_exactly() -> None:
    original, generated = smooth(3), smooth(4)
    alpha = Image.new("L", original.size, 0)
    alpha.paste(128, (100, 50, 200, 150))
    out = pixels(blend_feathered(generated, original, alpha))
    keep = np.asarray(alpha) == 0
    assert np.array_equal(out[keep], pixels(original)[keep])
    mixed = (pixels(original)[60, 110].astype(int) + pixels(generated)[60, 110]) / 2
    assert np.abs(out[60, 110] - mixed).max() <= 1


def test_the_words_of_an_edit_are_what_and_into_what() -> None:
    assert parse_edit_request("the sky -> a stormy  sky") == ("the sky", "a stormy sky")
    assert parse_edit_request("небо → грозовое небо") == ("небо", "грозовое небо")
    for bad in ("a stormy sky", "-> a sky", "the sky ->", "  ->  "):
        with pytest.raises(EditRequestError):
            parse_edit_request(bad)
    with pytest.raises(EditRequestError, match="edit-region-too-long"):
        parse_edit_request("x" * 201 + " -> y")


def test_edit_specs_carry_exactly_their_fields() -> None:
    with pytest.raises(SpecError, match="region"):
        JobSpec.parse({"mode": "edit", "prompt": "a sky", "inputs": ["a"], "width": 512, "height": 512})
    with pytest.raises(SpecError, match="zoom"):
        JobSpec.parse({"mode": "zoom_out", "inputs": ["a"], "zoom": 3.0, "width": 512, "height": 512})
    with pytest.raises(SpecError, match="pan"):
        JobSpec.parse({"mode": "pan", "inputs": ["a"], "width": 512, "height": 512})
    with pytest.raises(SpecError, match="takes no"):
        JobSpec.parse({"mode": "text2image", "prompt": "a", "pan": "up", "width": 512, "height": 512})


# --- zoom out and pan -----------------------------------------------------------------------------


@pytest.mark.parametrize("factor", ZOOM_FACTORS)
def test_zoom_out_keeps_the_original_in_the_centre_exactly(engine: Engine, factor: float) -> None:
    picture = smooth(5)
    out = engine.generate(spec(Mode.ZOOM_OUT, prompt="a forest", zoom=factor), [picture]).images[0]
    canvas = zoom_out_canvas(picture, factor, *WIDE)
    left, top, right, bottom = canvas.keep
    assert (right - left, bottom - top) == (round(WIDE[0] / factor / 8) * 8, round(WIDE[1] / factor / 8) * 8)
    assert abs((left + right) / 2 - WIDE[0] / 2) <= 8 and abs((top + bottom) / 2 - WIDE[1] / 2) <= 8
    shrunk = picture.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    assert np.array_equal(pixels(out.crop(canvas.keep)), pixels(shrunk))
    border = np.asarray(canvas.mask) == 255
    assert border.mean() > 0.4
    assert pixels(out)[border].std() > 1, "the border is painted, not left one flat colour"


def test_zoom_out_of_a_picture_that_fits_the_middle_keeps_its_very_pixels() -> None:
    w, h = WIDE
    small = smooth(6, (w // 2, h // 2))
    canvas = zoom_out_canvas(small, 2.0, *WIDE)
    assert canvas.keep == (w // 4, h // 4, w * 3 // 4, h * 3 // 4)
    assert np.array_equal(pixels(canvas.image.crop(canvas.keep)), pixels(small))


@pytest.mark.parametrize("direction", list(PanDirection))
def test_pan_keeps_the_original_at_the_side_exactly(engine: Engine, direction: PanDirection) -> None:
    picture = smooth(7)
    out = engine.generate(spec(Mode.PAN, pan=direction), [picture]).images[0]
    w, h = WIDE
    horizontal = direction in (PanDirection.LEFT, PanDirection.RIGHT)
    shift = round((w if horizontal else h) * PAN_FRACTION / 8) * 8
    # The frame moves towards ``direction``: the picture slides the other way by ``shift``.
    kept, source = {
        PanDirection.LEFT: ((shift, 0, w, h), (0, 0, w - shift, h)),
        PanDirection.RIGHT: ((0, 0, w - shift, h), (shift, 0, w, h)),
        PanDirection.UP: ((0, shift, w, h), (0, 0, w, h - shift)),
        PanDirection.DOWN: ((0, 0, w, h - shift), (0, shift, w, h)),
    }[direction]
    assert pan_canvas(picture, direction, w, h).keep == kept
    assert np.array_equal(pixels(out.crop(kept)), pixels(picture.crop(source)))
    assert not np.array_equal(pixels(out), pixels(picture))


@pytest.mark.parametrize("mode", [Mode.ZOOM_OUT, Mode.PAN, Mode.EDIT, Mode.INPAINT])
def test_an_exact_ratio_result_is_edited_at_its_exact_size(engine: Engine, mode: Mode) -> None:
    """A 16:9 result (512x288, cut from the 512x320 bucket) edited: the edit comes back 512x288, and
    what it keeps of the picture is its very pixels, not a crop of a zoomed copy."""
    exact = exact_size("16:9", 512)
    picture = smooth(9, exact)
    fields: dict[str, Any] = {Mode.ZOOM_OUT: {"zoom": 2.0}, Mode.PAN: {"pan": PanDirection.LEFT},
                              Mode.EDIT: {"region": "the sky", "prompt": "stars"},
                              Mode.INPAINT: {"prompt": "stars", "mask": "m"}}[mode]
    job = spec(mode, aspect="16:9", **fields)
    mask = Image.new("L", exact, 0)
    mask.paste(255, (0, 0, exact[0] // 2, exact[1]))  # the left half repainted, the right half kept
    try:
        out = engine.generate(job, [picture], mask if mode is Mode.INPAINT else None).images[0]
    except RegionNotFound:
        pytest.fail("the tiny CLIPSeg found no sky in this picture; choose another seed for smooth()")
    assert out.size == exact
    w, h = exact
    if mode is Mode.ZOOM_OUT:
        canvas = zoom_out_canvas(picture, 2.0, w, h)
        assert np.array_equal(pixels(out.crop(canvas.keep)), pixels(canvas.image.crop(canvas.keep)))
    elif mode is Mode.PAN:
        keep = pan_canvas(picture, PanDirection.LEFT, w, h).keep
        shift = keep[0]
        assert np.array_equal(pixels(out.crop(keep)), pixels(picture.crop((0, 0, w - shift, h))))
    elif mode is Mode.INPAINT:
        right = (w // 2, 0, w, h)
        assert np.array_equal(pixels(out.crop(right)), pixels(picture.crop(right)))
    kept = pixels(out) == pixels(picture)
    assert kept.any() and not kept.all()  # part of the picture kept as it was, part repainted


# --- live previews --------------------------------------------------------------------------------


def test_previews_are_offered_every_n_decoder_steps_and_change_nothing(engine: Engine) -> None:
    job = spec(Mode.TEXT2IMAGE, prompt="a red cat", steps=5, inputs=())
    offered: list[tuple[str, int, int, np.ndarray]] = []

    def sink(stage: str, step: int, total: int, render: Any) -> None:
        offered.append((stage, step, total, render()))

    with_previews = engine.generate(job, on_preview=sink, preview_every=2).images[0]
    assert [(s, i, n) for s, i, n, _ in offered] == [("decoder", 2, 5), ("decoder", 4, 5)]
    for *_, picture in offered:
        assert picture.shape == (WIDE[1] // 8, WIDE[0] // 8, 3) and picture.dtype == np.uint8
    declined: list[int] = []
    without = engine.generate(job, on_preview=lambda s, i, n, render: declined.append(i),
                              preview_every=2).images[0]
    assert declined == [2, 4]  # offered, never rendered
    assert np.array_equal(pixels(with_previews), pixels(without)), "a preview must not touch the latents"
    none: list[int] = []
    engine.generate(job, on_preview=lambda s, i, n, render: none.append(i), preview_every=0)
    assert none == []


def test_previews_come_from_the_inpaint_decoder_too(engine: Engine) -> None:
    offered: list[int] = []
    job = spec(Mode.PAN, pan=PanDirection.UP, steps=3)
    engine.generate(job, [smooth(8)], on_preview=lambda s, i, n, render: offered.append(render().shape[0]),
                    preview_every=1)
    assert offered == [WIDE[1] // 8, WIDE[1] // 8]


class LinearLatents(torch.nn.Module):
    """A stand-in MoVQ whose latents are a known linear map of each 8×8 cell's colour."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Conv2d(3, 4, 1)
        torch.manual_seed(0)
        torch.nn.init.normal_(self.mix.weight)

    def encode(self, x: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(latents=self.mix(torch.nn.functional.avg_pool2d(x, 8)))


def test_the_fitted_preview_inverts_a_linear_latent_space() -> None:
    movq = LinearLatents()
    preview = fit_latent_preview(movq)
    assert isinstance(preview, LatentPreview)
    colours = torch.rand(1, 3, 16, 16) * 1.6 - 0.8
    latents = movq.mix(colours)
    shown = preview.pixels(latents).astype(int)
    expected = ((colours[0].permute(1, 2, 0) + 1) * 127.5).round().int().numpy()
    assert np.abs(shown - expected).max() <= 1
    with pytest.raises(ValueError, match="latents must be"):
        preview.pixels(torch.zeros(1, 3, 4, 4))
