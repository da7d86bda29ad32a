"""``python -m worker prefetch``: download every public checkpoint into the model cache.

Used when baking models into the worker image and by operators who want the first job fast.
With ``KANDINSKY_MODEL_DIR`` set there is nothing to download and nothing is done.
"""

from __future__ import annotations

import argparse
import logging

from worker.engine import EngineSettings

log = logging.getLogger(__name__)


def prefetch(settings: EngineSettings) -> list[str]:
    """Download the checkpoints of the families ``WORKER_FAMILIES`` names (Kandinsky 2.2 when unset),
    without the folders a family never reads (``FamilyEngine.shared_folders``); returns what was
    fetched (empty for a local bundle)."""
    if settings.model_dir is not None:
        log.info("KANDINSKY_MODEL_DIR=%s is set: nothing to download", settings.model_dir)
        return []
    from huggingface_hub import snapshot_download
    from rembg import new_session

    from contract.families import Family
    from worker.config import WorkerSettings
    from worker.engine.families import engine_class

    families = WorkerSettings().families or (Family.KANDINSKY22,)
    fetched: list[str] = []
    for family in families:
        family_engine = engine_class(family)
        for i, repo_id in enumerate(family_engine.public_ids(settings)):
            if repo_id in fetched:
                continue
            skip = [f"{folder}/*" for folder in family_engine.shared_folders] if i else []
            log.info("downloading %s%s", repo_id, f" without {', '.join(skip)}" if skip else "")
            snapshot_download(repo_id, cache_dir=settings.cache_dir, ignore_patterns=skip or None)
            fetched.append(repo_id)
    log.info("downloading rembg model %s", settings.rembg_model)
    new_session(settings.rembg_model)
    fetched.append(f"rembg:{settings.rembg_model}")
    from worker.language import LanguageSettings

    language = LanguageSettings()
    for repo_id in (*((language.translate_model,) if language.translate else ()), language.transcribe_model):
        log.info("downloading %s", repo_id)
        snapshot_download(repo_id, cache_dir=settings.cache_dir)
        fetched.append(repo_id)
    return fetched


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker prefetch", description=__doc__)
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for item in prefetch(EngineSettings()):
        print(item)
    return 0
