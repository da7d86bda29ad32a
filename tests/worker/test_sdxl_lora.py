"""SDXL's LoRA styles on the tiny bundle (its ``loras/`` folder: two random adapters and a catalogue):
the same picture as plain diffusers with the same adapters and weights, a style off gives the plain
picture back bit for bit, jobs in a row each get their own adapters, and every adapter or catalogue
entry that cannot be used is refused at start with its file's name while the others still work."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from PIL import Image
from safetensors.torch import load_file, save_file

from contract.families import Family
from contract.loras import MAX_LORAS_PER_JOB, LoraChoice, LoraStyle, styled_prompt
from contract.spec import JobSpec, Mode, SpecError
from devkit.tiny_lora import FOLDER as LORA_FOLDER
from devkit.tiny_lora import write_lora
from devkit.tiny_sdxl import FOLDER, VARIANT
from tests.worker.pixels import FAMILY_STEPS, WIDE, assert_same_image, family_spec
from worker.engine import Engine, EngineSettings
from worker.engine.base import StyleUnavailable
from worker.engine.loras import CATALOGUE_FILE, read_catalogue

BASE_ONLY: dict[Family, dict[str, Any]] = {Family.SDXL: {"refiner": False}}
INK = LoraChoice(name="ink", weight=0.8)
NEON = LoraChoice(name="neon", weight=0.5)


def spec(*loras: LoraChoice, mode: Mode = Mode.TEXT2IMAGE, **fields: Any) -> JobSpec:
    return family_spec(Family.SDXL, mode, 11, WIDE, loras=loras, **fields)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def load(bundle: Path, lora_dir: Path | None, **options: Any) -> Engine:
    settings = EngineSettings(model_dir=bundle, device="cpu", dtype="float32", lora_dir=lora_dir,
                              family_options={Family.SDXL: {"refiner": False, **options}})
    return Engine.load(settings, families=[Family.SDXL])


@pytest.fixture(scope="module")
def styled(tiny_bundle: Path) -> Engine:
    """The base alone (every step) with the bundle's two styles loaded."""
    return load(tiny_bundle, tiny_bundle / LORA_FOLDER)


@pytest.fixture(scope="module")
def unstyled(tiny_bundle: Path) -> Engine:
    return load(tiny_bundle, None)


def test_the_bundles_styles_load_and_nothing_is_refused(styled: Engine) -> None:
    adapters = styled[Family.SDXL].loras
    assert list(adapters.loaded) == ["ink", "neon"] and not adapters.refused
    assert [s.name for s in styled.lora_styles()[Family.SDXL]] == ["ink", "neon"]
    assert adapters.loaded["neon"].triggers == "neon glow, night"


def test_a_style_changes_the_picture_and_off_gives_the_plain_one_back_exactly(
        styled: Engine, unstyled: Engine) -> None:
    plain = pixels(unstyled.generate(spec()).images[0])
    assert np.array_equal(pixels(styled.generate(spec()).images[0]), plain), "loaded but off changes nothing"
    inked = pixels(styled.generate(spec(INK)).images[0])
    assert np.abs(inked.astype(int) - plain).mean() > 1.0, "the style changed the picture"
    assert np.array_equal(pixels(styled.generate(spec()).images[0]), plain), "off again: the plain picture"


def test_styles_match_plain_diffusers_with_the_same_adapters_and_weights(styled: Engine,
                                                                        tiny_bundle: Path) -> None:
    pipe: Any = StableDiffusionXLPipeline.from_pretrained(tiny_bundle / FOLDER, variant=VARIANT,
                                                          dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    folder = tiny_bundle / LORA_FOLDER
    pipe.load_lora_weights(folder / "ink.safetensors", adapter_name="ink")
    pipe.load_lora_weights(folder / "neon.safetensors", adapter_name="neon")
    pipe.set_adapters(["ink", "neon"], adapter_weights=[INK.weight, NEON.weight])
    job = spec(INK, NEON)
    prompt = f"ink sketch, neon glow, night, {job.effective_prompt}"
    theirs = pipe(prompt, num_inference_steps=FAMILY_STEPS, guidance_scale=job.guidance, height=job.height,
                  width=job.width, generator=torch.Generator("cpu").manual_seed(job.seed)).images[0]
    assert_same_image(styled.generate(job).images[0], theirs)


def test_jobs_in_a_row_each_get_their_own_styles(styled: Engine) -> None:
    first = pixels(styled.generate(spec(NEON)).images[0])
    inked = pixels(styled.generate(spec(INK)).images[0])
    both = pixels(styled.generate(spec(INK, NEON)).images[0])
    heavier = pixels(styled.generate(spec(NEON.model_copy(update={"weight": 1.5}))).images[0])
    again = pixels(styled.generate(spec(NEON)).images[0])
    assert np.array_equal(first, again), "nothing of the jobs between stayed on"
    assert not np.array_equal(first, inked) and not np.array_equal(inked, both)
    assert not np.array_equal(first, heavier), "the weight is the job's"


def test_every_base_mode_takes_styles_and_the_refiner_runs_after_them(tiny_bundle: Path) -> None:
    ensemble = Engine.load(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32",
                                          lora_dir=tiny_bundle / LORA_FOLDER), families=[Family.SDXL])
    grey = Image.new("RGB", (256, 256), (120, 130, 140))
    mask = Image.new("L", grey.size, 0)
    mask.paste(255, (0, 0, 128, 128))
    for mode, images, m in ((Mode.TEXT2IMAGE, [], None), (Mode.BLEND, [grey], None),
                            (Mode.VARIATIONS, [grey], None), (Mode.INPAINT, [grey], mask)):
        plain = pixels(ensemble.generate(spec(mode=mode), images, m).images[0])
        inked = pixels(ensemble.generate(spec(INK, mode=mode), images, m).images[0])
        assert not np.array_equal(plain, inked), mode
    out = ensemble.generate(spec(INK))
    assert "refiner" in out.timings


def test_a_style_the_worker_did_not_load_is_refused_before_any_model_runs(styled: Engine,
                                                                          unstyled: Engine) -> None:
    with pytest.raises(StyleUnavailable, match="not loaded on this worker: ink"):
        unstyled.generate(spec(INK))
    with pytest.raises(StyleUnavailable, match="gone"):
        styled.generate(spec(LoraChoice(name="gone", weight=1.0)))


# --- refusals at start --------------------------------------------------------------------------------


def catalogue_entry(name: str, file: str, family: str = "sdxl", **more: object) -> str:
    extra = "".join(f"{k} = {v!r}\n" for k, v in more.items())
    return (f'[[style]]\nname = "{name}"\ntitle = "{name.title()}"\nfile = "{file}"\n'
            f'family = "{family}"\n{extra}\n')


def test_bad_adapters_are_refused_at_start_with_their_file_and_the_others_work(
        tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copy(tiny_bundle / LORA_FOLDER / "ink.safetensors", tmp_path / "ink.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"this is not a safetensors file\n" * 4)
    save_file({"weight": torch.zeros(3)}, str(tmp_path / "plain-weights.safetensors"))
    ink = load_file(str(tiny_bundle / LORA_FOLDER / "ink.safetensors"))
    save_file({**ink, "unet.extra.weight": torch.zeros(3)}, str(tmp_path / "mixed.safetensors"))
    from devkit.tiny_models import _unet  # Kandinsky 2.2's decoder UNet: another model's adapter

    write_lora(tmp_path / "kandinsky.safetensors", _unet(4, "image"), seed=3)
    shutil.copy(tiny_bundle / LORA_FOLDER / "ink.safetensors", tmp_path / "ink-for-k22.safetensors")
    (tmp_path / CATALOGUE_FILE).write_text(
        catalogue_entry("broken", "broken.safetensors")
        + catalogue_entry("ink", "ink.safetensors", triggers=["ink sketch"], weight=0.8)
        + catalogue_entry("plain", "plain-weights.safetensors")
        + catalogue_entry("mixed", "mixed.safetensors")
        + catalogue_entry("other", "kandinsky.safetensors")
        + catalogue_entry("missing", "missing.safetensors")
        + catalogue_entry("k22", "ink-for-k22.safetensors", family="kandinsky22")
        + catalogue_entry("Bad Name", "ink.safetensors")
        + catalogue_entry("ink", "ink.safetensors"),  # the name again
        encoding="utf-8")
    with caplog.at_level(logging.INFO):
        engine = load(tiny_bundle, tmp_path)
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    adapters = engine[Family.SDXL].loras
    assert list(adapters.loaded) == ["ink"]
    assert set(adapters.refused) == {"broken.safetensors", "plain-weights.safetensors", "mixed.safetensors",
                                      "kandinsky.safetensors", "missing.safetensors"}
    assert f"{tmp_path / 'broken.safetensors'}: not a safetensors file" in errors
    assert "plain-weights.safetensors: it holds no LoRA weights" in errors
    assert "mixed.safetensors: not all its weights are LoRA weights" in errors
    assert "kandinsky.safetensors: its" in errors and "an adapter for another model?" in errors
    assert "missing.safetensors: no such file" in errors
    assert "'k22' (ink-for-k22.safetensors) refused: Kandinsky 2.2 takes no LoRA styles" in errors
    assert "style 8 (ink.safetensors): name: String should match pattern" in errors
    assert "style 9 (ink.safetensors): the name 'ink' is taken by an earlier style" in errors
    assert errors.count("the other styles still work") == 5
    assert "No LoRA keys associated" not in caplog.text, "a UNet-only adapter is no news"
    inked = engine.generate(spec(INK))
    assert inked.images and engine.lora_styles() == {Family.SDXL: (adapters.loaded["ink"],)}
    assert sorted(engine.lora_refused()) == sorted(adapters.refused), "what /workers lists"
    with pytest.raises(StyleUnavailable, match="broken"):
        engine.generate(spec(LoraChoice(name="broken", weight=1.0)))


def test_an_unreadable_catalogue_loads_no_style_and_the_worker_still_starts(
        tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / CATALOGUE_FILE).write_text('[[style]]\nname = "ink\n', encoding="utf-8")
    unreadable = read_catalogue(tmp_path).problems
    assert unreadable[0].startswith(f"{tmp_path / CATALOGUE_FILE}: not a readable TOML")
    assert "no such file" in read_catalogue(tmp_path / "nowhere").problems[0]
    (tmp_path / CATALOGUE_FILE).write_text('style = "ink"\n', encoding="utf-8")
    assert "must be a list of [[style]] tables" in read_catalogue(tmp_path).problems[0]
    settings = EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32", preload=False,
                              lora_dir=tmp_path / "nowhere", family_options=BASE_ONLY)
    with caplog.at_level(logging.ERROR):
        engine = Engine(settings, families=[Family.SDXL])  # what the worker builds at start
    assert engine.lora_styles() == {} and "LoRA catalogue:" in caplog.text
    assert engine[Family.SDXL].loras.offered == ()


def test_a_catalogue_entry_reads_triggers_as_one_phrase_and_checks_its_file_name() -> None:
    style = LoraStyle.model_validate({"name": "ink", "title": "Ink", "file": "ink.safetensors",
                                      "family": "sdxl", "triggers": ["ink sketch", " bold lines "]})
    assert style.triggers == "ink sketch, bold lines" and style.weight == 1.0
    assert styled_prompt("a cat", [style]) == "ink sketch, bold lines, a cat"
    for file, problem in (("../ink.safetensors", "not a path"), ("ink.ckpt", "not a .safetensors file")):
        with pytest.raises(ValueError, match=problem):
            LoraStyle.model_validate({"name": "ink", "title": "Ink", "file": file, "family": "sdxl"})


# --- the spec ------------------------------------------------------------------------------------------


def test_the_spec_refuses_styles_a_family_does_not_take_too_many_or_one_twice() -> None:
    with pytest.raises(SpecError, match=r"Kandinsky 2\.2 takes no LoRA styles"):
        JobSpec.from_json(json.dumps({"mode": "text2image", "prompt": "a cat", "width": 512, "height": 512,
                                      "loras": [{"name": "ink", "weight": 1.0}]}))
    many = tuple(LoraChoice(name=f"s{i}", weight=1.0) for i in range(MAX_LORAS_PER_JOB + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_LORAS_PER_JOB} LoRA styles"):
        spec(*many)
    with pytest.raises(ValueError, match="named twice: ink"):
        spec(INK, INK.model_copy(update={"weight": 1.2}))
    for weight in (0.0, 2.5, float("nan")):
        with pytest.raises(ValueError):
            LoraChoice(name="ink", weight=weight)
    assert JobSpec.from_json(spec(INK, NEON).to_json()).loras == (INK, NEON)


def test_an_empty_lora_dir_setting_means_no_styles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANDINSKY_LORA_DIR", "")  # docker-compose's default
    assert EngineSettings().lora_dir is None
    monkeypatch.setenv("KANDINSKY_LORA_DIR", "/loras")
    assert EngineSettings().lora_dir == Path("/loras")
