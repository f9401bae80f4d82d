"""Admission of new sockets: a node at capacity refuses a connect at once instead of queueing it.

A connect costs a token check, Redis round trips (presence, bans) and a session; a storm of them
queues behind each other and behind the relay of every open socket. The node refuses a new socket
(an ``overloaded`` error frame with ``retry_after`` seconds, then close code 1013 "try again later")
while:

- ``ws_max_handshakes`` sockets are already between upgrade and ``hello``;
- more than ``ws_max_connects_per_s`` sockets opened within the last second (a storm otherwise waits
  in the kernel's accept queue, where neither the handshake count nor the loop's lag sees it; a
  refusal costs a tenth of an admission, so the queue drains);
- the node holds ``ws_max_sockets`` sockets;
- the event loop runs more than ``lag_shed_ms`` late (sustained: see :class:`switchboard.lag.LoopLag`)
  while connects are under way (a late loop with no connect in it is not a connect backlog).

Sockets already open are never closed for load: their relay latency is what the refusals protect.
"""

from __future__ import annotations

import contextlib
import math
import time

from aiohttp import web

from signaling.limits import TokenBucket
from switchboard.lag import LoopLag
from switchboard.listener import Handshakes
from switchboard.settings import NodeSettings
from switchboard.wire import Codec, encode

OVERLOADED = "overloaded"
"""Error code of the refusal frame."""
TRY_AGAIN_LATER = 1013
"""Close code after the refusal frame (RFC 6455 registry: "Try Again Later")."""


class SocketAdmission:
    """Counts handshakes under way; says whether one more socket may open."""

    def __init__(self, settings: NodeSettings, lag: LoopLag | None = None,
                 handshakes: Handshakes | None = None) -> None:
        self._max_handshakes = settings.ws_max_handshakes
        self._max_sockets = settings.ws_max_sockets
        self._lag_limit_s = settings.lag_shed_ms / 1e3
        self.retry_after_s = max(1, math.ceil(settings.overload_retry_after_s))
        self.lag = lag or LoopLag()
        rate = settings.ws_max_connects_per_s
        self._connects = TokenBucket(rate, max(1.0, rate), time.monotonic()) if rate else None
        self.handshakes = handshakes or Handshakes(settings.ws_max_handshakes)
        """Connects under way; shared with the node's gated listener (switchboard/listener.py), which
        starts a connect only while they have room."""
        self.shed = 0
        """Sockets refused since start."""

    def refusal(self, open_sockets: int) -> str | None:
        """Why one more socket may not open now, or None."""
        if self.handshakes.upgrading >= self._max_handshakes:
            return f"{self.handshakes.upgrading} connects are under way"
        if self._max_sockets and open_sockets >= self._max_sockets:
            return f"this node holds its most sockets ({self._max_sockets})"
        if self.handshakes.upgrading and self.lag.now() > self._lag_limit_s:
            return "this node is behind on its work"
        if self._connects is not None and not self._connects.take(time.monotonic()):
            return "too many connects per second"
        return None

    async def refuse(self, ws: web.WebSocketResponse, codec: Codec, why: str) -> None:
        """The refusal: an ``overloaded`` error frame, then close 1013."""
        self.shed += 1
        frame = encode({"type": "error", "code": OVERLOADED, "ref": None, "retry_after": self.retry_after_s,
                        "message": f"overloaded: {why}; retry after {self.retry_after_s} s"}, codec)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
        await ws.close(code=TRY_AGAIN_LATER, message=OVERLOADED.encode())
