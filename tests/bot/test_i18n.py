"""Both locales are complete, parse, and format every message the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.ui.i18n import LOCALES_DIR, SUPPORTED_LOCALES, I18n, message_ids
from contract.events import FailureReason
from contract.modes import MODES
from contract.spec import Mode, Style

BOT_DIR = Path(__file__).resolve().parents[2] / "bot"
FRONT_END_MODULES = (
    "app.py", "telegram/delivery.py", "services/jobs.py", "ui/keyboards.py", "services/__init__.py",
    "services/admission.py", "services/inputs.py", "routers/start.py",
    "routers/cancel.py", "routers/settings.py", "routers/results.py", "routers/fallback.py",
    "routers/prompt_modes.py", "routers/image_modes.py",
)
"""The front end's modules (features added later check their own keys)."""
_KEY_IN_CODE = re.compile(r"""\bt\(\s*["']([a-z][a-z0-9_-]+)["']""")


def test_every_key_in_both_locales() -> None:
    ids = {
        loc: message_ids((LOCALES_DIR / loc / "messages.ftl").read_text("utf-8")) for loc in SUPPORTED_LOCALES
    }
    assert ids["en"] == ids["ru"], {"only en": ids["en"] - ids["ru"], "only ru": ids["ru"] - ids["en"]}
    assert len(ids["en"]) > 50


def test_keys_used_in_code_exist() -> None:
    i18n = I18n()
    used: set[str] = set()
    for name in FRONT_END_MODULES:
        used |= set(_KEY_IN_CODE.findall((BOT_DIR / name).read_text("utf-8")))
    # Keys built at run time from enums.
    used |= {f"mode-{m.value}" for m in Mode} | {f"style-{s.value}" for s in Style}
    used |= {key for mode in MODES for key in mode.text_keys}  # the modes' dialogs, menu and commands
    used |= {f"failed-{r.value}" for r in FailureReason} | {"language-en", "language-ru", "language-auto"}
    assert len(used) > 40
    for locale in SUPPORTED_LOCALES:
        missing = sorted(k for k in used if not i18n.bundles[locale].has_message(k))
        assert not missing, (locale, missing)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_message_formats_without_errors(locale: str) -> None:
    i18n = I18n()
    bundle = i18n.bundles[locale]
    # Every variable any message uses, as a number (numbers also drive plural selectors).
    args = {name: 1 for name in re.findall(r"\$([A-Za-z_][A-Za-z0-9_-]*)", i18n.sources[locale])}
    for key in message_ids(i18n.sources[locale]):
        message = bundle.get_message(key)
        assert message.value is not None, key
        _, errors = bundle.format_pattern(message.value, args)
        assert not errors, (key, errors)


def test_picks_locale_from_telegram_language() -> None:
    i18n = I18n()
    assert i18n.pick("ru") == "ru" and i18n.pick("ru-RU") == "ru"
    assert i18n.pick("en-GB") == "en" and i18n.pick("de") == "en" and i18n.pick(None) == "en"
    assert i18n.translator("ru")("btn-cancel") != i18n.translator("en")("btn-cancel")
    assert i18n.get("ru", "jobs-cancelled", count=2) == "Отменено 2 задания."
    assert i18n.get("en", "no-such-key") == "no-such-key"
