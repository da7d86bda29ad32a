"""contract.redisconn: the REDIS_SENTINELS setting (every refusal says what to write), the target
both processes build from their settings, and WAIT after a write against a real master and replica."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from pydantic import ValidationError

from bot.config import BotSettings
from contract import keys, redisconn
from contract.redisconn import RedisTarget, SentinelsError, parse_sentinels
from devkit.redis_server import RedisServer
from worker.config import WorkerSettings


def test_sentinels_parse_as_host_port_pairs() -> None:
    assert parse_sentinels("") == ()
    assert parse_sentinels(" s1:26379, s2:26380 ,") == (("s1", 26379), ("s2", 26380))
    assert parse_sentinels("[::1]:26379") == (("::1", 26379),)


@pytest.mark.parametrize(("text", "says"), [
    ("sentinel-1", "'sentinel-1' is not host:port"),
    (":26379", "':26379' is not host:port"),
    ("s1:port", "'s1:port' has no port number"),
    ("s1:0", "the port must be 1-65535"),
    ("s1:70000", "the port must be 1-65535"),
    (" , ", "no host:port in it"),
])
def test_a_bad_sentinel_list_is_refused_with_what_to_write(text: str, says: str) -> None:
    with pytest.raises(SentinelsError) as exc:
        parse_sentinels(text)
    assert says in str(exc.value)
    assert "REDIS_SENTINELS" in str(exc.value) and "sentinel-1:26379" in str(exc.value)


def test_bot_settings_refuse_a_bad_sentinel_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "1:x")
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379,redis-2")
    with pytest.raises(ValidationError) as exc:
        BotSettings()  # type: ignore[call-arg]
    assert "'redis-2' is not host:port" in str(exc.value)


def test_worker_settings_refuse_a_bad_sentinel_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "s1:x")
    with pytest.raises(ValidationError) as exc:
        WorkerSettings()
    assert "'s1:x' has no port number" in str(exc.value)


def test_both_processes_build_the_same_target(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"BOT_TOKEN": "1:x", "REDIS_URL": "redis://:secret@ignored:6379/2",
           "REDIS_SENTINELS": "s1:26379,s2:26379",
           "REDIS_SENTINEL_SERVICE": "kb-main", "REDIS_SENTINEL_PASSWORD": "sp", "REDIS_FAILOVER_S": "12"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bot = BotSettings().redis_target()  # type: ignore[call-arg]
    worker = WorkerSettings().redis_target()
    assert bot == worker
    assert bot.sentinels == (("s1", 26379), ("s2", 26379)) and bot.service == "kb-main"
    assert bot.sentinel_password == "sp" and bot.failover_s == 12.0
    assert bot.wait_replicas == 1
    # Retries cover the failover window; the log line names the sentinels, never a password.
    assert bot.retries() * redisconn.RETRY_CAP_S >= 12.0
    assert "secret" not in bot.describe() and "sp" not in bot.describe().replace("s1", "")


def test_without_sentinels_nothing_waits_for_replicas() -> None:
    plain = RedisTarget(url="redis://localhost:6379/0")
    assert not plain.uses_sentinel and plain.wait_replicas == 0
    assert plain.retries() == redisconn.PLAIN_RETRIES
    assert plain.describe() == "redis at localhost:6379"


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    with RedisServer() as master, RedisServer(replica_of=master) as replica:
        yield master, replica


async def test_replicate_returns_once_the_replica_holds_the_write(
        pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    # A target that waits for a replica, aimed at the master directly (what Sentinel would name).
    target = RedisTarget(url=master.url, sentinels=(("127.0.0.1", 1),))
    client = redis.asyncio.Redis.from_url(master.url)
    mirror = redis.Redis.from_url(replica.url)
    try:
        await client.set("accepted-job", "j1")
        assert await redisconn.replicate(client, target, "j1") == 1
        assert mirror.get("accepted-job") == b"j1"  # WAIT returned: the replica has it
        assert mirror.get(keys.REPLICATION_FENCE) == b"j1"
        sync = redis.Redis.from_url(master.url)
        try:
            assert redisconn.replicate_sync(sync, target, "j2") == 1
        finally:
            sync.close()
        assert await redisconn.replicate(client, RedisTarget(url=master.url), "j3") is None
    finally:
        await client.aclose()
        mirror.close()


async def test_replicate_warns_when_no_replica_answers(caplog: pytest.LogCaptureFixture) -> None:
    with RedisServer() as alone:
        target = RedisTarget(url=alone.url, sentinels=(("127.0.0.1", 1),))
        client = redis.asyncio.Redis.from_url(alone.url)
        try:
            assert await redisconn.replicate(client, target, "j9") == 0
        finally:
            await client.aclose()
    assert "j9 written on the master only" in caplog.text
