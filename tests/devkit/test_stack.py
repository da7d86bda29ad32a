"""The tiny bundle under .cache/: written once, reused while the code that writes it is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit import stack


def test_a_bundle_is_kept_while_its_stamp_matches_and_rewritten_when_the_writers_change(
        tmp_path: Path, tiny_bundle: Path) -> None:
    assert (tiny_bundle / ".complete").read_text().strip() == stack.tiny_bundle_stamp()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "left-over").write_text("from a bundle of another layout")
    (bundle / ".complete").write_text(stack.tiny_bundle_stamp() + "\n")
    assert stack.ensure_tiny_bundle(bundle) == bundle
    assert sorted(p.name for p in bundle.iterdir()) == [".complete", "left-over"]  # the same code wrote it

    (bundle / ".complete").write_text("0123456789abcdef torch==0 diffusers==0 transformers==0\n")
    stack.ensure_tiny_bundle(bundle)
    assert not (bundle / "left-over").exists()  # written again, from scratch
    assert sorted(p.name for p in bundle.iterdir()) == sorted(p.name for p in tiny_bundle.iterdir())
    assert (bundle / ".complete").read_text().strip() == stack.tiny_bundle_stamp()


def test_the_stamp_follows_the_code_that_decides_the_bundle(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    before = stack.tiny_bundle_stamp()
    copy = tmp_path / "repo"
    for pattern in stack.BUNDLE_SOURCES:
        for source in stack.REPO.glob(pattern):
            target = copy / source.relative_to(stack.REPO)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    monkeypatch.setattr(stack, "REPO", copy)
    assert stack.tiny_bundle_stamp() == before
    spec = copy / "contract" / "spec.py"
    spec.write_text(spec.read_text() + "\n# another style word\n")
    assert stack.tiny_bundle_stamp() != before
