"""Fault injection for tests and benches, through the worker's job hooks (worker.hooks).

A worker started with :data:`FAULT_HOOKS_ENV` (``WORKER_JOB_HOOKS=devkit.faults:FaultHooks``)
reads markers from each job's prompt:

* ``[fault:engine-error]``: the attempt fails with a RuntimeError just before the engine runs;
* ``[fault:value-error]``: a plain ValueError comes out of the engine's first step, as a bug deep in
  diffusers or torch would (an engine error, retried: only the engine's input checks are bad input);
* ``[fault:slow=1.5]``: each engine step also sleeps 1.5 s (GIL released, no CPU), which stretches
  a job for cancel, timeout and kill tests, or stands in for a GPU's time in the benches.

The production image has no devkit, so no prompt can trigger any of this there.
"""

from __future__ import annotations

import re
import time

from contract.spec import JobSpec
from worker.hooks import ProgressCallback

HOOKS_PATH = "devkit.faults:FaultHooks"
FAULT_HOOKS_ENV = {"WORKER_JOB_HOOKS": HOOKS_PATH}
"""Environment of a worker process that honours the markers below."""
ENGINE_ERROR = "[fault:engine-error]"
"""A prompt containing this fails every attempt with an injected engine error."""
VALUE_ERROR = "[fault:value-error]"
"""A prompt containing this raises ValueError from inside the engine's step loop, every attempt."""
SLOW_PREFIX = "[fault:slow="
"""``[fault:slow=S]`` sleeps S seconds at each engine step."""
_SLOW_RE = re.compile(r"\[fault:slow=([0-9.]+)\]")


def slow_marker(seconds: float) -> str:
    """Prompt prefix for a job whose every engine step also sleeps ``seconds``; empty for 0."""
    return f"{SLOW_PREFIX}{seconds}] " if seconds > 0 else ""


class FaultHooks:
    """The worker.hooks.JobHooks that act on the markers; stateless, one per worker process."""

    def before_generate(self, spec: JobSpec) -> None:
        if ENGINE_ERROR in spec.prompt:
            raise RuntimeError("injected engine error (devkit.faults)")

    def wrap_progress(self, spec: JobSpec, on_progress: ProgressCallback) -> ProgressCallback:
        if VALUE_ERROR in spec.prompt:
            return _raise_value_error
        slow = _SLOW_RE.search(spec.prompt)
        if slow is None:
            return on_progress
        delay = float(slow.group(1))

        def slowed(stage: str, step: int, total: int) -> None:
            on_progress(stage, step, total)
            time.sleep(delay)

        return slowed


def _raise_value_error(stage: str, step: int, total: int) -> None:
    """The engine calls this from inside the pipeline's step loop (diffusers' step callback)."""
    raise ValueError(f"injected ValueError at {stage} step {step}/{total} (devkit.faults)")
