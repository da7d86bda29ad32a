"""Weighted prompts as both sides read them: what counts as weighting, what is refused and why."""

from __future__ import annotations

import pytest

from contract.weighting import WeightingError, WeightingProblem, check_weighting, has_weighting, to_compel


@pytest.mark.parametrize("prompt", ["(red car:1.4) in fog", "(fog)0.6", "word++ car", "(red car)--",
                                    "a (cat:0) and a (dog:2)"])
def test_weightings_are_recognised_and_accepted(prompt: str) -> None:
    assert has_weighting(prompt)
    check_weighting(prompt)


@pytest.mark.parametrize("prompt", ["a sunset", "a well-lit room", r"a \(literal\) bracket"])
def test_plain_prompts_weight_nothing(prompt: str) -> None:
    check_weighting(prompt)
    assert not has_weighting(prompt)


@pytest.mark.parametrize(("prompt", "problem", "detail"), [
    ("a (red car", WeightingProblem.UNBALANCED, "1 '(' never closed"),
    ("a red car)", WeightingProblem.UNBALANCED, "never opened"),
    ("((a red car)", WeightingProblem.UNBALANCED, "1 '(' never closed"),
    ("a (red car:3)", WeightingProblem.WEIGHT, "weight 3 is outside 0-2"),
    ("a (red car)2.5", WeightingProblem.WEIGHT, "weight 2.5 is outside 0-2"),
    ("a (red car:-1)", WeightingProblem.WEIGHT, "weight -1 is outside 0-2"),
    ("a red++++++++ car", WeightingProblem.WEIGHT, "over 2"),
])
def test_malformed_weightings_are_refused_naming_the_problem(prompt: str, problem: WeightingProblem,
                                                             detail: str) -> None:
    with pytest.raises(WeightingError) as caught:
        check_weighting(prompt)
    assert caught.value.problem is problem and detail in caught.value.detail


def test_the_users_form_becomes_compels() -> None:
    assert to_compel("a (red car:1.4) in (fog:0.6), word++") == "a (red car)1.4 in (fog)0.6, word++"
    assert to_compel("a plain prompt") == "a plain prompt"
