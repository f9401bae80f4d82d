"""Network namespaces joined to the host by veth pairs, with shaped links: where the benches and the
browser tests put a peer behind a link of their choosing.

Each namespace gets a veth pair with private /30 addresses (the host end ``{net}.1``, the namespace
end ``{net}.2``); a link's rate is limited with ``tc tbf`` (this kernel has no netem: DESIGN.md).
Deleting a namespace deletes its pair. Needs root and iproute2 (``ip``, ``tc``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger("bench.netns")

NETNS_ADD_TRIES = 3
"""``ip netns add`` is tried this many times (0.2 s apart, the half-made name removed between): it failed
once in a whole-suite run, before any media, and its reason was not kept then."""


class CommandFailed(RuntimeError):
    """A command of this module exited non-zero: the message has its arguments and its stderr."""


def sh(*args: str) -> None:
    """Runs ``args``; raises :class:`CommandFailed` with the command's stderr when it fails."""
    done = subprocess.run(args, capture_output=True, timeout=20)
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip()
        raise CommandFailed(f"{' '.join(args)} exited {done.returncode}: {stderr or '(no stderr)'}")


def add_namespace(ns: str) -> None:
    """``ip netns add ns``, tried :data:`NETNS_ADD_TRIES` times; each failure is logged with its stderr."""
    for attempt in range(1, NETNS_ADD_TRIES + 1):
        try:
            sh("ip", "netns", "add", ns)
            return
        except CommandFailed as exc:
            if attempt == NETNS_ADD_TRIES:
                raise
            log.warning("namespace not made (try %d of %d): %s", attempt, NETNS_ADD_TRIES, exc)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
            time.sleep(0.2)


@dataclass(frozen=True)
class Link:
    """A namespace and the veth pair that joins it to the host."""

    ns: str
    """The namespace's name (``ip netns exec NS ...`` runs a command inside)."""
    host_dev: str
    """The host end of the pair: its egress is the namespace's downlink."""
    ns_dev: str
    """The namespace's end of the pair: its egress is the namespace's uplink."""
    net: str
    """The first three octets of the pair's /30 (``10.x.y``)."""

    @property
    def host_address(self) -> str:
        return f"{self.net}.1"

    @property
    def ns_address(self) -> str:
        return f"{self.net}.2"


def add(link: Link, default_route: bool = False) -> None:
    """Makes ``link``'s namespace and pair, both ends up (and the namespace's loopback); with
    ``default_route``, the namespace routes everything through the host end. Call :func:`remove`
    afterwards, even when this raises part way."""
    ns, net = link.ns, link.net
    add_namespace(ns)
    sh("ip", "link", "add", link.host_dev, "type", "veth", "peer", "name", link.ns_dev)
    sh("ip", "link", "set", link.ns_dev, "netns", ns)
    sh("ip", "addr", "add", f"{net}.1/30", "dev", link.host_dev)
    sh("ip", "link", "set", link.host_dev, "up")
    sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{net}.2/30", "dev", link.ns_dev)
    sh("ip", "netns", "exec", ns, "ip", "link", "set", link.ns_dev, "up")
    sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    if default_route:
        sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", f"{net}.1")


def remove(link: Link) -> None:
    """Deletes the namespace (and with it the pair), and the host end in case it never moved in."""
    subprocess.run(["ip", "netns", "del", link.ns], capture_output=True, timeout=20)
    subprocess.run(["ip", "link", "del", link.host_dev], capture_output=True, timeout=20)


@contextlib.contextmanager
def namespace(link: Link, default_route: bool = False) -> Iterator[Link]:
    """``link`` made (:func:`add`) for the block, removed after it."""
    try:
        add(link, default_route)
        yield link
    finally:
        remove(link)


def limit(dev: str, rate: str, burst: str = "16kbit", latency: str = "300ms", ns: str | None = None) -> None:
    """Limits ``dev``'s egress to ``rate`` (``tc tbf``; ``ns``: a device inside that namespace)."""
    inside = ("ip", "netns", "exec", ns) if ns is not None else ()
    sh(*inside, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", burst, "latency", latency)


def unlimit(dev: str) -> None:
    """Lifts :func:`limit` from a host device."""
    sh("tc", "qdisc", "del", "dev", dev, "root")


class ShapedLinks:
    """``count`` namespaces, each joined to the host by a veth pair with private /30 addresses, the
    host end's egress (the viewer's downlink) limited by ``tc tbf``. ``close()`` removes them."""

    def __init__(self, count: int, rate: str) -> None:
        self.links: list[tuple[str, str, str]] = []
        """(namespace, host end's address, namespace end's address)."""
        self._made: list[Link] = []
        tag = os.getpid() % 10000
        try:
            for i in range(count):
                link = Link(f"sbb{tag}x{i}", f"sbbh{tag}x{i}", f"sbbn{tag}x{i}", f"10.252.{i}")
                self._made.append(link)
                add(link, default_route=True)
                limit(link.host_dev, rate)
                self.links.append((link.ns, link.host_address, link.ns_address))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        made, self._made, self.links = self._made, [], []
        for link in made:
            remove(link)
