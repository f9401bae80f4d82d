"""The SFU suite runs on both fan-out paths (tests/conftest.py, issue 18): a test under tests/sfu is
collected once per path, a module of the native plane's own tests once (on native), a pure module once;
SWITCHBOARD_SFU_FANOUT pins one path and deselects the modules that leave it out. Real collections of
real modules, in a pytest subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["tests/sfu/test_forwarding.py", "tests/sfu/test_native_keys.py", "tests/sfu/test_rtp.py"]


def _collected(pinned: str | None) -> tuple[list[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHBOARD_SFU_FANOUT"}
    if pinned:
        env["SWITCHBOARD_SFU_FANOUT"] = pinned
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *MODULES], cwd=ROOT, capture_output=True, text=True, check=False, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line for line in result.stdout.splitlines() if "::" in line]
    return ids, result.stdout


def _of(ids: list[str], module: str) -> list[str]:
    return [i.split("::", 1)[1] for i in ids if i.startswith(f"tests/sfu/{module}.py::")]


def test_an_sfu_test_runs_once_per_path_and_the_native_planes_and_pure_ones_once() -> None:
    ids, _ = _collected(None)
    forwarding = _of(ids, "test_forwarding")
    native = sorted(i.removesuffix("[native]") for i in forwarding if i.endswith("[native]"))
    python = sorted(i.removesuffix("[python]") for i in forwarding if i.endswith("[python]"))
    assert native and native == python and len(forwarding) == 2 * len(native)
    assert _of(ids, "test_native_keys") and not any("[python]" in i for i in _of(ids, "test_native_keys"))
    assert _of(ids, "test_rtp") and not any("[native]" in i or "[python]" in i for i in _of(ids, "test_rtp"))


def test_a_pinned_path_runs_every_module_once_and_leaves_out_the_native_planes_tests() -> None:
    ids, out = _collected("python")
    forwarding = _of(ids, "test_forwarding")
    assert forwarding and not any("[native]" in i or "[python]" in i for i in forwarding)
    assert _of(ids, "test_native_keys") == [] and "deselected" in out
    assert _of(ids, "test_rtp")
    ids, _ = _collected("native")
    assert _of(ids, "test_native_keys") and not any("[python]" in i for i in ids)
