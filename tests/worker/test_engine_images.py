"""Pixel helpers around the models: sticker geometry, masks, outpaint canvases (no models run)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from contract.events import FileKind
from contract.spec import Mode
from worker.engine.images import (
    STICKER_PAD_FRACTION,
    STICKER_SIDE,
    encode_image_list,
    fit_mask,
    fit_to_size,
    keep_unmasked,
    outpaint_canvas,
    sticker_from_cutout,
)


def cutout(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """A transparent canvas with an opaque red subject in ``box`` and faint haze elsewhere."""
    image = Image.new("RGBA", size, (200, 200, 200, 5))
    image.paste((255, 0, 0, 255), box)
    return image


@pytest.mark.parametrize(
    ("size", "box", "long_side_is_width"),
    [
        ((512, 512), (100, 200, 400, 260), True),  # wide subject
        ((512, 512), (200, 50, 260, 450), False),  # tall subject
        ((768, 512), (0, 0, 768, 512), True),  # subject fills the frame
        ((300, 200), (10, 10, 40, 190), False),  # small picture: scaled up to 512
    ],
)
def test_sticker_is_trimmed_padded_and_512_on_its_long_side(
    size: tuple[int, int], box: tuple[int, int, int, int], long_side_is_width: bool
) -> None:
    sticker = sticker_from_cutout(cutout(size, box))
    assert sticker.mode == "RGBA"
    width, height = sticker.size
    assert max(width, height) == STICKER_SIDE and min(width, height) <= STICKER_SIDE
    assert (width == STICKER_SIDE) is long_side_is_width or width == height
    alpha = np.asarray(sticker.getchannel("A"))
    assert alpha[0].max() == 0 and alpha[-1].max() == 0, "transparent padding band"
    assert alpha[:, 0].max() == 0 and alpha[:, -1].max() == 0
    assert alpha.max() == 255
    # The trimmed subject plus its padding keeps its aspect, within rounding.
    box_w, box_h = box[2] - box[0], box[3] - box[1]
    pad = max(1, round(max(box_w, box_h) * STICKER_PAD_FRACTION))
    assert width / height == pytest.approx((box_w + 2 * pad) / (box_h + 2 * pad), rel=0.02)


def test_sticker_haze_is_cleared_to_full_transparency() -> None:
    sticker = sticker_from_cutout(cutout((512, 512), (100, 100, 300, 300)))
    alpha = np.asarray(sticker.getchannel("A"))
    rgb = np.asarray(sticker.convert("RGB"))
    assert set(np.unique(alpha[:4, :4])) == {0}
    assert rgb[:4, :4].max() == 0, "no colour left behind transparent pixels"


def test_sticker_without_any_subject_still_obeys_the_size_rule() -> None:
    sticker = sticker_from_cutout(Image.new("RGBA", (640, 360), (0, 0, 0, 0)))
    assert max(sticker.size) == STICKER_SIDE


def test_fit_to_size_crops_to_aspect_without_stretching() -> None:
    image = Image.new("RGB", (1000, 500), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 250, 500))  # a left band the 1:1 crop must drop
    fitted = fit_to_size(image, 512, 512)
    assert fitted.size == (512, 512)
    assert np.asarray(fitted)[:, :, 0].max() < 50


def test_fit_mask_is_binary() -> None:
    mask = Image.linear_gradient("L").resize((512, 256))
    fitted = np.asarray(fit_mask(mask, 512, 256))
    assert set(np.unique(fitted)) == {0, 255}


def test_outpaint_canvas_centres_the_original_and_masks_only_the_border() -> None:
    original = Image.new("RGB", (400, 400), (10, 200, 30))
    canvas, mask = outpaint_canvas(original, 1024, 576)
    assert canvas.size == mask.size == (1024, 576)
    keep = np.asarray(mask) == 0
    ys, xs = np.nonzero(keep)
    assert (ys.min() + ys.max()) // 2 == pytest.approx(288, abs=1)
    assert (xs.min() + xs.max()) // 2 == pytest.approx(512, abs=1)
    assert ys.max() - ys.min() + 1 == round(576 * 0.75)
    assert (np.asarray(canvas)[keep] == (10, 200, 30)).all()
    assert set(np.unique(np.asarray(mask))) == {0, 255}


def test_keep_unmasked_restores_black_pixels_exactly() -> None:
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    generated = Image.new("RGB", (96, 64), (1, 2, 3))
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (10, 10, 50, 40))
    result = np.asarray(keep_unmasked(generated, original, mask))
    keep = np.asarray(mask) == 0
    assert (result[keep] == np.asarray(original)[keep]).all()
    assert (result[~keep] == (1, 2, 3)).all()


def test_photo_results_encode_as_the_worker_asks_and_stickers_keep_alpha() -> None:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    [jpeg] = encode_image_list([photo], Mode.TEXT2IMAGE, "JPEG")
    decoded = Image.open(io.BytesIO(jpeg.data))
    assert (jpeg.format, decoded.format, decoded.size) == ("JPEG", "JPEG", (64, 48))
    [png] = encode_image_list([photo], Mode.TEXT2IMAGE, "PNG")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.data))), np.asarray(photo))  # lossless
    sticker = Image.new("RGBA", (512, 512), (10, 20, 30, 0))
    formats = [e.format for e in encode_image_list([sticker], Mode.STICKER, "JPEG")]
    assert formats == ["PNG", "WEBP"]
    with pytest.raises(ValueError, match="photo_format"):
        encode_image_list([photo], Mode.TEXT2IMAGE, "GIF")


def test_each_encoded_file_names_its_kind_and_image() -> None:
    photo = Image.new("RGB", (64, 48), (200, 10, 10))
    sticker = Image.new("RGBA", (512, 512), (10, 20, 30, 0))
    assert [(e.kind, e.index) for e in encode_image_list([photo, photo], Mode.TEXT2IMAGE, "JPEG")] == [
        (FileKind.PHOTO, 0), (FileKind.PHOTO, 1)]
    assert [(e.format, e.kind, e.index) for e in encode_image_list([sticker, sticker], Mode.STICKER)] == [
        ("PNG", FileKind.STICKER_PNG, 0), ("WEBP", FileKind.STICKER_WEBP, 0),
        ("PNG", FileKind.STICKER_PNG, 1), ("WEBP", FileKind.STICKER_WEBP, 1)]
