"""Keep the cyclic garbage collector off the objects every bot process holds for its whole life.

After its imports a bot process tracks ~216,000 objects (aiogram's and pydantic's models and
schemas, redis, RQ, the translations). None of them ever becomes garbage, yet every full
(generation-2) collection walks all of them again: ~0.2 s each, a couple of times per thousand
updates (bench/NOTES.md, finding 3). ``gc.freeze()`` moves them out of the collector's view once.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what startup left behind, then exempt everything alive from future collections.

    Call once, after the imports and before serving. Returns how many objects were frozen.
    Objects created later (updates, jobs, sessions) are collected as usual.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
