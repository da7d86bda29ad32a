"""``python -m worker generate``: a real subprocess on the tiny bundle, and every refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract.spec import JobSpec, Mode, Style, bucket_size, exact_size
from worker.cli import main, output_paths
from worker.engine import Engine

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 300
"""Generous: a cold interpreter imports torch and loads the bundle on 2 shared cores."""

FAST = ["--long-side", "512", "--steps", "2", "--prior-steps", "2"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "worker", "generate", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_text2image_in_a_subprocess_matches_the_engine(
    tiny_bundle: Path, tmp_path: Path, engine: Engine
) -> None:
    out = tmp_path / "cat.png"
    proc = run_cli(
        "--mode", "text2image", "--prompt", "red cat", "--style", "anime", "--aspect", "16:9",
        "--seed", "77", "--model-dir", str(tiny_bundle), "--out", str(out), *FAST,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "seeds: 77" in proc.stdout
    assert "prior" in proc.stdout and "decoder" in proc.stdout and "total" in proc.stdout
    image = Image.open(out)
    assert image.format == "PNG" and image.size == exact_size("16:9", 512)
    width, height = bucket_size("16:9", 512)
    spec = JobSpec(
        mode=Mode.TEXT2IMAGE, prompt="red cat", style=Style.ANIME, width=width, height=height, aspect="16:9",
        seed=77, steps=2, prior_steps=2,
    )  # fmt: skip
    expected = engine.generate(spec).images[0]
    assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(expected))


def test_stickers_in_a_subprocess_write_png_and_webp_per_image(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "st.png"
    proc = run_cli(
        "--mode", "sticker", "--prompt", "a cat", "--num-images", "2",
        "--model-dir", str(tiny_bundle), "--out", str(out), *FAST,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    seeds = proc.stdout.split("seeds:")[1].split("\n")[0].split()
    assert len(seeds) == 2 and int(seeds[1]) == (int(seeds[0]) + 1) % 2**32, "random seed, printed"
    for name in ("st.png", "st.webp", "st-1.png", "st-1.webp"):
        image = Image.open(tmp_path / name)
        assert image.mode == "RGBA" and max(image.size) == 512


def test_bad_mode_exits_2_in_a_subprocess(tmp_path: Path) -> None:
    proc = run_cli("--mode", "bogus", "--prompt", "x", "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_mix_and_inpaint_in_process(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(tmp_path / name)
    mask = Image.new("L", (300, 200), 0)
    mask.paste(255, (50, 50, 150, 150))
    mask.save(tmp_path / "mask.png")
    common = ["--model-dir", str(tiny_bundle), "--device", "cpu", "--dtype", "float32", *FAST]
    code = main([
        "--mode", "mix", "--image", str(tmp_path / "a.png"), "--image", str(tmp_path / "b.png"),
        "--weights", "0.4,0.6", "--seed", "5", "--out", str(tmp_path / "mix.png"), *common,
    ])  # fmt: skip
    assert code == 0
    assert Image.open(tmp_path / "mix.png").size == (512, 512)
    code = main([
        "--mode", "inpaint", "--prompt", "a hat", "--image", str(tmp_path / "a.png"),
        "--mask", str(tmp_path / "mask.png"), "--aspect", "3:2", "--out", str(tmp_path / "in.png"), *common,
    ])  # fmt: skip
    assert code == 0
    assert Image.open(tmp_path / "in.png").size == exact_size("3:2", 512)
    assert "seeds:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "mix", "--prompt", "x"], "needs 2 input image"),
        (
            ["--mode", "mix", "--image", "MISSING.png", "--image", "MISSING.png", "--weights", "0.5,0.5"],
            "does not exist",
        ),
        (["--mode", "blend", "--prompt", "x", "--image", "A", "--weights", "a,b"], "comma-separated numbers"),
        (["--mode", "blend", "--prompt", "x", "--image", "A", "--weights", "0.9,0.9"], "sum to 1"),
        (["--mode", "text2image", "--prompt", ""], "needs a prompt"),
        (["--mode", "text2image", "--prompt", "x", "--steps", "0"], "steps"),
        (["--mode", "text2image", "--prompt", "x", "--seed", "-1"], "seed"),
        (["--mode", "text2image", "--prompt", "x", "--prior-steps", "1"], "prior_steps"),
        (
            ["--mode", "depth", "--prompt", "x", "--image", "IMG", "--steps", "2", "--strength", "0.1"],
            "at least one step",
        ),
        (["--mode", "inpaint", "--prompt", "x", "--image", "IMG", "--mask", "SMALLMASK"], "must match"),
        (["--mode", "text2image", "--prompt", "x", "--out", "x.jpg"], "must be a .png"),
        (["--mode", "variations", "--image", "NOTANIMAGE"], "not a readable image"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    Image.new("RGB", (128, 128), (10, 20, 30)).save(tmp_path / "img.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "small.png")
    (tmp_path / "junk.txt").write_text("not an image")
    replace = {
        "A": str(tmp_path / "img.png"),
        "IMG": str(tmp_path / "img.png"),
        "SMALLMASK": str(tmp_path / "small.png"),
        "NOTANIMAGE": str(tmp_path / "junk.txt"),
        "x.jpg": str(tmp_path / "x.jpg"),
    }
    argv = [replace.get(a, a) for a in args]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out.png")]
    argv += ["--model-dir", str(tiny_bundle), "--device", "cpu", "--long-side", "512"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "out.png").exists()


def test_output_paths_number_extra_images() -> None:
    paths = output_paths(Path("/o/cat.png"), 3, Mode.TEXT2IMAGE)
    assert paths == [[Path("/o/cat.png")], [Path("/o/cat-1.png")], [Path("/o/cat-2.png")]]
    sticker = output_paths(Path("/o/st"), 1, Mode.STICKER)
    assert sticker == [[Path("/o/st.png"), Path("/o/st.webp")]]
