"""The load generator's signaling with Janus (``python -m bench sfu --baseline janus``): Janus's own
JSON API over its WebSocket transport (subprotocol ``janus-protocol``), as a Janus client app speaks it.

Each peer has its own socket, session and ``janus.plugin.videoroom`` handle (as each node viewer has
its own ``/ws``). The publisher creates the room (string ids), joins as a publisher and configures
with its offer (Janus answers); a viewer finds the publisher (``listparticipants``), joins as a
subscriber of its feed (Janus offers) and ``start``s with its answer. aiortc does not trickle: every
JSEP says ``"trickle": false`` and carries its candidates. A keepalive every
:data:`KEEPALIVE_S` keeps the session (Janus drops it after 60 s of silence).

The URL the bench passes is ``janus+ws://HOST:PORT``. The class has the surface of
:class:`sfu.measure_signal.Signal` the publisher and viewers use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

from sfu.measure_socket import SignalSocket

KEEPALIVE_S = 25.0
SCHEME = "janus+"
PLUGIN = "janus.plugin.videoroom"
ROOM_EXISTS = 427
"""The VideoRoom's error code when ``create`` names a room that exists."""


class JanusError(RuntimeError):
    """Janus (the core or the VideoRoom) answered a request with an error."""

    def __init__(self, kind: str, code: int, reason: str) -> None:
        super().__init__(f"{kind}: {code} {reason}")
        self.code = code


class JanusSignal(SignalSocket):
    """Offer/answer with Janus's VideoRoom for one peer (see the module's doc)."""

    is_node = False

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str, room: str) -> None:
        super().__init__()
        self.http, self.room = http, room
        self.url = url.removeprefix(SCHEME)
        self.session = 0
        self.handle = 0
        self._background: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        self.ws = await self.http.ws_connect(self.url, protocols=("janus-protocol",), heartbeat=None)
        self._background.append(asyncio.create_task(self._read()))
        self.session = (await self._call({"janus": "create"}))["data"]["id"]
        self._background.append(asyncio.create_task(self._keepalive()))

    async def _read(self) -> None:
        assert self.ws is not None
        await self._replies.serve(self.ws, lambda m: m.get("transaction") if m.get("janus") != "ack" else None,
                                  self._heard)

    def _heard(self, m: dict[str, Any]) -> None:
        """A Janus message that answers no request: a hangup of our current handle is told."""
        if m.get("janus") == "hangup" and m.get("sender") == self.handle:
            self.told.append({"type": "show.peer_closed", "reason": m.get("reason"), "at": time.monotonic()})
            if self.on_closed is not None:
                self.on_closed(m.get("reason"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            await self._call({"janus": "keepalive"}, reply=False)

    async def _call(self, body: dict[str, Any], reply: bool = True) -> dict[str, Any]:
        """Sends a Janus API request; its reply (``success``/``event``, never the ``ack`` of an async one)."""
        assert self.ws is not None
        transaction = f"t{next(self._ids)}"
        if self.session:
            body = {"session_id": self.session, **body}
        frame = {**body, "transaction": transaction}
        if not reply:
            await self.ws.send_str(json.dumps(frame))
            return {}
        answer = await self._replies.ask(self.ws, transaction, frame)
        if answer.get("janus") == "error":
            error = answer.get("error", {})
            raise JanusError(body["janus"], int(error.get("code", 0)), str(error.get("reason", "")))
        return answer

    async def _message(self, body: dict[str, Any], jsep: dict[str, Any] | None = None
                       ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A VideoRoom request on our handle: the plugin's data and the JSEP that came with it."""
        request: dict[str, Any] = {"janus": "message", "handle_id": self.handle, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        answer = await self._call(request)
        data: dict[str, Any] = answer.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(str(body.get("request")), int(data["error_code"]), str(data.get("error", "")))
        return data, answer.get("jsep")

    async def _attach(self) -> None:
        if self.handle:  # a new subscription (after a failed connect or a hangup) on a new handle
            old, self.handle = self.handle, 0
            with contextlib.suppress(JanusError):
                await self._call({"janus": "detach", "handle_id": old})
        self.handle = (await self._call({"janus": "attach", "plugin": PLUGIN}))["data"]["id"]

    async def publish(self, offer: str) -> str:
        await self._attach()
        try:
            await self._message({"request": "create", "room": self.room, "publishers": 1, "bitrate": 2_000_000,
                                 "videocodec": "vp8", "audiocodec": "opus", "record": False,
                                 "notify_joining": False})
        except JanusError as exc:
            if exc.code != ROOM_EXISTS:
                raise
        await self._message({"request": "join", "ptype": "publisher", "room": self.room, "display": "broadcaster"})
        _, jsep = await self._message({"request": "configure", "audio": True, "video": True},
                                      {"type": "offer", "sdp": offer, "trickle": False})
        if jsep is None:
            raise JanusError("configure", 0, "no answer")
        return str(jsep["sdp"])

    async def _feed(self) -> Any:
        """The room's publisher (its id), waiting for it as a viewer that came early would."""
        deadline = time.monotonic() + 30
        while True:
            data, _ = await self._message({"request": "listparticipants", "room": self.room})
            feeds = [p["id"] for p in data.get("participants", []) if p.get("publisher")]
            if feeds:
                return feeds[0]
            if time.monotonic() > deadline:
                raise JanusError("listparticipants", 0, "no publisher in the room")
            await asyncio.sleep(0.5)

    async def subscribe(self) -> str:
        """Janus's offer for a new subscription to the room's publisher."""
        await self._attach()
        feed = await self._feed()
        _, jsep = await self._message({"request": "join", "ptype": "subscriber", "room": self.room,
                                       "streams": [{"feed": feed}]})
        if jsep is None:
            raise JanusError("join", 0, "no offer")
        return str(jsep["sdp"])

    async def enter(self) -> None:
        """Nothing to do: a VideoRoom subscriber needs no room membership besides its subscription."""

    async def answer(self, sdp: str) -> None:
        await self._message({"request": "start"}, {"type": "answer", "sdp": sdp, "trickle": False})

    async def close(self) -> None:
        """Closing the socket ends the session (Janus destroys the sessions of a transport that goes)."""
        for task in self._background:
            task.cancel()
        if self.ws is not None:
            await self.ws.close()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
