"""Kandinsky 5.0 Image through the engine, on the tiny bundle: the same pictures as plain diffusers'
Kandinsky5T2IPipeline and Kandinsky5I2IPipeline for the same seed, drawn at the trained size closest to
the user's ratio and cut to that exact ratio at the job's tier."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import Kandinsky5I2IPipeline, Kandinsky5T2IPipeline
from PIL import Image

from contract.families import Family, Placement, describe_family
from contract.spec import JobSpec, Mode, bucket_size, exact_size
from devkit import tiny_kandinsky5
from worker.engine import Engine, EngineSettings, JobCancelled, ModelFolderError
from worker.engine.families import Kandinsky5ImageEngine
from worker.engine.families.kandinsky5_image import (
    EDIT_FOLDER,
    IMAGE_FOLDER,
    VARIATION_PROMPT,
    closest_resolution,
    edit_guidance,
)
from worker.engine.images import fit_to_size

RESOLUTIONS = [(1024, 1024), (640, 1408), (1408, 640), (768, 1280), (1280, 768), (896, 1152), (1152, 896)]
"""What the public pipelines draw at (``pipe.resolutions``)."""


def settings(bundle: Path, **options: object) -> EngineSettings:
    return EngineSettings(model_dir=bundle, device="cpu", dtype="float32", preload=False,
                          family_options={Family.KANDINSKY5_IMAGE: dict(options)})


@pytest.fixture(scope="module")
def k5i(tiny_bundle: Path) -> Kandinsky5ImageEngine:
    part = Engine(settings(tiny_bundle), families=[Family.KANDINSKY5_IMAGE])[Family.KANDINSKY5_IMAGE]
    assert isinstance(part, Kandinsky5ImageEngine)
    return part


def image_spec(mode: Mode = Mode.TEXT2IMAGE, aspect: str = "16:9", side: int = 512, **fields: Any) -> JobSpec:
    width, height = bucket_size(aspect, side)
    values: dict[str, Any] = {"model": Family.KANDINSKY5_IMAGE, "mode": mode, "prompt": "a red fox",
                              "width": width, "height": height, "aspect": aspect, "seed": 11,
                              "steps": 2}
    return JobSpec(**{**values, **fields})


def photo() -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def plain_pipeline(cls: Any, folder: Path, **components: Any) -> Any:
    pipe = cls.from_pretrained(folder, dtype=torch.float32, **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_bundle_folders_are_the_engines() -> None:
    assert (IMAGE_FOLDER, EDIT_FOLDER) == (tiny_kandinsky5.IMAGE_FOLDER, tiny_kandinsky5.EDIT_FOLDER)
    assert Kandinsky5ImageEngine.local_folders == (IMAGE_FOLDER, EDIT_FOLDER)


@pytest.mark.parametrize(("width", "height", "expected"), [
    (1024, 1024, (1024, 1024)), (1024, 576, (1280, 768)), (576, 1024, (768, 1280)), (1024, 768, (1152, 896)),
    (768, 1024, (896, 1152)), (1024, 683, (1280, 768)), (683, 1024, (768, 1280)), (2000, 800, (1408, 640)),
])
def test_the_trained_size_closest_to_each_ratio(width: int, height: int, expected: tuple[int, int]) -> None:
    assert closest_resolution(RESOLUTIONS, width, height) == expected


def test_a_size_that_is_no_size_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        closest_resolution(RESOLUTIONS, 0, 512)


def test_text_to_image_is_plain_diffusers_at_the_trained_size_cut_to_the_ratio(
        k5i: Kandinsky5ImageEngine, tiny_bundle: Path) -> None:
    spec = image_spec(num_images=2)
    seen: list[tuple[str, int, int]] = []
    out = k5i.generate(spec, on_progress=lambda *event: seen.append(event))
    assert [im.size for im in out.images] == [exact_size("16:9", 512)] * 2
    assert k5i.text2image_pipeline().resolutions == RESOLUTIONS  # the public list, read from the pipeline
    plain = plain_pipeline(Kandinsky5T2IPipeline, tiny_bundle / IMAGE_FOLDER)
    expected = plain(prompt=spec.prompt, negative_prompt="", width=1280, height=768, num_inference_steps=2,
                     guidance_scale=describe_family(Family.KANDINSKY5_IMAGE).default_guidance,
                     num_images_per_prompt=2,
                     generator=[torch.Generator().manual_seed(s) for s in (11, 12)]).image
    for ours, theirs in zip(out.images, expected, strict=True):
        assert np.array_equal(np.asarray(ours), np.asarray(fit_to_size(theirs, *exact_size("16:9", 512))))
    assert [e for e in seen if e[0] == "transformer"] == [("transformer", 1, 2), ("transformer", 2, 2)]
    # Image i alone is image i of the pair (one generator per image), within a batch's float rounding.
    (second,) = k5i.generate(image_spec(seed=12)).images
    difference = np.abs(np.asarray(second, dtype=np.int16) - np.asarray(out.images[1], dtype=np.int16))
    assert difference.max() <= 2


def test_image_plus_text_is_plain_diffusers_editing_the_photo(k5i: Kandinsky5ImageEngine,
                                                             tiny_bundle: Path) -> None:
    spec = image_spec(Mode.BLEND, aspect="1:1", prompt="make it winter", weights=(0.4, 0.6), inputs=("k",))
    (ours,) = k5i.generate(spec, [photo()]).images
    assert ours.size == exact_size("1:1", 512)
    plain = plain_pipeline(Kandinsky5I2IPipeline, tiny_bundle / EDIT_FOLDER,
                           tokenizer=k5i.edit_pipeline().tokenizer)
    (theirs,) = plain(image=fit_to_size(photo(), 1024, 1024), prompt="make it winter", negative_prompt="",
                      width=1024, height=1024, num_inference_steps=2, guidance_scale=3.5,
                      generator=torch.Generator().manual_seed(11)).image
    assert np.array_equal(np.asarray(ours), np.asarray(theirs.resize((512, 512), Image.Resampling.LANCZOS)))
    # The editing model read the photo through Qwen2.5-VL too: another photo, other embeddings.
    encoder = k5i.edit_pipeline()
    grey = Image.new("RGB", (1024, 1024), (128, 128, 128))
    first = encoder.encode_prompt("make it winter", image=fit_to_size(photo(), 1024, 1024), device="cpu")[0]
    other = encoder.encode_prompt("make it winter", image=grey, device="cpu")[0]
    assert first.shape == other.shape and not torch.equal(first, other)


def test_the_text_s_weight_sets_how_strongly_the_edit_follows_the_words(
        k5i: Kandinsky5ImageEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (edit_guidance(3.5, 0.5), edit_guidance(3.5, 1.0), edit_guidance(3.5, 0.0)) == (3.5, 6.0, 1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        edit_guidance(3.5, 1.5)
    pipe = k5i.edit_pipeline()
    used: list[float] = []
    call = type(pipe).__call__

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        used.append(kwargs["guidance_scale"])
        return call(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", spy)
    for text in (0.5, 0.9, 0.0):
        spec = image_spec(Mode.BLEND, aspect="1:1", prompt="make it winter", weights=(1 - text, text),
                          inputs=("k",))
        k5i.generate(spec, [photo()])
    assert used == pytest.approx([3.5, 5.5, 1.0])


def test_variations_redraw_the_photo_by_the_variation_prompt_a_seed_each(k5i: Kandinsky5ImageEngine) -> None:
    spec = image_spec(Mode.VARIATIONS, aspect="3:4", prompt="", inputs=("k",), num_images=2)
    seen: list[tuple[str, int, int]] = []
    out = k5i.generate(spec, [photo()], on_progress=lambda *event: seen.append(event))
    assert [im.size for im in out.images] == [exact_size("3:4", 512)] * 2
    assert not np.array_equal(np.asarray(out.images[0]), np.asarray(out.images[1]))
    assert seen[-1] == ("transformer", 4, 4)  # two pictures of two steps each, counted as one stage
    assert VARIATION_PROMPT.startswith("the same picture")


def test_a_sticker_is_cut_out_at_512(k5i: Kandinsky5ImageEngine) -> None:
    threads = torch.get_num_threads()
    (sticker,) = k5i.generate(image_spec(Mode.STICKER, aspect="1:1", prompt="a happy cat")).images
    assert sticker.mode == "RGBA" and max(sticker.size) == 512
    # The remover loaded on this first sticker (no preload) left the process's torch threads as they were.
    assert torch.get_num_threads() == threads


def test_text_encoders_on_the_cpu_give_the_same_pictures(k5i: Kandinsky5ImageEngine,
                                                         tiny_bundle: Path) -> None:
    split = Engine(settings(tiny_bundle, placement=Placement.TEXT_ENCODER_CPU),
                   families=[Family.KANDINSKY5_IMAGE])[Family.KANDINSKY5_IMAGE]
    assert isinstance(split, Kandinsky5ImageEngine)
    assert split.text2image_pipeline().text_encoder is None and split.edit_pipeline().text_encoder is None
    for spec, images in ((image_spec(num_images=2), []),
                         (image_spec(Mode.BLEND, prompt="make it blue", weights=(0.5, 0.5), inputs=("k",)),
                          [photo()])):
        ours, theirs = split.generate(spec, images).images, k5i.generate(spec, images).images
        assert [np.asarray(p).tobytes() for p in ours] == [np.asarray(p).tobytes() for p in theirs]


def test_an_attention_backend_is_set_on_every_attention_of_both_dits_and_a_wrong_one_named(
        k5i: Kandinsky5ImageEngine, tiny_bundle: Path) -> None:
    math = Engine(settings(tiny_bundle, attention_backend="_NATIVE_MATH"),
                  families=[Family.KANDINSKY5_IMAGE])[Family.KANDINSKY5_IMAGE]
    assert isinstance(math, Kandinsky5ImageEngine)
    for pipe in (math.text2image_pipeline(), math.edit_pipeline()):
        backends = {m.processor._attention_backend.value for m in pipe.transformer.modules()
                    if hasattr(m, "processor") and hasattr(m.processor, "_attention_backend")}
        assert backends == {"_native_math"}, backends
    spec = image_spec()
    ours, theirs = math.generate(spec).images[0], k5i.generate(spec).images[0]
    assert np.abs(np.asarray(ours, dtype=np.int16) - np.asarray(theirs, dtype=np.int16)).max() <= 1
    with pytest.raises(ValueError, match=r"attention backend 'flashy'; diffusers has .*_native_cudnn"):
        Engine(settings(tiny_bundle, attention_backend="flashy"), families=[Family.KANDINSKY5_IMAGE])


def test_a_russian_prompt_is_read_and_a_long_one_reported_cut(k5i: Kandinsky5ImageEngine) -> None:
    assert "ru" in describe_family(Family.KANDINSKY5_IMAGE).reads_languages
    assert not k5i.prompt_truncated(image_spec(prompt="рыжая лиса в снежном лесу"))
    long = "Ω" * 900  # bytes its tokenizer never merged: past Qwen's 512 tokens
    assert k5i.prompt_truncated(image_spec(prompt=long))


def test_cancel_stops_the_steps(k5i: Kandinsky5ImageEngine) -> None:
    seen: list[tuple[str, int, int]] = []
    with pytest.raises(JobCancelled):
        k5i.generate(image_spec(steps=5), on_progress=lambda *e: seen.append(e),
                     should_cancel=lambda: len(seen) >= 2)
    assert len(seen) == 2


def test_a_bundle_without_the_edit_folder_names_it(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle / IMAGE_FOLDER, bundle / IMAGE_FOLDER)
    with pytest.raises(ModelFolderError, match=EDIT_FOLDER):
        Engine(settings(bundle), families=[Family.KANDINSKY5_IMAGE])
