"""Run one test many times in one session, to show a flaky scenario is gone (not loaded by default).

    REPEAT_TEST=test_sigterm_finishes_or_hands_back_the_current_job REPEAT_N=50 \
        .venv/bin/python -m pytest -p tests.repeat tests/reliability/test_faults.py -k sigterm_finishes
"""

from __future__ import annotations

import os

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.function.__name__ == os.environ.get("REPEAT_TEST"):
        metafunc.fixturenames.append("repeat_index")
        metafunc.parametrize("repeat_index", range(int(os.environ.get("REPEAT_N", "50"))))
