"""What the model reads for a job's prompt fields, and the spec the engine gets with it.

Every prompt field the engine reads (the prompt, which sticker, blend and depth jobs carry too,
and the negative prompt) is looked at once: English passes untouched, another language the model
reads is translated, one it cannot is passed as written (and the user is told). A translation a
spec or an earlier attempt carries for exactly the same text is reused, so "again", "same seed"
and retries read the same English. Style and sticker suffixes are appended by the engine after
this, in English.
"""

from __future__ import annotations

from typing import Protocol

from contract.families import describe_family
from contract.language import ENGLISH, UNDETERMINED, PromptTranslation, Translation, TranslationStatus
from contract.spec import JobSpec
from worker.language.detect import detect_language

FIELDS = ("prompt", "negative_prompt", "region")
"""The spec's fields the engine reads as text (an edit's region goes to the segmentation model)."""


class TranslatesText(Protocol):
    model_id: str

    def reads(self, language: str) -> bool: ...

    def translate(self, texts: list[str]) -> list[str]: ...


def translate_prompts(spec: JobSpec, translator: TranslatesText | None, *, enabled: bool,
                      stored: PromptTranslation | None = None) -> PromptTranslation:
    """The translation of every non-empty prompt field of ``spec`` (one batch for the model)."""
    known = [t for t in (spec.translation, stored) if t is not None]
    native = describe_family(spec.model).reads_languages
    found: dict[str, Translation] = {}
    todo: list[tuple[str, str, str]] = []  # (field, source, language)
    for field in FIELDS:
        source: str = getattr(spec, field)
        if not source.strip():
            continue
        reused = next((r for t in known if (r := t.reusable(field, source)) is not None), None)
        if reused is not None:
            found[field] = reused
            continue
        language = detect_language(source)
        if language in (ENGLISH, UNDETERMINED):
            found[field] = Translation(source=source, text=source, language=language,
                                       status=TranslationStatus.ENGLISH)
        elif language in native:
            found[field] = Translation(source=source, text=source, language=language,
                                       status=TranslationStatus.NATIVE)
        elif not enabled or translator is None:
            found[field] = Translation(source=source, text=source, language=language,
                                       status=TranslationStatus.OFF)
        elif not translator.reads(language):
            found[field] = Translation(source=source, text=source, language=language,
                                       status=TranslationStatus.UNSUPPORTED)
        else:
            todo.append((field, source, language))
    if todo and translator is not None:
        english = translator.translate([source.strip() for _, source, _ in todo])
        for (field, source, language), text in zip(todo, english, strict=True):
            if text.strip():
                found[field] = Translation(source=source, text=text, language=language,
                                           status=TranslationStatus.TRANSLATED, model=translator.model_id)
            else:  # only special tokens came out: the model has no words for it
                found[field] = Translation(source=source, text=source, language=language,
                                           status=TranslationStatus.UNSUPPORTED, model=translator.model_id)
    return PromptTranslation(**found)


def engine_spec(spec: JobSpec, translation: PromptTranslation) -> JobSpec:
    """``spec`` with each prompt field replaced by what the model reads (the job record keeps the
    user's own words; only the engine sees this copy)."""
    update = {field: t.text for field in FIELDS if (t := getattr(translation, field)) is not None}
    return spec.model_copy(update=update) if update else spec
