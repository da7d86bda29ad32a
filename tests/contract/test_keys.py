"""Every Redis key the project writes is named in contract/keys.py, under its prefix."""

from __future__ import annotations

import inspect

import redis
from rq import Queue
from rq.job import Job
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from contract import keys


def test_rq_queue_key_is_rqs_own() -> None:
    """The bot counts and searches RQ's queue lists directly: the name must be the one RQ writes."""
    assert Queue.redis_queue_namespace_prefix == keys.RQ_QUEUE_PREFIX
    assert keys.rq_queue("kb-default") == Queue("kb-default", connection=redis.Redis()).key  # not connected
    assert Queue.redis_queues_keys == keys.RQ_QUEUES
    assert keys.rq_job("abc") == Job.key_for("abc")
    assert keys.rq_workers("kb-default") == WORKERS_BY_QUEUE_KEY % "kb-default"


def test_every_key_of_ours_is_under_the_prefix() -> None:
    """Constants and builders alike, so one Redis can host several deployments."""
    names = [n for n in dir(keys) if not n.startswith("_") and n not in ("PREFIX", "annotations")]
    built: list[str] = []
    for name in names:
        value = getattr(keys, name)
        if inspect.isfunction(value) and value.__module__ == keys.__name__:
            args = ["x"] * len(inspect.signature(value).parameters)
            built.append(value(*args))
        elif isinstance(value, str) and ":" in value:
            built.append(value)
    ours = [k for k in built if not k.startswith("rq:")]
    assert len(ours) > 30
    assert all(k.startswith(f"{keys.PREFIX}:") for k in ours), [k for k in ours if not k.startswith("kb:")]
