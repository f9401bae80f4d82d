"""docker-compose.yml agrees with the settings tree and the CLI (there is no Docker engine here to run it)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from switchboard.cli import _parser
from switchboard.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PLANES = {"api": "api", "node-1": "node", "node-2": "node", "matchmaker": "matchmaker"}  # service -> settings section


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR:?error}`` / ``${VAR}`` with an empty environment."""
    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if ":-" in body:
            return body.split(":-", 1)[1]
        if ":?" in body:
            return "set-by-operator"
        return ""
    return re.sub(r"\$\{([^}]*)\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {k: _interpolate(str(v)) for k, v in (service.get("environment") or {}).items()}


def test_infrastructure_services(compose: dict) -> None:  # type: ignore[type-arg]
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert services["coturn"]["image"].startswith("coturn/")
    # coturn reads the file `switchboard turn config --out var/turnserver.conf` writes
    assert services["coturn"]["command"] == ["-c", "/etc/coturn/turnserver.conf"]
    assert services["coturn"]["volumes"] == ["./var/turnserver.conf:/etc/coturn/turnserver.conf:ro"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]


@pytest.mark.parametrize("service", [*PLANES, "migrate"])
def test_plane_command_is_a_real_cli_command(compose: dict, service: str) -> None:  # type: ignore[type-arg]
    command = compose["services"][service]["command"]
    assert command[0] == "switchboard"
    _parser().parse_args(command[1:])  # exits (SystemExit) on an unknown subcommand
    assert "build" in compose["services"][service]


@pytest.mark.parametrize("service", [*PLANES, "migrate"])
def test_plane_environment_is_valid_settings(compose: dict, service: str) -> None:  # type: ignore[type-arg]
    env = _env(compose["services"][service])
    assert all(key.startswith("SWITCHBOARD_") for key in env)
    settings = load_settings(environ=env)  # unknown keys or bad values raise, naming the key
    services = compose["services"]
    redis_host = urlsplit(settings.redis_url).hostname
    assert redis_host in services and services[redis_host]["image"].startswith("redis")
    if service in ("api", "migrate"):
        db_host = urlsplit(settings.database_url).hostname
        assert db_host in services and services[db_host]["image"].startswith("postgres")


@pytest.mark.parametrize("service", list(PLANES))
def test_ports_and_healthchecks_match_settings(compose: dict, service: str) -> None:  # type: ignore[type-arg]
    spec = compose["services"][service]
    section = getattr(load_settings(environ=_env(spec)), PLANES[service])
    assert section.host == "0.0.0.0", "a container must listen beyond its loopback"
    published = [str(p).split(":")[-1] for p in spec.get("ports", [])] + [str(p) for p in spec.get("expose", [])]
    assert str(section.port) in published
    check = " ".join(spec["healthcheck"]["test"])
    assert f"127.0.0.1:{section.port}/readyz" in check


@pytest.mark.parametrize("service", list(PLANES))
def test_planes_wait_for_healthy_dependencies(compose: dict, service: str) -> None:  # type: ignore[type-arg]
    depends = compose["services"][service]["depends_on"]
    assert depends["redis"]["condition"] == "service_healthy"
    if service == "api":
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_secret_files_are_where_switchboard_up_writes_them(compose: dict) -> None:  # type: ignore[type-arg]
    from switchboard.keys import KeyPaths

    paths = KeyPaths.from_settings(load_settings(environ={}))
    files = {Path(_interpolate(s["file"])).as_posix().removeprefix("./") for s in compose["secrets"].values()}
    assert files == {p.as_posix() for p in (paths.private_key, paths.public_key, paths.turn_secret)}


def test_dockerfile_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("switchboard", "sfu", "signaling", "matchmaker", "control_api", "turn", "bench", "web"):
        assert f"COPY {package} {package}" in dockerfile


def test_two_nodes_each_reachable_at_its_own_public_url(compose: dict) -> None:  # type: ignore[type-arg]
    """The API sends clients to a node's registered ``public_url`` (docs/scaling.md): each node's must be
    a distinct published host port of that very node, and every node's page may open sockets on the
    others (``page_origins``); a stop drains for ``drain_grace_s`` before docker kills the container."""
    nodes = {name: spec for name, spec in compose["services"].items() if spec.get("command") == ["switchboard", "node"]}
    assert len(nodes) == 2
    urls = set()
    for spec in nodes.values():
        settings = load_settings(environ=_env(spec)).node
        public = urlsplit(settings.public_url)
        host_ports = {str(p).split(":")[0]: str(p).split(":")[-1] for p in spec["ports"]}
        assert host_ports[str(public.port)] == str(settings.port), "public_url names this node's published port"
        urls.add(settings.public_url)
        grace = spec["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > settings.drain_grace_s
    assert len(urls) == 2
    for spec in nodes.values():
        assert set(load_settings(environ=_env(spec)).node.page_origins) == urls
