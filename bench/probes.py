"""What a bench reads of a server under load: its processes from /proc (the family of a pid, their
CPU seconds and RSS), the kernel's UDP receive-buffer drops, a node's counters from its /metrics;
and the percentile the figures are reported at."""

from __future__ import annotations

import os
from pathlib import Path


def family(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_s(pids: list[int]) -> float:
    """CPU seconds of ``pids`` so far, user and kernel."""
    return sum(cpu_split(pids))


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(user, kernel) CPU seconds of ``pids`` so far. The kernel's share includes the softirq work done
    in the process's context: on loopback, delivering each datagram it sends into the receiver's socket."""
    user = kernel = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        kernel += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, kernel / tick


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a receiving socket's buffer was full (all sockets)."""
    rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def node_counters(metrics_port: int, names: tuple[str, ...]) -> dict[str, int | None]:
    """The node's counters ``<name>_total`` (polled by the node from its workers every few seconds)."""
    import urllib.request

    found: dict[str, int | None] = dict.fromkeys(names)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return found
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.endswith("_total") and name[:-6] in found:
            found[name[:-6]] = int(float(value))
    return found


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None
