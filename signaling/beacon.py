"""The node's entry in the node registry (switchboard/registry.py), rewritten every heartbeat.

Each beat writes the node's load (CPU of the node and its SFU workers, sessions, live shows) with a
TTL of ``node.registry_ttl_s`` and re-pins the rooms of its live shows to this node
(``keyspace.room_node``), so placement keeps sending a show's viewers here while it is live. A clean
stop withdraws the entry at once; a killed node's entry expires.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from switchboard import keyspace
from switchboard.registry import NodeEntry, NodeRegistry
from switchboard.settings import NodeSettings
from switchboard.tasks import stop_task

log = logging.getLogger("switchboard.signaling")
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def cpu_seconds() -> float:
    """CPU seconds used by this process and its children (the SFU workers). Reads /proc: run it in a
    thread. 0 where /proc is missing."""
    try:
        pid = os.getpid()
        total = _proc_seconds(pid)
        for child in _children(pid):
            try:
                total += _proc_seconds(child)
            except OSError:  # a worker that just ended
                continue
        return total
    except OSError:
        return 0.0


@dataclass
class Load:
    """What the beacon reads from the node at each beat."""

    sessions: Callable[[], int]
    rooms: Callable[[], list[str]]


class Beacon:
    """Announces the node; ``draining`` goes into the next beat (:meth:`beat` sends it at once)."""

    def __init__(self, redis: aioredis.Redis, settings: NodeSettings, node_id: str, url: Callable[[], str],
                 media_address: str, workers: int, load: Load, pipe_address: str = "", viewer_cap: int = 0) -> None:
        self._redis = redis
        self._settings = settings
        self._node_id = node_id
        self._url = url
        self._media_address = media_address
        self._pipe_address = pipe_address
        self._viewer_cap = viewer_cap
        self._workers = workers
        self._load = load
        self.registry = NodeRegistry(redis)
        self.draining = False
        self._started_ms = int(time.time() * 1000)
        self._cpu_mark = (time.monotonic(), 0.0)
        self._cpu = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="node-beacon")

    async def _measure_cpu(self) -> float:
        used = await asyncio.to_thread(cpu_seconds)
        now = time.monotonic()
        then, before = self._cpu_mark
        self._cpu_mark = (now, used)
        if before and now > then:
            share = (used - before) / (now - then) / (os.cpu_count() or 1)
            self._cpu = min(1.0, max(0.0, share))
        return self._cpu

    def entry(self) -> NodeEntry:
        rooms = self._load.rooms()
        return NodeEntry(id=self._node_id, url=self._url(), media_address=self._media_address,
                         pipe_address=self._pipe_address, viewer_cap=self._viewer_cap,
                         region=self._settings.region, workers=self._workers, cpu=round(self._cpu, 3),
                         viewers=self._load.sessions(), rooms=len(rooms), draining=self.draining,
                         started_ms=self._started_ms, updated_ms=int(time.time() * 1000))

    async def beat(self) -> None:
        """Writes the entry now (and re-pins this node's rooms); nothing before the node listens."""
        if not self._url():
            return
        await self.registry.announce(self.entry(), self._settings.registry_ttl_s)
        rooms = self._load.rooms()
        if rooms and not self.draining:
            async with self._redis.pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.set(keyspace.room_node(room), self._node_id, ex=keyspace.ROOM_PIN_TTL_S)
                await pipe.execute()

    async def _run(self) -> None:
        while True:
            try:
                await self._measure_cpu()
                await self.beat()
            except aioredis.RedisError as exc:  # the next beat retries; the entry outlives one miss
                log.warning("registry heartbeat failed", extra={"error": str(exc)})
            await asyncio.sleep(self._settings.heartbeat_s)

    async def close(self) -> None:
        """Stops beating and withdraws the entry. Safe to call twice."""
        task, self._task = self._task, None
        if task is None:
            return
        await stop_task(task)
        try:
            await self.registry.withdraw(self._node_id)
        except aioredis.RedisError as exc:  # it expires by itself
            log.warning("registry withdraw failed", extra={"error": str(exc)})
