"""Draining a node: it takes no new rooms, sends its clients to another node, and stops when empty.

Started by ``switchboard node drain <id>`` (a ``{"kind": "drain"}`` command on the node's own channel)
or by SIGTERM (the node's shutdown waits for it). The node marks itself ``draining`` in the registry at
once (placement skips it), picks the least loaded other node and sends every session a ``reconnect``
naming it (docs/protocol.md; a socket that arrives meanwhile is told too), and waits until their sockets
are closed or ``node.drain_grace_s`` runs out. On SIGTERM the process runs it before aiohttp's shutdown
(``switchboard.runtime.serve``'s ``before_stop``), which would stop reading the sockets: a client's close
frame is seen, and the node exits as soon as the last one has left.
With no other node to go to (one node, ``switchboard up``) nobody is told to move and nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from signaling.beacon import Beacon
from signaling.hub import Hub
from switchboard.placement import select

log = logging.getLogger("switchboard.signaling")
POLL_S = 0.1
"""How often the drain looks whether the node is empty yet."""


class Drain:
    """One node's drain. :meth:`run` is idempotent: a second call waits for the first."""

    def __init__(self, hub: Hub, beacon: Beacon, region: str, grace_s: float,
                 stop_process: Callable[[], None] | None = None) -> None:
        self._hub = hub
        self._beacon = beacon
        self._region = region
        self._grace_s = grace_s
        self._stop_process = stop_process or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self._running: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        return self._running is not None

    async def command(self, message: dict[str, object]) -> None:
        """The node channel's handler: ``drain`` drains, then stops the process."""
        if message.get("kind") != "drain":
            log.warning("unknown node command dropped", extra={"kind": message.get("kind")})
            return
        log.info("drain requested")
        await self.run()
        self._stop_process()

    async def run(self) -> None:
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._drain(), name="node-drain")
        await asyncio.shield(self._running)

    async def _drain(self) -> None:
        self._beacon.draining = True
        try:
            await self._beacon.beat()
            others = [n for n in await self._beacon.registry.nodes() if n.id != self._hub.node_id]
        except Exception as exc:  # Redis away: nobody to name; stop as a plain node would
            log.warning("drain: registry unavailable", extra={"error": str(exc)})
            return
        target = select(others, self._region)
        if target is None or self._grace_s <= 0:
            log.info("drain: no other node to move clients to" if target is None else "drain: no grace period")
            return
        message = {"type": "reconnect", "url": target.url, "node": target.id, "reason": "drain"}
        told: set[str] = set()
        self._tell(message, told)
        log.info("drain: %d sessions told to move to %s", len(told), target.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace_s
        # Sockets close on their own tasks (each client's choice); a count polled here needs no hook in them.
        while self._attached() and loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            self._tell(message, told)  # a socket that came while the registry still named this node
        if self._attached():
            log.warning("drain: grace period over with %d sockets left", self._attached())
        else:
            log.info("drain: every socket left")

    def _tell(self, message: dict[str, str], told: set[str]) -> None:
        """Sends ``message`` to every session here not told yet."""
        for session in self._hub.all_sessions():
            if session.id not in told:
                told.add(session.id)
                session.send(message)

    def _attached(self) -> int:
        """Sessions whose socket is still open here (one that moved left only its resumable session)."""
        return sum(1 for s in self._hub.all_sessions() if s.attached)
