"""bench/bench_language.py at smoke size: it times translation and transcription next to generation
on the tiny bundle and writes the ratios the issue's targets are stated in. No timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.test_bench_cpu import load, only_result


def test_language_smoke_run_writes_shares_next_to_generation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load("bench_language")
    assert bench.main(["--jobs", "1", "--steps", "2", "--voice-s", "3", "--device", "cpu",
                       "--out-dir", str(tmp_path)]) == 0
    report = only_result(tmp_path, "bench_language")
    mean = report["mean"]
    assert all(mean[k] > 0 for k in ("translate_s", "generate_s", "decode_s", "transcribe_s"))
    assert mean["heard_chars"] > 0  # the tiny Whisper said words: the whole path ran
    assert 0 < report["translate_share_of_job"] < 1
    assert report["transcribe_s_per_audio_s"] == pytest.approx(
        (mean["decode_s"] + mean["transcribe_s"]) / 3)
    assert "translation is" in capsys.readouterr().out
