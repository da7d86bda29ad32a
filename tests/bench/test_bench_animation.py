"""bench/bench_animation.py at smoke size: it runs the engine and the plain diffusers reference and
writes the fields its README row comes from. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.test_bench_cpu import load, only_result


def test_bench_animation_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_animation")
    code = bench.main(["--sizes", "512x256", "--frames", "3", "--steps", "2", "--strength", "0.5",
                       "--out-dir", str(tmp_path)])
    assert code == 0
    report = only_result(tmp_path, "bench_animation")
    (row,) = report["rows"]
    assert row["size"] == "512x256" and row["frames"] == 3 and row["img2img_steps_per_frame"] == 1
    assert row["engine_frame_s"] > 0 and row["reference_frame_s"] > 0 and row["engine_fps"] > 0
    assert set(row["stage_shares"]) == {"warp", "img2img", "movq", "color", "mp4"}
    assert all(share > 0 for share in row["stage_shares"].values()), row["stage_shares"]
    assert row["encoder_on_photos_ms"] > 0 and row["mp4_bytes"] > 0
    assert row["met"] is None  # the goal is stated at 768 px
    assert "× diffusers" in capsys.readouterr().out
