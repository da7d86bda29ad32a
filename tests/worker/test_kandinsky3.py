"""The Kandinsky 3.0 family on its tiny random-weight checkpoint, on the CPU: the same image as plain
diffusers ``Kandinsky3Pipeline`` / ``Kandinsky3Img2ImgPipeline`` loaded by ``from_pretrained`` for
the same spec and seed, every mode it serves, every aspect bucket, progress, cancellation, the
prompt-token cut, the text-encoder-on-CPU placement, and every refusal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import Kandinsky3Img2ImgPipeline, Kandinsky3Pipeline
from PIL import Image

from contract.families import Family, Placement, describe_family
from contract.spec import ASPECT_RATIOS, JobSpec, Mode, SpecError, Style, bucket_size
from devkit.tiny_kandinsky3 import FOLDER, VARIANT
from tests.worker.pixels import FAMILY_STEPS, WIDE, assert_same_image, family_engine, family_spec
from tests.worker.test_cli import run_cli
from tests.worker.test_engine import as_array, mean_abs_diff, smooth_image
from worker.cli import main as cli_main
from worker.engine import Engine, EngineSettings, JobCancelled, ModelFolderError
from worker.engine.families import Kandinsky3Engine
from worker.engine.families.img2img import VARIATIONS_STRENGTH, blend_strength, variations_strength
from worker.engine.images import fit_to_size

STEPS = FAMILY_STEPS


def k3_spec(mode: Mode, seed: int = 11, size: tuple[int, int] = WIDE, **fields: Any) -> JobSpec:
    return family_spec(Family.KANDINSKY3, mode, seed, size, **fields)


@pytest.fixture(scope="module")
def k3(engine: Engine) -> Kandinsky3Engine:
    return family_engine(engine, Family.KANDINSKY3, Kandinsky3Engine)


@pytest.fixture(scope="module")
def plain(tiny_bundle: Path) -> Any:
    pipe = Kandinsky3Pipeline.from_pretrained(tiny_bundle / FOLDER, variant=VARIANT, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def plain_img2img(tiny_bundle: Path) -> Any:
    pipe = Kandinsky3Img2ImgPipeline.from_pretrained(tiny_bundle / FOLDER, variant=VARIANT,
                                                     dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- the same images as plain diffusers -------------------------------------------------------------


def test_text2image_matches_plain_kandinsky3_pipeline(engine: Engine, plain: Any) -> None:
    spec = k3_spec(Mode.TEXT2IMAGE, style=Style.ARTSTATION)
    assert spec.guidance == describe_family(Family.KANDINSKY3).default_guidance == 3.0
    out = engine.generate(spec)
    theirs = plain(spec.effective_prompt, num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                   height=spec.height, width=spec.width,
                   generator=torch.Generator("cpu").manual_seed(spec.seed)).images[0]
    assert out.family == "kandinsky3" and out.seeds == [spec.seed]
    assert_same_image(out.images[0], theirs)


def test_blend_matches_plain_img2img_with_the_prompt(engine: Engine, plain_img2img: Any) -> None:
    spec = k3_spec(Mode.BLEND)
    photo = smooth_image(4, (700, 500))
    out = engine.generate(spec, [photo])
    strength = blend_strength(0.6, STEPS)
    assert strength == 0.6
    theirs = plain_img2img(spec.effective_prompt, image=fit_to_size(photo, *WIDE), strength=strength,
                           num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                           generator=torch.Generator("cpu").manual_seed(spec.seed)).images[0]
    assert out.images[0].size == WIDE
    assert_same_image(out.images[0], theirs)


def test_variations_match_plain_img2img_at_a_moderate_strength(engine: Engine, plain_img2img: Any) -> None:
    spec = k3_spec(Mode.VARIATIONS, style=Style.ANIME)
    photo = smooth_image(5, WIDE)
    out = engine.generate(spec, [photo])
    assert variations_strength(STEPS) == VARIATIONS_STRENGTH
    theirs = plain_img2img(spec.effective_prompt, image=photo, strength=VARIATIONS_STRENGTH,
                           num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                           generator=torch.Generator("cpu").manual_seed(spec.seed)).images[0]
    assert_same_image(out.images[0], theirs)
    other = engine.generate(k3_spec(Mode.VARIATIONS, seed=12, style=Style.ANIME), [photo])
    assert mean_abs_diff(out.images[0], other.images[0]) > 0.5, "each seed gives another variation"


# --- every mode, bucket and setting ---------------------------------------------------------------


def test_sticker_is_cut_out_at_512(engine: Engine) -> None:
    out = engine.generate(k3_spec(Mode.STICKER, size=bucket_size("1:1", 512)))
    image = out.images[0]
    assert image.mode == "RGBA" and max(image.size) == 512 and min(image.size) <= 512
    alpha = np.asarray(image.getchannel("A"))
    assert alpha.min() == 0 and alpha.max() == 255
    assert "rembg" in out.timings and "unet" in out.timings


@pytest.mark.parametrize("aspect", list(ASPECT_RATIOS))
def test_every_aspect_bucket(engine: Engine, aspect: str) -> None:
    size = bucket_size(aspect, 512)
    out = engine.generate(k3_spec(Mode.TEXT2IMAGE, size=size, steps=1))
    assert out.images[0].size == size and out.images[0].mode == "RGB"


def test_styles_and_negative_prompt_change_the_image(engine: Engine) -> None:
    plain_image = engine.generate(k3_spec(Mode.TEXT2IMAGE)).images[0]
    anime = engine.generate(k3_spec(Mode.TEXT2IMAGE, style=Style.ANIME)).images[0]
    negative = engine.generate(k3_spec(Mode.TEXT2IMAGE, negative_prompt="blurry, lowres")).images[0]
    assert mean_abs_diff(plain_image, anime) > 0.5
    assert mean_abs_diff(plain_image, negative) > 0.5


def test_each_image_of_a_batch_is_reproducible_alone(engine: Engine) -> None:
    batch = engine.generate(k3_spec(Mode.TEXT2IMAGE, seed=40, num_images=2))
    alone = engine.generate(k3_spec(Mode.TEXT2IMAGE, seed=41))
    assert batch.seeds == [40, 41]
    assert mean_abs_diff(batch.images[1], alone.images[0]) < 1.0
    assert mean_abs_diff(batch.images[0], batch.images[1]) > 1.0


def test_progress_counts_every_unet_step(engine: Engine) -> None:
    seen: list[tuple[str, int, int]] = []
    engine.generate(k3_spec(Mode.TEXT2IMAGE), on_progress=lambda *e: seen.append(e))
    assert seen == [("unet", i, STEPS) for i in range(1, STEPS + 1)]
    seen.clear()
    engine.generate(k3_spec(Mode.VARIATIONS), [smooth_image(1, WIDE)], on_progress=lambda *e: seen.append(e))
    assert seen == [("unet", i, 2) for i in range(1, 3)], "img2img runs steps × strength of them"


def test_cancellation_lands_at_the_next_step(engine: Engine) -> None:
    seen: list[tuple[str, int, int]] = []
    with pytest.raises(JobCancelled):
        engine.generate(k3_spec(Mode.TEXT2IMAGE), on_progress=lambda *e: seen.append(e),
                        should_cancel=lambda: bool(seen))
    assert seen == [("unet", 1, STEPS)]


def test_a_prompt_over_128_tokens_is_run_and_reported_cut(engine: Engine, k3: Kandinsky3Engine) -> None:
    short = engine.generate(k3_spec(Mode.TEXT2IMAGE, steps=1))
    assert not short.prompt_truncated
    long_prompt = " ".join(["a red fox in the snow"] * 30)  # 150 words: past 128 T5 tokens
    assert k3.count_tokens(long_prompt) > describe_family(Family.KANDINSKY3).prompt_tokens
    cut = engine.generate(k3_spec(Mode.TEXT2IMAGE, steps=1, prompt=long_prompt))
    assert cut.prompt_truncated and cut.images[0].size == WIDE
    assert not engine.generate(k3_spec(Mode.VARIATIONS, steps=2), [smooth_image(1, WIDE)]).prompt_truncated


def test_text_encoder_on_the_cpu_gives_the_same_image(engine: Engine, tiny_bundle: Path) -> None:
    """The placement for small GPUs: the prompt is encoded apart and only embeddings are passed on."""
    settings = EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", preload=False,
                              family_options={Family.KANDINSKY3: {"placement": Placement.TEXT_ENCODER_CPU}})
    split = Engine.load(settings, families=[Family.KANDINSKY3])
    family = split[Family.KANDINSKY3]
    assert isinstance(family, Kandinsky3Engine) and family.text2image_pipeline().text_encoder is None
    for spec, images in ((k3_spec(Mode.TEXT2IMAGE, negative_prompt="blurry", num_images=2), []),
                         (k3_spec(Mode.BLEND), [smooth_image(2, WIDE)])):
        ours = split.generate(spec, images)
        reference = engine.generate(spec, images)
        assert "text_encoder" in ours.timings
        for a, b in zip(ours.images, reference.images, strict=True):
            assert_same_image(a, b)


def test_modules_are_shared_between_the_two_pipelines(k3: Kandinsky3Engine) -> None:
    text2image, img2img = k3.text2image_pipeline(), k3.img2img_pipeline()
    assert img2img.unet is text2image.unet and img2img.movq is text2image.movq
    assert img2img.text_encoder is text2image.text_encoder
    assert next(text2image.unet.parameters()).dtype == torch.float32


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.MIX, Mode.DEPTH, Mode.INPAINT, Mode.OUTPAINT])
def test_modes_without_a_prior_are_refused_in_the_spec(mode: Mode) -> None:
    with pytest.raises(SpecError, match=r"not served by Kandinsky 3\.0"):
        JobSpec.parse({"model": "kandinsky3", "mode": mode.value, "prompt": "x", "width": 512, "height": 512,
                       "inputs": ["a", "b"] if mode is Mode.MIX else ["a"],
                       "weights": [0.5, 0.5] if mode is Mode.MIX else [],
                       "mask": "m" if mode is Mode.INPAINT else None})


def test_a_job_for_a_family_the_engine_does_not_hold_is_refused(tiny_bundle: Path) -> None:
    only22 = Engine(EngineSettings(model_dir=tiny_bundle, device="cpu", preload=False),
                    families=[Family.KANDINSKY22])
    assert only22.held == (Family.KANDINSKY22,)
    with pytest.raises(LookupError, match="not kandinsky3"):
        only22.generate(k3_spec(Mode.TEXT2IMAGE))


@pytest.mark.parametrize("victim", ["unet/diffusion_pytorch_model.fp16.safetensors",
                                    "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json",
                                    "text_encoder/config.json"])
def test_an_incomplete_folder_is_refused_naming_the_missing_file(tiny_bundle: Path, tmp_path: Path,
                                                                 victim: str) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns("translate", "transcribe"))
    (bundle / FOLDER / victim).unlink()
    settings = EngineSettings(model_dir=bundle, device="cpu", preload=False)
    expected = rf"Kandinsky 3\.0.*missing .*{FOLDER}/{re.escape(victim)}"
    for families in (None, [Family.KANDINSKY3]):
        with pytest.raises(ModelFolderError, match=expected):
            Engine(settings, families=families)


def test_a_bundle_without_the_family_holds_the_others_unless_it_is_asked_for(
        tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns(FOLDER, "translate", "transcribe"))
    settings = EngineSettings(model_dir=bundle, device="cpu", preload=False)
    by_default = Engine(settings)
    assert by_default.held == (Family.KANDINSKY22, Family.SDXL, Family.KANDINSKY5, Family.KANDINSKY5_IMAGE)
    assert "no folder" in by_default.selection.skipped[Family.KANDINSKY3]
    with pytest.raises(ModelFolderError, match=r"has no Kandinsky 3\.0 folder"):
        Engine(settings, families=["kandinsky3"])
    with pytest.raises(ValueError, match="unknown model family 'sdxl9'"):
        Engine(settings, families=["sdxl9"])


def test_the_tiny_checkpoint_has_the_public_layout(tiny_bundle: Path) -> None:
    import json

    index = json.loads((tiny_bundle / FOLDER / "model_index.json").read_text())
    assert index["_class_name"] == "Kandinsky3Pipeline"
    assert {k: v for k, v in index.items() if not k.startswith("_")} == {
        "tokenizer": ["transformers", "T5Tokenizer"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "unet": ["diffusers", "Kandinsky3UNet"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "movq": ["diffusers", "VQModel"],
    }
    for weights in ("unet/diffusion_pytorch_model", "movq/diffusion_pytorch_model", "text_encoder/model"):
        assert (tiny_bundle / FOLDER / f"{weights}.{VARIANT}.safetensors").is_file()
    unet = json.loads((tiny_bundle / FOLDER / "unet" / "config.json").read_text())
    assert unet["encoder_hid_dim"] == json.loads((tiny_bundle / FOLDER / "text_encoder" / "config.json")
                                                 .read_text())["d_model"]


# --- the command line -------------------------------------------------------------------------------


def test_generate_with_model_kandinsky3_in_a_subprocess(tiny_bundle: Path, tmp_path: Path,
                                                        engine: Engine) -> None:
    out = tmp_path / "k3.png"
    proc = run_cli("--model", "kandinsky3", "--prompt", "a red fox in the snow", "--aspect", "16:9",
                   "--long-side", "512", "--steps", "3", "--seed", "9", "--model-dir", str(tiny_bundle),
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Kandinsky 3.0: mode text2image 512x320" in proc.stdout and "seeds: 9" in proc.stdout
    assert "unet" in proc.stdout and "prior" not in proc.stdout
    expected = engine.generate(k3_spec(Mode.TEXT2IMAGE, seed=9, steps=3, aspect="16:9")).images[0]
    assert np.array_equal(as_array(Image.open(out).convert("RGB")), as_array(expected))


def test_cli_model_refusals_and_the_prompt_cut_note(tiny_bundle: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--model-dir", str(tiny_bundle), "--device", "cpu", "--long-side", "512", "--steps", "1",
              "--out", str(tmp_path / "o.png")]
    assert cli_main(["--model", "sdxl9", "--prompt", "x", *common]) == 2
    assert "invalid choice: 'sdxl9'" in capsys.readouterr().err
    depth = ["--model", "kandinsky3", "--mode", "depth", "--prompt", "x", "--image", "A"]
    assert cli_main([*depth, *common]) == 2
    assert "not served by Kandinsky 3.0" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
    long_prompt = " ".join(["a red fox in the snow"] * 30)
    assert cli_main(["--model", "kandinsky3", "--prompt", long_prompt, *common]) == 0
    assert "the prompt was longer than the 128 tokens Kandinsky 3.0 reads" in capsys.readouterr().out
