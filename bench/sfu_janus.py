"""The baseline of ``python -m bench sfu --baseline janus``: Debian's Janus (1.1.2) with its VideoRoom.

A "tuned Janus" as its operators run it for a one-to-many show: two static event loops
(``event_loops = 2``, one per core here), NACK optimizations on, warnings-only logging, no event
handlers, no recording, IPv6 off; only the VideoRoom plugin and the WebSocket transport are loaded
(symlinks in a temp dir: nothing else of /etc/janus or the package's plugins), the API on
127.0.0.1 at a free port, no admin API, no NAT, STUN or TURN. ICE uses one address: the host's
primary IPv4 address (:func:`ice_address`). Janus never gathers on a loopback interface (with
``ice_enforce_list = "127.0.0.1"`` it matches nothing and libnice falls back to every interface,
IPv6 and link-local too: with several pairs, libnice may move the media to a pair other than the
one aioice nominated, where the counting viewers do not count). The load generator's aiortc
peers gather on that address too (aioice skips loopback), so the media stays on this host.
The load generator speaks Janus's own JSON API to it (``janus+ws://``: :mod:`sfu.measure_janus`).

    with JanusServer(log=False) as janus:      # janus.pid, janus.url
        ...

Only the process started here is stopped, by its PID. Janus is not in the venv: ``scripts/deps.sh``
installs Debian's package (``make deps``); without it the bench says how to install it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from switchboard.embedded import free_port

INSTALL = "apt-get install -y --no-install-recommends janus"


class JanusMissing(RuntimeError):
    pass


def janus_install() -> tuple[str, Path]:
    """The janus binary and its libraries' folder (/usr/lib/<multiarch>/janus)."""
    found = shutil.which("janus")
    plugins = sorted(Path("/usr/lib").glob("*/janus/plugins/libjanus_videoroom.so"))
    if found is None or not plugins:
        raise JanusMissing(f"--baseline janus needs Debian's janus: run `make deps` (or as root: {INSTALL})")
    return found, plugins[0].parent.parent


def ice_address() -> str:
    """The IPv4 address this host's default route leaves from (a UDP connect: nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))
        except OSError as exc:
            raise RuntimeError("--baseline janus needs a non-loopback IPv4 address (Janus never gathers on "
                               f"loopback) and found no default route: {exc}") from None
        address: str = probe.getsockname()[0]
    return address


def config(folder: Path, libraries: Path, port: int, event_loops: int, address: str) -> Path:
    """Writes the configuration (and the plugin folders) under ``folder``; the path of janus.jcfg."""
    for kind, names in (("plugins", ["libjanus_videoroom.so"]), ("transports", ["libjanus_websockets.so"]),
                        ("events", []), ("loggers", [])):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / kind / name).symlink_to(libraries / kind / name)
    main = folder / "janus.jcfg"
    main.write_text(f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{folder / 'plugins'}"
    transports_folder = "{folder / 'transports'}"
    events_folder = "{folder / 'events'}"
    loggers_folder = "{folder / 'loggers'}"
    interface = "{address}"
    debug_level = 3
    event_loops = {event_loops}
    session_timeout = 60
    hide_dependencies = true
}}
media: {{
    ipv6 = false
    nack_optimizations = true
}}
nat: {{
    ice_enforce_list = "{address}"
}}
plugins: {{}}
transports: {{}}
loggers: {{}}
events: {{
    broadcast = false
}}
""")
    (folder / "janus.transport.websockets.jcfg").write_text(f"""general: {{
    json = "compact"
    events = false
    ws = true
    ws_port = {port}
    ws_ip = "127.0.0.1"
    wss = false
}}
admin: {{
    admin_ws = false
    admin_wss = false
}}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n    string_ids = true\n    events = false\n}\n")
    return main


class JanusServer:
    """One Janus process on a generated configuration in a temp dir (see the module's doc)."""

    def __init__(self, *, log: bool, event_loops: int = 2, start_timeout_s: float = 30.0) -> None:
        self.binary, self.libraries = janus_install()
        self.log, self.event_loops, self.start_timeout_s = log, event_loops, start_timeout_s
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"janus+ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-janus-")
        folder = Path(self._tmp.name)
        self.port = free_port()
        main = config(folder, self.libraries, self.port, self.event_loops, ice_address())
        log = None if self.log else (folder / "janus.log").open("wb")
        self.proc = subprocess.Popen([self.binary, "--config", str(main), "--configs-folder", str(folder),
                                      "--disable-colors"], stdin=subprocess.DEVNULL,
                                     stdout=log if log is not None else None, stderr=subprocess.STDOUT)
        if log is not None:
            log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                tail = "" if self.log else (folder / "janus.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"janus exited ({self.proc.returncode}) before listening:\n{tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"janus did not listen on 127.0.0.1:{self.port}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> JanusServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
