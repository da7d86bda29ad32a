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

from devkit.stack import REPO

DEMO_TIMEOUT_S = 600
"""The demo takes about two minutes on two idle cores; the suite may be sharing them."""


@pytest.mark.slow
def test_offline_demo_covers_every_mode_and_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "report"
    # As on a fresh machine: no token, no Redis, no models configured (the demo writes the bundle).
    env = {k: v for k, v in os.environ.items()
           if k not in ("BOT_TOKEN", "REDIS_URL") and not k.startswith("KANDINSKY_")}
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
                 "keep depth, change look", "admin"):
        assert f'<div class="note">{step}' in page
    images = re.findall(r'<div class="msg bot">.*?<img src="([^"]+)"', page)
    assert len(images) >= 6  # text→image, mix, blend, variations, sticker, depth
    sticker = Image.open(out / next(i for i in images if i.endswith(".webp")))
    assert sticker.mode == "RGBA" and max(sticker.size) == 512
    assert "addstickers" in page


def _session(p: psutil.Process) -> int | None:
    try:
        return os.getsid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None
