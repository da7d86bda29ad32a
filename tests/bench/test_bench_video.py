"""bench/bench_video.py at smoke size: the engine's video job and plain diffusers' pipeline both run,
timed per part, and the fields the README's row comes from are written. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.test_bench_cpu import load, only_result


def test_bench_video_smoke(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_video")
    assert bench.main(["--sizes", "512x320", "--fps", "1", "--repeats", "1", "--bundle-dir", str(tiny_bundle),
                       "--out-dir", str(tmp_path), "--attention-backend", "_native_math"]) == 0
    report = only_result(tmp_path, "bench_video")
    assert report["attention_backend"] == "_native_math" and report["compile"] is False
    (row,) = report["rows"]
    assert row["size"] == "512x320" and row["frames"] == 5 and row["steps"] == 16
    for side in ("engine", "reference"):  # each DiT step timed, the text encoders and the decode too
        assert row[side]["calls"]["dit"] == 16 and row[side]["calls"]["vae_decode"] == 1
        assert row[side]["calls"]["text_encoders"] >= 2 and row[side]["total_s"] > 0
    assert row["engine_step_s"] > 0 and row["reference_step_s"] > 0 and row["encode_s"] > 0
    assert 0 < row["encode_share"] < 1 and row["engine"]["bytes"] > 0 and row["engine"]["size"] == [512, 320]
    assert row["engine_vs_reference"] > 0
    printed = capsys.readouterr().out
    assert "× diffusers" in printed and "attention _native_math" in printed
