"""Shared fixtures: a real redis-server per test session, a clean database per test."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from contract import spec
from devkit.redis_server import RedisServer
from tests.reliability.tally import TALLY

TORCH_THREADS = "1"
"""Each test process, and every worker, bot or bench it starts, computes on one thread. The suite
keeps both cores busy with two test processes and their children; torch's default of a thread per
core then waits on descheduled threads, which made engine tests three to five times slower."""
os.environ["OMP_NUM_THREADS"] = TORCH_THREADS  # before torch is imported; children inherit it

TALLY_KEY = "reliability_tally"
"""Where an xdist worker process leaves its reliability figures for the controller."""

if TYPE_CHECKING:
    from worker.engine import Engine


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The reliability files first, the demo after them (together the longest unit of work, below),
    then the other files with a long scenario (``@pytest.mark.slow``), then the files that start no
    stack (LIGHT_START), then the rest: xdist hands out the units in this order (``make test`` turns
    off its reordering by test count), so the long ones start at once instead of ending the run, and
    the other processes start light while the reliability stack starts."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (not item.nodeid.startswith(SHARED_STACK_SCOPE),
                                 not item.nodeid.startswith(SERIAL_SCENARIOS),
                                 item.path not in slow_files,
                                 not item.nodeid.startswith(LIGHT_START)))  # stable: files keep their order


SHARED_STACK_SCOPE = "tests/reliability/"
"""Its files share one process's stack (a redis-server, a worker zygote, two workers) and run in one
xdist process, one after another: spread over the processes they started that stack once each,
and their kill and load scenarios overlapped and took each other's cores."""
SERIAL_SCENARIOS = (SHARED_STACK_SCOPE, "tests/devkit/test_demo.py")
"""Whole-stack scenarios run one after another in that one process: the offline demo (every mode
through its own bot, worker and Bot API server) took 70 s when it started beside the reliability
stack, 43 s when it did not."""


LIGHT_START = ("tests/contract/", "tests/deploy/", "tests/devkit/test_botapi", "tests/bot/test_config.py",
               "tests/bot/test_i18n.py", "tests/bot/test_inputs.py", "tests/bot/test_flood.py",
               "tests/bot/test_retry.py", "tests/bot/test_shutdown.py", "tests/worker/test_engine_images.py")
"""What the other two processes run first, while the reliability stack starts (a zygote importing
torch, two workers, a bot): files that start no worker or engine of their own. A whole-stack test
that started beside it took 70 s instead of 30-40."""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` with the reliability files and the demo as one unit of work."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedStackScheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SERIAL_SCENARIOS):
                return SHARED_STACK_SCOPE
            return str(super()._split_scope(nodeid))

    return SharedStackScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints the summary
        workeroutput[TALLY_KEY] = TALLY.as_dict()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: add a finished worker process's figures to the run's."""
    TALLY.add(getattr(node, "workeroutput", {}).get(TALLY_KEY, {}))


PROCESS_BUSY: dict[str, float] = {}
"""xdist's controller: seconds of setup, call and teardown each test process reported."""
PROCESS_FILES: dict[str, set[str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    node = getattr(report, "node", None)  # set on the controller's copy of a worker's report
    if node is None:
        return
    name = str(node.gateway.id)
    PROCESS_BUSY[name] = PROCESS_BUSY.get(name, 0.0) + report.duration
    PROCESS_FILES.setdefault(name, set()).add(report.nodeid.split("::", 1)[0])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PROCESS_BUSY:  # the run's critical path: the busiest process ends it
        terminalreporter.write_line("busy per test process: " + ", ".join(
            f"{name} {busy:.0f} s in {len(PROCESS_FILES[name])} files"
            for name, busy in sorted(PROCESS_BUSY.items())))
    if TALLY.scenarios == 0:
        return
    for line in TALLY.figures:
        terminalreporter.write_line(line)
    terminalreporter.write_line(TALLY.line())


@pytest.fixture(autouse=True)
def pinned_seeds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests without a seed draw from a sequence fixed by the test's name: a test whose outcome
    depends on generated pixels (a region found in a result) is the same on every run."""
    monkeypatch.setattr(spec, "SEEDS", random.Random(request.node.nodeid))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of an empty database; flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """An asyncio client of the test's clean database."""
    client = AsyncRedis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def tiny_bundle() -> Path:
    """The project's tiny random-weight model bundle, the one the demo and the benches use (under
    ``.cache/``): written once by the first process that needs it and kept while the code that writes
    it is unchanged (devkit.stack.ensure_tiny_bundle). Tests only read it."""
    from devkit.stack import ensure_tiny_bundle

    return ensure_tiny_bundle()


@pytest.fixture(scope="session")
def engine(tiny_bundle: Path) -> Engine:
    """One resident engine on the tiny bundle, on the CPU, shared by the whole session."""
    from worker.engine import Engine, EngineSettings

    return Engine.load(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32"))
