"""A tiny HTTP endpoint for ``/metrics`` (Prometheus) and ``/healthz``, shared by bot and worker.

It runs in a daemon thread so it answers even while a worker is busy inside a long GPU job,
which is exactly when a docker healthcheck must not mistake "busy" for "dead".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]
"""Returns (healthy, one-line reason); must be cheap and must not block for long."""


HEALTH_REDIS_TIMEOUT_S = 2.0
"""A healthcheck must answer quickly (bot and worker alike): Redis silent for 2 s is unhealthy."""


def serve(
    port: int, registry: CollectorRegistry, health: HealthCheck, host: str = "0.0.0.0"
) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; call ``shutdown()`` on the result to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                try:
                    ok, reason = health()
                except Exception as exc:  # a failing check is an unhealthy answer, not a crash
                    ok, reason = False, f"health check raised {type(exc).__name__}"
                body, status, ctype = reason.encode(), 200 if ok else 503, "text/plain; charset=utf-8"
            else:
                body, status, ctype = b"not found", 404, "text/plain; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("health endpoint: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"health-{port}", daemon=True).start()
    return server
