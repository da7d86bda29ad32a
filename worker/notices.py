"""Library notices that say nothing to an operator, dropped before the libraries are imported.

diffusers imports ``transformers.CLIPImageProcessor`` at import time, and transformers then warns
once that torchvision is missing and it falls back to the PIL processor. The worker has no
torchvision on purpose (PyPI's build does not import beside the pinned torch) and loads the PIL
processors by name (see Engine.prior_pipeline), so the notice would only worry a newcomer.

transformers' own Whisper ``generate`` hands ``suppress_tokens``/``begin_suppress_tokens`` to the
generic ``generate`` next to its generation config (a workaround of theirs, transformers PR #48108),
and the generic one then warns that doing both is deprecated: every transcription would log it,
though nothing the worker passes causes it.
"""

from __future__ import annotations

import logging

TORCHVISION_FALLBACK = "requires torchvision"
"""Part of transformers' fallback notice (``X requires torchvision (not installed); falling back...``)."""
NOTICE_LOGGERS = ("transformers.utils.import_utils", "transformers.image_processing_base",
                  "transformers.models.auto.image_processing_auto")
"""Where transformers logs that notice from (import-time lookups and AutoImageProcessor)."""
WHISPER_SUPPRESS_NOTICE = ("generation-related arguments=(", "suppress_tokens")
"""Parts of the deprecation notice Whisper's own generate causes (the module docstring says why); the
arguments are printed as a set, in any order."""
GENERATION_LOGGER = "transformers.generation.utils"


class _DropNotice(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not all(fragment in message for fragment in self.fragments)


def quiet_library_notices() -> None:
    """Idempotent: each filter is added once per logger."""
    drops: list[tuple[str, tuple[str, ...]]] = [(name, (TORCHVISION_FALLBACK,)) for name in NOTICE_LOGGERS]
    drops.append((GENERATION_LOGGER, WHISPER_SUPPRESS_NOTICE))
    for name, fragments in drops:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) and f.fragments == fragments for f in logger.filters):
            logger.addFilter(_DropNotice(*fragments))
