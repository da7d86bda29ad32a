"""Start a real ``redis-server`` on a free local port, for tests and the offline demo; and, for the
failover tests, a replica of one and a real Sentinel (``redis-server --sentinel``) watching them."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

START_TIMEOUT_S = 10.0
"""redis-server starts in milliseconds; ten seconds means it is not going to."""


PORT_BASE = 20000
"""Local servers' ports come from here up, below Linux's ephemeral range (32768-60999) that bind(0)
and every outgoing connection draw from: such a port is never a client's source port, and a stopped
server's port (a Redis restart scenario) is not handed to another process's server meanwhile."""
PORTS_PER_PROCESS = 1500
"""Each test process (pytest-xdist's gw0, gw1, ...) draws from its own block of ports."""
PORT_BLOCKS = 8
_port_offsets = itertools.count(random.Random(os.getpid()).randrange(PORTS_PER_PROCESS))
"""Where this process starts in its block: a child process (the demo, a bench) starts elsewhere."""


def free_port() -> int:
    """A port no server listens on, never handed out twice by this process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = PORT_BASE + (int(worker) if worker.isdigit() else 0) % PORT_BLOCKS * PORTS_PER_PROCESS
    for _ in range(PORTS_PER_PROCESS):
        port = base + next(_port_offsets) % PORTS_PER_PROCESS
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free local port in {base}-{base + PORTS_PER_PROCESS - 1}")


STOP_TIMEOUT_S = 10.0
"""A server asked to stop (SIGTERM) that is still up after this is killed."""


def stop_process(proc: subprocess.Popen[Any], kill: bool = False, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop a child process (SIGTERM, or SIGKILL with ``kill``) and reap it; kill it if it lingers."""
    if proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def find_redis_server() -> str:
    path = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")
    if path is None:
        raise RuntimeError(
            "redis-server not found: run scripts/install-redis.sh or set REDIS_SERVER_BIN"
        )
    return path


class RedisServer:
    """A redis-server child process. ``appendonly`` keeps data across :meth:`restart`."""

    def __init__(
        self,
        port: int | None = None,
        password: str | None = None,
        appendonly: bool = False,
        data_dir: Path | None = None,
        replica_of: RedisServer | None = None,
    ) -> None:
        self.port = port or free_port()
        self.replica_of = replica_of
        self.password = password
        self.appendonly = appendonly
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="kb-redis-")
        self.data_dir = data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]
        if self.password:
            # A replica that may be promoted needs the same password for its clients and its master.
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis.from_url(self.url)
        try:
            while True:
                try:
                    if client.ping() and self._own(client) and self._in_sync(client):
                        return self
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                    time.sleep(0.02)
                    continue
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis replica on port {self.port} did not sync with its master")
                time.sleep(0.02)
        finally:
            client.close()

    def _own(self, client: redis.Redis) -> bool:
        """The server answering is this one's process, not another that holds the port."""
        info: Any = client.info("server")
        if self.proc is not None and int(info.get("process_id", -1)) != self.proc.pid:
            raise RuntimeError(f"port {self.port} is held by another redis-server "
                               f"(pid {info.get('process_id')})")
        return True

    def _in_sync(self, client: redis.Redis) -> bool:
        """A replica counts as started once its first sync with the master is done."""
        if self.replica_of is None:
            return True
        info: Any = client.info("replication")
        return info.get("master_link_status") == "up"

    def stop(self, kill: bool = False) -> None:
        if self.proc is not None:
            stop_process(self.proc, kill)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


SENTINEL_DOWN_AFTER_MS = 1000
"""The test Sentinel calls a silent master down after one second (production: 5-30 s), so a
failover test takes seconds."""
SENTINEL_FAILOVER_TIMEOUT_MS = 3000
"""How long one failover attempt may take before the Sentinel tries again (production: minutes)."""
FAILOVER_TIMEOUT_S = 30.0
"""A failover on this machine takes about two seconds; thirty means it is not happening."""


class SentinelServer:
    """A real Sentinel (``redis-server <conf> --sentinel``) monitoring ``master`` as ``service``,
    with quorum 1: alone it may call the master down and promote a replica."""

    def __init__(self, master: RedisServer, service: str, port: int | None = None,
                 down_after_ms: int = SENTINEL_DOWN_AFTER_MS,
                 failover_timeout_ms: int = SENTINEL_FAILOVER_TIMEOUT_MS) -> None:
        self.master = master
        self.service = service
        self.port = port or free_port()
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self._tmp = tempfile.TemporaryDirectory(prefix="kb-sentinel-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """As REDIS_SENTINELS takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> SentinelServer:
        # Sentinel rewrites its config file as it learns the topology, so it gets its own copy.
        conf = Path(self._tmp.name) / "sentinel.conf"
        lines = [
            f"port {self.port}", "bind 127.0.0.1", f"dir {self._tmp.name}",
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1",
            f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
            f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {self.service} 1",
        ]
        if self.master.password:
            lines.append(f"sentinel auth-pass {self.service} {self.master.password}")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([find_redis_server(), str(conf), "--sentinel", "--loglevel", "warning"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if self.master_port() == self.master.port:
                    return self
            except (redis.ConnectionError, redis.ResponseError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis sentinel did not start on port {self.port}")
            time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0, decode_responses=True)

    def master_port(self) -> int | None:
        """The master's port as the Sentinel sees it now."""
        client = self.client()
        try:
            addr: Any = client.sentinel_get_master_addr_by_name(self.service)
        finally:
            client.close()
        return int(addr[1]) if addr else None

    def wait_replicas(self, count: int, timeout: float = START_TIMEOUT_S) -> None:
        """Until the Sentinel knows ``count`` replicas that are in sync (it learns them from INFO)."""
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                replicas = client.sentinel_slaves(self.service)
                ok = [r for r in replicas if r.get("master-link-status") == "ok" and not r.get("is_sdown")]
                if len(ok) >= count:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sentinel sees {replicas}, not {count} replica(s) in sync")
                time.sleep(0.1)
        finally:
            client.close()

    def wait_failover(self, old_port: int, timeout: float = FAILOVER_TIMEOUT_S) -> int:
        """Until the Sentinel names a master other than ``old_port``; returns the new master's port."""
        deadline = time.monotonic() + timeout
        while True:
            port = self.master_port()
            if port is not None and port != old_port:
                return port
            if time.monotonic() > deadline:
                raise RuntimeError(f"no failover from port {old_port} after {timeout} s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> SentinelServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
