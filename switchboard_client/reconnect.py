"""How a :class:`~switchboard_client.node.NodeClient` comes back after its socket dropped (docs/sdk.md,
"Reconnects"): first with the token it holds (its node again with the resume token, then the token
answer's ``alternates``), then asking its token source each attempt, backing off with jitter, and naming
a node that never answered (``avoid``) so that the API places it elsewhere.

A mixin of ``NodeClient``: the state it reads is the client's own (declared below, set there).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import TYPE_CHECKING

import aiohttp

from switchboard_client.api import NodeToken, PlacedTokens
from switchboard_client.errors import ApiError, NodeError, described
from switchboard_client.handshake import ws_url

if TYPE_CHECKING:
    from switchboard_client.api import TokenSource
    from switchboard_client.handshake import Hello

log = logging.getLogger("switchboard_client.node")

HELD_MARGIN_S = 20.0
"""A held token is used to reconnect without the API only while it has at least this long to live."""
API_RESERVE_S = 4.0
"""Of the resume window, what the tries with the held token leave for asking the API."""
LOST_NODE_S = 2.5
"""How long the held-token try of the node that just dropped the socket waits for ``hello`` after the
upgrade before its alternates are tried (a hung node held a viewer the whole window). The TCP connect and
the upgrade keep their own bounds: a busy node's gate (2 s) or a slow link does not make it left."""
STABLE_S = 5.0
"""A session that lasted this long resets the reconnect backoff; a node that drops each socket
shortly after its ``hello`` gets the backoff growing, not a new socket every 0.1 s."""


class Reconnecting:
    """The reconnect policy of :class:`~switchboard_client.node.NodeClient` (its ``_resume``)."""

    url: str
    _tokens: TokenSource
    _held: NodeToken | None
    _move_to: str | None
    _window: float
    _timeout: float
    _closed: bool
    _delay: float
    _hello_at: float
    _heard: bool
    reconnects: int

    @property
    def hello(self) -> Hello:
        raise NotImplementedError

    def trace(self, step: str, **fields: object) -> None:
        raise NotImplementedError

    async def _connect(self, resume: str | None, held: tuple[str, str] | None = None,
                       deadline: float | None = None, hello_s: float | None = None) -> None:
        raise NotImplementedError

    async def _resume(self) -> bool:
        """Reconnects within the window: at once after a ``reconnect``, else backing off (0.1 s doubling
        to 1 s, each wait drawn between half and all of it, so the clients of a lost node do not come
        back in step; the cap bounds how long they wait once the registry forgot a dead node; the step
        starts over only after a session of :data:`STABLE_S` or more). First with the held token
        (:meth:`_resume_held`, leaving :data:`API_RESERVE_S` of the window), then each attempt asks the
        token source again: the API names a live node once the registry forgot a dead one
        (``node.registry_ttl_s``), or at once when the lost node is named (``avoid``)."""
        deadline = time.monotonic() + self._window
        if time.monotonic() - self._hello_at >= STABLE_S:
            self._delay = 0.1
        lost_url, lost_node = self.url, self.hello.node
        if self._move_to is None:
            await self._pause()
            outcome = await self._resume_held(lost_url, lost_node, deadline)
            if outcome is not None:
                return outcome
        while time.monotonic() < deadline and not self._closed:
            self._heard = False
            try:
                self.reconnects += 1
                await self._connect(resume=self.hello.resume_token, deadline=deadline)
                return True
            except NodeError as exc:
                if exc.code in ("unauthorized", "banned", "too_many_sockets"):
                    return False
            except ApiError as exc:  # the API refused a token for good (logged out, banned, deleted room)
                if exc.status in (401, 403, 404):
                    return False
                log.debug("token source failed: %r", exc)
                self.trace("token_failed", status=exc.status)
            except (aiohttp.ClientError, OSError, TimeoutError, json.JSONDecodeError) as exc:
                log.debug("resume attempt failed: %s", described(exc))
                self.trace("connect_failed", url=self.url, error=type(exc).__name__)
                self._name_lost(lost_url, lost_node)
            await self._pause()
        return False

    async def _pause(self) -> None:
        """One backoff wait (between half and all of the step), then the step doubles up to 1 s."""
        await asyncio.sleep(random.uniform(self._delay / 2, self._delay))
        self._delay = min(self._delay * 2, 1.0)

    def _name_lost(self, lost_url: str, lost_node: str) -> None:
        """After a failed connect: when it was to the lost node and the node never answered (no 503, no
        frame: refused or silent at TCP, killed), the API is asked to skip it (``avoid``). A node that
        answered (``overloaded``, a 503) lives: it is never reported."""
        if self.url == lost_url and lost_node and not self._heard and isinstance(self._tokens, PlacedTokens):
            self._tokens.avoid = lost_node

    async def _resume_held(self, lost_url: str, lost_node: str, deadline: float) -> bool | None:
        """Reconnects with the token this client holds, asking the API nothing: its node again (with
        the resume token: a drop on a live node keeps the session), then each of the token answer's
        ``alternates``, all within the window less :data:`API_RESERVE_S` (the lost node's ``hello``
        within :data:`LOST_NODE_S` of its upgrade). True: connected; False:
        refused for good (banned, too many sockets); None: none took it (no usable held token, the lost
        node and the alternates unreachable, busy or refusing the token, or no time left): ask the API,
        naming the lost node if it never answered. Only a token with :data:`HELD_MARGIN_S` left is used."""
        held = self._held
        if held is None or held.expires_at - time.time() < HELD_MARGIN_S:
            return None
        until = deadline - API_RESERVE_S
        targets = [lost_url, *(u for u in map(ws_url, held.alternates) if u != lost_url)]
        for i, url in enumerate(targets):
            if self._closed:
                return False
            if time.monotonic() >= until:
                return None
            self.trace("token_asked", held=True)
            self.trace("token", url=url, held=True)
            self._heard = False
            try:
                self.reconnects += 1
                await self._connect(resume=self.hello.resume_token if i == 0 else None, held=(held.token, url),
                                    deadline=until, hello_s=min(self._timeout, LOST_NODE_S) if i == 0 else None)
                return True
            except NodeError as exc:
                if exc.code in ("banned", "too_many_sockets"):
                    return False
                self.trace("connect_failed", url=url, error=exc.code)
                if exc.code == "unauthorized":  # revoked or expired: the API decides
                    return None
            except (aiohttp.ClientError, OSError, TimeoutError, json.JSONDecodeError) as exc:
                log.debug("held-token connect to %s failed: %s", url, described(exc))
                self.trace("connect_failed", url=url, error=type(exc).__name__)
                if i == 0:
                    self._name_lost(lost_url, lost_node)
        return None
