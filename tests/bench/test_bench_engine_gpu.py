"""bench/bench_engine_gpu.py in its CPU-sized mode: it runs every mode, measures, and writes honest JSON."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from tests.bench.scripts import load_script

SIZE = "512x320"
"""The smallest bucket: every mode at one size, cheaply (the small models are what is small)."""
MODES = ("text2image", "sticker", "mix", "blend", "variations", "depth", "inpaint", "outpaint")
K3_MODES = ("text2image", "blend", "variations", "sticker")
"""What Kandinsky 3.0 serves: its compare cells, engine vs plain Kandinsky3Pipeline / Img2Img."""


def load_bench() -> ModuleType:
    return load_script("bench_engine_gpu")


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: on two shared cores a second one only waits for the neighbours."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


Run = tuple[dict[str, Any], str, Path, Path]
"""A bench run: its report, what it printed, its results file, and the bundle it used."""

FIRST_MODES = ("text2image", "sticker", "mix", "blend")
"""The first run's modes; the other 2.2 modes run apart, so that no module run is one long test."""


def run_bench(out: Path, bundle: Path, *args: str, bench: ModuleType | None = None) -> Run:
    """One CPU-sized bench run at ``SIZE`` with only the variants ``args`` asks for (``bench``: a
    loaded bench module a test has patched)."""
    argv = ["--small", "--device", "cpu", "--sizes", SIZE, "--batch-size-for", SIZE, "--no-default-variants",
            "--bundle-dir", str(bundle), "--out-dir", str(out), *args]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert (bench or load_bench()).main(argv) == 0
    (path,) = out.glob("bench_engine_gpu-cpu-small-*.json")
    return json.loads(path.read_text()), printed.getvalue(), path, bundle


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Run:
    """The first Kandinsky 2.2 modes against plain, a text2image batch sweep of 1 and 2, and a
    variant that cannot even load (an unknown compile backend), which must not end the run."""
    root = tmp_path_factory.mktemp("bench-engine")
    return run_bench(
        root / "out", root / "bundle", "--families", "kandinsky22", "--modes", *FIRST_MODES,
        "--batches", "1", "2", "--batch-modes", "text2image",
        "--variant", "broken:compile=true,compile_backend=no-such-backend",
    )


@pytest.fixture(scope="module")
def later_run(small_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The other Kandinsky 2.2 modes, on the first run's bundle."""
    later = [m for m in MODES if m not in FIRST_MODES]
    return run_bench(
        tmp_path_factory.mktemp("bench-engine-later"), small_run[3], "--families", "kandinsky22",
        "--modes", *later, "--batches", "1",
    )


@pytest.fixture(scope="module")
def k3_run(small_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Kandinsky 3.0's modes against plain Kandinsky3Pipeline / Img2Img, on 2.2's finished bundle
    (which gets its 3.0 folder added)."""
    return run_bench(
        tmp_path_factory.mktemp("bench-engine-k3"), small_run[3], "--families", "kandinsky3",
        "--modes", *K3_MODES,
    )


def cells(
    report: dict[str, Any], section: str, family: str = "kandinsky22"
) -> dict[tuple[str, int], dict[str, Any]]:
    return {
        (c["mode"], c["batch"]): c
        for c in report["cells"]
        if c["section"] == section and c["family"] == family
    }


def check_compare_cells(run: Run, modes: tuple[str, ...]) -> None:
    """Each mode's engine timings add up and match plain Kandinsky 2.2 pixel for pixel."""
    report, printed, path, _ = run
    assert report["complete"] is True and report["device"] == "cpu" and report["scale"] == "small"
    assert report["versions"]["torch"] and report["machine"]["cpu_count"]  # bench.common metadata
    compare = cells(report, "compare")
    assert {mode for mode, _ in compare} == set(modes)
    for (mode, _), cell in compare.items():
        assert (cell["width"], cell["height"]) == (512, 320)
        engine = cell["recipes"]["engine"]
        median = engine["median"]
        assert median["total"] > 0 and median["decoder_steps"] > 0 and median["movq_decode"] > 0
        assert median["total"] >= median["decoder_steps"] + median["movq_decode"]
        assert engine["first_run_s"] > 0 and engine["load_s"] >= 0
        assert engine["s_per_image"] == pytest.approx(median["total"])
        assert engine["images_per_minute"] == pytest.approx(60 / median["total"])
        assert engine["unet_calls_per_job"] >= 1
        assert cell["unet_flops_per_job"] > 0 and cell["achieved_unet_tflops"] > 0
        assert cell["unet_fraction_of_matmul_rate"] > 0
        # No GPU: no peak memory is reported, rather than a made-up one.
        assert engine["peak_gpu_gib"] is None and cell["peak_gpu_gib"] is None
        if mode == "sticker":
            assert median["rembg"] > 0 and cell["rembg_model"] == "small random seg net, not u2net"
            assert "text2image row" in cell["recipes"]["plain"]["skipped"]
            assert "engine_speedup_vs_plain" not in cell
        else:
            assert cell["recipes"]["plain"]["median"]["total"] > 0
            assert cell["engine_speedup_vs_plain"] > 0
            # Speed work must not change the image: same spec, same seed, same pixels as the recipe.
            assert cell["engine_vs_plain_max_pixel_diff"] <= 3
        if mode == "depth":
            assert median["depth"] > 0
            assert engine["unet_calls_per_job"] == 1  # img2img: int(2 steps × 0.6 strength)
        if mode in ("text2image", "inpaint"):
            assert cell["prior_flops_per_job"] > 0
        assert cell["offload_skipped"] == "enable_model_cpu_offload needs a CUDA device"
        assert "engine_speedup_vs_offload" not in cell
    # The matmul rate is measured, not looked up; no datasheet peak is invented for a CPU.
    assert report["matmul_tflops_measured"] > 0 and report["matmul"]["dtype"] == "float32"
    assert report["datasheet_dense_bf16_tflops"] is None
    assert report["not_run"] == [] and report["goal_text2image_1024"] is None
    for mode in modes:  # printed table: one engine row per mode
        assert any(line.split()[:4] == [mode, SIZE, "1", "engine"] for line in printed.splitlines())
    assert str(path) in printed
    offload = cells(report, "offload")
    assert len(offload) == len(modes)
    for cell in offload.values():
        block = cell["recipes"]["offload"]
        assert block["skipped"] == "enable_model_cpu_offload needs a CUDA device"
        assert "median" not in block and "engine_speedup_vs_offload" not in cell
    assert report["offload_steps"] == {"steps": 100, "prior_steps": 25}  # the combined pipelines' defaults


def test_every_mode_is_timed_against_plain_on_the_service_path(small_run: Run) -> None:
    check_compare_cells(small_run, FIRST_MODES)
    report = small_run[0]
    first, *later = [c for c in report["cells"] if c["section"] == "compare" and c["family"] == "kandinsky22"]
    assert first["recipes"]["broken"]["error"].startswith("InvalidBackend at loading")
    assert "median" not in first["recipes"]["broken"]
    for cell in later:
        assert cell["recipes"]["broken"]["skipped"].startswith("failed in an earlier cell: InvalidBackend")
    text2image = cells(report, "compare")[("text2image", 1)]
    assert text2image["unet_flops_per_job"] == 2 * text2image["unet_flops_per_forward"]
    assert report["bundle_reused"] is False and report["bundle_build_s"] > 0


def test_the_other_modes_are_timed_the_same_way(later_run: Run) -> None:
    check_compare_cells(later_run, tuple(m for m in MODES if m not in FIRST_MODES))
    assert later_run[0]["bundle_reused"] is True and later_run[0]["bundle_build_s"] == 0


def test_batch_sweep(small_run: Run) -> None:
    report, *_ = small_run
    (batch2,) = cells(report, "batch").values()
    assert (batch2["mode"], batch2["batch"]) == ("text2image", 2)
    engine = batch2["recipes"]["engine"]
    assert engine["s_per_image"] == pytest.approx(engine["median"]["total"] / 2)
    assert engine["images_per_minute"] == pytest.approx(120 / engine["median"]["total"])
    single = cells(report, "compare")[("text2image", 1)]
    assert batch2["unet_flops_per_job"] == 2 * single["unet_flops_per_job"]  # CFG batch 4 vs 2
    summary = report["batch_summary"]["text2image"]
    assert set(summary["images_per_minute"]) == {"1", "2"}
    assert summary["largest_batch_that_helps"] in (1, 2)


def test_variant_and_budget_stop_early_on_a_reused_bundle(small_run: Run, tmp_path: Path) -> None:
    report, *_ = run_bench(
        tmp_path, small_run[3], "--families", "kandinsky22", "--modes", "text2image", "inpaint",
        "--batches", "1", "2", "--variant", 'same:dtype="float32",preload=false',
        "--variant", "fewer:scheduler=ddim,spec.steps=1", "--budget-s", "0")
    assert report["bundle_reused"] is True and report["bundle_build_s"] == 0
    assert report["variants"] == {
        "same": {"dtype": "float32", "preload": False},
        "fewer": {"scheduler": "ddim", "spec.steps": 1},
    }
    # The first cell always runs; the budget (0 s) stops every later one, recorded with its reason.
    (cell,) = report["cells"]
    assert (cell["section"], cell["mode"]) == ("compare", "text2image")
    assert cell["recipes"]["same"]["median"]["total"] > 0 and cell["recipes"]["same"]["first_run_s"] > 0
    assert cell["variant_speedup_vs_engine"]["same"] > 0
    assert cell["variant_vs_plain_max_pixel_diff"]["same"] <= 3
    # A variant's JobSpec overrides reach every job it runs: one decoder step instead of two.
    assert cell["recipes"]["fewer"]["unet_calls_per_job"] == 1
    assert cell["recipes"]["engine"]["unet_calls_per_job"] == 2
    not_run = {(c["section"], c["mode"], c["batch"]) for c in report["not_run"]}
    assert ("compare", "inpaint", 1) in not_run and ("batch", "text2image", 2) in not_run
    assert all(c["reason"].startswith("budget:") for c in report["not_run"])
    assert report["complete"] is True


def test_results_are_rewritten_after_every_cell(
    small_run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench()
    written: list[dict[str, Any]] = []
    real_write = bench.write_json

    def spy(report: dict[str, Any], path: Path) -> None:
        real_write(report, path)
        written.append(json.loads(path.read_text()))

    monkeypatch.setattr(bench, "write_json", spy)
    run_bench(tmp_path, small_run[3], "--families", "kandinsky22", "--modes", "variations", "--batches", "1",
              "--no-offload", bench=bench)
    assert [w["complete"] for w in written] == [False, True]
    assert len(written[0]["cells"]) == 1 and written[0]["cells"][0]["mode"] == "variations"


def test_variant_refuses_unknown_settings() -> None:
    bench = load_bench()
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--variant", "typo:chanels_last=true"])
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--variant", "typo:spec.stpes=25"])
    assert bench.parse_variant("x:preload=false,device=cpu") == ("x", {"preload": False, "device": "cpu"})
    # The engine's speed settings are timed by default, each under a valid field name.
    defaults = dict(bench.parse_variant(v) for v in bench.DEFAULT_VARIANTS)
    assert defaults["compiled"] == {"channels_last": True, "compile": True}
    assert defaults["dpm25"] == {"scheduler": "dpmpp-2m", "spec.steps": 25}
    assert bench.parse_size("1024") == (1024, 1024) and bench.parse_size("1024x576") == (1024, 576)


def test_full_mode_refuses_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the one thing faked: no GPU
    assert load_bench().main(["--out-dir", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []


def test_kandinsky3_is_timed_against_plain_kandinsky3_pipelines(k3_run: Run) -> None:
    report, printed, _, bundle = k3_run
    assert report["families"] == ["kandinsky3"] and report["k3_steps"] == 2
    assert report["bundle_reused"] is True and report["bundle_build_s"] > 0  # 3.0's folder was added
    assert (bundle / "kandinsky3" / "model_index.json").is_file()
    compare = cells(report, "compare", "kandinsky3")
    assert {mode for mode, _ in compare} == set(K3_MODES)
    assert not cells(report, "batch", "kandinsky3") and not cells(report, "offload", "kandinsky3")
    for (mode, _), cell in compare.items():
        engine = cell["recipes"]["engine"]
        assert set(cell["recipes"]) == {"engine", "plain"}  # the 2.2 variants are not 3.0 settings
        assert engine["median"]["total"] > 0 and engine["median"]["prior"] == 0  # no prior
        assert engine["median"]["decoder_steps"] > 0 and engine["median"]["movq_decode"] > 0
        assert cell["unet_flops_per_job"] > 0 and cell["prior_flops_per_job"] == 0
        if mode == "sticker":
            assert engine["median"]["rembg"] > 0 and "text2image row" in cell["recipes"]["plain"]["skipped"]
            continue
        # img2img modes run int(2 steps × strength) UNet steps, as the family's recipe does.
        assert engine["unet_calls_per_job"] == (2 if mode == "text2image" else 1)
        assert cell["recipes"]["plain"]["median"]["total"] > 0 and cell["engine_speedup_vs_plain"] > 0
        assert cell["engine_vs_plain_max_pixel_diff"] <= 3  # same seed, same pixels
    for mode in K3_MODES:
        row = [f"kandinsky3/{mode}", SIZE, "1", "engine"]
        assert any(line.split()[:4] == row for line in printed.splitlines())
    # 2.2's goal and batch summary never read a 3.0 cell.
    assert report["batch_summary"] == {} and report["goal_text2image_1024"] is None


def test_kandinsky3_cells_follow_the_first_kandinsky22_cell() -> None:
    """So that a run cut short by its budget still measures 3.0; its models are freed after."""
    bench = load_bench()
    modes = [bench.Mode(m) for m in MODES]
    plan = bench.plan(modes, [(512, 320), (512, 512)], (512, 320), [1, 2], modes[:1], True,
                      ("kandinsky22", "kandinsky3"))
    order = [(c.section, c.family, str(c.mode), c.size) for c in plan]
    assert order[0] == ("compare", "kandinsky22", "text2image", (512, 320))
    k3 = [(str(c.mode), c.size) for c in plan[1:6]]
    assert [c.family for c in plan[1:6]] == ["kandinsky3"] * 5
    assert k3 == [(m, (512, 320)) for m in MODES if m in K3_MODES] + [("text2image", (512, 512))]
    assert all(c.family == "kandinsky22" for c in plan[6:])
    only_k3 = bench.plan(modes, [(512, 320)], (512, 320), [1], [], False, ("kandinsky3",))
    assert [c.family for c in only_k3] == ["kandinsky3"] * len(K3_MODES)
