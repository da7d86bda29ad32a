"""Translations from Fluent (.ftl) files: one bundle per locale, a Translator per update."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fluent.runtime import FluentBundle, FluentResource

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).parents[1] / "locales"
SUPPORTED_LOCALES: tuple[str, ...] = ("en", "ru")
_MESSAGE_ID = re.compile(r"^([a-zA-Z][a-zA-Z0-9_-]*)\s*=", re.MULTILINE)


def message_ids(ftl_text: str) -> set[str]:
    """Top-level message ids of a .ftl file (used by the completeness test)."""
    return set(_MESSAGE_ID.findall(ftl_text))


@dataclass(frozen=True)
class Translator:
    """Callable bound to one locale; handlers receive it as ``t``."""

    i18n: I18n
    locale: str

    def __call__(self, key: str, /, **args: Any) -> str:
        return self.i18n.get(self.locale, key, **args)


class I18n:
    """Holds one FluentBundle per locale and falls back to the default locale for missing keys."""

    def __init__(self, locales_dir: Path = LOCALES_DIR, default_locale: str = "en",
                 locales: Iterable[str] = SUPPORTED_LOCALES) -> None:
        self.default_locale = default_locale
        self.bundles: dict[str, FluentBundle] = {}
        self.sources: dict[str, str] = {}
        for locale in locales:
            text = (locales_dir / locale / "messages.ftl").read_text(encoding="utf-8")
            # use_isolating=False: Unicode isolation marks would end up inside HTML and buttons.
            bundle = FluentBundle([locale], use_isolating=False)
            resource = FluentResource(text)
            junk = [entry for entry in resource.body if type(entry).__name__ == "Junk"]
            if junk:
                raise ValueError(f"{locale}/messages.ftl does not parse: {getattr(junk[0], 'content', '')!r}")
            bundle.add_resource(resource)
            self.bundles[locale] = bundle
            self.sources[locale] = text
        self._plain: dict[tuple[str, str], str] = {}
        """Messages asked for without arguments, by (locale, key), as formatted the first time."""
        if default_locale not in self.bundles:
            raise ValueError(f"default locale {default_locale!r} has no messages.ftl")

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(self.bundles)

    def pick(self, language_code: str | None) -> str:
        """Locale for a Telegram language_code such as 'ru' or 'en-US'."""
        if language_code:
            short = language_code.split("-")[0].split("_")[0].lower()
            if short in self.bundles:
                return short
        return self.default_locale

    def translator(self, locale: str) -> Translator:
        return Translator(self, locale if locale in self.bundles else self.default_locale)

    def get(self, locale: str, key: str, /, **args: Any) -> str:
        if args:
            return self._format(locale, key, args)
        text = self._plain.get((locale, key))
        if text is None:  # a message without variables reads the same every time: formatted once
            text = self._plain[(locale, key)] = self._format(locale, key, args)
        return text

    def _format(self, locale: str, key: str, args: dict[str, Any]) -> str:
        for candidate in (locale, self.default_locale):
            bundle = self.bundles.get(candidate)
            if bundle is None or not bundle.has_message(key):
                continue
            message = bundle.get_message(key)
            if message.value is None:
                continue
            text, errors = bundle.format_pattern(message.value, args)
            if errors:
                log.warning("i18n: %s/%s formatted with errors: %s", candidate, key, errors)
            return str(text)
        log.error("i18n: missing message %r", key)
        return key
