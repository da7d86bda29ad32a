"""The resident translation model: prompts in another language → English, before the text encoder.

Loaded once per worker with ``from_pretrained`` (the public Marian checkpoints and the tiny bundle
alike) and kept on the worker's device; worker.language.settings explains the choice of model.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from contract.spec import MAX_PROMPT_CHARS

log = logging.getLogger(__name__)

MAX_SOURCE_TOKENS = 512
"""Marian's positional table; a 1000-character prompt is about 300 tokens, so nothing is cut."""
MIN_NEW_TOKENS = 1
"""A non-empty prompt never translates to nothing: an immediate end-of-sequence is not an answer."""


class Translator:
    """One translation model into English, and the languages it reads."""

    def __init__(self, source: str, languages: tuple[str, ...], *, device: str, dtype: torch.dtype,
                 model_id: str | None = None, cache_dir: str | None = None) -> None:
        if not languages:
            raise ValueError("a translation model must read at least one language (TRANSLATE_LANGUAGES)")
        self.languages = frozenset(languages)
        self.model_id = model_id or source
        self.device = device
        self.tokenizer: Any = AutoTokenizer.from_pretrained(source, cache_dir=cache_dir)
        model: Any = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=dtype, cache_dir=cache_dir)
        self.model: Any = model.to(device).eval()
        self._lock = threading.Lock()

    def reads(self, language: str) -> bool:
        return language in self.languages

    def generate_kwargs(self) -> dict[str, Any]:
        """What ``generate`` gets beyond the model's own generation config (the same in the tests'
        reference run)."""
        return {"min_new_tokens": MIN_NEW_TOKENS}

    @torch.no_grad()
    def translate(self, texts: list[str]) -> list[str]:
        """English for each text, in one batch; each result is cut to what a spec's prompt holds."""
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError("translate() needs non-empty texts")
        started = time.perf_counter()
        with self._lock:
            batch = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                   max_length=MAX_SOURCE_TOKENS).to(self.device)
            out = self.model.generate(**batch, **self.generate_kwargs())
            decoded: list[str] = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        log.debug("translated %d text(s) in %.3f s", len(texts), time.perf_counter() - started)
        return [" ".join(text.split())[:MAX_PROMPT_CHARS] for text in decoded]
