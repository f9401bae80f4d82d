"""The ``/ws`` endpoint: authentication, the read loop with its limits, resume and session expiry.

This is the edge: every error becomes an error frame here, and only here are close codes chosen
(4001 unauthorized, 1008 repeated abuse, 1013 slow reader, 1009 a frame over aiohttp's hard cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from matchmaker.types import TicketStore
from signaling.calls import CallBook
from signaling.dispatch import Dispatcher, wire_error
from signaling.errors import Conflict, RateLimited, Unauthorized
from signaling.hub import Hub
from signaling.limits import AbuseMeter, TokenBucket
from signaling.messages import request_id, validate
from signaling.session import Session
from signaling.shows import ShowBook
from signaling.types import IceServersFor
from switchboard.errors import TokenError
from switchboard.settings import NodeSettings
from switchboard.tokens import TokenVerifier
from switchboard.wire import MSGPACK_PROTOCOL, Codec, WireError, decode, encode

log = logging.getLogger("switchboard.signaling")

UNAUTHORIZED = 4001
"""Close code: no token, or a bad or expired one."""


class Gateway:
    """Accepts sockets for one node; parent of the resumable sessions' expiry timers."""

    def __init__(self, settings: NodeSettings, verifier: TokenVerifier, hub: Hub, calls: CallBook,
                 shows: ShowBook, dispatcher: Dispatcher, tickets: TicketStore | None,
                 ice_servers: IceServersFor) -> None:
        self._ice_servers = ice_servers
        self._s = settings
        self._verifier = verifier
        self._hub = hub
        self._calls = calls
        self._shows = shows
        self._dispatcher = dispatcher
        self._tickets = tickets
        self._resumable: dict[str, Session] = {}
        self._expiring: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for session in list(self._resumable.values()):
            if session.expiry is not None:
                session.expiry.cancel()
        for task in list(self._expiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in list(self._resumable.values()):
            await session.close(WSCloseCode.GOING_AWAY, b"node stopping")
        self._resumable.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            protocols=(MSGPACK_PROTOCOL,),
            heartbeat=self._s.ws_ping_interval_s,
            compress=False,  # ~16 KiB per idle socket without, ~113 KiB with (DESIGN.md)
            max_msg_size=self._s.ws_max_frame_bytes * 4,  # frames between the two limits get an error frame
        )
        await ws.prepare(request)
        codec = Codec.for_protocol(ws.ws_protocol)
        session = await self._authenticate(ws, codec, request.query)
        if session is None:
            return ws
        try:
            await self._serve(ws, session)
        finally:
            await session.detach(ws)
            if not session.closed and not session.attached:
                self._schedule_expiry(session)
        return ws

    # --- authentication and resume ------------------------------------------------------------------

    async def _refuse(self, ws: web.WebSocketResponse, codec: Codec, message: str, ref: Any = None) -> None:
        frame = encode({"type": "error", "code": "unauthorized", "message": message, "ref": ref}, codec)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
        await ws.close(code=UNAUTHORIZED, message=b"unauthorized")

    async def _authenticate(self, ws: web.WebSocketResponse, codec: Codec,
                            query: Mapping[str, str]) -> Session | None:
        token, resume, ref = query.get("token"), query.get("resume"), None
        if not token:
            try:
                msg = await ws.receive(timeout=self._s.ws_auth_timeout_s)
            except TimeoutError:
                await self._refuse(ws, codec, "no token: send {\"type\": \"auth\", \"token\": ...} first")
                return None
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                await ws.close(code=UNAUTHORIZED, message=b"unauthorized")
                return None
            try:
                raw = decode(msg.data, codec, max_bytes=self._s.ws_max_frame_bytes)
                ref = request_id(raw)
                first = validate(raw)
                if first.type != "auth":
                    raise Unauthorized(f"the first message must be 'auth', got {first.type!r}")
            except Exception as exc:
                await self._refuse(ws, codec, f"no token: {wire_error(exc)[1]}", ref)
                return None
            token, resume = first.body["token"], first.body.get("resume")
        try:
            grants = self._verifier.verify(token)
        except TokenError as exc:
            await self._refuse(ws, codec, str(exc), ref)
            return None
        session, resumed = self._resumable.get(resume or ""), True
        if session is None or session.closed or session.user_id != grants.sub:
            session, resumed = Session(grants, codec, self._s.ws_send_queue), False
            self._resumable[session.resume_token] = session
            await self._hub.add(session)
        else:
            session.grants = grants
        session.attach(ws, codec)
        hello = {"type": "hello", "session_id": session.id, "user_id": session.user_id,
                 "resume_token": session.resume_token, "resumed": resumed, "node": self._hub.node_id,
                 "shows": sorted(session.shows), "ice_servers": self._ice_servers(session.user_id)}
        if ref is not None:
            session.send({"type": "reply", "ref": ref, "session_id": session.id})
        session.send(hello)
        return session

    def _schedule_expiry(self, session: Session) -> None:
        def expire() -> None:
            task = asyncio.get_running_loop().create_task(self._expire(session))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

        session.expiry = asyncio.get_running_loop().call_later(self._s.resume_window_s, expire)

    async def _expire(self, session: Session) -> None:
        """The resume window passed: the session leaves its shows; a user's last one ends calls and tickets."""
        if session.attached or session.closed:
            return
        self._resumable.pop(session.resume_token, None)
        await session.close()
        try:
            await self._shows.session_gone(session)
            if await self._hub.remove(session):
                await self._calls.user_gone(session.user_id)
                if self._tickets is not None:
                    await self._tickets.leave(session.user_id)
        except Exception:
            log.exception("cleaning up an expired session failed", extra={"session": session.id})

    # --- the read loop --------------------------------------------------------------------------------

    async def _serve(self, ws: web.WebSocketResponse, session: Session) -> None:
        s = self._s
        bucket = TokenBucket(s.ws_rate_per_s, s.ws_rate_burst, time.monotonic())
        abuse = AbuseMeter(s.ws_abuse_limit)
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            if session.closed:
                break
            ref = None
            try:
                if not bucket.take(time.monotonic()):
                    raise RateLimited(f"over {s.ws_rate_per_s:g} messages/s on this socket")
                raw = decode(msg.data, session.codec, max_bytes=s.ws_max_frame_bytes)
                ref = request_id(raw)
                message = validate(raw)
                if message.type == "auth":
                    raise Conflict("already authenticated")
                reply = await self._dispatcher.handle(session, message)
                if message.id is not None:
                    session.send({"type": "reply", "ref": message.id, **reply})
            except Exception as exc:
                code, text = wire_error(exc)
                if code == "internal":
                    log.exception("handler failed", extra={"session": session.id})
                elif not isinstance(exc, WireError | RateLimited):
                    log.debug("request refused", extra={"code": code, "session": session.id})
                session.send({"type": "error", "code": code, "message": text, "ref": ref})
                if abuse.hit(time.monotonic()):
                    log.warning("socket closed for abuse", extra={"user": session.user_id, "session": session.id})
                    await session.drained()
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many bad messages")
                    break
