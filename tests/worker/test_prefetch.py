"""``python -m worker prefetch``: every public checkpoint of the families a worker holds, once each, and
not the folders a family never reads (Kandinsky 5.0's second and later repositories hold another copy
of Qwen2.5-VL, 16 GB, that the engine takes from the first). The Hub itself cannot be reached here:
its download function is the one thing replaced, and records what it was asked for."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest

from contract.video import IMAGE_TO_VIDEO, VideoKind, video_checkpoint
from worker.engine import EngineSettings
from worker.engine.families import Kandinsky5Engine, Kandinsky5ImageEngine, SDXLEngine
from worker.prefetch import prefetch


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    calls: list[tuple[str, tuple[str, ...]]] = []

    def snapshot_download(repo_id: str, cache_dir: Any = None, ignore_patterns: Any = None) -> str:
        calls.append((repo_id, tuple(ignore_patterns or ())))
        return "/nowhere"

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    # rembg's own download, by a stand-in module: importing the real one starts numba, which would
    # reset this test process's torch threads (tests/conftest.py asks for one).
    monkeypatch.setitem(sys.modules, "rembg", types.SimpleNamespace(new_session=lambda name: None))
    return calls


def test_the_second_and_later_repositories_of_a_family_skip_the_models_it_shares(
        asked: list[tuple[str, tuple[str, ...]]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_FAMILIES", '["kandinsky5", "kandinsky5_image", "sdxl"]')
    monkeypatch.setenv("KANDINSKY_K5_VIDEO_SECONDS", "[5, 10]")
    fetched = prefetch(EngineSettings())
    by_repo = dict(asked)
    video = [video_checkpoint(VideoKind.DISTILLED, s).repo for s in (5, 10)]
    assert by_repo[video[0]] == ()  # the first one whole: its encoders are the ones loaded
    for repo in (video[1], IMAGE_TO_VIDEO.repo):
        assert by_repo[repo] == tuple(f"{f}/*" for f in Kandinsky5Engine.shared_folders)
    image = Kandinsky5ImageEngine.public_ids(EngineSettings())
    assert by_repo[image[0]] == ()
    assert by_repo[image[1]] == ("text_encoder/*", "text_encoder_2/*", "tokenizer_2/*")  # its processor stays
    sdxl_base, refiner = SDXLEngine.public_ids(EngineSettings())[:2]
    assert by_repo[sdxl_base] == () and by_repo[refiner] == ("text_encoder_2/*", "vae/*")
    assert len(asked) == len(by_repo)  # each repository once (the language models' too)
    assert set(by_repo) <= set(fetched) and any(item.startswith("rembg:") for item in fetched)


def test_a_local_bundle_downloads_nothing(asked: list[tuple[str, tuple[str, ...]]], tmp_path: Path) -> None:
    assert prefetch(EngineSettings(model_dir=tmp_path)) == [] and asked == []
