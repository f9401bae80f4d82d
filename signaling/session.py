"""One client session: who it is, what it is in, and the socket (link) it currently speaks through.

A session outlives its socket by the resume window: messages for a detached session wait in its
bounded queue and are flushed when the client resumes on a new socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSCloseCode, web

from switchboard.ids import SessionId, UserId, new_id
from switchboard.tokens import Grants
from switchboard.wire import Codec, encode

log = logging.getLogger("switchboard.signaling")

SLOW_READER = WSCloseCode.TRY_AGAIN_LATER
"""Close code for a socket whose reader fell more than the send queue behind (1013)."""


class Session:
    """A user's session on this node. Parent of its socket link; the hub owns the session."""

    # Slots and a queue made only when needed: ten thousand idle sessions cost ~1.3 KiB less each.
    __slots__ = ("_closer", "_closing", "_flusher", "_max_queue", "_queue", "_shows", "_ws", "closed", "codec",
                 "expiry", "grants", "id", "resume_token", "token_timer", "user_id", "watching")

    def __init__(self, grants: Grants, codec: Codec, max_queue: int) -> None:
        self.id = SessionId(new_id("s_"))
        self.user_id: UserId = grants.sub
        self.grants = grants
        self.resume_token = new_id()
        self.codec = codec
        self._shows: set[str] | None = None
        """Rooms (shows) this session is in, made on the first join; the show book holds the details."""
        self._max_queue = max_queue
        self._queue: deque[str | bytes] | None = None
        """Frames not yet written; None while empty (an empty deque is 624 bytes)."""
        self._ws: web.WebSocketResponse | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        """Closes a slow reader's socket; awaited by :meth:`close`."""
        self.closed = False
        self._closing: asyncio.Event | None = None
        """Set once :meth:`close` has written the close frame (made only when a close starts: an idle
        session keeps nothing for it)."""
        self.expiry: asyncio.TimerHandle | None = None
        """While detached: the timer that ends the session when the resume window passes."""
        self.token_timer: asyncio.TimerHandle | None = None
        self.watching: frozenset[str] | None = None
        """Users whose presence changes this session is sent (``presence.watch``)."""
        """While attached: fires when the token (``grants.exp``) runs out; ``token.refresh`` moves it."""

    @property
    def shows(self) -> frozenset[str] | set[str]:
        """The rooms (shows) this session is in."""
        return self._shows if self._shows is not None else frozenset()

    def enter_show(self, room: str) -> None:
        if self._shows is None:
            self._shows = set()
        self._shows.add(room)

    def leave_show(self, room: str) -> None:
        if self._shows is not None:
            self._shows.discard(room)

    @property
    def attached(self) -> bool:
        return self._ws is not None and not self._ws.closed

    def send(self, message: dict[str, Any], *, last: bool = False,
             encoded: dict[Codec, str | bytes] | None = None) -> None:
        """Sends one message now, or queues it behind earlier ones (never blocks). Over the queue bound
        the socket is dropped as a slow reader.

        ``last``: the socket is closed from another task right after (:meth:`drained`, then close),
        so the frame goes through the flusher task. A close from another task wakes the socket's
        reader, and aiohttp then ends the connection without waiting for the client's close reply;
        written in the same turn as the frame before it, the close frame and the connection's end
        reach an aiohttp client together: it cannot write its reply and reports 1006, not our code
        (4003 for a ban: tests/control_api/test_sanctions_live.py).

        ``encoded``: frames of this same ``message`` already encoded, by codec, shared by the sessions
        it goes to (one roster to a show's members: encoded once per codec, not once per member);
        this session's frame is taken from it, or encoded and put in it."""
        if self.closed:
            return
        queue = self._queue
        if queue is not None and len(queue) >= self._max_queue:
            queue.clear()
            if self._ws is not None:
                slow, self._ws = self._ws, None
                log.warning("slow reader dropped", extra={"user": self.user_id, "session": self.id})
                self._closer = asyncio.get_running_loop().create_task(self._close_slow(slow))
            return
        try:
            frame = encoded.get(self.codec) if encoded is not None else None
            if frame is None:
                frame = encode(message, self.codec)
                if encoded is not None:
                    encoded[self.codec] = frame
        except (TypeError, ValueError, OverflowError) as exc:  # a value this codec cannot carry: drop, say so
            log.warning("unencodable message dropped", extra={"type": message.get("type"), "error": str(exc)})
            return
        ws = self._ws
        if not last and not queue and self._flusher is None and ws is not None and not ws.closed:
            self._write_now(ws, frame)
            return
        if queue is None:
            queue = self._queue = deque()
        queue.append(frame)
        if ws is not None and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    def _write_now(self, ws: web.WebSocketResponse, frame: str | bytes) -> None:
        """Writes ``frame`` in this turn of the loop. With compression off, aiohttp's send writes to the
        transport at once and suspends only to wait for a full transport to drain; a task per frame
        (the flusher) sent every relayed line one whole loop turn late, behind everything else that
        turn woke (the p99 of a 10k-socket relay). If the send does suspend, the
        flusher takes it over (it finishes waiting for the drain) and later frames queue behind it,
        so a slow reader still fills the bounded queue and is dropped."""
        send = ws.send_str(frame) if isinstance(frame, str) else ws.send_bytes(frame)
        try:
            waiting_on = send.send(None)
        except StopIteration:
            return
        except (ConnectionError, RuntimeError):
            return  # the socket went away; the reader side notices and detaches
        except (ValueError, TypeError) as exc:  # one frame the socket cannot carry: drop it, go on
            log.warning("unsendable frame dropped", extra={"session": self.id, "error": str(exc)[:200]})
            return
        self._flusher = asyncio.get_running_loop().create_task(self._flush(send, waiting_on))

    @staticmethod
    async def _close_slow(ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=SLOW_READER, message=b"slow reader")

    async def _flush(self, started: Coroutine[Any, Any, None] | None = None, waiting_on: Any = None) -> None:
        """Writes the queue out, awaiting each send (a full transport holds the queue back). ``started``
        is a send :meth:`_write_now` began that suspended on ``waiting_on``: it is resumed first, as a
        task would resume it once that future is done."""
        try:
            if started is not None:
                try:
                    while True:
                        if waiting_on is None:  # a bare yield: one turn of the loop
                            await asyncio.sleep(0)
                        else:
                            await asyncio.wait((waiting_on,))
                        waiting_on = started.send(None)
                except StopIteration:
                    pass
                finally:
                    started.close()  # cancelled (detached) mid-wait: the send ends here
            while self._queue and self._ws is not None and not self._ws.closed:
                ws, frame = self._ws, self._queue.popleft()
                try:
                    if isinstance(frame, str):
                        await ws.send_str(frame)
                    else:
                        await ws.send_bytes(frame)
                except (ValueError, TypeError) as exc:  # one frame the socket cannot carry: drop it, go on
                    log.warning("unsendable frame dropped", extra={"session": self.id, "error": str(exc)[:200]})
        except (ConnectionError, RuntimeError):
            pass  # the socket went away; the reader side notices and detaches
        finally:
            self._flusher = None
            if not self._queue:
                self._queue = None

    async def drained(self) -> None:
        """Waits until the frames queued so far are written (before a deliberate close), then one
        more turn of the loop: the client then reads the last frame before the close frame comes
        (see :meth:`send`, ``last``)."""
        flusher = self._flusher
        if flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(flusher)
        await asyncio.sleep(0)

    def attach(self, ws: web.WebSocketResponse, codec: Codec) -> None:
        """Speak through ``ws`` from now on (a new socket, or a resumed one)."""
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        if codec is not self.codec:
            self._queue = None  # frames already encoded for the old codec cannot be replayed
            self.codec = codec
        self._ws = ws
        if self._queue and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def detach(self, ws: web.WebSocketResponse) -> None:
        """The socket ``ws`` ended; queued frames wait for a resume."""
        if self._ws is ws:
            self._ws = None
            if self.token_timer is not None:  # the token is watched again on the next socket
                self.token_timer.cancel()
                self.token_timer = None
        if self._flusher is not None and self._ws is None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None

    async def wait_closed(self, timeout_s: float = 10.0) -> None:
        """Waits (bounded) for a close under way elsewhere to have sent its close frame. The socket's
        handler calls it before returning: aiohttp ends the connection when the handler returns, and a
        close frame not yet written then never reaches the client (it would see 1006, not the code)."""
        if self._closing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout_s)

    async def close(self, code: int = WSCloseCode.GOING_AWAY, reason: bytes = b"") -> None:
        """Ends the session and its socket. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._closing = asyncio.Event()
        try:
            if self.expiry is not None:
                self.expiry.cancel()
                self.expiry = None
            if self.token_timer is not None:
                self.token_timer.cancel()
                self.token_timer = None
            ws = self._ws
            if ws is not None:
                await self.detach(ws)
                await ws.close(code=code, message=reason)
            if self._closer is not None:
                await self._closer
                self._closer = None
        finally:
            self._closing.set()
        self._queue = None
