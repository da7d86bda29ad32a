"""bench/results keeps only what the bench READMEs cite: a figure in a README has its run beside it,
and a run nobody cites does not sit in git."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CITING = (REPO / "bench" / "README.md", REPO / "bench" / "NOTES.md")
RESULT_NAME = re.compile(r"\b(?:[a-z_]+-\d{8}T\d{6}Z|queue[\w-]*)\.json")
"""How the benches name their results: ``<script>-<UTC time>.json``, and bench_queue's ``queue*.json``."""


def _tracked_results() -> set[str]:
    out = subprocess.run(["git", "ls-files", "bench/results"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    return {Path(line).name for line in out.splitlines() if line}


def _cited() -> set[str]:
    return set(RESULT_NAME.findall(_cited_text()))


def _cited_text() -> str:
    """The READMEs' text, with each shorthand citation spelt out: a row may name a run in full once
    and the next runs of the same script and day by their time alone (`-051515Z.json`)."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in CITING)
    for line in text.splitlines():
        full = re.search(r"([a-z_]+-\d{8}T)\d{6}Z\.json", line)
        if full:
            shorts = re.findall(r"`-(\d{6}Z\.json)`", line)
            text += "\n" + "\n".join(full.group(1) + short for short in shorts)
    return text


def test_every_tracked_result_is_cited() -> None:
    text = _cited_text()
    uncited = sorted(name for name in _tracked_results() if name not in text)
    assert not uncited, f"bench/results files no README cites (remove them from git): {uncited}"


def test_every_cited_result_is_in_git() -> None:
    missing = sorted(name for name in _cited() if name not in _tracked_results())
    assert not missing, f"bench READMEs cite results that are not in git: {missing}"
