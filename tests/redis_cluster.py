"""A real 3-master Redis Cluster on 127.0.0.1, from Debian's ``redis-server`` (scripts/deps.sh installs it).

Three ``redis-server --cluster-enabled yes`` children on free ports, joined with CLUSTER MEET and the
16384 slots split with CLUSTER ADDSLOTSRANGE; :meth:`LocalCluster.stop` ends them and removes their
directory. Its URL is ``redis+cluster://127.0.0.1:<port>`` (see ``switchboard.redis_client.open_redis``).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from switchboard.embedded import _pdeathsig

MASTERS = 3
SLOTS = 16384
START_S = 20.0


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000, at most 65535) is free too."""
    while True:
        port = random.randrange(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


class LocalCluster:
    """Start with :meth:`start`; :attr:`url` is the cluster URL; :meth:`stop` is idempotent."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ports: list[int] = []
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed: run `make deps` (apt-get install redis-server)")
        for i in range(MASTERS):
            port = _cluster_port()
            folder = self.base / f"n{i}"
            folder.mkdir(parents=True)
            self._procs.append(subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(folder / "nodes.conf"), "--dir", str(folder), "--save", "",
                 "--appendonly", "no", "--cluster-node-timeout", "2000", "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig(15)))
            self.ports.append(port)
        try:
            self._form()
        except BaseException:
            self.stop()
            raise

    def _clients(self) -> list[redis.Redis]:
        return [redis.Redis(host="127.0.0.1", port=p, socket_timeout=5) for p in self.ports]

    def _form(self) -> None:
        deadline = time.monotonic() + START_S
        clients = self._clients()
        for c in clients:
            while True:
                try:
                    c.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        share = SLOTS // MASTERS
        for i, c in enumerate(clients):
            last = SLOTS - 1 if i == MASTERS - 1 else (i + 1) * share - 1
            c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for port in self.ports[1:]:
            clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        while True:
            states = [c.execute_command("CLUSTER", "INFO") for c in clients]
            text = [s.decode() if isinstance(s, bytes) else str(s) for s in states]
            if all("cluster_state:ok" in t and f"cluster_known_nodes:{MASTERS}" in t for t in text):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Redis Cluster did not form: {text}")
            time.sleep(0.05)
        for c in clients:
            c.close()

    def flush(self) -> None:
        for c in self._clients():
            c.flushall()
            c.close()

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()
        shutil.rmtree(self.base, ignore_errors=True)
