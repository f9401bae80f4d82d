"""bench/netns.py's commands: a failure says why (the command and its stderr), and a namespace the
kernel refuses at first is tried again (a whole-suite run once lost a test to an unexplained
``ip netns add`` exit 1)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest

from bench import netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2")


def listed(ns: str) -> bool:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return any(line.split()[0] == ns for line in names.splitlines() if line.strip())


def test_a_failing_command_names_itself_and_its_stderr() -> None:
    dev = f"sbx{secrets.token_hex(4)}"
    with pytest.raises(netns.CommandFailed) as caught:
        netns.sh("ip", "link", "show", dev)
    assert f"ip link show {dev} exited" in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_a_name_already_taken_is_removed_and_made_again(caplog: pytest.LogCaptureFixture) -> None:
    """The first ``ip netns add`` fails (the name exists: the one failure this test can cause on
    purpose); the retry removes it and makes it again, and the first failure's stderr is logged."""
    ns = f"sbx{secrets.token_hex(4)}"
    netns.sh("ip", "netns", "add", ns)
    try:
        with caplog.at_level("WARNING", logger="bench.netns"):
            netns.add_namespace(ns)
        assert listed(ns)
        assert any("File exists" in r.getMessage() and "try 1 of" in r.getMessage() for r in caplog.records)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert not listed(ns)


def test_a_link_is_made_and_removed_whole() -> None:
    tag = secrets.token_hex(4)
    link = netns.Link(f"sbx{tag}", f"sbxh{tag}", f"sbxn{tag}", "10.253.7")
    with netns.namespace(link):
        assert listed(link.ns)
        inside = subprocess.run(["ip", "netns", "exec", link.ns, "ip", "-brief", "addr", "show", link.ns_dev],
                                capture_output=True, text=True, check=True).stdout
        assert f"{link.ns_address}/30" in inside and "UP" in inside
    assert not listed(link.ns)
    gone = subprocess.run(["ip", "link", "show", link.host_dev], capture_output=True)
    assert gone.returncode != 0
