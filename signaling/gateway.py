"""The ``/ws`` endpoint: authentication, the read loop with its limits, resume and session expiry.

This is the edge: every error becomes an error frame here, and only here are close codes chosen
(4001 unauthorized, token expired or revoked, 4003 banned, 4029 too many sockets, 1008 repeated abuse,
1013 slow reader, 1009 a frame over aiohttp's hard cap). A socket lives no longer than its token: at
``exp`` it gets an error frame and 4001, unless the client sent ``token.refresh`` with a fresh token
for the same user before then. A token issued before the account's revocation epoch
(``keyspace.token_epoch``) is refused at ``auth``, resume and ``token.refresh``, and a ``revoke``
sanctions message ends the sessions whose token it kills (signaling/evictions.py: the endings that
come from outside a socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from matchmaker.types import TicketStore
from signaling.admission import SocketAdmission
from signaling.calls import CallBook
from signaling.dispatch import Dispatcher, is_shed, wire_error
from signaling.errors import Conflict, Forbidden, RateLimited, Unauthorized
from signaling.evictions import BANNED, REVOKED, UNAUTHORIZED, Evictions
from signaling.hub import Hub
from signaling.keepalive import Keepalive
from signaling.limits import AbuseMeter, TokenBucket
from signaling.messages import request_id, validate
from signaling.session import Session
from signaling.shows import ShowBook
from signaling.types import IceServersFor
from switchboard.errors import TokenError
from switchboard.ids import UserId
from switchboard.listener import Handshakes
from switchboard.settings import NodeSettings
from switchboard.tokens import Grants, TokenVerifier
from switchboard.wire import MSGPACK_PROTOCOL, Codec, WireError, decode, encode

log = logging.getLogger("switchboard.signaling")

TOO_MANY_SOCKETS = 4029
"""Close code: the token or the user already holds the most sockets a node allows; older sockets stay."""


class Gateway:
    """Accepts sockets for one node; parent of the resumable sessions' expiry timers."""

    def __init__(self, settings: NodeSettings, verifier: TokenVerifier, ice_servers: IceServersFor,
                 handshakes: Handshakes | None = None) -> None:
        """Made with the application, so that :meth:`handle` itself is the ``/ws`` route (a wrapper
        coroutine would stay on every socket's stack); :meth:`open` hands it the node's pieces."""
        self._ice_servers = ice_servers
        self._s = settings
        self._verifier = verifier
        self._opened = False
        self._resumable: dict[str, Session] = {}
        self._expiring: set[asyncio.Task[None]] = set()
        self._keepalive = Keepalive(settings.ws_ping_interval_s)
        self._per_token: dict[str, int] = {}
        """Open sockets by token id (``jti``) on this node."""
        self._per_user: dict[UserId, int] = {}
        """Open sockets by user on this node."""
        self._admission = SocketAdmission(settings, handshakes=handshakes)

    def open(self, hub: Hub, calls: CallBook, shows: ShowBook, dispatcher: Dispatcher,
             tickets: TicketStore | None) -> None:
        """The node's pieces are open (in its ``cleanup_ctx``): sockets are served from now on."""
        self._hub = hub
        self._dispatcher = dispatcher
        self._evictions = Evictions(hub, calls, shows, tickets, self._resumable)
        self._opened = True
        hub.on_ban(self._evictions.ban)
        hub.on_revoke(self._evictions.revoke)
        hub.on_block(self._evictions.block)
        self._keepalive.start()
        self._admission.lag.start()

    async def close(self) -> None:
        self._admission.lag.close()
        await self._keepalive.close()
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
        """The socket's whole life. The read loop is inline, not a helper: every coroutine frame on
        this stack is kept by every idle socket (~300 bytes each)."""
        if not self._opened:
            raise web.HTTPServiceUnavailable(text="the node is starting")
        ws, session = await self._open(request)
        if session is None:
            return ws
        held = (session.grants.jti, session.user_id)  # what _authenticate counted for this socket
        self._keepalive.watch(ws)
        try:
            s = self._s
            bucket = TokenBucket(s.ws_rate_per_s, s.ws_rate_burst, time.monotonic())
            abuse = AbuseMeter(s.ws_abuse_limit)
            msg = raw = message = reply = None
            while True:  # not ``async for``: its iterator frame would cost every idle socket ~200 bytes more
                msg = raw = message = reply = None  # an idle socket keeps no last message alive
                msg = await ws.receive()
                self._keepalive.heard(ws)
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if msg.type is WSMsgType.PING:
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await ws.pong(msg.data)
                    elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
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
                    if message.type == "token.refresh":
                        reply = await self._refresh(ws, session, message.body["token"], message.id)
                    else:
                        reply = await self._dispatcher.handle(session, message)
                    if message.id is not None:
                        session.send({"type": "reply", "ref": message.id, **reply})
                except Exception as exc:
                    if ref is None and isinstance(exc, WireError):
                        ref = request_id({"id": exc.ref})
                    code, text = wire_error(exc)
                    if code == "internal":
                        log.exception("handler failed", extra={"session": session.id})
                    elif not isinstance(exc, WireError | RateLimited):
                        log.debug("request refused", extra={"code": code, "session": session.id})
                    frame = {"type": "error", "code": code, "message": text, "ref": ref}
                    if is_shed(exc):  # the node's load, not the client's fault: a hint, never abuse
                        session.send({**frame, "retry_after": self._admission.retry_after_s})
                        continue
                    session.send(frame)
                    if abuse.hit(time.monotonic()):
                        log.warning("socket closed for abuse", extra={"user": session.user_id, "session": session.id})
                        await session.drained()
                        await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many bad messages")
                        break
        finally:
            self._release(*held)
            self._keepalive.forget(ws)
            await session.detach(ws)
            if not session.closed and not session.attached:
                self._schedule_expiry(session)
        await session.wait_closed()  # a close from elsewhere (ban, revoke, expiry) finishes its frame first
        return ws

    async def _open(self, request: web.Request) -> tuple[web.WebSocketResponse, Session | None]:
        """Upgrades, authenticates (or resumes): the socket and its session, or None (closed with 4001)."""
        ws = web.WebSocketResponse(
            protocols=(MSGPACK_PROTOCOL,),
            heartbeat=None,  # the node's one Keepalive task pings silent sockets (signaling/keepalive.py)
            autoping=False,  # pings and pongs come to the read loop: they count as signs of life
            compress=False,  # ~16 KiB per idle socket without, ~113 KiB with (DESIGN.md)
            max_msg_size=self._s.ws_max_frame_bytes * 4,  # frames between the two limits get an error frame
        )
        admission = self._admission
        admission.handshakes.claim()  # the listener's count of this connect ends here, the gateway's begins
        await ws.prepare(request)
        codec = Codec.for_protocol(ws.ws_protocol)
        why = admission.refusal(self._keepalive.watched)
        if why is not None:  # at capacity: refuse now rather than queue (signaling/admission.py)
            await admission.refuse(ws, codec, why)
            return ws, None
        # Parsed here, not through request.query: that one is cached on the request (~0.8 KiB that
        # every socket would keep for its lifetime, the token included).
        query = {k: v[0] for k, v in parse_qs(urlsplit(request.raw_path).query).items()}
        admission.handshakes.upgrading += 1
        try:
            return ws, await self._authenticate(ws, codec, query)
        finally:
            admission.handshakes.finished()

    # --- authentication and resume ------------------------------------------------------------------

    async def _refuse(self, ws: web.WebSocketResponse, codec: Codec, message: str, ref: Any = None,
                      code: str = "unauthorized", close: int = UNAUTHORIZED) -> None:
        frame = encode({"type": "error", "code": code, "message": message, "ref": ref}, codec)
        with contextlib.suppress(ConnectionError, RuntimeError, ValueError):
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame))
        await ws.close(code=close, message=code.encode())

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
                if ref is None and isinstance(exc, WireError):
                    ref = request_id({"id": exc.ref})
                await self._refuse(ws, codec, f"no token: {wire_error(exc)[1]}", ref)
                return None
            token, resume = first.body["token"], first.body.get("resume")
        try:
            grants = self._verifier.verify(token)
        except TokenError as exc:
            await self._refuse(ws, codec, str(exc), ref)
            return None
        if not self._hold(grants.jti, grants.sub):
            await self._refuse(ws, codec, f"too many sockets: at most {self._s.ws_max_sockets_per_token} per token "
                               f"and {self._s.ws_max_sockets_per_user} per user; close one first", ref,
                               "too_many_sockets", TOO_MANY_SOCKETS)
            return None
        try:
            session = await self._admit(ws, codec, grants, resume, ref)
        except BaseException:
            self._release(grants.jti, grants.sub)
            raise
        if session is None:
            self._release(grants.jti, grants.sub)
        return session

    async def _admit(self, ws: web.WebSocketResponse, codec: Codec, grants: Grants, resume: str | None,
                     ref: Any) -> Session | None:
        """A new or resumed session for a verified token, or None (refused: banned, or revoked)."""
        session, resumed = self._resumable.get(resume or ""), True
        if session is None or session.closed or session.user_id != grants.sub:
            session, resumed = Session(grants, codec, self._s.ws_send_queue), False
            why = await self._hub.add(session)
            if why is not None:
                await self._hub.remove(session)
                await self._refuse_for(ws, codec, why, ref)
                return None
            self._resumable[session.resume_token] = session
        else:
            why = await self._hub.refusal(grants.sub, grants.iat)
            if why is not None or session.closed:  # (closed meanwhile: a ban or revoke while we asked)
                await self._refuse_for(ws, codec, why or "revoked", ref)
                return None
            session.grants = grants
        session.attach(ws, codec)
        self._watch_token(ws, session)
        hello = {"type": "hello", "session_id": session.id, "user_id": session.user_id,
                 "resume_token": session.resume_token, "resumed": resumed, "node": self._hub.node_id,
                 "token_expires_at": grants.exp, "shows": sorted(session.shows),
                 "ice_servers": self._ice_servers(session.grants)}
        if ref is not None:
            session.send({"type": "reply", "ref": ref, "session_id": session.id})
        session.send(hello)
        return session

    async def _refuse_for(self, ws: web.WebSocketResponse, codec: Codec, why: str, ref: Any) -> None:
        if why == "banned":
            await self._refuse(ws, codec, "this account is banned", ref, "banned", BANNED)
        else:
            await self._refuse(ws, codec, REVOKED, ref)

    def _hold(self, jti: str, user: UserId) -> bool:
        """Counts a new socket of ``jti``/``user``, or says no when either is at its cap."""
        by_token, by_user = self._per_token.get(jti, 0), self._per_user.get(user, 0)
        if by_token >= self._s.ws_max_sockets_per_token or by_user >= self._s.ws_max_sockets_per_user:
            return False
        self._per_token[jti], self._per_user[user] = by_token + 1, by_user + 1
        return True

    def _release(self, jti: str, user: UserId) -> None:
        _uncount(self._per_token, jti)
        _uncount(self._per_user, user)

    # --- the token's lifetime on an open socket -----------------------------------------------------

    def _watch_token(self, ws: web.WebSocketResponse, session: Session) -> None:
        """(Re)arms the timer that ends this socket when the session's token expires."""
        if session.token_timer is not None:
            session.token_timer.cancel()

        def expired() -> None:
            session.token_timer = None
            task = asyncio.get_running_loop().create_task(self._token_expired(ws, session))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

        session.token_timer = asyncio.get_running_loop().call_later(max(0.0, session.grants.exp - time.time()),
                                                                    expired)

    async def _token_expired(self, ws: web.WebSocketResponse, session: Session) -> None:
        """Error frame, then 4001. The session stays resumable: a fresh token within the window keeps it."""
        if ws.closed:
            return
        session.send({"type": "error", "code": "unauthorized", "ref": None,
                      "message": "token expired: send token.refresh with a fresh token before 'token_expires_at'"},
                     last=True)
        await session.drained()
        await ws.close(code=UNAUTHORIZED, message=b"token expired")

    async def _refresh(self, ws: web.WebSocketResponse, session: Session, token: str,
                       ref: Any) -> dict[str, Any]:
        """``token.refresh``: a fresh token for the same user replaces the grants and moves the expiry.
        A bad one is refused with an error frame; the socket keeps running on its current token. A
        revoked one (older than the account's epoch, so the current one is too) ends the session
        with 4001, as a ban (4003) does."""
        grants = self._verifier.verify(token)  # TokenError -> "unauthorized" at the edge
        if grants.sub != session.user_id:
            raise Forbidden("the new token is for another user")
        why = await self._hub.refusal(grants.sub, grants.iat)
        if why == "banned":
            await self._evictions.terminate(session, "banned", "this account is banned", BANNED, ref)
            return {}
        if why is not None:
            await self._evictions.terminate(session, "unauthorized", REVOKED, UNAUTHORIZED, ref)
            return {}
        session.grants = grants
        self._watch_token(ws, session)
        return {"token_expires_at": grants.exp}

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
        await self._evictions.end(session)


def _uncount(counts: dict[Any, int], key: Any) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
