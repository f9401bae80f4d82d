"""docker-compose.yml agrees with the settings tree and the CLI. CI has no Docker engine: these read the
files; scripts/compose-smoke.sh runs them on a machine that has one (docs/operations.md)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from switchboard.cli import _parser
from switchboard.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PLANES = {"api": "api", "node-1": "node", "node-2": "node", "matchmaker": "matchmaker"}  # service -> settings section


def _interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR:?error}`` / ``${VAR}`` with ``environ`` (default: empty)."""
    env = environ or {}

    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        name = re.split(r":[-?]", body, maxsplit=1)[0]
        if env.get(name):
            return env[name]
        if ":-" in body:
            return body.split(":-", 1)[1]
        if ":?" in body:
            return "set-by-operator"
        return ""
    return re.sub(r"\$\{([^}]*)\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict, environ: Mapping[str, str] | None = None) -> dict[str, str]:  # type: ignore[type-arg]
    return {k: _interpolate(str(v), environ) for k, v in (service.get("environment") or {}).items()}


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


def _nodes(compose: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {name: spec for name, spec in compose["services"].items() if spec.get("command") == ["switchboard", "node"]}


def test_the_file_is_read_by_compose_v1_too(compose: dict) -> None:  # type: ignore[type-arg]
    """Debian's docker-compose (1.29) refuses top-level keys it does not know, such as ``name``."""
    known = {"version", "services", "networks", "volumes", "secrets", "configs"}
    assert {key for key in compose if not key.startswith("x-")} <= known


def test_planes_build_on_the_dockerfiles_base() -> None:
    """The Dockerfile's base is ``ARG BASE`` (a local Debian base where Docker Hub is out of reach), and
    compose passes the same default; the planes install into a venv (Debian's python3 refuses a
    system-wide pip install) and run as uid 10001, the owner the secret files need."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    default = re.search(r"^ARG BASE=(\S+)$", dockerfile, re.M)
    assert default and "FROM ${BASE}" in dockerfile
    assert "python3 -m venv" in dockerfile and "--uid 10001" in dockerfile
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in [*PLANES, "migrate"]:
        build = compose["services"][service]["build"]
        assert build["context"] == "."
        assert _interpolate(build["args"]["BASE"]) == default.group(1)
        local = "switchboard-base:bookworm"
        assert _interpolate(build["args"]["BASE"], {"BASE_IMAGE": local}) == local
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"var", ".venv", ".git"} <= set(ignored), "the build context leaves out secrets and the venv"


def test_nodes_media_is_on_their_fixed_addresses(compose: dict) -> None:  # type: ignore[type-arg]
    """A node's ICE candidates and pipes are on its own compose-network address (the default,
    127.0.0.1, is the container's loopback: nothing outside it could reach the media), fixed and outside
    the range docker hands out, so no other container takes it first."""
    ipam = compose["networks"]["default"]["ipam"]["config"][0]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    addresses = set()
    for spec in _nodes(compose).values():
        fixed = ipaddress.ip_address(spec["networks"]["default"]["ipv4_address"])
        assert fixed in subnet and fixed not in dynamic
        node = load_settings(environ=_env(spec)).node
        assert node.rtc_addresses == (str(fixed),) and not node.announced_address
        addresses.add(fixed)
    assert len(addresses) == 2


def test_nodes_share_one_cascade_setting(compose: dict) -> None:  # type: ignore[type-arg]
    """Without CASCADE_SECRET the nodes run without cascade (a show's viewers stay on its origin); with
    it, both nodes get the same secret and origin cap, so one show spans both."""
    for spec in _nodes(compose).values():
        assert load_settings(environ=_env(spec)).cascade.secret == ""
    operator = {"CASCADE_SECRET": "a-secret-of-sixteen-or-more", "CASCADE_VIEWERS_PER_NODE": "1"}
    cascades = {load_settings(environ=_env(spec, operator)).cascade for spec in _nodes(compose).values()}
    assert len(cascades) == 1
    (cascade,) = cascades
    assert cascade.secret == operator["CASCADE_SECRET"] and cascade.viewers_per_node == 1


def test_local_stand_ins_replace_only_docker_hubs_redis_and_postgres(compose: dict) -> None:  # type: ignore[type-arg]
    """deploy/local/compose.yml (scripts/compose-smoke.sh): Redis and Postgres built on the local base
    with the official images' contract (command, env, healthcheck stay those of docker-compose.yml)."""
    local = yaml.safe_load((ROOT / "deploy" / "local" / "compose.yml").read_text())
    assert set(local["services"]) == {"redis", "postgres"}
    for name, spec in local["services"].items():
        assert set(spec) == {"image", "build"} and spec["image"].endswith(":local")
        dockerfile = (ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]).read_text()
        assert "ARG BASE=" in dockerfile and "FROM ${BASE}" in dockerfile
        assert _interpolate(spec["build"]["args"]["BASE"]) == "switchboard-base:bookworm"
        assert compose["services"][name]["healthcheck"]["test"]
