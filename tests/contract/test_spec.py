from __future__ import annotations

import json

import pytest

from contract.spec import (
    ASPECT_RATIOS,
    LONG_SIDES,
    MAX_PROMPT_CHARS,
    SIZE_BUCKETS,
    JobSpec,
    Mode,
    SpecError,
    Style,
    UnsupportedSpecVersion,
    bucket_size,
)


def test_buckets_are_multiples_of_64_and_at_most_1024() -> None:
    for w, h in SIZE_BUCKETS:
        assert w % 64 == 0 and h % 64 == 0
        assert max(w, h) in LONG_SIDES and max(w, h) <= 1024


@pytest.mark.parametrize("aspect", list(ASPECT_RATIOS))
def test_bucket_orientation_follows_aspect(aspect: str) -> None:
    rw, rh = ASPECT_RATIOS[aspect]
    w, h = bucket_size(aspect, 1024)
    assert (w >= h) == (rw >= rh)
    assert abs(w / h - rw / rh) < 0.15


def test_roundtrip_and_effective_prompt() -> None:
    spec = JobSpec(mode=Mode.STICKER, prompt=" a cat ", style=Style.ANIME, width=512, height=512)
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert again.effective_prompt.startswith("a cat, anime style")
    assert "sticker" in again.effective_prompt


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "paint"}, "mode"),
        ({"mode": "text2image", "prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"mode": "text2image", "prompt": "   "}, "needs a prompt"),
        ({"mode": "text2image", "prompt": "a", "width": 1000, "height": 1000}, "buckets"),
        ({"mode": "mix", "inputs": ["a"], "weights": [0.5, 0.5]}, "2 input image"),
        ({"mode": "blend", "prompt": "a", "inputs": ["a"], "weights": [0.9, 0.9]}, "sum to 1"),
        ({"mode": "blend", "prompt": "a", "inputs": ["a"], "weights": [-0.5, 1.5]}, "between 0 and 1"),
        ({"mode": "inpaint", "prompt": "a", "inputs": ["a"]}, "needs a mask"),
        ({"mode": "text2image", "prompt": "a", "weights": [1.0]}, "takes no weights"),
        ({"mode": "text2image", "prompt": "a", "seed": -1}, "seed"),
        ({"mode": "text2image", "prompt": "a", "prior_steps": 1}, "prior_steps"),
        ({"mode": "depth", "prompt": "a", "inputs": ["a"], "steps": 2, "strength": 0.3}, "at least one step"),
        ({"mode": "text2image", "prompt": "a", "surprise": 1}, "surprise"),
    ],
)
def test_bad_fields_are_rejected_with_a_reason(fields: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        JobSpec.parse(fields)


def test_unknown_version_is_rejected_before_anything_else() -> None:
    with pytest.raises(UnsupportedSpecVersion, match="version 2"):
        JobSpec.from_json(json.dumps({"version": 2, "mode": "whatever"}))


def test_not_json_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        JobSpec.from_json(b"\xff\x00")
