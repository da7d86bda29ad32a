"""The worker overrides some of RQ's worker methods; each was written against RQ's own code of the
version pinned in pyproject.toml. A new RQ (or a new override) fails here, naming the method, so
the override is re-read against the new code before the pin moves."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import rq

from worker.runner import KandinskyWorker

RQ_VERSION = "3.0.0"
RQ_SOURCES = {
    "__init__": "86f83bb69582aebb",
    "register_birth": "4690ab4f7b74ffb2",
    "bootstrap": "7197ad79c7ff3a49",
    "dequeue_timeout": "62cbfcfcde523452",
    "get_heartbeat_ttl": "f83449c2eebaacb1",
    "_shutdown": "828be105b616d1d6",
    "unsubscribe": "16e9db30b9c54c46",
    "dequeue_job_and_maintain_ttl": "2715cf34d9e3af3b",
    "execute_job": "eae0f23110aeb280",
    "heartbeat": "63b1089fd146d19c",
    "check_for_suspension": "e8095ae1fcf966bd",
    "run_maintenance_tasks": "3d8a446b5354fce3",
    "clean_registries": "e2c9790c8156c72c",
}
"""Overridden method -> the first 16 hex digits of the SHA-256 of RQ's source of it (the class it
comes from in KandinskyWorker's bases), as read when the override was last checked."""


def _fingerprint(code: Any) -> str:
    code = code.fget if isinstance(code, property) else code
    return hashlib.sha256(inspect.getsource(code).encode()).hexdigest()[:16]


def rq_sources_now() -> dict[str, str]:
    """The fingerprint of each RQ method that KandinskyWorker defines again."""
    found = {}
    for name in KandinskyWorker.__dict__:
        if name.startswith("__") and name != "__init__":
            continue
        base = next((cls for cls in KandinskyWorker.__mro__[1:] if name in cls.__dict__), None)
        if base is not None and base.__module__.startswith("rq."):
            found[name] = _fingerprint(base.__dict__[name])
    return found


def test_rq_is_the_version_the_overrides_were_written_for() -> None:
    assert rq.__version__ == RQ_VERSION


def test_every_overridden_rq_method_is_the_code_it_was_written_against() -> None:
    now = rq_sources_now()
    assert set(now) == set(RQ_SOURCES), "an override was added or removed: record RQ's source of it"
    changed = sorted(name for name, digest in now.items() if RQ_SOURCES[name] != digest)
    assert not changed, f"RQ changed what these overrides replace; re-read them: {changed}"


def test_the_fingerprint_sees_a_changed_method() -> None:
    """Not vacuous: a method whose code differs has another fingerprint."""

    def one() -> int:
        return 1

    def two() -> int:
        return 2

    assert _fingerprint(one) != _fingerprint(two)
