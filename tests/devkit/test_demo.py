"""`make demo` without BOT_TOKEN: the scripted conversation through every mode, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from PIL import Image

from devkit.demo import ModelChoice, choose_models, hub_reachable
from devkit.stack import REPO
from worker.engine.animation.encode import probe

DEMO_TIMEOUT_S = 600
"""The demo takes about two minutes on two idle cores; the suite may be sharing them."""


@pytest.mark.slow
def test_offline_demo_covers_every_mode_and_leaves_no_process(tmp_path: Path, tiny_bundle: Path) -> None:
    out = tmp_path / "report"
    # As on a machine that ran `make demo` before: no token, no Redis, no models configured, the
    # tiny bundle written under .cache/ (the suite's, the one the demo reuses; ensure_tiny_bundle
    # writes it on a fresh machine, for the suite and the demo alike).
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOT_TOKEN", "REDIS_URL") and not k.startswith("KANDINSKY_")}
    # The plumbing of every step is what is checked: the fewest steps the spec allows (the demo's
    # own 8 and 4 only make its noise pictures smoother).
    env.update(BOT_STEPS="2", BOT_PRIOR_STEPS="2")
    proc = subprocess.Popen([sys.executable, "-m", "devkit.demo", "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=DEMO_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-5000:]
    leftovers = [p.cmdline() for p in psutil.process_iter() if _session(p) == proc.pid]
    assert leftovers == []

    match = re.search(r"Report: (\S+index\.html)", text)
    assert match, text[-2000:]
    page = Path(match.group(1)).read_text()
    for step in ("text → image", "mix two images", "image + text", "variations", "sticker",
                 "keep depth, change look", "a prompt in Russian", "a voice message as the prompt", "admin"):
        assert f'<div class="note">{step}' in page
    # Kandinsky 3.0 next to 2.2 (the tiny bundle holds both): captions name the model.
    assert '<div class="note">text → image with Kandinsky 3.0' in page
    assert "Model: Kandinsky 3.0" in page and "Model: Kandinsky 2.2" in page
    images = re.findall(r'<div class="msg bot">.*?<img src="([^"]+)"', page)
    assert len(images) >= 6  # text→image, mix, blend, variations, sticker, depth
    sticker = Image.open(out / next(i for i in images if i.endswith(".webp")))
    assert sticker.mode == "RGBA" and max(sticker.size) == 512
    assert "addstickers" in page
    # One short animation, played in the page: 2 s at 12 frames a second, an H.264 MP4; then one
    # Kandinsky 5.0 video (5 s at the tiny bundle's one frame a second).
    assert '<div class="note">animation (camera, then length)' in page
    assert '<div class="note">a video (Kandinsky 5.0)' in page
    videos = re.findall(r'<video src="([^"]+\.mp4)"', page)
    assert len(videos) == 2
    assert [probe((out / v).read_bytes()).frames for v in videos] == [24, 5]

    # One line says which models ran and why; nothing a newcomer would worry about in either log.
    model_lines = [line for line in text.splitlines() if "models: " in line]
    assert len(model_lines) == 1 and "tiny random-weight bundle" in model_lines[0], model_lines
    worker_log = (out / "worker.log").read_text(errors="replace")
    for log_text in (text, worker_log):
        for worrying in ("Warning", "WARNING", "requires torchvision", "deprecated"):
            assert worrying not in log_text, [ln for ln in log_text.splitlines() if worrying in ln][:5]


def _session(p: psutil.Process) -> int | None:
    try:
        return os.getsid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _never() -> bool:
    raise AssertionError("this probe must not run for this choice")


@pytest.mark.parametrize(("requested", "env", "gpu", "online", "expected", "said"), [
    ("auto", {"KANDINSKY_MODEL_DIR": "/models"}, _never, _never, ModelChoice.CONFIGURED, "configured"),
    ("tiny", {}, _never, _never, ModelChoice.TINY, "asked for"),
    ("real", {}, _never, _never, ModelChoice.REAL, "asked for"),
    ("auto", {"HF_HUB_OFFLINE": "1"}, _never, _never, ModelChoice.TINY, "HF_HUB_OFFLINE"),
    ("auto", {}, lambda: False, _never, ModelChoice.TINY, "no CUDA GPU"),
    ("auto", {}, lambda: True, lambda: False, ModelChoice.TINY, "not reachable"),
    ("auto", {}, lambda: True, lambda: True, ModelChoice.REAL, "GPU and network found"),
])
def test_demo_makes_real_images_with_a_gpu_and_network_and_says_why_it_does_not(
        requested: str, env: dict[str, str], gpu: object, online: object, expected: ModelChoice,
        said: str) -> None:
    choice, line = choose_models(requested, env, gpu=gpu, online=online)  # type: ignore[arg-type]
    assert choice is expected
    assert line.startswith("models: ") and said in line and "\n" not in line


def test_hub_probe_opens_a_connection_and_nothing_more() -> None:
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert hub_reachable(f"http://127.0.0.1:{port}", timeout=2.0)
    # The same port once nobody listens: refused at once, not a hang.
    assert not hub_reachable(f"http://127.0.0.1:{port}", timeout=2.0)
