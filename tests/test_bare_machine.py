"""The README's two commands on a bare machine: one list of Debian packages (scripts/deps.sh) that
`make test` installs and `.ci/run` does not repeat, a suite that fails instead of skipping when a
system dependency is missing, and one clear line when `switchboard up` finds its port taken."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SYSTEM_NEEDS

ROOT = Path(__file__).resolve().parent.parent
DEPS = ROOT / "scripts" / "deps.sh"


def _deps(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEPS), *args], capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, **(env or {})})


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    """``make`` as a person runs it: not as a sub-make of the `make test` running this suite (which
    would print "Entering directory" lines and pass its own flags down)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True, env=env)


def _packages() -> list[str]:
    return _deps("--list").stdout.split()


def test_ci_names_no_debian_package_of_the_suite() -> None:
    """The package list lives in scripts/deps.sh only; .ci/run bootstraps `make` and runs `make test`."""
    ci = (ROOT / ".ci" / "run").read_text()
    installed_by_ci = set()
    for line in ci.splitlines():
        if "apt-get install" in line:
            words = line.split("apt-get install", 1)[1].split()
            installed_by_ci |= {w.strip("\"'") for w in words if not w.startswith("-")}
    assert installed_by_ci <= {"make"}, installed_by_ci
    assert not set(_packages()) & installed_by_ci
    assert re.search(r"^\S.*\bmake test\b", ci, re.M), "CI must run README's command"
    assert "make test" in (ROOT / "README.md").read_text()


def test_make_test_installs_the_list_first() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\bdeps\b", makefile, re.M)
    assert re.search(r"^deps:\n\t.*scripts/deps\.sh", makefile, re.M)
    dry = _make("-n", "-B", "test")
    assert "scripts/deps.sh" in dry.stdout and "pytest" in dry.stdout


def test_every_marker_s_packages_are_in_the_list() -> None:
    listed = set(_packages())
    for name, (_, packages) in SYSTEM_NEEDS.items():
        assert set(packages.split()) <= listed, name


def test_the_venv_stamp_is_written_last(tmp_path: Path) -> None:
    """An interrupted install leaves no stamp, so the next `make` installs again (repairs the venv)."""
    venv = tmp_path / "venv"
    dry = _make("-n", f"VENV={venv}", f"{venv}/.installed")
    commands = [line for line in dry.stdout.splitlines() if line.strip()]
    assert commands[-1] == f"touch {venv}/.installed"
    assert any("pip install" in c for c in commands[:-1])


def _fake_bin(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _bare_machine(tmp_path: Path, uid: int, apt_get_status: int) -> dict[str, str]:
    """PATH with a dpkg that knows no package, an `id` that says ``uid`` and an apt-get that exits
    with ``apt_get_status`` (100: the mirror is unreachable)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    _fake_bin(fake, "dpkg-query", "exit 1\n")
    _fake_bin(fake, "id", f"echo {uid}\n")
    _fake_bin(fake, "apt-get", f"echo \"apt-get $*\" >> {tmp_path}/apt.log\nexit {apt_get_status}\n")
    return {"PATH": f"{fake}:{os.environ['PATH']}", "PYTHON": sys.executable}


def test_not_root_says_the_exact_command_in_one_line(tmp_path: Path) -> None:
    result = _deps(env=_bare_machine(tmp_path, uid=1000, apt_get_status=0))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "sudo apt-get install -y" in lines[0]
    assert all(pkg in lines[0] for pkg in _packages())
    assert not (tmp_path / "apt.log").exists()


def test_no_mirror_names_what_could_not_be_installed(tmp_path: Path) -> None:
    result = _deps(env=_bare_machine(tmp_path, uid=0, apt_get_status=100))
    assert result.returncode == 1
    assert "could not install" in result.stderr and "coturn" in result.stderr
    assert (tmp_path / "apt.log").read_text().splitlines() == ["apt-get update -qq"]  # update once, then stop


def test_root_installs_only_what_is_missing_after_one_update(tmp_path: Path) -> None:
    result = _deps(env=_bare_machine(tmp_path, uid=0, apt_get_status=0))
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls[0] == "apt-get update -qq"
    assert len(calls) == 2 and calls[1].startswith("apt-get install -y")
    assert calls[1].split()[-len(_packages()):] == _packages()


def test_this_machine_lacks_nothing() -> None:
    """After `make test`'s set-up nothing is missing (else the suite would fail further on anyway)."""
    assert _deps("--missing").stdout.split() == []


def _run_pytest(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import _system_dependencies, pytest_sessionfinish, pytest_terminal_summary  # noqa\n")
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-c", str(ROOT / "pyproject.toml"), str(tmp_path / "test_probe.py")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_a_skip_fails_the_run(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, """
        import pytest

        def test_passes():
            pass

        def test_skips():
            pytest.skip("some dependency is missing")
    """)
    assert result.returncode == 1, result.stdout
    assert "allows no skips" in result.stdout


def test_a_missing_system_dependency_fails_with_the_install_command(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, """
        import pytest

        @pytest.mark.coturn
        def test_needs_coturn():
            pass
    """, env={"SWITCHBOARD_TESTS_PRETEND_MISSING": "coturn"})
    assert result.returncode == 1, result.stdout
    assert "coturn is not installed: run `make deps`" in result.stdout
    assert "apt-get install -y --no-install-recommends coturn" in result.stdout


def test_up_names_the_port_and_the_setting_when_it_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "switchboard", "up"], capture_output=True, text=True, check=False, timeout=60,
            env={**os.environ, "SWITCHBOARD_DATA_DIR": str(tmp_path / "var"), "SWITCHBOARD_HTTP_PORT": str(port)},
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"switchboard: 127.0.0.1:{port} is already in use by another process; choose another port with the "
        f"setting http.port (e.g. SWITCHBOARD_HTTP_PORT={port + 1})"
    ]
    assert not (tmp_path / "var").exists(), "nothing starts (no embedded servers) when the port is taken"


@pytest.mark.parametrize("name", sorted(SYSTEM_NEEDS))
def test_each_system_dependency_is_present(name: str) -> None:
    from tests.conftest import missing_system_dependency

    assert missing_system_dependency(name) is None


def test_readme_shows_what_make_run_runs() -> None:
    """README's `make run` block starts with exactly the commands make runs on a new machine."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("$ make run\n", 1)[1].split("Switchboard is up", 1)[0].splitlines()
    dry = _make("-n", "-B", "run")
    assert block == dry.stdout.splitlines()
