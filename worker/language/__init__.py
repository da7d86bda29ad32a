"""The worker's language models, resident beside the image engine but outside it.

``Language.load(LanguageSettings())`` loads the translation model (prompts → English, see
worker.language.translate) and the speech model (voice messages → text, worker.language.transcribe)
once per worker process. worker.jobs translates each job's prompt fields with it before the
engine runs; worker.language.jobs.run_transcription is the RQ job of a voice message.
Heavy imports (torch, transformers, av) happen in ``load``, not when this package is imported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contract.language import PromptTranslation
from contract.spec import JobSpec
from worker.language.prompts import engine_spec, translate_prompts
from worker.language.settings import LanguageSettings

if TYPE_CHECKING:
    from worker.language.transcribe import Transcriber
    from worker.language.translate import Translator

log = logging.getLogger(__name__)

_DTYPES = {"float16", "bfloat16", "float32"}


def resolve(settings: LanguageSettings) -> tuple[str, str]:
    """(device, dtype name) as the engine resolves the same KANDINSKY_DEVICE / KANDINSKY_DTYPE."""
    import torch

    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = settings.dtype
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto, {', '.join(sorted(_DTYPES))}")
    return device, dtype


@dataclass
class Language:
    """Resident translation and speech models of one worker process."""

    settings: LanguageSettings
    translator: Translator | None
    """None when translation is off (``TRANSLATE_PROMPTS=false``): nothing is loaded for it."""
    transcriber: Transcriber

    @classmethod
    def load(cls, settings: LanguageSettings) -> Language:
        import torch

        from worker.language.transcribe import Transcriber
        from worker.language.translate import Translator

        started = time.perf_counter()
        device, dtype_name = resolve(settings)
        dtype = getattr(torch, dtype_name)
        translate_source, transcribe_source = settings.sources()
        cache = str(settings.cache_dir) if settings.cache_dir else None
        local = settings.model_dir is not None
        translator = None
        if settings.translate:
            translator = Translator(translate_source, settings.translate_languages, device=device,
                                    dtype=dtype,
                                    model_id=translate_source if local else settings.translate_model,
                                    cache_dir=cache)
        transcriber = Transcriber(transcribe_source, device=device, dtype=dtype,
                                  beams=settings.transcribe_beams,
                                  model_id=transcribe_source if local else settings.transcribe_model,
                                  cache_dir=cache)
        log.info("language models loaded on %s/%s in %.1f s: translation %s (%s), speech %s", device,
                 dtype_name, time.perf_counter() - started,
                 translator.model_id if translator else "off", ",".join(settings.translate_languages),
                 transcriber.model_id)
        return cls(settings, translator, transcriber)

    def translate_prompts(self, spec: JobSpec, stored: PromptTranslation | None = None) -> PromptTranslation:
        return translate_prompts(spec, self.translator, enabled=self.settings.translate, stored=stored)


__all__ = ["Language", "LanguageSettings", "engine_spec", "translate_prompts"]
