"""Job hooks: the worker's one extension point around a job's generation, for tests and benches.

``WORKER_JOB_HOOKS=module:attr`` names a zero-argument callable (a class, say) that returns a
:class:`JobHooks`; the worker calls it once at start and fails to start if it cannot. Unset in
production, where a job runs exactly the engine and nothing else. Test suites and benches inject
faults and slow steps this way (``devkit.faults``) into real worker processes, so the worker
package itself carries no test code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from contract.spec import JobSpec

ProgressCallback = Callable[[str, int, int], None]
"""``(stage, step, total)``, called by the engine at each denoising step (worker.engine's own type)."""


@runtime_checkable
class JobHooks(Protocol):
    """Called by worker.jobs around ``Engine.generate`` for every job."""

    def before_generate(self, spec: JobSpec) -> None:
        """Runs just before the engine; an exception here fails the attempt like an engine error."""

    def wrap_progress(self, spec: JobSpec, on_progress: ProgressCallback) -> ProgressCallback:
        """The progress callback the engine gets: ``on_progress`` itself or a wrapper that calls it.
        It runs inside the engine's step loop, so what it raises comes out of the engine."""


class HooksError(Exception):
    """``WORKER_JOB_HOOKS`` does not name a usable hooks factory; the worker must not start."""


def load_job_hooks(path: str) -> JobHooks:
    """Import ``module:attr``, call it and check that the result has the hook methods."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise HooksError(f"WORKER_JOB_HOOKS={path!r} is not of the form module:attr")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raised while importing
        raise HooksError(
            f"WORKER_JOB_HOOKS={path!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise HooksError(f"WORKER_JOB_HOOKS={path!r}: {module_name} has no callable {attr!r}")
    try:
        hooks = factory()
    except Exception as exc:
        raise HooksError(f"WORKER_JOB_HOOKS={path!r}: {attr}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(hooks, JobHooks):
        raise HooksError(
            f"WORKER_JOB_HOOKS={path!r}: {attr}() returned a {type(hooks).__name__}, "
            "which lacks before_generate and wrap_progress"
        )
    return hooks
