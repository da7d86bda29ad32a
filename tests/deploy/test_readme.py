"""The README's configuration table and commands stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from bot.config import BotSettings
from worker.config import WorkerSettings
from worker.engine import EngineSettings
from worker.engine.families import ENGINE_CLASSES
from worker.language import LanguageSettings

ROOT = Path(__file__).resolve().parents[2]


def _env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if alias is None:
            names.add((prefix + name).upper())
        elif isinstance(alias, str):
            names.add(alias)
        else:  # AliasChoices: the first choice is the documented one
            names.add(str(alias.choices[0]))  # type: ignore[union-attr]
    return names


def _documented() -> set[str]:
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, re.M))


def _settings_names() -> set[str]:
    """Every variable the code reads: the processes' settings and each family's own."""
    names = set().union(*(_env_names(cls) for cls in (BotSettings, WorkerSettings, EngineSettings,
                                                        LanguageSettings)))
    return names.union(*(_env_names(cls.options_class) for cls in ENGINE_CLASSES))


def test_every_setting_is_in_the_readme_table() -> None:
    assert _settings_names() - _documented() == set()


def test_the_readme_table_has_no_stale_variables() -> None:
    code = _settings_names()
    compose_only = {"REDIS_PASSWORD", "WEBHOOK_PUBLISH_PORT", "PREFETCH_MODELS"}
    assert _documented() - code - compose_only == set()


def test_the_two_commands_are_the_makefile_targets_and_ci_runs_the_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1] == "make test"
