"""Library notices that say nothing to an operator, dropped before the libraries are imported.

diffusers imports ``transformers.CLIPImageProcessor`` at import time, and transformers then warns
once that torchvision is missing and it falls back to the PIL processor. The worker has no
torchvision on purpose (PyPI's build does not import beside the pinned torch) and loads the PIL
processors by name (see Engine.prior_pipeline), so the notice would only worry a newcomer.
"""

from __future__ import annotations

import logging

TORCHVISION_FALLBACK = "requires torchvision"
"""Part of transformers' fallback notice (``X requires torchvision (not installed); falling back...``)."""
NOTICE_LOGGERS = ("transformers.utils.import_utils", "transformers.image_processing_base",
                  "transformers.models.auto.image_processing_auto")
"""Where transformers logs that notice from (import-time lookups and AutoImageProcessor)."""


class _DropTorchvisionFallback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return TORCHVISION_FALLBACK not in record.getMessage()


def quiet_library_notices() -> None:
    """Idempotent: the filter is added once per logger."""
    for name in NOTICE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTorchvisionFallback) for f in logger.filters):
            logger.addFilter(_DropTorchvisionFallback())
