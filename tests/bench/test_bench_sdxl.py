"""bench/bench_sdxl.py at smoke size: the engine's base + refiner job and plain diffusers' ensemble both
run, timed per part, and so do the LoRA runs (loaded and off, one on, a switch). No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.test_bench_cpu import load, only_result

STEPS = 5
"""Four base steps and one refiner step at the model card's 0.8 hand-over."""


def test_bench_sdxl_smoke(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_sdxl")
    assert bench.main(["--sizes", "512x512", "--steps", str(STEPS), "--repeats", "1", "--lora-rank", "4",
                       "--bundle-dir", str(tiny_bundle), "--out-dir", str(tmp_path)]) == 0
    report = only_result(tmp_path, "bench_sdxl")
    (row,) = report["rows"]
    assert row["size"] == "512x512" and row["steps"] == STEPS and row["refiner"] is True
    for side in ("engine", "reference"):  # each expert's steps, the encoders and one decode
        calls = row[side]["calls"]
        assert calls["unet"] == 4 and calls["refiner_unet"] == 1 and calls["vae_decode"] == 1, calls
        assert calls["text_encoders"] >= 2 and row[side]["total_s"] > 0
    assert row["engine_unet_call_s"] > 0 and row["reference_refiner_unet_call_s"] > 0
    assert row["engine_vs_reference"] > 0
    styles = row["styles"]
    assert styles["rank"] == 4 and styles["switch_s"] > 0
    assert styles["off"]["calls"]["unet"] == 4 and styles["on"]["calls"]["unet"] == 4
    assert styles["off_vs_engine"] > 0 and styles["on_vs_engine"] > 0
    printed = capsys.readouterr().out
    assert "× diffusers" in printed and "LoRA styles" in printed and "switch ms" in printed
