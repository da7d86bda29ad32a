"""Shared fixtures: a real redis-server per test session, a clean database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from devkit.redis_server import RedisServer

if TYPE_CHECKING:
    from worker.engine import Engine


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


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's tiny random-weight model bundle, written once per test session."""
    from devkit.tiny_models import write_tiny_bundle

    return write_tiny_bundle(tmp_path_factory.mktemp("tiny-bundle"))


@pytest.fixture(scope="session")
def engine(tiny_bundle: Path) -> Engine:
    """One resident engine on the tiny bundle, on the CPU, shared by the whole session."""
    from worker.engine import Engine, EngineSettings

    return Engine.load(EngineSettings(model_dir=tiny_bundle, device="cpu", dtype="float32"))
