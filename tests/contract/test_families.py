"""Family descriptions: memory per placement reads the same from a setting's string as from the enum."""

from __future__ import annotations

import pytest

from contract.families import Family, Placement, describe_family


@pytest.mark.parametrize("family", list(Family))
def test_memory_per_placement_from_a_string_or_the_enum(family: Family) -> None:
    description = describe_family(family)
    for placement in description.placements:
        assert description.memory_gib(str(placement)) == description.memory_gib(Placement(placement))  # type: ignore[arg-type]
    if Placement.MODEL_OFFLOAD in description.placements:
        assert description.memory_gib("model_offload") < description.memory_gib("gpu")  # type: ignore[arg-type]


def test_a_placement_the_family_lacks_is_a_clear_error() -> None:
    description = describe_family(Family.KANDINSKY22)
    missing = [p for p in Placement if p not in description.placements]
    for placement in missing:
        with pytest.raises(ValueError, match="cannot be placed as"):
            description.memory_gib(placement)
