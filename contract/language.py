"""Prompts as people give them: what the model read in place of the user's words, and voice messages.

Both sides import this (it imports neither torch nor aiogram). The worker fills a
:class:`PromptTranslation` on a job's first run (the record's ``translation`` field and the
result); the bot copies it into the spec it rebuilds for "again" and "same seed", so the model
reads exactly the same English and the results repeat. A :class:`Transcription` is what a
transcription job (a voice message) sends back in a :class:`contract.events.TranscribedEvent`.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

ENGLISH = "en"
UNDETERMINED = "und"
"""The language code of text with no letters to tell by (digits, emoji)."""

DEFAULT_VOICE_MAX_S = 60
"""Longest voice message transcribed (``VOICE_MAX_SECONDS``): a prompt is a sentence or two; a
minute is plenty, and keeps a transcription job a quick one."""

TRANSCRIBE_FUNC = "worker.language.jobs.run_transcription"
"""What RQ calls for a voice message; its only argument is the transcription id."""
TRANSCRIBE_TIMEOUT_S = 120
"""A minute of speech takes well under ten seconds even on a CPU worker; two minutes is stuck."""


class TranslationStatus(StrEnum):
    TRANSLATED = "translated"
    """The model's English replaced the user's words."""
    ENGLISH = "english"
    """Already English (or no letters at all): read as written."""
    UNSUPPORTED = "unsupported"
    """A language the translation model cannot read: passed through as written, and the user is told."""
    OFF = "off"
    """The operator turned translation off: read as written."""
    NATIVE = "native"
    """The job's model reads this language itself (contract.families ``reads_languages``): read as
    written, and the user is told."""


class Translation(BaseModel):
    """One prompt field: the user's text and what the model read instead."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source: str
    """The user's own words (the spec field it was made from)."""
    text: str
    """What the engine read (equal to ``source`` unless TRANSLATED)."""
    language: str = UNDETERMINED
    """The detected language of ``source`` (ISO 639-1 where known, e.g. "ru")."""
    status: TranslationStatus
    model: str = ""
    """The translation model that wrote ``text`` (empty when nothing was translated)."""


class PromptTranslation(BaseModel):
    """What the model read for each prompt field of a job (None: the field was empty)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    prompt: Translation | None = None
    negative_prompt: Translation | None = None
    region: Translation | None = None
    """An edit's words for what to repaint: the segmentation model reads English too."""

    def fields(self) -> list[Translation]:
        return [t for t in (self.prompt, self.negative_prompt, self.region) if t is not None]

    @property
    def translated(self) -> bool:
        """Some field reached the model in other words than the user's ("what the model read")."""
        return any(t.status is TranslationStatus.TRANSLATED for t in self.fields())

    @property
    def native_languages(self) -> list[str]:
        """Languages the model read itself, untranslated."""
        return sorted({t.language for t in self.fields() if t.status is TranslationStatus.NATIVE})

    @property
    def unsupported_languages(self) -> list[str]:
        """Languages the model could not translate (passed through as written)."""
        return sorted({t.language for t in self.fields() if t.status is TranslationStatus.UNSUPPORTED})

    def reusable(self, field: str, source: str) -> Translation | None:
        """The stored translation of ``field`` if it was made from exactly ``source``."""
        found: Translation | None = getattr(self, field, None)
        return found if found is not None and found.source == source else None


class TranscriptionError(StrEnum):
    """Why a voice message gave no text; the bot maps each to a message in the user's language."""

    EMPTY = "empty"
    """Zero length, silence, or nothing the model could make words of."""
    UNDECODABLE = "undecodable"
    """Not audio the decoder reads."""
    TOO_LONG = "too_long"
    """Longer than VOICE_MAX_SECONDS (measured on the decoded audio, not the client's claim)."""
    EXPIRED = "expired"
    """The recording's blob was gone before a worker got to it."""
    FAILED = "failed"
    """The speech model failed (logged on the worker)."""


class Transcription(BaseModel):
    """What a transcription job found: the words, or why there are none."""

    model_config = ConfigDict(protected_namespaces=())

    text: str = ""
    language: str = UNDETERMINED
    """The language the speech model heard."""
    duration_s: float = Field(default=0.0, ge=0.0)
    error: TranscriptionError | None = None
    max_s: int = DEFAULT_VOICE_MAX_S
    """The limit the worker applied (for the too-long message)."""
    model: str = ""
    worker: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
