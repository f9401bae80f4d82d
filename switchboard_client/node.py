"""One signaling socket to a node's ``/ws``: requests with correlation, server events, resume, token refresh.

docs/protocol.md is the contract. The client keeps the ``resume_token`` of each ``hello``: when the
socket drops (not closed by us, not refused for good), it reconnects with a fresh token and
``resume`` within the node's resume window, so calls and shows survive. Requests waiting when the
socket dropped fail with :class:`~switchboard_client.errors.Disconnected` (their outcome is unknown).
A ``token.refresh`` is sent a margin before the token runs out.

Many nodes (docs/scaling.md): a token source that gives the API's whole answer (a ``NodeToken``)
names the node to connect to, and each reconnect asks it again, so a client whose node died (kill
-9: the socket just drops) is sent by the API to a live node (backing off with jitter meanwhile):
once a connect to the lost node fails, the API's token source (:class:`PlacedTokens`) names it
(``avoid``) and the API places the client elsewhere, though the registry may list the dead node
for up to 3 s more. A viewer's token answer names ``alternates``: the client keeps that answer, and
after a drop first tries its node again (resume) with the token it holds, then, when that connect
fails, the alternates in order with the same token, asking the API only if none takes it (the burst
of a dead node's clients then asks the API nothing; the new node checks the token as any node does).
A ``reconnect`` from a draining node moves the socket make-before-break
(switchboard_client/handover.py): the new session is opened while the old socket stays open, requests
go to the new one from its ``hello`` on, and the old socket is closed once the show viewings on it
have their new media flowing (or after ``MOVE_OVERLAP_S``); when the new node cannot be reached, the
old socket is left at once and the reconnect goes on as after a drop.
Either way the new node starts a new session (``hello`` with ``resumed: false``): shows and calls
opened with this SDK join again by themselves (switchboard_client/show.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from switchboard_client.api import NodeToken, PlacedTokens, TokenSource
from switchboard_client.errors import ApiError, ClosedError, Disconnected, NodeError, described
from switchboard_client.events import Event, EventStream, Replies
from switchboard_client.handover import Handover
from switchboard_client.handshake import CONNECT_S, Hello, handshake, ws_url
from switchboard_client.reconnect import HELD_MARGIN_S, Reconnecting

log = logging.getLogger("switchboard_client.node")

FINAL_CLOSE_CODES = frozenset({4003, 4029, 1008})
"""Banned, too many sockets, abuse: reconnecting would be refused again (docs/protocol.md, close codes)."""


class NodeClient(Reconnecting):
    """A signaling socket. ``await open()`` (or ``async with``) connects and waits for ``hello``;
    ``close()`` is idempotent; every other call on a closed client raises :class:`ClosedError`."""

    def __init__(self, url: str, token_source: TokenSource, *, resume_window_s: float = 15.0,
                 refresh_margin_s: float = 60.0, request_timeout_s: float = 20.0) -> None:
        self.base_url = ws_url(url)
        """Where to connect when the token source names no node (one node: the deployment's host)."""
        self.url = self.base_url
        """The ``/ws`` URL of the node the socket is (or was last) on."""
        self._tokens = token_source
        self._held: NodeToken | None = None
        """The token source's last whole answer (its token, node and alternates)."""
        self._move_to: str | None = None
        self._moving: asyncio.Task[None] | None = None
        """A drain's move under way (:meth:`_move`): the new socket being opened beside the old one."""
        self._switchers: set[object] = set()
        self.handover: Handover | None = None
        """The last drain's move: its old socket, open until the switchers switched (or its bound)."""
        self._window = resume_window_s
        self._margin = refresh_margin_s
        self._timeout = request_timeout_s
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._hello: Hello | None = None
        self._replies = Replies()
        self._streams: list[EventStream] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._delay = 0.1
        """The reconnect backoff's current step (kept across drops of short sessions)."""
        self._hello_at = 0.0
        """``time.monotonic()`` of the last ``hello``."""
        self._heard = False
        """Set by a connect that got any answer from the node (a 503, a frame): the node lives."""
        self.close_reason: str | None = None
        """Why the client closed itself (a final close code), or ``None``."""
        self.reconnects = 0
        """Sockets opened after the first one (each a resume attempt)."""
        self.moves = 0
        """Sockets opened on another node than the last one (a lost node, or a drain's ``reconnect``)."""
        self.refreshes = 0
        """``token.refresh`` requests the node accepted."""
        self.tracer: Callable[[str, dict[str, Any]], None] | None = None
        """Called with each step of a connect or a rejoin (``socket_lost``, ``token_asked``, ``token``,
        ``ws_refused``, ``connect_failed``, ``hello``, and the shows' ``show_join``, ``offer``, ...)
        and its fields: a load generator times a recovery with it (bench cluster). Must not raise."""

    async def __aenter__(self) -> NodeClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def hello(self) -> Hello:
        if self._hello is None:
            raise ClosedError("not connected: open() first")
        return self._hello

    @property
    def user_id(self) -> str:
        return self.hello.user_id

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self) -> Hello:
        self._check()
        if self._hello is not None:
            return self._hello
        # sock_connect: the TCP connect only (a dead box); the upgrade and hello have their own bounds.
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_S))
        try:
            await self._connect(resume=None)
        except BaseException:
            await self.close()
            raise
        self._tasks = [asyncio.create_task(self._run(), name="switchboard_client.node.read"),
                       asyncio.create_task(self._refresh_loop(), name="switchboard_client.node.refresh")]
        return self.hello

    async def close(self) -> None:
        if self._closed and self._http is None:
            return
        self._closed = True
        tasks = [*self._tasks, *([self._moving] if self._moving is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.handover is not None:
            await self.handover.close()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()
        self._replies.fail(ClosedError("the node client closed"))
        for stream in list(self._streams):
            stream.end()
        self._streams.clear()

    # --- requests and events ----------------------------------------------------------------------

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Sends ``{"type": type_, "id": n, **fields}`` and returns the ``reply`` (without ``type``/``ref``).

        Raises :class:`NodeError` on an ``error`` frame, :class:`Disconnected` when the socket drops first.
        """
        self._check()
        ref, future = self._replies.expect()
        try:
            await self._send({"type": type_, "id": ref, **fields})
            return await asyncio.wait_for(future, self._timeout)
        finally:
            self._replies.forget(ref)

    async def send(self, type_: str, **fields: Any) -> None:
        """A message without ``id``: success is silent, an error comes as an ``error`` event."""
        self._check()
        await self._send({"type": type_, **fields})

    def events(self, *types: str, where: Callable[[Event], bool] | None = None) -> EventStream:
        """A new stream of the server events from now on (``hello`` of a resume included), optionally
        only of ``types``. Make it before the request whose events it should see."""
        self._check()
        stream = EventStream(types, where, self._forget)
        self._streams.append(stream)
        return stream

    def add_switcher(self, who: object) -> None:
        """``who`` gets media through this client's session and switches it itself when a drain moves
        the socket (a show viewing): the old socket stays open until ``handover.switched(who)``."""
        self._switchers.add(who)

    def remove_switcher(self, who: object) -> None:
        self._switchers.discard(who)
        if self.handover is not None:
            self.handover.switched(who)

    def _forget(self, stream: EventStream) -> None:
        if stream in self._streams:  # a stream closed after this client (a call closed after its node)
            self._streams.remove(stream)

    # --- the socket -------------------------------------------------------------------------------

    def trace(self, step: str, **fields: Any) -> None:
        """Hands one step to :attr:`tracer`, if any."""
        if self.tracer is not None:
            self.tracer(step, fields)

    def _check(self) -> None:
        if self._closed:
            raise ClosedError(f"the node client is closed{f' ({self.close_reason})' if self.close_reason else ''}")

    async def _send(self, frame: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise Disconnected("the socket is down (resuming)")
        await ws.send_str(json.dumps(frame))

    def _held_for(self, url: str) -> tuple[str, str] | None:
        """The token this client holds and ``url``, when that token has :data:`HELD_MARGIN_S` left: a
        drain's move then asks the API nothing (any node checks a token as its own; the burst of a
        drained node's clients asked it all at once, and it shed many of them)."""
        held = self._held
        if held is None or held.expires_at - time.time() < HELD_MARGIN_S:
            return None
        self._move_to = None
        self.trace("token_asked", held=True)
        self.trace("token", url=url, held=True)
        return held.token, url

    async def _ticket(self) -> tuple[str, str]:
        """A fresh token and the ``/ws`` URL to use it at: a drain's ``reconnect`` target, else the node
        the API named, else the base URL."""
        self.trace("token_asked")
        answer = await self._tokens()
        if isinstance(answer, NodeToken):
            token, node = answer.token, answer.node
            self._held = answer
        else:
            token, node = answer, None
        target, self._move_to = self._move_to, None
        url = target or (ws_url(node) if node else self.base_url)
        self.trace("token", url=url)
        return token, url

    async def _connect(self, resume: str | None, held: tuple[str, str] | None = None,
                       deadline: float | None = None, hello_s: float | None = None) -> None:
        """Opens the socket: with a fresh token from the source, or ``held`` (a token this client holds
        and the ``/ws`` URL to use it at); waits for ``hello`` (bounded as :func:`handshake` says: nothing
        waits past ``deadline``, ``time.monotonic()``). :attr:`_heard` tells whether the node answered at all."""
        assert self._http is not None
        token, url = held if held is not None else await self._ticket()
        params = {"token": token}
        if resume and url == self.url:  # resume tokens are per node: another node would drop it
            params["resume"] = resume
        if url != self.url and self._hello is not None:
            self.moves += 1
        self.url = url
        ws, frame = await handshake(self._http, url, params, deadline=deadline,
                                    hello_timeout_s=hello_s or self._timeout, trace=self.trace, heard=self._answered)
        self._adopt(ws, frame)

    def _adopt(self, ws: aiohttp.ClientWebSocketResponse, frame: dict[str, Any]) -> None:
        """``ws`` (its ``hello`` is ``frame``) is the socket from now on."""
        if isinstance(self._tokens, PlacedTokens):
            self._tokens.avoid = None
        self._ws, self._hello = ws, Hello.parse(frame)
        self._hello_at = time.monotonic()
        self.trace("hello", url=self.url, node=self._hello.node, resumed=self._hello.resumed)
        self._deliver(frame)

    def _answered(self) -> None:
        self._heard = True

    async def _run(self) -> None:
        """Reads frames; on a drop, resumes within the window or closes the client. A drain's move
        starts another reader for the new socket: this one then reads the old socket's last replies
        (its events are no longer delivered) until the handover closes it, and ends."""
        while not self._closed:
            ws = self._ws
            assert ws is not None
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if ws is self._ws:
                        self._dispatch(json.loads(msg.data))
                    else:
                        self._replies.settle(json.loads(msg.data))
            if ws is self._ws and self._moving is not None and not self._moving.done():
                await asyncio.shield(self._moving)  # the old socket dropped while the new one was opening
            if ws is not self._ws:
                return
            code = ws.close_code
            self._replies.fail(Disconnected())
            if self._closed:
                return
            self.trace("socket_lost", url=self.url, node=self.hello.node, code=code)
            if code in FINAL_CLOSE_CODES:
                await self._give_up(f"closed by the node with {code}")
                return
            if not await self._resume():
                await self._give_up(f"could not resume within {self._window} s (last close {code})")
                return

    async def _give_up(self, reason: str) -> None:
        self.close_reason = reason
        self._deliver({"type": "closed", "reason": reason})
        # close() cancels the tasks, this one included: run it apart.
        asyncio.get_running_loop().create_task(self.close())

    async def _refresh_loop(self) -> None:
        while not self._closed:
            hello = self.hello
            await asyncio.sleep(max(1.0, hello.token_expires_at - self._margin - time.time()))
            try:
                answer = await self._tokens()
                token = answer.token if isinstance(answer, NodeToken) else answer
                if isinstance(answer, NodeToken):
                    self._held = answer
                reply = await self.request("token.refresh", token=token)
                self._hello = dataclasses.replace(self.hello, token_expires_at=int(reply["token_expires_at"]))
                self.refreshes += 1
            except (NodeError, ApiError, aiohttp.ClientError, TimeoutError) as exc:
                # ApiError: the API shed the token request (503) or refused it; the loop must live on,
                # or the token runs out and the node closes the socket (4001) under a busy API.
                log.warning("token.refresh failed: %s", described(exc))
                await asyncio.sleep(5)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "reconnect" and isinstance(frame.get("url"), str) and frame["url"]:
            # A draining node names another (docs/protocol.md): open it beside this socket.
            self._deliver(frame)
            if self._ws is not None and (self._moving is None or self._moving.done()):
                self._moving = asyncio.get_running_loop().create_task(
                    self._move(ws_url(frame["url"]), self._ws), name="switchboard_client.node.move")
            return
        if not self._replies.settle(frame):
            self._deliver(frame)

    async def _move(self, url: str, old: aiohttp.ClientWebSocketResponse) -> None:
        """Make-before-break: opens a session at ``url`` (with the held token, else a fresh one) while
        ``old`` stays open; on its ``hello`` the new socket gets its own reader and a :class:`Handover`
        closes ``old`` once the switchers switched. If the new node cannot be reached (or refuses),
        ``old`` is closed now and the read loop reconnects there after it, as after a drop (backing
        off, then asking the API)."""
        assert self._http is not None
        self.trace("moving", url=url, node=self.hello.node)
        if self.handover is not None:
            self.handover.finish()  # an earlier move's old socket goes now
        old_node = self.hello.node
        self._move_to = url
        try:
            token, url = self._held_for(url) or await self._ticket()
            self.reconnects += 1
            ws, frame = await handshake(self._http, url, {"token": token}, deadline=time.monotonic() + self._window,
                                        hello_timeout_s=self._timeout, trace=self.trace, heard=self._answered)
        except (NodeError, ApiError, aiohttp.ClientError, OSError, TimeoutError, json.JSONDecodeError) as exc:
            log.info("moving to %s failed: %s; leaving the old node first", url, described(exc))
            self.trace("connect_failed", url=url, error=type(exc).__name__)
            self._move_to = url
            if not old.closed:
                await old.close(code=1000, message=b"moving")
            return
        if url != self.url:
            self.moves += 1
        self.url = url
        self.handover = Handover(old, old_node, self._switchers, self.trace)
        self._adopt(ws, frame)
        self._tasks.append(asyncio.get_running_loop().create_task(self._run(), name="switchboard_client.node.read"))

    def deliver_local(self, frame: dict[str, Any]) -> None:
        """Hands ``frame`` to the event streams as if the node had sent it: the SDK's own events
        (``show.ended`` with reason ``node lost``, when no node is left to say so)."""
        self._deliver(frame)

    def _deliver(self, frame: dict[str, Any]) -> None:
        for stream in list(self._streams):
            stream.offer(frame)

