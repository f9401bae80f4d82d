"""Draining a node: it takes no new rooms, sends its clients to another node, and stops when empty.

Started by ``switchboard node drain <id>`` (a ``{"kind": "drain"}`` command on the node's own channel)
or by SIGTERM (the node's shutdown waits for it). The node marks itself ``draining`` in the registry at
once (placement skips it) and sends every session a ``reconnect`` naming a node (docs/protocol.md; a
socket that arrives meanwhile is told too): that session's user's first choice among the other live,
non-draining nodes, ranked as placement ranks a viewer's ``alternates`` (:func:`targets`: nodes below
:data:`~switchboard.placement.CPU_LIMIT` and not full first while those have room for this node's
sessions, the client's region next, then a rendezvous hash of the user and the node), so a drain of
many sessions spreads over the other nodes instead of landing whole on the least loaded one, and each
user's target is the same for every session of it. The broadcasters of the shows this node originates
are told last (:data:`HOSTS_AFTER_S`), so its viewers move while the show still plays here. It waits
until their sockets are closed or ``node.drain_grace_s`` runs out. On SIGTERM the process runs it
before aiohttp's shutdown (``switchboard.runtime.serve``'s ``before_stop``), which would stop reading
the sockets: a client's close frame is seen, and the node exits as soon as the last one has left.
With no other node to go to (one node, ``switchboard up``) nobody is told to move and nothing waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import Callable

from signaling.beacon import Beacon
from signaling.hub import Hub
from switchboard.ids import SessionId
from switchboard.placement import alternates
from switchboard.registry import NodeEntry

log = logging.getLogger("switchboard.signaling")
POLL_S = 0.1
"""How often the drain looks whether the node is empty yet."""
HOSTS_AFTER_S = 8.0
"""The broadcasters of the shows this node originates are told to move last: once every other socket
has left, or this long after the others were told (a viewer's make-before-break move takes up to the
SDK's ``MOVE_OVERLAP_S``, 5 s). Until then the show stays here, so the drained node's viewers move
while it plays (pulled from here by their new nodes); only then does the show move to its
broadcaster's new node, which every viewer then follows without leaving its node."""
HANDOVER_S = 5.0
"""How long a drained node waits, once its broadcasters were told to move, for their shows to go on at
their new nodes (each handed over from here) before it stops with its sockets gone."""


class Drain:
    """One node's drain. :meth:`run` is idempotent: a second call waits for the first."""

    def __init__(self, hub: Hub, beacon: Beacon, region: str, grace_s: float,
                 stop_process: Callable[[], None] | None = None,
                 hosts: Callable[[], set[SessionId]] = set) -> None:
        self._hub = hub
        self._hosts = hosts
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
            entries = await self._beacon.registry.nodes()
        except Exception as exc:  # Redis away: nobody to name; stop as a plain node would
            log.warning("drain: registry unavailable", extra={"error": str(exc)})
            return
        pick = targets(entries, self._hub.node_id, self._region)
        nowhere = pick("") is None  # whether any node is left does not depend on the user
        if nowhere or self._grace_s <= 0:
            log.info("drain: no other node to move clients to" if nowhere else "drain: no grace period")
            return
        told: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        hosts_at = loop.time() + min(HOSTS_AFTER_S, self._grace_s / 2)
        self._tell(pick, told, self._hosts())
        log.info("drain: %d sessions told to move to %s", len(told),
                 ", ".join(f"{n} ({c})" for n, c in sorted(Counter(told.values()).items())))
        deadline = loop.time() + self._grace_s
        handed = deadline
        # Sockets close on their own tasks (each client's choice); a count polled here needs no hook in them.
        # Once the broadcasters were told, the node also waits (up to HANDOVER_S) until their shows went
        # on elsewhere: it hands each over (signaling.cascade: show.moved) and tells its edges, which
        # then pull the show from its new node at once.
        hosts_told = False
        while (self._attached() or (hosts_told and self._hosts() and loop.time() < handed)) \
                and loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            hosts = set() if hosts_told else self._hosts()
            if hosts and (loop.time() >= hosts_at or self._attached(but=hosts) == 0):
                log.info("drain: the broadcasters of %d shows move now", len(hosts))
                hosts, hosts_told, handed = set(), True, loop.time() + HANDOVER_S  # the broadcasters' turn
            self._tell(pick, told, hosts)  # a socket that came while the registry still named this node
        if self._attached():
            log.warning("drain: grace period over with %d sockets left", self._attached())
        else:
            log.info("drain: every socket left" + (", shows not handed over" if self._hosts() else ""))

    def _tell(self, pick: Callable[[str], NodeEntry | None], told: dict[str, str], later: set[SessionId]) -> None:
        """Sends every session here not told yet (nor in ``later``) a ``reconnect`` naming its user's node
        (``pick``); notes it in ``told`` (session id -> node id)."""
        for session in self._hub.all_sessions():
            if session.id in told or session.id in later:
                continue
            target = pick(str(session.user_id))
            if target is None:
                continue
            told[session.id] = target.id
            session.send({"type": "reconnect", "url": target.url, "node": target.id, "reason": "drain"})

    def _attached(self, but: set[SessionId] | None = None) -> int:
        """Sessions whose socket is still open here (one that moved left only its resumable session),
        but those in ``but``."""
        return sum(1 for s in self._hub.all_sessions() if s.attached and s.id not in (but or set()))


def targets(entries: list[NodeEntry], draining: str, region: str = "") -> Callable[[str], NodeEntry | None]:
    """Where node ``draining`` sends a session of a user: that user's first choice of
    :func:`~switchboard.placement.alternates` over ``entries`` (the registry, this node's own entry
    included: its session count tells whether the nodes below their cap have room for them all, else
    fullness is not ranked and the burst splits over every node), never a draining node nor one that
    users reported lost. None: no other node."""
    skip = {e.id for e in entries if e.suspected}

    def pick(user: str) -> NodeEntry | None:
        ranked = alternates(entries, draining, user, region, exclude=skip, limit=1)
        return ranked[0] if ranked else None

    return pick
