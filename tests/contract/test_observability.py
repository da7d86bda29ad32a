from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Counter

from contract.observability import serve
from devkit.redis_server import free_port


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_and_health_follow_the_check() -> None:
    registry = CollectorRegistry()
    jobs = Counter("kb_test_jobs", "jobs", registry=registry)
    jobs.inc(3)
    state = {"ok": True}
    port = free_port()
    server = serve(port, registry, lambda: (state["ok"], "redis ok" if state["ok"] else "redis down"),
                   host="127.0.0.1")
    try:
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "kb_test_jobs_total 3.0" in body
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, "redis ok")
        state["ok"] = False
        assert _get(f"http://127.0.0.1:{port}/healthz") == (503, "redis down")
        assert _get(f"http://127.0.0.1:{port}/other")[0] == 404
    finally:
        server.shutdown()


def test_a_raising_check_is_unhealthy() -> None:
    def boom() -> tuple[bool, str]:
        raise RuntimeError("secret detail")

    port = free_port()
    server = serve(port, CollectorRegistry(), boom, host="127.0.0.1")
    try:
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503 and "RuntimeError" in body and "secret" not in body
    finally:
        server.shutdown()
