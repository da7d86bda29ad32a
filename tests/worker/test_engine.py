"""The engine on the tiny random-weight bundle, on the CPU: every mode, seeds, styles, masks,
progress, cancellation and every refusal. Sizes are the smallest buckets and 2 steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from contract.families import Family, Placement
from contract.modes import describe
from contract.spec import MAX_SEED, STICKER_SUFFIX, STYLE_SUFFIXES, JobSpec, Mode, Style, bucket_size
from worker.engine import (
    EncodedImage,
    Engine,
    EngineSettings,
    GenerationOutput,
    InputRejected,
    JobCancelled,
    encode_images,
)
from worker.engine.families import Kandinsky3Engine, Kandinsky22Engine, SDXLEngine
from worker.engine.images import outpaint_canvas

WIDE = bucket_size("16:9", 512)  # (512, 320): the cheapest bucket
SQUARE = bucket_size("1:1", 512)
STEPS = 2

# Per mode: prompt, number of inputs, weights, needs a mask.
MODE_INPUTS: dict[Mode, dict[str, Any]] = {
    Mode.TEXT2IMAGE: {"prompt": "a red cat"},
    Mode.STICKER: {"prompt": "a red cat"},
    Mode.MIX: {"inputs": ("a", "b"), "weights": (0.3, 0.7)},
    Mode.BLEND: {"prompt": "a red cat", "inputs": ("a",), "weights": (0.5, 0.5)},
    Mode.VARIATIONS: {"inputs": ("a",)},
    Mode.DEPTH: {"prompt": "a robot", "inputs": ("a",), "strength": 0.6},
    Mode.INPAINT: {"prompt": "a hat", "inputs": ("a",), "mask": "m"},
    Mode.OUTPAINT: {"prompt": "a forest", "inputs": ("a",)},
    Mode.EDIT: {"prompt": "a stormy sky", "inputs": ("a",), "region": "the sky"},
    Mode.ZOOM_OUT: {"prompt": "a forest", "inputs": ("a",), "zoom": 2.0},
    Mode.PAN: {"inputs": ("a",), "pan": "left"},
}


STILL_MODES = [m for m in Mode if not describe(m).output.motion]
"""Modes that make images; an animation or a video makes an MP4 (tests/worker/test_animation.py,
tests/worker/test_kandinsky5.py)."""


def noise_image(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def smooth_image(seed: int, size: tuple[int, int]) -> Image.Image:
    """A photo-like input: smooth gradients, so CLIP and depth see structure rather than noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = [
        127 + 120 * np.sin(xx / rng.uniform(20, 60) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(20, 60))
        for _ in range(3)
    ]
    return Image.fromarray(np.stack(channels, axis=2).clip(0, 255).astype(np.uint8), "RGB")


def inpaint_mask(size: tuple[int, int]) -> Image.Image:
    w, h = size
    mask = Image.new("L", size, 0)
    mask.paste(255, (w // 4, h // 4, w // 2, h // 2))
    return mask


def make_spec(mode: Mode, seed: int = 7, size: tuple[int, int] = WIDE, **overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "mode": mode,
        "width": size[0],
        "height": size[1],
        "seed": seed,
        "steps": STEPS,
        "prior_steps": STEPS,
        **MODE_INPUTS[mode],
    }
    fields.update(overrides)
    return JobSpec(**fields)


def inputs_for(spec: JobSpec) -> tuple[list[Image.Image], Image.Image | None]:
    size = (spec.width, spec.height)
    images = [smooth_image(10 + i, size) for i in range(len(spec.inputs))]
    mask = inpaint_mask(size) if spec.mask else None
    return images, mask


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(as_array(a) - as_array(b)).mean())


@dataclass
class Run:
    spec: JobSpec
    output: GenerationOutput
    progress: list[tuple[str, int, int]] = field(default_factory=list)


class Runs:
    """Each distinct (mode, seed, overrides) generated once per module and shared by the tests."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, Run] = {}

    def get(self, mode: Mode, seed: int = 7, **overrides: Any) -> Run:
        spec = make_spec(mode, seed, **overrides)
        key = spec.model_dump_json(exclude={"job_id", "created_at"})
        if key not in self._cache:
            images, mask = inputs_for(spec)
            progress: list[tuple[str, int, int]] = []
            output = self.engine.generate(
                spec, images, mask, on_progress=lambda *event: progress.append(event)
            )
            self._cache[key] = Run(spec, output, progress)
        return self._cache[key]


@pytest.fixture(scope="module")
def runs(engine: Engine) -> Runs:
    return Runs(engine)


@pytest.fixture(scope="module")
def k22(engine: Engine) -> Kandinsky22Engine:
    """The engine's Kandinsky 2.2 family, whose pipelines the sharing tests look at."""
    family = engine[Family.KANDINSKY22]
    assert isinstance(family, Kandinsky22Engine)
    return family


# --- every mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", STILL_MODES)
def test_mode_output_size_and_pixel_mode(runs: Runs, mode: Mode) -> None:
    run = runs.get(mode)
    assert len(run.output.images) == 1
    image = run.output.images[0]
    if mode is Mode.STICKER:
        assert image.mode == "RGBA"
        assert max(image.size) == 512 and min(image.size) <= 512
        alpha = np.asarray(image.getchannel("A"))
        assert alpha.min() == 0 and alpha.max() == 255, "alpha must really cut the subject out"
        assert 0.0 < (alpha == 0).mean() < 1.0
        # Trimmed to the subject: the padding band on the long side is transparent.
        assert alpha[:, :2].max() == 0 or alpha[:2, :].max() == 0
    else:
        assert image.mode == "RGB"
        assert image.size == (run.spec.width, run.spec.height)
    assert run.output.seeds == [run.spec.seed]
    assert run.output.timings["total"] > 0 and "decoder" in run.output.timings
    assert set(run.output.model_ids) == {"prior", "decoder", "inpaint", "controlnet", "depth", "segment",
                                         "rembg"}


@pytest.mark.parametrize("mode", STILL_MODES)
def test_same_seed_same_image_other_seed_other_image(runs: Runs, engine: Engine, mode: Mode) -> None:
    first = runs.get(mode, seed=7)
    spec = first.spec.model_copy(update={"job_id": "again"})
    images, mask = inputs_for(spec)
    again = engine.generate(spec, images, mask)
    assert np.array_equal(as_array(first.output.images[0]), as_array(again.images[0]))
    other = runs.get(mode, seed=8)
    if mode is Mode.STICKER:
        a, b = first.output.images[0], other.output.images[0]
        assert a.size != b.size or mean_abs_diff(a, b) > 1.0
    else:
        assert mean_abs_diff(first.output.images[0], other.output.images[0]) > 1.0


@pytest.mark.parametrize("mode", [Mode.TEXT2IMAGE, Mode.DEPTH])
def test_progress_reports_every_step_in_order(runs: Runs, mode: Mode) -> None:
    events = runs.get(mode).progress
    stages = [stage for stage, _, _ in events]
    assert stages == sorted(stages, key=["prior", "decoder"].index), "prior steps come before decoder steps"
    for stage in ("prior", "decoder"):
        steps = [(step, total) for s, step, total in events if s == stage]
        total = steps[0][1]
        assert total >= 1
        assert steps == [(i, total) for i in range(1, total + 1)]


def test_progress_counts_every_prior_run_of_blend(runs: Runs) -> None:
    events = runs.get(Mode.BLEND).progress
    prior = [(step, total) for stage, step, total in events if stage == "prior"]
    # interpolate runs the prior for the prompt and for the negative branch.
    assert prior == [(i, 2 * STEPS) for i in range(1, 2 * STEPS + 1)]
    decoder = [(step, total) for stage, step, total in events if stage == "decoder"]
    assert decoder == [(i, STEPS) for i in range(1, STEPS + 1)]


# --- seeds and batches ----------------------------------------------------------------------------


def test_each_image_of_a_batch_is_reproducible_alone(engine: Engine) -> None:
    spec = make_spec(Mode.TEXT2IMAGE, seed=40, num_images=2)
    batch = engine.generate(spec)
    assert batch.seeds == [40, 41]
    alone = engine.generate(make_spec(Mode.TEXT2IMAGE, seed=41))
    assert mean_abs_diff(batch.images[1], alone.images[0]) < 1.0
    assert mean_abs_diff(batch.images[0], batch.images[1]) > 1.0


def test_batch_with_negative_prompt_is_reproducible_alone(engine: Engine) -> None:
    """The negative prompt rides in the prior batch; generator i must still draw the same numbers."""
    spec = make_spec(Mode.TEXT2IMAGE, seed=50, num_images=2, negative_prompt="blurry, text")
    batch = engine.generate(spec)
    alone = engine.generate(make_spec(Mode.TEXT2IMAGE, seed=51, negative_prompt="blurry, text"))
    assert mean_abs_diff(batch.images[1], alone.images[0]) < 1.0


@pytest.mark.parametrize("mode", [Mode.DEPTH, Mode.INPAINT])
def test_image_batches_of_image_modes_are_reproducible_alone(engine: Engine, mode: Mode) -> None:
    """Depth and inpaint feed one input per image so each row keeps its own generator."""
    spec = make_spec(mode, seed=60, num_images=2)
    images, mask = inputs_for(spec)
    batch = engine.generate(spec, images, mask)
    assert [im.size for im in batch.images] == [WIDE, WIDE]
    assert mean_abs_diff(batch.images[0], batch.images[1]) > 0.5
    alone = engine.generate(make_spec(mode, seed=61), images, mask)
    assert mean_abs_diff(batch.images[1], alone.images[0]) < 1.0


def test_seed_wraparound_in_generate(engine: Engine) -> None:
    out = engine.generate(make_spec(Mode.VARIATIONS, seed=MAX_SEED, num_images=2), [smooth_image(3, WIDE)])
    assert out.seeds == [MAX_SEED, 0]
    assert len(out.images) == 2


@pytest.mark.parametrize("mode", [Mode.TEXT2IMAGE, Mode.MIX, Mode.VARIATIONS, Mode.DEPTH])
def test_negative_prompt_changes_the_image(runs: Runs, mode: Mode) -> None:
    plain = runs.get(mode)
    negative = runs.get(mode, negative_prompt="blurry, lowres, watermark")
    assert mean_abs_diff(plain.output.images[0], negative.output.images[0]) > 0.5


# --- styles ---------------------------------------------------------------------------------------


def test_styles_change_the_effective_prompt_and_the_image(runs: Runs) -> None:
    plain = runs.get(Mode.TEXT2IMAGE)
    anime = runs.get(Mode.TEXT2IMAGE, style=Style.ANIME)
    assert anime.spec.effective_prompt == "a red cat" + STYLE_SUFFIXES[Style.ANIME]
    assert plain.spec.effective_prompt == "a red cat"
    assert mean_abs_diff(plain.output.images[0], anime.output.images[0]) > 0.5


def test_sticker_prompt_carries_the_sticker_suffix(runs: Runs) -> None:
    assert runs.get(Mode.STICKER).spec.effective_prompt.endswith(STICKER_SUFFIX)


# --- inpaint and outpaint -------------------------------------------------------------------------


def test_inpaint_keeps_black_mask_pixels_and_repaints_white(runs: Runs) -> None:
    run = runs.get(Mode.INPAINT)
    images, mask = inputs_for(run.spec)
    assert mask is not None
    keep = np.asarray(mask) < 128
    original = as_array(images[0])
    result = as_array(run.output.images[0])
    assert np.abs(result[keep] - original[keep]).max() <= 1
    assert np.abs(result[~keep] - original[~keep]).mean() > 5


def test_inpaint_mask_of_another_size_bucket_is_fitted(engine: Engine) -> None:
    """A photo and mask twice the job's bucket: both are fitted the same way."""
    spec = make_spec(Mode.INPAINT, seed=3)
    big = (WIDE[0] * 2, WIDE[1] * 2)
    photo = smooth_image(5, big)
    mask = inpaint_mask(big)
    out = engine.generate(spec, [photo], mask)
    fitted_photo = as_array(photo.resize(WIDE, Image.Resampling.LANCZOS))
    keep = np.asarray(mask.resize(WIDE, Image.Resampling.NEAREST)) < 128
    diff = np.abs(as_array(out.images[0]) - fitted_photo)
    assert out.images[0].size == WIDE
    assert diff[keep].mean() < 2.0


def test_outpaint_keeps_the_original_region(runs: Runs) -> None:
    run = runs.get(Mode.OUTPAINT)
    images, _ = inputs_for(run.spec)
    canvas, border = outpaint_canvas(images[0], run.spec.width, run.spec.height)
    keep = np.asarray(border) < 128
    assert 0.2 < keep.mean() < 0.9, "the original fills part of the canvas, the border is new"
    result = as_array(run.output.images[0])
    assert np.abs(result[keep] - as_array(canvas)[keep]).max() <= 1
    assert np.abs(result[~keep] - as_array(canvas)[~keep]).mean() > 5


# --- cancellation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "stage"),
    [
        (Mode.TEXT2IMAGE, "prior"),
        (Mode.TEXT2IMAGE, "decoder"),
        (Mode.DEPTH, "prior"),
        (Mode.DEPTH, "decoder"),
    ],
)
def test_cancellation_raises_at_the_next_step(engine: Engine, mode: Mode, stage: str) -> None:
    spec = make_spec(mode, steps=4, prior_steps=4)
    images, mask = inputs_for(spec)
    seen: list[tuple[str, int, int]] = []
    cancel = {"now": False}

    def on_progress(s: str, step: int, total: int) -> None:
        seen.append((s, step, total))
        if s == stage:
            cancel["now"] = True

    with pytest.raises(JobCancelled):
        engine.generate(spec, images, mask, on_progress=on_progress, should_cancel=lambda: cancel["now"])
    assert seen[-1][0] == stage and seen[-1][1] == 1, "stopped right after the first step of the stage"


def test_cancelled_before_start_runs_nothing(engine: Engine) -> None:
    seen: list[Any] = []
    with pytest.raises(JobCancelled):
        engine.generate(
            make_spec(Mode.TEXT2IMAGE), on_progress=lambda *e: seen.append(e), should_cancel=lambda: True
        )
    assert seen == []


def test_engine_still_works_after_a_cancel(engine: Engine, runs: Runs) -> None:
    with pytest.raises(JobCancelled):
        engine.generate(make_spec(Mode.TEXT2IMAGE), should_cancel=lambda: True)
    again = engine.generate(make_spec(Mode.TEXT2IMAGE))
    assert np.array_equal(as_array(again.images[0]), as_array(runs.get(Mode.TEXT2IMAGE).output.images[0]))


# --- refusals -------------------------------------------------------------------------------------

BadCase = Callable[[], tuple[Any, list[Any], Any]]

BAD_INPUTS: dict[str, tuple[BadCase, str]] = {
    "text2image given an image": (
        lambda: (make_spec(Mode.TEXT2IMAGE), [smooth_image(1, WIDE)], None),
        "needs 0 input image",
    ),
    "mix given one image": (
        lambda: (make_spec(Mode.MIX), [smooth_image(1, WIDE)], None),
        "needs 2 input image",
    ),
    "variations given no image": (lambda: (make_spec(Mode.VARIATIONS), [], None), "needs 1 input image"),
    "input is not an image": (
        lambda: (make_spec(Mode.VARIATIONS), [np.zeros((64, 64, 3))], None),
        "not a PIL image",
    ),
    "input too small": (
        lambda: (make_spec(Mode.VARIATIONS), [smooth_image(1, (32, 200))], None),
        "at least 64 px",
    ),
    "input too large": (
        lambda: (make_spec(Mode.VARIATIONS), [Image.new("RGB", (9000, 100))], None),
        "at most 8192 px",
    ),
    "inpaint without mask": (
        lambda: (make_spec(Mode.INPAINT), [smooth_image(1, WIDE)], None),
        "needs a mask",
    ),
    "mask is not an image": (
        lambda: (make_spec(Mode.INPAINT), [smooth_image(1, WIDE)], np.zeros((256, 512))),
        "not a PIL image",
    ),
    "mask size mismatch": (
        lambda: (make_spec(Mode.INPAINT), [smooth_image(1, WIDE)], inpaint_mask((256, 256))),
        "must match",
    ),
    "all-black mask": (
        lambda: (make_spec(Mode.INPAINT), [smooth_image(1, WIDE)], Image.new("L", WIDE, 0)),
        "no white pixels",
    ),
    "mask for a mode without one": (
        lambda: (make_spec(Mode.OUTPAINT), [smooth_image(1, WIDE)], inpaint_mask(WIDE)),
        "takes no mask",
    ),
    "spec is a dict": (lambda: ({"mode": "text2image"}, [], None), "must be a contract.spec.JobSpec"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_clear_value_error(engine: Engine, case: str) -> None:
    build, message = BAD_INPUTS[case]
    spec, images, mask = build()
    called: list[Any] = []
    with pytest.raises(InputRejected, match=message):  # a ValueError the worker does not retry
        engine.generate(spec, images, mask, on_progress=lambda *e: called.append(e))
    assert called == [], "refused before any model ran"


def test_unknown_dtype_is_refused(tiny_bundle: Path) -> None:
    with pytest.raises(ValueError, match="unknown dtype"):
        Engine.load(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float8", preload=False))


def test_incomplete_model_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "prior").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks"):
        Engine.load(EngineSettings(model_dir=tmp_path, device="cpu", preload=False))


def test_missing_model_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Engine.load(EngineSettings(model_dir=tmp_path / "nope", device="cpu", preload=False))


# --- loading and sharing --------------------------------------------------------------------------


def test_modules_are_shared_not_copied(engine: Engine, k22: Kandinsky22Engine) -> None:
    prior, emb2emb = k22.prior_pipeline(), k22.emb2emb_pipeline()
    assert emb2emb.prior is prior.prior
    assert emb2emb.image_encoder is prior.image_encoder and emb2emb.text_encoder is prior.text_encoder
    movq = k22.decoder_pipeline().movq
    assert k22.inpaint_pipeline().movq is movq and k22.controlnet_pipeline().movq is movq
    schedulers = {
        id(k22.decoder_pipeline().scheduler),
        id(k22.inpaint_pipeline().scheduler),
        id(k22.controlnet_pipeline().scheduler),
    }
    assert len(schedulers) == 3, "scheduler state is per pipeline; only the config is shared"
    assert k22.inpaint_pipeline().scheduler.config == k22.decoder_pipeline().scheduler.config
    assert engine.device == "cpu" and engine.dtype == "float32"
    assert next(k22.decoder_pipeline().unet.parameters()).dtype == torch.float32


def test_zero_embed_is_computed_once(engine: Engine, k22: Kandinsky22Engine) -> None:
    image_encoder = k22.prior_pipeline().image_encoder
    calls: list[int] = []
    handle = image_encoder.register_forward_hook(lambda *_: calls.append(1))
    k22._zero_embed_cache.clear()
    try:
        engine.generate(make_spec(Mode.TEXT2IMAGE, seed=1))
        engine.generate(make_spec(Mode.TEXT2IMAGE, seed=2))
    finally:
        handle.remove()
    assert len(calls) == 1, "the zero-image embedding is cached after the first call"
    assert len(k22._zero_embed_cache) == 1


def test_settings_come_from_kandinsky_env(monkeypatch: pytest.MonkeyPatch, tiny_bundle: Path) -> None:
    monkeypatch.setenv("KANDINSKY_MODEL_DIR", str(tiny_bundle))
    monkeypatch.setenv("KANDINSKY_PRELOAD", "false")
    monkeypatch.setenv("KANDINSKY_DTYPE", "auto")
    monkeypatch.setenv("KANDINSKY_DEVICE", "auto")
    settings = EngineSettings()
    assert settings.model_dir == tiny_bundle and settings.preload is False
    lazy = Engine.load(settings)
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert lazy.device == expected_device
    assert lazy.dtype == ("float16" if expected_device == "cuda" else "float32")
    assert lazy.model_ids[Family.KANDINSKY22]["prior"] == str(tiny_bundle / "prior")
    assert lazy.model_ids[Family.KANDINSKY22]["rembg"].endswith(".onnx")


def test_public_ids_are_the_default_sources() -> None:
    engine = Engine(EngineSettings(device="cpu", preload=False))
    assert engine.model_ids[Family.KANDINSKY22] == {
        "prior": "kandinsky-community/kandinsky-2-2-prior",
        "decoder": "kandinsky-community/kandinsky-2-2-decoder",
        "inpaint": "kandinsky-community/kandinsky-2-2-decoder-inpaint",
        "controlnet": "kandinsky-community/kandinsky-2-2-controlnet-depth",
        "depth": "Intel/dpt-hybrid-midas",
        "segment": "CIDAS/clipseg-rd64-refined",
        "rembg": "u2net",
    }


def test_lazy_engine_loads_only_what_a_mode_needs(tiny_bundle: Path) -> None:
    lazy = Engine.load(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", preload=False))
    family = lazy[Family.KANDINSKY22]
    assert isinstance(family, Kandinsky22Engine)
    assert family._prior is None and family._decoder is None
    out = lazy.generate(make_spec(Mode.TEXT2IMAGE))
    assert out.images[0].size == WIDE
    assert family._prior is not None and family._decoder is not None
    assert family._controlnet is None and family._inpaint is None and not lazy.shared.rembg_loaded


# --- encoding -------------------------------------------------------------------------------------


def _decode(encoded: EncodedImage) -> Image.Image:
    import io

    image = Image.open(io.BytesIO(encoded.data))
    image.load()
    return image


def test_encode_sticker_gives_png_then_webp_with_alpha(runs: Runs) -> None:
    run = runs.get(Mode.STICKER)
    files = encode_images(run.output, Mode.STICKER)
    assert [f.format for f in files] == ["PNG", "WEBP"]
    for f in files:
        decoded = _decode(f)
        assert decoded.format == f.format
        assert decoded.mode == "RGBA"
        assert (decoded.width, decoded.height) == (f.width, f.height) == run.output.images[0].size
        assert decoded.getchannel("A").getextrema() == (0, 255)


def test_a_sticker_job_keeps_the_process_torch_thread_count(runs: Runs) -> None:
    """The background remover's import starts numba, which resets torch to a thread per core; the
    engine puts back what the process chose (tests/conftest.py asks for one thread)."""
    runs.get(Mode.STICKER)  # the remover is loaded by now, in this process
    assert torch.get_num_threads() == 1


def test_encode_other_modes_gives_lossless_png(runs: Runs) -> None:
    run = runs.get(Mode.TEXT2IMAGE)
    files = encode_images(run.output, Mode.TEXT2IMAGE)
    assert [f.format for f in files] == ["PNG"]
    assert np.array_equal(as_array(_decode(files[0]).convert("RGB")), as_array(run.output.images[0]))


def test_square_bucket_works(engine: Engine) -> None:
    out = engine.generate(make_spec(Mode.TEXT2IMAGE, size=SQUARE, steps=1))
    assert out.images[0].size == SQUARE


def test_each_family_reads_its_own_variables_and_family_options_override_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANDINSKY_SDXL_REFINER", "false")
    monkeypatch.setenv("KANDINSKY_K3_PLACEMENT", "model_offload")
    monkeypatch.setenv("KANDINSKY_CPU_OFFLOAD", "true")
    settings = EngineSettings()
    assert SDXLEngine.public_ids(settings) == ("stabilityai/stable-diffusion-xl-base-1.0",)
    assert Kandinsky3Engine.placement_of(settings) is Placement.MODEL_OFFLOAD
    assert Kandinsky22Engine.placement_of(settings) is Placement.MODEL_OFFLOAD
    assert "kandinsky-community/kandinsky-2-2-prior" in Kandinsky22Engine.public_ids(settings)
    sdxl = {"refiner": True, "vae_id": "madebyollin/sdxl-vae-fp16-fix"}
    k3 = {"placement": "text_encoder_cpu"}
    over = EngineSettings(family_options={Family.KANDINSKY3: k3, Family.SDXL: sdxl})
    assert Kandinsky3Engine.placement_of(over) is Placement.TEXT_ENCODER_CPU
    assert SDXLEngine.public_ids(over)[1:] == ("stabilityai/stable-diffusion-xl-refiner-1.0",
                                               "madebyollin/sdxl-vae-fp16-fix")
    with pytest.raises(ValueError, match="refiner_fraction"):
        SDXLEngine.options_of(EngineSettings(family_options={Family.SDXL: {"refiner_fraction": 2}}))
