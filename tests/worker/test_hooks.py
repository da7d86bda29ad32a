"""WORKER_JOB_HOOKS: the test/bench extension point loads once at start, or the worker refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contract.spec import JobSpec, Mode
from devkit.faults import HOOKS_PATH, FaultHooks
from worker.hooks import HooksError, JobHooks, load_job_hooks
from worker.runner import EXIT_BAD_HOOKS

ROOT = Path(__file__).resolve().parents[2]
REFUSAL_TIMEOUT_S = 60.0
"""The refusal comes before torch is imported: seconds even on two busy cores."""


class NotHooks:
    """Has neither hook method."""


def broken_factory() -> JobHooks:
    raise RuntimeError("no hooks today")


def test_the_fault_hooks_load_from_their_import_path() -> None:
    hooks = load_job_hooks(HOOKS_PATH)
    assert isinstance(hooks, FaultHooks) and isinstance(hooks, JobHooks)
    spec = JobSpec(mode=Mode.TEXT2IMAGE, prompt="[fault:engine-error] a cube")
    with pytest.raises(RuntimeError, match="injected engine error"):
        hooks.before_generate(spec)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("devkit.faults", "not of the form module:attr"),
        ("devkit.no_such_module:FaultHooks", "cannot import 'devkit.no_such_module'"),
        ("devkit.faults:NoSuchHooks", "has no callable 'NoSuchHooks'"),
        ("tests.worker.test_hooks:NotHooks", "lacks before_generate and wrap_progress"),
        ("tests.worker.test_hooks:broken_factory", "raised RuntimeError: no hooks today"),
    ],
)
def test_a_bad_hooks_path_is_refused_with_a_reason(path: str, message: str) -> None:
    with pytest.raises(HooksError, match="WORKER_JOB_HOOKS") as caught:
        load_job_hooks(path)
    assert message in str(caught.value)


def test_a_worker_with_a_bad_hooks_path_refuses_to_start(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "WORKER_JOB_HOOKS": "devkit.no_such_module:FaultHooks",
        # Nothing to load: the refusal must come before the engine (and before Redis) is touched.
        "KANDINSKY_MODEL_DIR": str(tmp_path / "no-bundle"),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "WORKER_NAME": "hooks-refusal",
    }
    done = subprocess.run([sys.executable, "-m", "worker"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=REFUSAL_TIMEOUT_S)
    assert done.returncode == EXIT_BAD_HOOKS, done.stderr[-3000:]
    assert "refusing to start" in done.stderr
    assert "WORKER_JOB_HOOKS='devkit.no_such_module:FaultHooks': cannot import" in done.stderr
    assert "engine loaded" not in done.stderr and "model_dir" not in done.stderr
