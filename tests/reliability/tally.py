"""The reliability suite's figures, summed over every test process of the run (pytest-xdist's
workers hand theirs to the controller, which prints the summary line)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Tally:
    scenarios: int = 0
    faults: int = 0
    bad_inputs: int = 0
    accepted: int = 0
    answered: int = 0
    lost: int = 0
    duplicated: int = 0
    figures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"reliability: scenarios run {self.scenarios}, faults injected {self.faults}, "
                f"bad inputs tried {self.bad_inputs}, requests accepted {self.accepted}, "
                f"answered {self.answered}, lost {self.lost}, duplicated {self.duplicated}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: dict[str, Any]) -> None:
        """Add a worker process's figures (its ``as_dict``) to these."""
        for f in fields(self):
            if f.name == "figures":
                self.figures.extend(other.get("figures", []))
            else:
                setattr(self, f.name, getattr(self, f.name) + int(other.get(f.name, 0)))


TALLY = Tally()
"""Figures of this process's part of the run; pytest offers no session object that both fixtures
and the terminal-summary hook reach, so it is this module's one global."""
