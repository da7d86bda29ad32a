"""``python -m worker generate --mode animate``: an MP4 from the command line, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.cli import main
from worker.engine.animation.encode import probe

FAST = ["--long-side", "512", "--aspect", "16:9", "--steps", "2", "--prior-steps", "2", "--device", "cpu"]


def test_animate_writes_an_mp4_of_the_schedules(tiny_bundle: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "flight.mp4"
    code = main(["--mode", "animate", "--prompt", "0: a quiet forest | 0.5: the forest on fire", *FAST,
                 "--model-dir", str(tiny_bundle), "--seed", "5", "--frames", "6", "--fps", "6",
                 "--camera", "custom", "--zoom-schedule", "0:(1.05), 5:(1)", "--strength-schedule", "0:(0.5)",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    info = probe(out.read_bytes())
    # 16:9 exactly, with even sides
    assert (info.codec, info.width, info.height, info.frames, info.fps) == ("h264", 512, 288, 6, 6.0)
    assert "animation: 6 frames at 6 fps" in printed and f"wrote {out}" in printed and "seeds: 5" in printed


@pytest.mark.parametrize(("args", "says"), [
    (["--out", "x.png"], "--out must be a .mp4 path"),
    (["--zoom-schedule", "0:(1+t)", "--out", "x.mp4"], "math expressions are not supported"),
    (["--seconds", "12", "--out", "x.mp4"], "animation.frames: Input should be less than or equal to 96"),
    (["--seconds", "10", "--fps", "8", "--out", "x.mp4"], "an animation lasts at most 8 s"),
    (["--prompt", "2: late", "--out", "x.mp4"], "the first prompt starts at 2 s"),
])
def test_a_bad_animation_is_a_usage_error(args: list[str], says: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--mode", "animate", "--prompt", "a forest", *FAST, *args]
    argv[argv.index("--out") + 1] = str(tmp_path / argv[argv.index("--out") + 1])
    assert main(argv) == 2
    assert says in capsys.readouterr().err


def test_the_help_lists_the_schedules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "--zoom-schedule" in text and "--translation-z-schedule" in text and "2 % a frame" in text
