"""The engine's opt-in speed settings (worker/engine/speed.py) on the tiny bundle, on the CPU.

What is checked here is that each setting is applied, keeps every mode working (progress,
cancellation, sizes) and changes the image only where it says it does; how much faster each one
is belongs to ``bench/bench_engine_gpu.py``, never to a test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from pydantic import ValidationError

from contract.families import Family
from contract.spec import Mode, bucket_size
from tests.worker.test_engine import as_array, inputs_for, make_spec
from worker.engine import Engine, EngineSettings, JobCancelled
from worker.engine.families import Kandinsky22Engine
from worker.engine.speed import RECOMPILE_LIMIT, compile_forward

WARM_SIZE = "{}x{}".format(*bucket_size("16:9", 512))  # the cheapest bucket, as in test_engine
MAX_PIXEL_DIFF = 2
"""Same computation in another memory layout or through traced graphs: float32 rounding may move
a pixel by a level or two, never more."""
MODES = (Mode.TEXT2IMAGE, Mode.DEPTH, Mode.INPAINT)
"""One mode per decoder UNet (text2image, ControlNet img2img, inpaint)."""


def run(engine: Engine | Kandinsky22Engine, mode: Mode,
        **overrides: Any) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    spec = make_spec(mode, **overrides)
    images, mask = inputs_for(spec)
    seen: list[tuple[str, int, int]] = []
    out = engine.generate(spec, images, mask, on_progress=lambda *event: seen.append(event))
    assert out.images[0].size == (spec.width, spec.height)
    return as_array(out.images[0]), seen


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a - b).max())


def load(tiny_bundle: Path, **settings: Any) -> Kandinsky22Engine:
    """A Kandinsky 2.2 engine with ``settings`` (the speed options are that family's)."""
    engine = Engine.load(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", **settings),
                         families=[Family.KANDINSKY22])
    return k22(engine)


def k22(engine: Engine) -> Kandinsky22Engine:
    family = engine[Family.KANDINSKY22]
    assert isinstance(family, Kandinsky22Engine)
    return family


@pytest.fixture
def restore_dynamo_limits() -> Iterator[None]:
    config: Any = torch._dynamo.config
    saved = (config.recompile_limit, config.accumulated_recompile_limit)
    yield
    config.recompile_limit, config.accumulated_recompile_limit = saved
    torch._dynamo.reset()


# --- channels_last -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_channels_last_gives_the_default_image(engine: Engine, tiny_bundle: Path, mode: Mode) -> None:
    nhwc = load(tiny_bundle, channels_last=True, preload=False)
    image, seen = run(nhwc, mode)
    reference, reference_seen = run(engine, mode)
    unet = {Mode.TEXT2IMAGE: nhwc.decoder_pipeline, Mode.DEPTH: nhwc.controlnet_pipeline,
            Mode.INPAINT: nhwc.inpaint_pipeline}[mode]().unet
    conv = next(m for m in unet.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert max_diff(image, reference) <= MAX_PIXEL_DIFF
    assert seen == reference_seen


# --- scheduler ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"), [("ddim", DDIMScheduler), ("dpmpp-2m", DPMSolverMultistepScheduler)]
)
def test_multistep_scheduler_drives_every_decoder(
    engine: Engine, tiny_bundle: Path, name: str, kind: type[Any]
) -> None:
    fast = load(tiny_bundle, scheduler=name, preload=False)
    for mode in MODES:
        # Four steps: at two, depth's single img2img step lands too close to the DDPM one to tell.
        image, seen = run(fast, mode, steps=4)
        reference, reference_seen = run(engine, mode, steps=4)
        # Same number of decoder steps reported (depth runs steps × strength of them) ...
        decoder = [event for event in seen if event[0] == "decoder"]
        assert decoder == [event for event in reference_seen if event[0] == "decoder"]
        assert decoder[-1][1] == decoder[-1][2]
        # ... but another solver: another image for the same seed (the documented trade-off).
        assert max_diff(image, reference) > MAX_PIXEL_DIFF
    trained = k22(engine).decoder_pipeline().scheduler.config.num_train_timesteps
    for pipe in (fast.decoder_pipeline(), fast.inpaint_pipeline(), fast.controlnet_pipeline()):
        assert isinstance(pipe.scheduler, kind)
        assert pipe.scheduler.config.num_train_timesteps == trained
    assert isinstance(k22(engine).decoder_pipeline().scheduler, DDPMScheduler), "ddpm stays the default"


def test_unknown_scheduler_and_warmup_size_are_refused(tiny_bundle: Path) -> None:
    with pytest.raises(ValidationError, match="scheduler"):
        EngineSettings(model_dir=tiny_bundle, scheduler="euler")
    with pytest.raises(ValidationError, match="not one of the size buckets"):
        EngineSettings(model_dir=tiny_bundle, warmup_sizes=["500x500"])
    with pytest.raises(ValidationError, match="not WIDTHxHEIGHT"):
        EngineSettings(model_dir=tiny_bundle, warmup_sizes=["big"])


def test_speed_settings_come_from_kandinsky_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANDINSKY_CHANNELS_LAST", "1")
    monkeypatch.setenv("KANDINSKY_COMPILE", "true")
    monkeypatch.setenv("KANDINSKY_SCHEDULER", "ddim")
    monkeypatch.setenv("KANDINSKY_WARMUP_SIZES", '["768x768", "1024x576"]')
    settings = EngineSettings()
    assert settings.channels_last and settings.compile and settings.scheduler == "ddim"
    assert settings.warmup_sizes == ("768x768", "1024x576")
    monkeypatch.delenv("KANDINSKY_CHANNELS_LAST")
    monkeypatch.delenv("KANDINSKY_COMPILE")
    defaults = EngineSettings()
    assert not defaults.channels_last and not defaults.compile


# --- torch.compile -----------------------------------------------------------------------------


def test_compiled_engine_warms_up_every_graph_family_and_keeps_hooks(
    engine: Engine, tiny_bundle: Path, restore_dynamo_limits: None
) -> None:
    # The "eager" backend captures graphs with dynamo exactly as inductor gets them, then runs
    # them as captured: the wiring (what is compiled, warm-up, hooks, recompiles) at a test's cost.
    compiled = load(tiny_bundle, compile=True, compile_backend="eager", warmup_sizes=[WARM_SIZE])
    assert set(compiled.warmup_timings) == {f"{mode} {WARM_SIZE}" for mode in MODES}
    assert all(seconds > 0 for seconds in compiled.warmup_timings.values())
    assert torch._dynamo.config.recompile_limit >= RECOMPILE_LIMIT
    for mode in MODES:
        image, seen = run(compiled, mode)
        reference, reference_seen = run(engine, mode)
        assert max_diff(image, reference) <= MAX_PIXEL_DIFF
        assert seen == reference_seen, "prior steps are still counted by the forward hook"
    # Another bucket and a batch of two compile on first use and stay correct.
    square = bucket_size("1:1", 512)
    image, _ = run(compiled, Mode.TEXT2IMAGE, size=square, num_images=2)
    reference, _ = run(engine, Mode.TEXT2IMAGE, size=square, num_images=2)
    assert max_diff(image, reference) <= MAX_PIXEL_DIFF
    # Cancellation still lands at the next prior step.
    ticks: list[tuple[str, int, int]] = []
    spec = make_spec(Mode.TEXT2IMAGE, steps=4, prior_steps=4)
    with pytest.raises(JobCancelled):
        compiled.generate(spec, on_progress=lambda *e: ticks.append(e), should_cancel=lambda: bool(ticks))
    assert ticks == [("prior", 1, 4)]


def test_compile_is_applied_once_per_module(tiny_bundle: Path, restore_dynamo_limits: None) -> None:
    unet = load(tiny_bundle, preload=False).decoder_pipeline().unet
    compile_forward(unet, "default", "eager")
    first = unet.forward
    compile_forward(unet, "default", "eager")  # the shared MoVQ/prior reach this twice
    assert unet.forward is first


def test_inductor_compiled_prior_matches_eager(tiny_bundle: Path, restore_dynamo_limits: None) -> None:
    """The real backend once, on the prior transformer alone: a cold Inductor compile of the whole
    engine costs minutes on two CPU cores (the UNet alone about a minute, the prior ~20 s); the
    wiring of every compiled module is the test above."""
    prior = load(tiny_bundle, preload=False).prior_pipeline().prior
    generator = torch.Generator().manual_seed(0)
    dim = prior.config.embedding_dim
    inputs = {
        "hidden_states": torch.randn(2, dim, generator=generator),
        "proj_embedding": torch.randn(2, dim, generator=generator),
        "encoder_hidden_states": torch.randn(2, 77, dim, generator=generator),
        "attention_mask": torch.ones(2, 77, dtype=torch.bool),
    }
    with torch.no_grad():
        eager = prior(timestep=10, **inputs).predicted_image_embedding
        compile_forward(prior, "default", "inductor")
        compiled = prior(timestep=10, **inputs).predicted_image_embedding
    assert getattr(prior, "_kandinsky_compiled", False)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)
