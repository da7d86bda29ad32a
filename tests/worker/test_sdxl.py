"""The SDXL family on its tiny random-weight base + refiner, on the CPU: the same image as plain
diffusers ``StableDiffusionXLPipeline`` / ``StableDiffusionXLImg2ImgPipeline`` /
``StableDiffusionXLInpaintPipeline`` loaded by ``from_pretrained`` for the same spec and seed (base
alone and base + refiner as an ensemble of experts), the shared modules, progress per expert,
the VAE settings, and every refusal."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import (
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
)
from PIL import Image

from contract.families import Family, describe_family
from contract.spec import JobSpec, Mode, SpecError, bucket_size
from devkit.tiny_sdxl import FOLDER, REFINER_FOLDER, VARIANT
from tests.worker.pixels import FAMILY_STEPS, WIDE, assert_same_image, family_engine, family_spec
from tests.worker.test_cli import run_cli
from tests.worker.test_engine import as_array, mean_abs_diff, smooth_image
from worker.engine import Engine, EngineSettings, JobCancelled, ModelFolderError
from worker.engine.families import SDXLEngine
from worker.engine.families.img2img import VARIATIONS_STRENGTH, blend_strength
from worker.engine.families.sdxl import expert_steps
from worker.engine.images import fit_mask, fit_to_size

STEPS = FAMILY_STEPS
FRACTION = 0.8
BASE_ONLY: dict[Family, dict[str, Any]] = {Family.SDXL: {"refiner": False}}


def sdxl_spec(mode: Mode, seed: int = 11, size: tuple[int, int] = WIDE, **fields: Any) -> JobSpec:
    return family_spec(Family.SDXL, mode, seed, size, **fields)


def generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


@pytest.fixture(scope="module")
def sdxl(engine: Engine) -> SDXLEngine:
    return family_engine(engine, Family.SDXL, SDXLEngine)


@pytest.fixture(scope="module")
def base_only(tiny_bundle: Path) -> Engine:
    """The same bundle with the refiner off: the base runs every step."""
    settings = EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", family_options=BASE_ONLY)
    return Engine.load(settings, families=[Family.SDXL])


@pytest.fixture(scope="module")
def plain(tiny_bundle: Path) -> dict[str, Any]:
    """Plain diffusers pipelines, each from_pretrained on its own (no sharing, no engine code)."""
    kwargs: dict[str, Any] = {"variant": VARIANT, "dtype": torch.float32}
    pipes = {
        "base": StableDiffusionXLPipeline.from_pretrained(tiny_bundle / FOLDER, **kwargs),
        "img2img": StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny_bundle / FOLDER, **kwargs),
        "inpaint": StableDiffusionXLInpaintPipeline.from_pretrained(tiny_bundle / FOLDER, **kwargs),
        "refiner": StableDiffusionXLImg2ImgPipeline.from_pretrained(tiny_bundle / REFINER_FOLDER, **kwargs),
    }
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    return pipes


# --- the same images as plain diffusers -------------------------------------------------------------


def test_text2image_base_alone_matches_plain_sdxl(base_only: Engine, plain: dict[str, Any]) -> None:
    spec = sdxl_spec(Mode.TEXT2IMAGE)
    assert spec.guidance == describe_family(Family.SDXL).default_guidance
    out = base_only.generate(spec)
    theirs = plain["base"](spec.effective_prompt, num_inference_steps=STEPS, guidance_scale=spec.guidance,
                           height=spec.height, width=spec.width, generator=generator(spec.seed)).images[0]
    assert out.family == "sdxl" and "refiner" not in out.timings
    assert_same_image(out.images[0], theirs)


def test_text2image_base_and_refiner_match_the_model_cards_ensemble(engine: Engine,
                                                                    plain: dict[str, Any]) -> None:
    spec = sdxl_spec(Mode.TEXT2IMAGE, negative_prompt="blurry")
    out = engine.generate(spec)
    g = generator(spec.seed)
    latents = plain["base"](spec.effective_prompt, negative_prompt="blurry", num_inference_steps=STEPS,
                            guidance_scale=spec.guidance, height=spec.height, width=spec.width, generator=g,
                            denoising_end=FRACTION, output_type="latent").images
    theirs = plain["refiner"](spec.effective_prompt, negative_prompt="blurry", image=latents,
                              num_inference_steps=STEPS, denoising_start=FRACTION,
                              guidance_scale=spec.guidance, generator=g).images[0]
    assert "refiner" in out.timings and "unet" in out.timings
    assert_same_image(out.images[0], theirs)


def test_blend_matches_plain_img2img_then_the_refiner(engine: Engine, plain: dict[str, Any]) -> None:
    spec = sdxl_spec(Mode.BLEND)
    photo = smooth_image(4, (700, 500))
    out = engine.generate(spec, [photo])
    strength = blend_strength(0.6, STEPS)
    g = generator(spec.seed)
    latents = plain["img2img"](spec.effective_prompt, image=fit_to_size(photo, *WIDE), strength=strength,
                               num_inference_steps=STEPS, guidance_scale=spec.guidance, generator=g,
                               denoising_end=FRACTION, output_type="latent").images
    theirs = plain["refiner"](spec.effective_prompt, image=latents, num_inference_steps=STEPS,
                              denoising_start=FRACTION, guidance_scale=spec.guidance, generator=g).images[0]
    assert out.images[0].size == WIDE
    assert_same_image(out.images[0], theirs)


def test_variations_match_plain_img2img_at_a_moderate_strength(base_only: Engine,
                                                               plain: dict[str, Any]) -> None:
    spec = sdxl_spec(Mode.VARIATIONS)
    photo = smooth_image(5, WIDE)
    out = base_only.generate(spec, [photo])
    theirs = plain["img2img"](spec.effective_prompt, image=photo, strength=VARIATIONS_STRENGTH,
                              num_inference_steps=STEPS, guidance_scale=spec.guidance,
                              generator=generator(spec.seed)).images[0]
    assert_same_image(out.images[0], theirs)
    other = base_only.generate(sdxl_spec(Mode.VARIATIONS, seed=12), [photo])
    assert mean_abs_diff(out.images[0], other.images[0]) > 0.5, "each seed gives another variation"


def test_inpaint_matches_plain_sdxl_inpainting(engine: Engine, plain: dict[str, Any]) -> None:
    spec = sdxl_spec(Mode.INPAINT)
    photo = smooth_image(6, WIDE)
    mask = Image.new("L", WIDE, 0)
    mask.paste(255, (100, 50, 300, 200))
    out = engine.generate(spec, [photo], mask)
    theirs = plain["inpaint"](spec.effective_prompt, image=photo, mask_image=fit_mask(mask, *WIDE),
                              height=spec.height, width=spec.width, strength=1.0, num_inference_steps=STEPS,
                              guidance_scale=spec.guidance, generator=generator(spec.seed)).images[0]
    assert "refiner" not in out.timings
    assert_same_image(out.images[0], theirs)


# --- modes, sharing, progress, settings -----------------------------------------------------------


def test_sticker_is_cut_out_at_512(engine: Engine) -> None:
    out = engine.generate(sdxl_spec(Mode.STICKER, size=bucket_size("1:1", 512), steps=2))
    image = out.images[0]
    assert image.mode == "RGBA" and max(image.size) == 512
    alpha = np.asarray(image.getchannel("A"))
    assert alpha.min() == 0 and alpha.max() == 255
    assert "rembg" in out.timings


def test_the_pipelines_share_one_copy_of_every_module(sdxl: SDXLEngine) -> None:
    base, img2img, inpaint, refiner = (sdxl.base_pipeline(), sdxl.img2img_pipeline(), sdxl.inpaint_pipeline(),
                                       sdxl.refiner_pipeline())
    for pipe in (img2img, inpaint):
        for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
            assert getattr(pipe, name) is getattr(base, name)
    assert refiner.text_encoder_2 is base.text_encoder_2 and refiner.vae is base.vae
    assert refiner.unet is not base.unet and refiner.text_encoder is None


def test_progress_counts_each_experts_steps(engine: Engine, base_only: Engine) -> None:
    seen: list[tuple[str, int, int]] = []
    engine.generate(sdxl_spec(Mode.TEXT2IMAGE), on_progress=lambda *e: seen.append(e))
    assert seen == [("unet", 1, 3), ("unet", 2, 3), ("unet", 3, 3), ("refiner", 1, 1)]
    seen.clear()
    base_only.generate(sdxl_spec(Mode.TEXT2IMAGE), on_progress=lambda *e: seen.append(e))
    assert seen == [("unet", i, STEPS) for i in range(1, STEPS + 1)]
    seen.clear()
    engine.generate(sdxl_spec(Mode.VARIATIONS), [smooth_image(1, WIDE)],
                    on_progress=lambda *e: seen.append(e))
    assert seen == [("unet", 1, 1), ("refiner", 1, 1)], "img2img: steps × strength, split at the hand-over"


def test_expert_steps_follow_diffusers_filters() -> None:
    timesteps = torch.tensor([751.0, 501.0, 251.0, 1.0])
    assert expert_steps(timesteps, 1.0, 0.8) == (3, 1)
    assert expert_steps(timesteps, 0.5, 0.8) == (1, 1)
    assert expert_steps(timesteps, 1.0, 0.5) == (2, 2)


def test_one_step_runs_the_base_alone(engine: Engine) -> None:
    seen: list[tuple[str, int, int]] = []
    out = engine.generate(sdxl_spec(Mode.TEXT2IMAGE, steps=1), on_progress=lambda *e: seen.append(e))
    assert seen == [("unet", 1, 1)] and out.images[0].size == WIDE


def test_cancellation_lands_at_the_next_step(engine: Engine) -> None:
    seen: list[tuple[str, int, int]] = []
    with pytest.raises(JobCancelled):
        engine.generate(sdxl_spec(Mode.TEXT2IMAGE), on_progress=lambda *e: seen.append(e),
                        should_cancel=lambda: bool(seen))
    assert seen == [("unet", 1, 3)]


def test_the_vae_settings_replace_the_vae_and_its_upcast(tiny_bundle: Path) -> None:
    settings = EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", preload=False,
                              family_options={Family.SDXL: {"refiner": False, "vae_upcast": False,
                                                            "vae_id": str(tiny_bundle / FOLDER / "vae")}})
    family = Engine(settings, families=[Family.SDXL])[Family.SDXL]
    assert isinstance(family, SDXLEngine)
    assert family.model_ids["sdxl_vae"].endswith("vae")
    assert family.base_pipeline().vae.config.force_upcast is False


def test_a_prompt_over_77_tokens_is_read_whole_in_chunks(engine: Engine, sdxl: SDXLEngine) -> None:
    long_prompt = " ".join(["a red fox in the snow"] * 20)
    spec = sdxl_spec(Mode.TEXT2IMAGE, steps=2, prompt=long_prompt)
    assert sdxl.count_tokens(long_prompt) > describe_family(Family.SDXL).prompt_tokens
    assert sdxl.needs_compel(spec, spec.effective_prompt)
    run = _run_of(spec)
    embeds = sdxl._weighted(run, sdxl.base_pipeline(), spec.effective_prompt, refiner=False)
    assert embeds["prompt_embeds"].shape[1] > 77 and embeds["pooled_prompt_embeds"].shape == (1, 32)
    out = engine.generate(spec)
    assert not out.prompt_truncated and "compel" in out.timings and out.images[0].size == WIDE
    head = engine.generate(sdxl_spec(Mode.TEXT2IMAGE, steps=2, prompt=" ".join(long_prompt.split()[:12])))
    assert mean_abs_diff(out.images[0], head.images[0]) > 0.1, "the words past 77 tokens are read"


def _run_of(spec: JobSpec) -> Any:
    from worker.engine.base import Run, StepProgress

    return Run(spec, [], None, [generator(spec.seed)], StepProgress(None, None), {})


def test_up_weighting_a_word_raises_its_share_of_the_embedding(sdxl: SDXLEngine) -> None:
    pipe = sdxl.base_pipeline()

    def embeds(prompt: str) -> torch.Tensor:
        run = _run_of(sdxl_spec(Mode.TEXT2IMAGE, prompt=prompt or "x"))
        return sdxl._weighted(run, pipe, prompt, refiner=False)["prompt_embeds"][0]

    empty, plain_embeds = embeds(""), embeds("a red fox")
    red = 2  # start token, "a", "red"

    def share(e: torch.Tensor) -> float:
        distance = (e - empty).norm(dim=-1)
        return float(distance[red] / distance[1:4].sum())

    up, down = embeds("a (red:1.5) fox"), embeds("a (red)0.5 fox")
    assert share(up) > share(plain_embeds) > share(down)
    assert torch.allclose(embeds("a red++ fox")[red], embeds("a (red:1.21) fox")[red], atol=1e-5)


def test_weighted_prompts_change_the_image_and_plain_ones_skip_compel(engine: Engine) -> None:
    plain_out = engine.generate(sdxl_spec(Mode.TEXT2IMAGE, prompt="a red fox"))
    weighted = engine.generate(sdxl_spec(Mode.TEXT2IMAGE, prompt="a (red:1.8) fox",
                                         negative_prompt="(fog)0.6"))
    assert "compel" not in plain_out.timings and "compel" in weighted.timings
    assert mean_abs_diff(plain_out.images[0], weighted.images[0]) > 0.1


def test_a_malformed_weighting_is_refused_in_the_spec() -> None:
    for prompt, match in (("a (red car", "never closed"), ("a (red car:3)", "outside 0-2")):
        with pytest.raises(SpecError, match=match):
            JobSpec.parse({"model": "sdxl", "mode": "text2image", "prompt": prompt, "width": 512,
                           "height": 512})
    JobSpec.parse({"model": "kandinsky22", "mode": "text2image", "prompt": "a (red car", "width": 512,
                   "height": 512})  # Kandinsky reads brackets as words


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.MIX, Mode.DEPTH])
def test_mix_and_depth_are_refused_in_the_spec(mode: Mode) -> None:
    with pytest.raises(SpecError, match=r"not served by SDXL"):
        JobSpec.parse({"model": "sdxl", "mode": mode.value, "prompt": "x", "width": 512, "height": 512,
                       "inputs": ["a", "b"] if mode is Mode.MIX else ["a"],
                       "weights": [0.5, 0.5] if mode is Mode.MIX else []})


@pytest.mark.parametrize("victim", [f"{FOLDER}/unet/diffusion_pytorch_model.{VARIANT}.safetensors",
                                    f"{FOLDER}/tokenizer_2/tokenizer_config.json",
                                    f"{REFINER_FOLDER}/unet/config.json"])
def test_an_incomplete_folder_is_refused_naming_the_missing_file(tiny_bundle: Path, tmp_path: Path,
                                                                 victim: str) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns("translate", "transcribe"))
    (bundle / victim).unlink()
    settings = EngineSettings(model_dir=bundle, device="cpu", preload=False)
    with pytest.raises(ModelFolderError, match=rf"SDXL.*missing .*{re.escape(victim)}"):
        Engine(settings, families=[Family.SDXL])


def test_the_refiner_folder_is_only_needed_with_the_refiner_on(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle, ignore=shutil.ignore_patterns("translate", "transcribe",
                                                                       REFINER_FOLDER))
    with pytest.raises(ModelFolderError, match="no sdxl_refiner/ folder"):
        Engine(EngineSettings(model_dir=bundle, device="cpu", preload=False), families=[Family.SDXL])
    off = Engine(EngineSettings(model_dir=bundle, device="cpu", preload=False, family_options=BASE_ONLY),
                 families=[Family.SDXL])
    assert off.held == (Family.SDXL,) and "sdxl_refiner" not in off.model_ids[Family.SDXL]


# --- the command line -------------------------------------------------------------------------------


def test_generate_with_model_sdxl_in_a_subprocess(tiny_bundle: Path, tmp_path: Path, engine: Engine) -> None:
    out = tmp_path / "sdxl.png"
    proc = run_cli("--model", "sdxl", "--prompt", "a red fox in the snow", "--aspect", "16:9",
                   "--long-side", "512", "--steps", "4", "--seed", "9", "--model-dir", str(tiny_bundle),
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "SDXL: mode text2image 512x320" in proc.stdout and "seeds: 9" in proc.stdout
    assert "refiner" in proc.stdout
    expected = engine.generate(sdxl_spec(Mode.TEXT2IMAGE, seed=9, size=(512, 320), steps=4,
                                         aspect="16:9")).images[0]
    assert expected.size == (512, 288)
    assert np.array_equal(as_array(Image.open(out).convert("RGB")), as_array(expected))
