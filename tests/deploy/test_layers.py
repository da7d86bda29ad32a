"""The layering the design promises, checked on the code as it is: the bot never imports torch or the
worker, the worker never imports aiogram or the bot, the contract imports neither side, and the engine
knows nothing of Redis or Telegram. Static (every import statement) and dynamic (what importing every
module of a package really loads, in a fresh interpreter)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "transformers", "rembg", "onnxruntime", "accelerate")
"""The worker's compute stack: never in the bot's process (its image installs none of it)."""
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "bot": (*HEAVY, "worker", "devkit"),
    "worker": ("aiogram", "bot", "devkit"),
    "contract": (*HEAVY, "aiogram", "bot", "worker", "devkit"),
    "worker/engine": ("aiogram", "bot", "redis", "rq", "devkit"),
}
"""Top-level packages each part must not import (worker/engine: a plain library, no Redis, no Telegram)."""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_no_module_imports_across_its_layer(part: str) -> None:
    found = []
    for path in sorted((REPO / part).rglob("*.py")):
        bad = _imports(path) & set(FORBIDDEN[part])
        if bad:
            found.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not found, found


def _loaded_after_importing_all(package: str) -> set[str]:
    code = f"""
import importlib, json, pkgutil, sys
import {package}
for info in pkgutil.walk_packages({package}.__path__, "{package}."):
    if info.name.endswith("__main__"):
        continue
    importlib.import_module(info.name)
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_bot_process_never_loads_torch() -> None:
    loaded = _loaded_after_importing_all("bot")
    assert "aiogram" in loaded  # the probe sees what the package really imports
    assert not loaded & set(FORBIDDEN["bot"]), sorted(loaded & set(FORBIDDEN["bot"]))


def test_the_worker_process_never_loads_aiogram() -> None:
    loaded = _loaded_after_importing_all("worker")
    assert {"torch", "diffusers", "rq"} <= loaded
    assert not loaded & set(FORBIDDEN["worker"]), sorted(loaded & set(FORBIDDEN["worker"]))


BOT_ROLES: dict[str, set[str]] = {
    "ui": set(),
    "infra": {"config"},
    "queue": set(),
    "services": {"queue", "ui", "infra", "config"},
    "telegram": {"services", "ui", "infra", "config"},
    "routers": {"services", "queue", "ui", "telegram", "infra", "config"},
}
"""The bot's folders by role (docs/ARCHITECTURE.md): which other parts of ``bot`` each may import at
run time. Type-only imports (``if TYPE_CHECKING:``) do not count."""


def _runtime_bot_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                 for n in ast.walk(node)}
    parts: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        modules: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        parts |= {m.split(".")[1] for m in modules if m.startswith("bot.") and m.count(".") >= 1}
    return parts


@pytest.mark.parametrize("role", sorted(BOT_ROLES))
def test_each_bot_folder_imports_only_the_roles_below_it(role: str) -> None:
    found = []
    for path in sorted((REPO / "bot" / role).rglob("*.py")):
        bad = _runtime_bot_imports(path) - BOT_ROLES[role] - {role}
        if bad:
            found.append(f"{path.relative_to(REPO)} imports bot.{sorted(bad)}")
    assert not found, found
    assert (REPO / "bot" / role / "__init__.py").exists()


def test_the_bot_has_no_loose_modules_but_its_entry_points() -> None:
    loose = sorted(p.name for p in (REPO / "bot").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "app.py", "config.py"], loose
