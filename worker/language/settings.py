"""Settings of the worker's language models, from the environment (pydantic-settings).

The model choice, with its reasons:

* **Translation: Marian (Helsinki-NLP/opus-mt-ru-en) over NLLB-200 or M2M100.** Russian is the
  language that must be right, and a bilingual OPUS-MT model is the best fit for it on every count
  that matters here. Quality: trained on the whole OPUS ru–en corpus for that one direction; the
  multilingual models share their capacity across 100–200 languages, and the 418M M2M100 is
  weaker than bilingual models on high-resource pairs like ru→en. Size: 76M parameters (~300 MB,
  half in fp16) against 418M (M2M100) or 600M–3.3B (NLLB), next to GPUs that must keep all of
  Kandinsky resident. Speed: a six-layer encoder-decoder with a 512-wide model, a few milliseconds
  per prompt on a GPU, so translation stays far below 2% of a generation. Licence: CC-BY-4.0, where
  the NLLB weights are CC-BY-NC (no commercial use). Other languages are one setting away: any
  Marian model (``TRANSLATE_MODEL``, e.g. Helsinki-NLP/opus-mt-uk-en, or the multilingual
  opus-mt-mul-en) with the languages it reads in ``TRANSLATE_LANGUAGES``; a language the model does
  not read passes through untranslated and the user is told.
* **Speech: Whisper large-v3-turbo.** Multilingual (Russian included) speech recognition with
  language detection; large-v3's 32-layer encoder with a 4-layer decoder (809M parameters), so
  decoding, the sequential part, is several times faster than large-v3 at nearly its accuracy. A
  10 s message takes well under a second on a GPU. ``TRANSCRIBE_MODEL`` picks another size
  (openai/whisper-small for CPU-only workers).

With ``KANDINSKY_MODEL_DIR`` (the tiny bundle) both come from its ``translate/`` and
``transcribe/`` folders, as the image models come from its other folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contract.language import DEFAULT_VOICE_MAX_S

DEFAULT_TRANSLATE_MODEL = "Helsinki-NLP/opus-mt-ru-en"
DEFAULT_TRANSCRIBE_MODEL = "openai/whisper-large-v3-turbo"
TRANSLATE_FOLDER = "translate"
TRANSCRIBE_FOLDER = "transcribe"
"""The language models' folders in a local bundle (devkit.tiny_language writes them)."""
DEFAULT_BEAMS = 5
"""Whisper's beam width: OpenAI's reference decoding and transformers' speech pipeline use 5."""


class LanguageSettings(BaseSettings):
    """Translation of prompts and transcription of voice messages on the worker."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    translate: bool = Field(default=True, validation_alias=AliasChoices("TRANSLATE_PROMPTS", "translate"))
    """``TRANSLATE_PROMPTS``: translate non-English prompts before the text encoder (off: as typed)."""
    translate_model: str = Field(default=DEFAULT_TRANSLATE_MODEL,
                                 validation_alias=AliasChoices("TRANSLATE_MODEL", "translate_model"))
    """``TRANSLATE_MODEL``: a Marian (opus-mt) model id or folder that translates into English."""
    translate_languages: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("ru",), validation_alias=AliasChoices("TRANSLATE_LANGUAGES", "translate_languages"))
    """``TRANSLATE_LANGUAGES``: comma-separated ISO 639-1 codes the translation model reads."""
    transcribe_model: str = Field(default=DEFAULT_TRANSCRIBE_MODEL,
                                  validation_alias=AliasChoices("TRANSCRIBE_MODEL", "transcribe_model"))
    """``TRANSCRIBE_MODEL``: a Whisper model id or folder (its size is the speed/accuracy choice)."""
    transcribe_beams: int = Field(default=DEFAULT_BEAMS, ge=1, le=16,
                                  validation_alias=AliasChoices("TRANSCRIBE_BEAMS", "transcribe_beams"))
    voice_max_s: int = Field(default=DEFAULT_VOICE_MAX_S, ge=1, le=600,
                             validation_alias=AliasChoices("VOICE_MAX_SECONDS", "voice_max_s"))
    """``VOICE_MAX_SECONDS``: longest recording transcribed (the bot reads the same variable)."""
    model_dir: Path | None = Field(default=None,
                                   validation_alias=AliasChoices("KANDINSKY_MODEL_DIR", "model_dir"))
    device: str = Field(default="auto", validation_alias=AliasChoices("KANDINSKY_DEVICE", "device"))
    dtype: str = Field(default="auto", validation_alias=AliasChoices("KANDINSKY_DTYPE", "dtype"))
    cache_dir: Path | None = Field(default=None,
                                   validation_alias=AliasChoices("KANDINSKY_CACHE_DIR", "cache_dir"))

    @field_validator("translate_languages", mode="before")
    @classmethod
    def _split_languages(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    def sources(self) -> tuple[str, str]:
        """Where the translation and speech models come from: the bundle's folders, or the ids."""
        if self.model_dir is None:
            return self.translate_model, self.transcribe_model
        root = Path(self.model_dir)
        folders = (root / TRANSLATE_FOLDER, root / TRANSCRIBE_FOLDER)
        missing = [str(f) for f in folders if not f.is_dir()]
        if missing:
            raise FileNotFoundError(
                f"model_dir {root} lacks {', '.join(missing)} (python -m devkit.tiny_models DIR writes them)"
            )
        return str(folders[0]), str(folders[1])
