"""bench/bench_engine_gpu.py in its CPU-sized mode: it runs, measures, and writes honest JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_engine_gpu.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_engine_gpu", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def test_small_mode_writes_measured_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench()
    assert bench.main(["--small", "--device", "cpu", "--out-dir", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("bench_engine_gpu-cpu-small-*.json")
    report = json.loads(path.read_text())
    assert report["device"] == "cpu" and report["scale"] == "small"
    (entry,) = report["results"]
    assert entry["size"] == 512
    assert entry["unet_flops_per_job"] > 0 and entry["achieved_unet_tflops"] > 0
    for name in ("engine", "plain"):
        median = entry["variants"][name]["median"]
        assert median["total"] > 0 and median["unet_loop"] > 0 and median["decode"] > 0
        assert median["total"] >= median["prior"]
    assert entry["variants"]["offload"]["skipped"] == "enable_model_cpu_offload needs a CUDA device"
    assert entry["variants"]["offload"]["median"] is None
    assert entry["engine_speedup_vs_plain"] > 0
    # Speed work must not change the image: same spec, same seed, same pixels as the recipe.
    assert entry["engine_vs_plain_max_pixel_diff"] <= 3
    # No peak is known for a CPU: no floor ratio is invented.
    assert "unet_floor_s" not in entry and "unet_time_over_floor" not in entry
    out = capsys.readouterr().out
    assert "engine_speedup_vs_plain" in out and str(path) in out


def test_full_mode_refuses_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the one thing faked: no GPU
    assert load_bench().main(["--out-dir", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == []
