"""docs/ARCHITECTURE.md is the map of what is built: every path it names exists, and the README links it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ARCHITECTURE.md"
PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]*)`")
"""A backticked repository path: at least one folder, then a file name (or nothing, for a folder)."""


def test_every_path_the_architecture_names_exists() -> None:
    named = set(PATH.findall(DOC.read_text(encoding="utf-8")))
    assert len(named) > 40  # the map names the modules, not just a few folders
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"


def test_every_package_module_is_on_the_map() -> None:
    """A new module of the bot, the worker or the contract gets its line (or its folder's) on the map."""
    text = DOC.read_text(encoding="utf-8")
    named = set(PATH.findall(text))
    unmapped = []
    for package in ("contract", "bot", "worker"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if path.name == "__init__.py" and rel != "bot/services/__init__.py":
                continue
            if rel not in named and not any(rel.startswith(p) for p in named if p.endswith("/")
                                            and p.count("/") > 1):
                unmapped.append(rel)
    assert not unmapped, f"modules docs/ARCHITECTURE.md does not mention: {unmapped}"


def test_the_readme_links_the_architecture() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/ARCHITECTURE.md" in readme
    assert "../shared" not in readme  # the design file outside the repository is not a link target
