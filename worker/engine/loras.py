"""LoRA styles on a worker: the operator's catalogue read once, each adapter loaded once into its
family's pipeline, and switched per job by diffusers' adapter API (peft) without reloading the base.

The catalogue is ``styles.toml`` in ``KANDINSKY_LORA_DIR``, one ``[[style]]`` table per adapter::

    [[style]]
    name = "pixel"                      # the id in specs and buttons: a-z, 0-9, _ and -
    title = "Pixel art"                 # what users see
    file = "pixel-art-xl.safetensors"   # beside styles.toml
    family = "sdxl"                     # the model it was trained on
    triggers = ["pixel art"]            # put in front of the prompt while the style is on
    weight = 0.8                        # what a user starts from (0.1-2)

A style that cannot be used (a bad entry, a missing file, a file that is not safetensors, an adapter
made for another model: layer names or shapes that do not fit) is refused at start with its file's
name and the reason; the others still load.
"""

from __future__ import annotations

import logging
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contract.families import Family, describe_family
from contract.loras import LoraChoice, LoraStyle

logger = logging.getLogger(__name__)

CATALOGUE_FILE = "styles.toml"
"""The catalogue's name in the styles folder."""
REASON_CHARS = 300
"""A library's error can run to pages (every mismatched layer); the log line keeps its start."""


@dataclass(frozen=True)
class Catalogue:
    """What ``styles.toml`` offers, and what in it could not be read (one line each, naming the entry)."""

    folder: Path
    styles: tuple[LoraStyle, ...]
    problems: tuple[str, ...]


def read_catalogue(folder: Path) -> Catalogue:
    """The styles of ``folder``'s catalogue; a bad entry is a problem of its own, not of the others."""
    path = Path(folder) / CATALOGUE_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Catalogue(Path(folder), (), (f"{path}: no such file (KANDINSKY_LORA_DIR's catalogue)",))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Catalogue(Path(folder), (), (f"{path}: not a readable TOML file: {exc}",))
    entries = data.get("style", [])
    if not isinstance(entries, list):
        return Catalogue(Path(folder), (), (f"{path}: 'style' must be a list of [[style]] tables",))
    styles: list[LoraStyle] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, start=1):
        label = _label(number, entry)
        try:
            style = LoraStyle.model_validate(entry)
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}"
                                for e in exc.errors())
            problems.append(f"{path}: {label}: {reasons}")
            continue
        if any(s.name == style.name for s in styles):
            problems.append(f"{path}: {label}: the name {style.name!r} is taken by an earlier style")
            continue
        styles.append(style)
    return Catalogue(Path(folder), tuple(styles), tuple(problems))


def _label(number: int, entry: object) -> str:
    if isinstance(entry, dict):
        named = entry.get("file") or entry.get("name")
        if named:
            return f"style {number} ({named})"
    return f"style {number}"


def _reason(exc: Exception, family: Family) -> str:
    """Why diffusers would not take an adapter, in a line an operator can act on."""
    title = describe_family(family).title
    text = str(exc)
    if "size mismatch" in text:
        return f"its shapes do not fit {title} (an adapter for another model?)"
    if type(exc).__name__ == "NoMatchingPeftModuleError" or "not found in the base model" in text:
        return f"its layer names match nothing in {title} (an adapter for another model?)"
    if "Invalid LoRA checkpoint" in text:  # a file without LoRA keys is refused before diffusers reads it
        return "not all its weights are LoRA weights"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:REASON_CHARS]


class _NoNewsOfAbsentParts(logging.Filter):
    """diffusers warns, for each adapter, about each text encoder it has no layers for: most styles
    adapt the UNet alone, so that is no news in the worker's log."""

    LOGGERS = ("diffusers.loaders.lora_base", "diffusers.loaders.peft")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No LoRA keys associated to")


class LoraAdapters:
    """The styles one family engine holds: offered before its pipeline is built, loaded into it once,
    switched per job. Calls come under the family's run lock (one job at a time)."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.folder: Path | None = None
        self.offered: tuple[LoraStyle, ...] = ()
        self.loaded: dict[str, LoraStyle] = {}
        self.refused: dict[str, str] = {}
        """File name -> why it was not loaded."""
        self._active: tuple[LoraChoice, ...] = ()

    def offer(self, folder: Path, styles: Sequence[LoraStyle]) -> None:
        """Styles for this family, loaded by :meth:`load_into` when its pipeline is built."""
        if any(s.family is not self.family for s in styles):
            raise ValueError(f"only {self.family} styles may be offered to its engine")
        self.folder, self.offered = Path(folder), tuple(styles)

    def load_into(self, pipe: Any) -> None:
        """Load every offered style into ``pipe`` (diffusers' ``load_lora_weights``) and leave them off."""
        if self.folder is None:
            return
        quiet = _NoNewsOfAbsentParts()
        for name in quiet.LOGGERS:
            logging.getLogger(name).addFilter(quiet)
        try:
            self._load_offered(pipe, self.folder)
        finally:
            for name in quiet.LOGGERS:
                logging.getLogger(name).removeFilter(quiet)
        if self.loaded:
            pipe.disable_lora()

    def _load_offered(self, pipe: Any, folder: Path) -> None:
        for style in self.offered:
            reason = self._load(pipe, folder / style.file, style)
            if reason is None:
                self.loaded[style.name] = style
                logger.info("LoRA style %r (%s) loaded for %s", style.name, style.file, self.family)
            else:
                self.refused[style.file] = reason
                logger.error("LoRA style %r refused: %s: %s; the other styles still work",
                             style.name, folder / style.file, reason)

    def _load(self, pipe: Any, path: Path, style: LoraStyle) -> str | None:
        if not path.is_file():
            return "no such file"
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                names = list(handle.keys())
        except Exception as exc:  # safetensors raises its own error types for a bad header
            return f"not a safetensors file ({str(exc).strip()[:REASON_CHARS]})"
        if not any("lora" in name for name in names):
            return "it holds no LoRA weights"
        try:
            with warnings.catch_warnings():  # "multiple adapters in the model": that is the design
                warnings.filterwarnings("ignore", message=".*peft_config.*multiple adapters")
                pipe.load_lora_weights(str(path), adapter_name=style.name)
        except Exception as exc:  # diffusers/peft raise many types; each refuses this style alone
            return _reason(exc, self.family)
        return None

    def missing(self, choices: Sequence[LoraChoice]) -> list[str]:
        """The styles of a job that are not loaded here (the engine refuses it before any model runs)."""
        return [c.name for c in choices if c.name not in self.loaded]

    def apply(self, pipe: Any, choices: Sequence[LoraChoice]) -> list[LoraStyle]:
        """Switch the job's styles on at their weights and every other one off; returns the job's
        styles (for their trigger words). A job like the last one switches nothing."""
        wanted = tuple(choices)
        if wanted != self._active:
            if not wanted:
                pipe.disable_lora()
            else:
                pipe.enable_lora()
                pipe.set_adapters([c.name for c in wanted], adapter_weights=[c.weight for c in wanted])
            self._active = wanted
        return [self.loaded[c.name] for c in wanted]


def offer_catalogue(folder: Path, engines: dict[Family, Any]) -> Catalogue:
    """Read ``folder``'s catalogue and offer each held family that takes styles its own; say (in the
    log) what was refused and why. ``engines``: the held families' engines (``.loras``)."""
    catalogue = read_catalogue(folder)
    for problem in catalogue.problems:
        logger.error("LoRA catalogue: %s", problem)
    by_family: dict[Family, list[LoraStyle]] = {}
    for style in catalogue.styles:
        description = describe_family(style.family)
        if not description.lora_styles:
            logger.error("LoRA style %r (%s) refused: %s takes no LoRA styles", style.name, style.file,
                         description.title)
        elif style.family not in engines:
            logger.info("LoRA style %r (%s): %s is not held by this worker", style.name, style.file,
                        description.title)
        else:
            by_family.setdefault(style.family, []).append(style)
    for family, styles in by_family.items():
        engines[family].loras.offer(catalogue.folder, styles)
    return catalogue
