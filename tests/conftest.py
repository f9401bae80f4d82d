"""Session-scoped real servers every test may use: embedded Redis and Postgres from the wheels.

``redis`` gives a client on an emptied database; ``database_url`` gives a fresh, migrated database
of its own to each test that asks for one.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from blockbuster import blockbuster_ctx

from switchboard.embedded import EmbeddedPostgres, EmbeddedRedis
from switchboard.redis_client import open_redis
from tests.redis_cluster import LocalCluster


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real 3-master Redis Cluster (tests/redis_cluster.py), started on first use."""
    problem = missing_system_dependency("redis_cluster")
    if problem:
        pytest.fail(problem, pytrace=False)
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="switchboard-cluster-")))
    cluster.start()
    yield cluster
    cluster.stop()


REDIS_KINDS = ["single", pytest.param("cluster", marks=pytest.mark.redis_cluster)]
"""Parameters of a ``redis_url`` override that runs a test package on one Redis and on a Redis Cluster."""


def redis_url_of(request: pytest.FixtureRequest) -> str:
    """The URL for ``request.param`` (``single`` or ``cluster``), for packages that override ``redis_url``."""
    if request.param == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster_server")
        return cluster.url
    server: EmbeddedRedis = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator:  # type: ignore[type-arg]
    client = open_redis(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


def _outside_pytest_tmp() -> Path:
    """A directory in /tmp itself. Embedded Postgres runs as another user (as root) and must
    traverse every parent; pytest resets /tmp/pytest-of-<user> to 0700 whenever another pytest
    session starts, which would cut a running server off its data."""
    return Path(tempfile.mkdtemp(prefix="switchboard-test-"))


@pytest.fixture
def server_tmp() -> Iterator[Path]:
    """Like ``tmp_path``, for data dirs of embedded Postgres (see :func:`_outside_pytest_tmp`)."""
    path = _outside_pytest_tmp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    base = _outside_pytest_tmp()
    server = EmbeddedPostgres(base / "postgres")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def empty_database_url(postgres_server: EmbeddedPostgres) -> str:
    """A new, empty database on the session's server."""
    return postgres_server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A new database with every migration applied."""
    from control_api.db import upgrade_sync

    upgrade_sync(empty_database_url)
    return empty_database_url


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Async test bodies run under blockbuster: a blocking call on the event loop fails the test.
    (Only the body: fixtures may block while they set up real servers.)"""
    if not inspect.iscoroutinefunction(getattr(item, "function", None)):
        return (yield)
    with blockbuster_ctx(["switchboard", "sfu", "signaling", "matchmaker", "control_api", "turn"]) as bb:
        for function in bb.functions.values():
            # Start-up work that may block by design: Alembic runs in its own thread and loop;
            # aiohttp resolves a static directory once when the route is added.
            function.can_block_in("control_api/db.py", "upgrade_sync")
            function.can_block_in("control_api/migrations/env.py", ["_run", "_main"])
            function.can_block_in("aiohttp/web_urldispatcher.py", "__init__")
            # asyncpg looks for ~/.postgresql/ certificate files once per new pooled connection.
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
            # aiortc joins a receiver's decoder thread when a peer connection closes (the thread ends at once).
            function.can_block_in("aiortc/rtcrtpreceiver.py", "__stop_decoder")
        return (yield)


# --- the SFU's fan-out path (sfu/fanout.py). Every test under tests/sfu runs on both paths, native and
# python (issue 18: "the existing SFU suite passes on both fan-out paths"), as two parametrizations of
# the autouse `sfu_fanout` fixture, unless its module says otherwise with FANOUT_PATHS:
#   FANOUT_PATHS = ("native",)  a test of the native plane itself (the extension, its keys, its C code):
#                               it pins native whatever runs around it; one run;
#   FANOUT_PATHS = ()           a test that makes no Worker or WorkerPool (pure units, a Producer and
#                               Consumers by hand): the setting cannot reach it; one run, and making a
#                               Worker or WorkerPool there fails the test (the declaration would be false).
# Tests elsewhere run once, on native. SWITCHBOARD_SFU_FANOUT=native|python pins one path for the whole
# run: nothing is parametrized, and modules whose FANOUT_PATHS leave that path out are deselected (shown
# in the summary). A missing extension fails the native runs (`make test` builds it).

SFU_FANOUT_ENV = "SWITCHBOARD_SFU_FANOUT"
FANOUTS = ("native", "python")
_SFU_SUITE = Path(__file__).resolve().parent / "sfu"


def _fanout_paths(module: object, path: Path) -> tuple[str, ...] | None:
    """The paths a test module runs on (see above); None outside tests/sfu without a declaration (once, on
    the default or pinned path)."""
    default = FANOUTS if path.resolve().is_relative_to(_SFU_SUITE) else None
    paths: tuple[str, ...] | None = getattr(module, "FANOUT_PATHS", default)
    return paths


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if os.environ.get(SFU_FANOUT_ENV) or "sfu_fanout" not in metafunc.fixturenames:
        return
    if any("sfu_fanout" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")):
        return  # the test pins its own path
    paths = _fanout_paths(metafunc.module, metafunc.definition.path)
    if paths is not None and len(paths) > 1:
        metafunc.parametrize("sfu_fanout", paths, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    pinned = os.environ.get(SFU_FANOUT_ENV)
    if not pinned:
        return
    kept, left_out = [], []
    for item in items:
        paths = _fanout_paths(getattr(item, "module", None), item.path)
        (kept if not paths or pinned in paths else left_out).append(item)  # None, (), or a path it runs on
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(autouse=True)
def _root_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were: a test that configures logging (the CLI in
    process) leaves no handler on a captured stream that pytest closes after it."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def sfu_fanout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fan-out of every Worker and WorkerPool the test makes without saying (their default)."""
    mode = getattr(request, "param", None) or os.environ.get(SFU_FANOUT_ENV, "native")
    from sfu.pool import WorkerPool
    from sfu.types import FanoutConfig
    from sfu.worker import Worker

    for cls in (Worker, WorkerPool):
        monkeypatch.setitem(cls.__init__.__kwdefaults__, "fanout", FanoutConfig(mode=mode))  # type: ignore[index]
        if _fanout_paths(request.module, request.path) == ():
            monkeypatch.setattr(cls, "__init__", _refused(cls.__name__))
    return str(mode)


def _refused(name: str) -> Callable[..., None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"this module says FANOUT_PATHS = () (it makes no Worker or WorkerPool) but makes a "
                             f"{name}: drop the declaration so that it runs on both fan-out paths")
    return refuse


# --- system dependencies: a test that needs a Debian package says so with a marker; a missing one
# fails the test with the command that installs it (`make test` installs them first, through
# scripts/deps.sh). Nothing is skipped for a missing dependency, and any skip fails the run.

_ROOT = Path(__file__).resolve().parent.parent


def _gstreamer_ok() -> bool:
    import subprocess

    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0'); "
             "gi.require_version('GstSdp', '1.0'); from gi.repository import Gst, GstWebRTC, GstSdp; Gst.init(None); "
             "assert all(Gst.ElementFactory.find(n) for n in "
             "('webrtcbin', 'nicesrc', 'vp8enc', 'vp8dec', 'rtpvp8pay', 'videotestsrc'))")
    return subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, check=False).returncode == 0


SYSTEM_NEEDS = {
    "chromium": (lambda: Path("/usr/bin/chromium").exists(), "chromium"),
    "coturn": (lambda: shutil.which("turnserver") is not None, "coturn"),
    "redis_cluster": (lambda: shutil.which("redis-server") is not None, "redis-server"),
    "promtool": (lambda: shutil.which("promtool") is not None, "prometheus"),
    "janus": (lambda: shutil.which("janus") is not None, "janus"),
    "gstreamer": (_gstreamer_ok, "gstreamer1.0-plugins-base gstreamer1.0-plugins-bad gstreamer1.0-plugins-good "
                                 "gstreamer1.0-nice gir1.2-gst-plugins-bad-1.0 gir1.2-gst-plugins-base-1.0 python3-gi"),
}
"""Marker name -> (is it installed?, the Debian packages that provide it; all listed in scripts/deps.sh)."""

_checked: dict[str, bool] = {}


def missing_system_dependency(name: str) -> str | None:
    """The failure message when the system dependency behind marker ``name`` is missing, else None."""
    present, packages = SYSTEM_NEEDS[name]
    if name not in _checked:
        # The suite's own test of this message pretends a dependency is missing.
        pretend = os.environ.get("SWITCHBOARD_TESTS_PRETEND_MISSING", "").split(",")
        _checked[name] = name not in pretend and bool(present())
    if _checked[name]:
        return None
    return (f"{name} is not installed: run `make deps` (or as root: apt-get install -y --no-install-recommends "
            f"{packages})")


@pytest.fixture(autouse=True)
def _system_dependencies(request: pytest.FixtureRequest) -> None:
    for name in SYSTEM_NEEDS:
        if request.node.get_closest_marker(name) is not None:
            problem = missing_system_dependency(name)
            if problem:
                pytest.fail(problem, pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.write_line(f"{len(skipped)} test(s) skipped: this suite allows no skips (a missing "
                                    "dependency must fail; `make deps` installs the Debian ones)", red=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and reporter.stats.get("skipped") and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
