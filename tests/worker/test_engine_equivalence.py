"""Speed work must never change what users get: for the same spec and seed, the engine's image
matches the plain Kandinsky 2.2 model-card recipe run with stock diffusers pipelines loaded by
``from_pretrained`` from the bundle's subfolders (separate copies of every module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import (
    KandinskyV22ControlnetImg2ImgPipeline,
    KandinskyV22Pipeline,
    KandinskyV22PriorEmb2EmbPipeline,
    KandinskyV22PriorPipeline,
)
from PIL import Image
from transformers import AutoImageProcessor, DPTForDepthEstimation, pipeline

from contract.spec import JobSpec, Mode, Style, bucket_size
from tests.worker.pixels import assert_same_image
from worker.engine import Engine

SIZE = bucket_size("1:1", 512)
STEPS = 3


def smooth_image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : SIZE[1], 0 : SIZE[0]].astype(np.float32)
    channels = [
        127 + 120 * np.sin(xx / rng.uniform(20, 60)) * np.cos(yy / rng.uniform(20, 60)) for _ in range(3)
    ]
    return Image.fromarray(np.stack(channels, axis=2).clip(0, 255).astype(np.uint8), "RGB")


def decode(recipe_decoder: Any, spec: JobSpec, embeds: Any, negative: Any, generator: Any) -> Image.Image:
    """The model card's decoder step on the prior's embeddings, at the spec's size, steps and guidance."""
    return recipe_decoder(image_embeds=embeds, negative_image_embeds=negative, height=spec.height,
                          width=spec.width, num_inference_steps=spec.steps, guidance_scale=spec.guidance,
                          generator=generator).images[0]


def spec_for(mode: Mode, **fields: Any) -> JobSpec:
    return JobSpec(
        mode=mode,
        width=SIZE[0],
        height=SIZE[1],
        seed=1234,
        steps=STEPS,
        prior_steps=STEPS,
        guidance=4.0,
        prior_guidance=4.0,
        **fields,
    )


@pytest.fixture(scope="module")
def recipe_prior(tiny_bundle: Path) -> Any:
    pipe = KandinskyV22PriorPipeline.from_pretrained(tiny_bundle / "prior", torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def recipe_decoder(tiny_bundle: Path) -> Any:
    pipe = KandinskyV22Pipeline.from_pretrained(tiny_bundle / "decoder", torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_text2image_matches_the_model_card_recipe(
    engine: Engine, recipe_prior: Any, recipe_decoder: Any
) -> None:
    spec = spec_for(Mode.TEXT2IMAGE, prompt="red cat, 4k photo", style=Style.ARTSTATION)
    ours = engine.generate(spec).images[0]

    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    image_emb, zero_image_emb = recipe_prior(
        spec.effective_prompt,
        num_inference_steps=spec.prior_steps,
        guidance_scale=spec.prior_guidance,
        generator=generator,
    ).to_tuple()
    assert_same_image(ours, decode(recipe_decoder, spec, image_emb, zero_image_emb, generator))


def test_mix_matches_the_interpolate_recipe(engine: Engine, recipe_prior: Any, recipe_decoder: Any) -> None:
    spec = spec_for(Mode.MIX, inputs=("a", "b"), weights=(0.3, 0.7))
    first, second = smooth_image(1), smooth_image(2)
    ours = engine.generate(spec, [first, second]).images[0]

    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    out = recipe_prior.interpolate(
        [first, second],
        [0.3, 0.7],
        num_inference_steps=spec.prior_steps,
        guidance_scale=spec.prior_guidance,
        generator=generator,
    )
    theirs = decode(recipe_decoder, spec, out.image_embeds, out.negative_image_embeds, generator)
    assert_same_image(ours, theirs)


def make_hint(image: Image.Image, depth_estimator: Any) -> torch.Tensor:
    """The model card's make_hint, verbatim in spirit: pipeline depth → 3 channels → [0, 1]."""
    depth = np.array(depth_estimator(image)["depth"])[:, :, None]
    depth = np.concatenate([depth, depth, depth], axis=2)
    return (torch.from_numpy(depth).float() / 255.0).permute(2, 0, 1)


def test_depth_matches_the_controlnet_model_card_recipe(engine: Engine, tiny_bundle: Path) -> None:
    spec = spec_for(Mode.DEPTH, prompt="A robot, 4k photo", inputs=("a",), strength=0.7)
    photo = smooth_image(3)
    ours = engine.generate(spec, [photo]).images[0]

    depth_estimator = pipeline(
        "depth-estimation",
        model=DPTForDepthEstimation.from_pretrained(tiny_bundle / "depth"),
        image_processor=AutoImageProcessor.from_pretrained(tiny_bundle / "depth"),
        device="cpu",
    )
    hint = make_hint(photo, depth_estimator).unsqueeze(0)
    pipe_prior = KandinskyV22PriorEmb2EmbPipeline.from_pretrained(tiny_bundle / "prior")
    pipe_prior.set_progress_bar_config(disable=True)
    pipe = KandinskyV22ControlnetImg2ImgPipeline.from_pretrained(tiny_bundle / "controlnet_depth")
    pipe.set_progress_bar_config(disable=True)

    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    img_emb = pipe_prior(
        prompt=spec.effective_prompt,
        image=photo,
        strength=0.85,
        num_inference_steps=spec.prior_steps,
        guidance_scale=spec.prior_guidance,
        generator=generator,
    )
    theirs = pipe(
        image=photo,
        strength=spec.strength,
        image_embeds=img_emb.image_embeds,
        negative_image_embeds=img_emb.negative_image_embeds,
        hint=hint,
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=generator,
        height=spec.height,
        width=spec.width,
    ).images[0]
    assert_same_image(ours, theirs)
