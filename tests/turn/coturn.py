"""A real coturn on 127.0.0.1 for tests: started from a config we render, stopped by PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from switchboard.embedded import free_port
from switchboard.settings import TurnSettings
from turn.coturn import CoturnSecrets, render_config


@dataclass
class Coturn:
    proc: subprocess.Popen[bytes]
    port: int
    settings: TurnSettings
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_coturn(directory: Path, secrets: CoturnSecrets) -> Coturn:
    binary = shutil.which("turnserver")
    assert binary, "coturn is not installed: `apt-get install coturn` (.ci/run does it)"
    port = free_port()
    relay_low = 40000 + (port % 200) * 100
    settings = TurnSettings(host="127.0.0.1", port=port, listening_ips=("127.0.0.1",), relay_ips=("127.0.0.1",),
                            min_port=relay_low, max_port=relay_low + 99, realm="test")
    conf = directory / "turnserver.conf"
    log = directory / "turnserver.log"
    conf.write_text(render_config(settings, secrets, allow_loopback=True, log_file=str(log)))
    conf.chmod(0o600)
    proc = subprocess.Popen([binary, "-c", str(conf), "--pidfile", str(directory / "turn.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"coturn exited: {log.read_text() if log.exists() else ''}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Coturn(proc, port, settings, log)
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("coturn did not listen within 15 s")
