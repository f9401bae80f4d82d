"""The control API over HTTP: sign up, log in, keep the access token fresh, get room and socket tokens.

Only the public routes of docs/api.md are used. One :class:`ApiClient` holds one login; its access
token (15 minutes) is refreshed with the refresh token shortly before it expires, on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from switchboard_client.errors import ApiError, ClosedError

Role = Literal["viewer", "broadcaster", "hidden"]
TokenSource = Callable[[], Awaitable["str | NodeToken"]]
"""Gives a fresh node token each time it is awaited (the node client calls it to reconnect and refresh):
the token alone, or the API's whole answer (a :class:`NodeToken`, whose ``node`` says where to connect)."""


@dataclass(frozen=True)
class Login:
    """A signed-in account."""

    user_id: str
    """The account's id (the node's ``user_id``)."""
    access_token: str
    """The bearer token for the control API (refreshed by the client)."""
    refresh_token: str
    """Spent on each refresh; a spent one presented again revokes the login."""
    expires_at: float
    """Unix seconds when ``access_token`` runs out."""


@dataclass(frozen=True)
class NodeToken:
    """A room or socket token for a node's ``/ws``."""

    token: str
    """The JWT, for ``/ws?token=`` or ``auth``."""
    expires_at: int
    """Unix seconds."""
    grants: dict[str, Any]
    """``{room, publish, subscribe, hidden, moderate, premium, verified}`` as the API signed them."""
    node: str | None = None
    """The base URL of the node the API placed this token on (open ``<node>/ws``); ``None``: the
    deployment's own host (one node, ``switchboard up``). docs/scaling.md, "Placement"."""
    alternates: tuple[str, ...] = ()
    """A viewer's room token: base URLs of the nodes to open with this very token if ``node`` is lost,
    best first (the node client goes there without asking the API again). docs/scaling.md, "Node loss"."""


class PlacedTokens:
    """The API's token answers as a :data:`TokenSource` (:meth:`ApiClient.token_source`). The node
    client sets :attr:`avoid` to the node it lost once a connect there failed, and clears it at the
    next ``hello``: meanwhile the API places it on another node, even while the registry still lists
    the dead one (docs/scaling.md, "Node loss")."""

    def __init__(self, api: ApiClient, room: str | None, role: Role) -> None:
        self.api = api
        self.room = room
        self.role: Role = role
        self.avoid: str | None = None
        """The id of a node the client lost (``hello.node``), named in each request while set."""

    async def __call__(self) -> NodeToken:
        if self.room is not None:
            return await self.api.room_token(self.room, self.role, avoid=self.avoid)
        return await self.api.ws_token(avoid=self.avoid)


@dataclass(frozen=True)
class Room:
    """A room the caller made (``POST /api/rooms``)."""

    room: str
    """The server-chosen name, ``show-...``."""
    owner: str
    title: str | None
    watch_path: str


class ApiClient:
    """One login on one control API. Open it (or ``async with``), then :meth:`login`; ``close()`` twice is fine."""

    def __init__(self, base_url: str, *, refresh_margin_s: float = 60.0, timeout_s: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        """The deployment's HTTP root, e.g. ``http://127.0.0.1:8080`` (the API is under ``/api``)."""
        self._margin = refresh_margin_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None
        self._login: Login | None = None
        self._refreshing = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> ApiClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._closed:
            raise ClosedError("this ApiClient is closed")
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        self._closed = True
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    @property
    def login_state(self) -> Login:
        """The current login (raises when not signed in)."""
        if self._login is None:
            raise ClosedError("not signed in: call login() first")
        return self._login

    @property
    def user_id(self) -> str:
        return self.login_state.user_id

    # --- accounts ---------------------------------------------------------------------------------

    async def register(self, email: str, password: str) -> None:
        """Asks for an account; a 6-digit code is mailed to a new address (see :meth:`verify`)."""
        await self.call("POST", "/auth/register", {"email": email, "password": password}, auth=False)

    async def verify(self, email: str, code: str) -> None:
        await self.call("POST", "/auth/verify", {"email": email, "code": code}, auth=False)

    async def login(self, email: str, password: str) -> Login:
        body = await self.call("POST", "/auth/login", {"email": email, "password": password}, auth=False)
        self._login = self._from_pair(body)
        return self._login

    async def access_token(self) -> str:
        """The access token, refreshed first when it expires within the margin."""
        login = self.login_state
        if login.expires_at - time.time() > self._margin:
            return login.access_token
        async with self._refreshing:  # one refresh at a time: a spent refresh token revokes the login
            login = self.login_state
            if login.expires_at - time.time() <= self._margin:
                body = await self.call("POST", "/auth/refresh", {"refresh_token": login.refresh_token}, auth=False)
                self._login = self._from_pair(body, login.user_id)
            return self.login_state.access_token

    async def logout(self) -> None:
        """Revokes this login's refresh tokens (idempotent)."""
        if self._login is not None:
            login, self._login = self._login, None
            await self.call("POST", "/auth/logout", {"refresh_token": login.refresh_token}, auth=False)

    # --- rooms and node tokens --------------------------------------------------------------------

    async def create_room(self, title: str | None = None) -> Room:
        body = await self.call("POST", "/rooms", {"title": title} if title is not None else {})
        return Room(room=body["room"], owner=body["owner"], title=body.get("title"), watch_path=body["watch_path"])

    async def room_token(self, room: str, role: Role = "viewer", avoid: str | None = None) -> NodeToken:
        """``avoid``: the id of a node the client just lost: the API places it elsewhere."""
        body = await self.call("POST", f"/rooms/{room}/token", {"role": role, **({"avoid": avoid} if avoid else {})})
        return NodeToken(body["token"], int(body["expires_at"]), dict(body.get("grants") or {}), body.get("node"),
                         tuple(str(u) for u in body.get("alternates") or ()))

    async def ws_token(self, avoid: str | None = None) -> NodeToken:
        """A socket token (no room): calls, random chat, presence."""
        body = await self.call("POST", "/ws-token", {"avoid": avoid} if avoid else {})
        return NodeToken(body["token"], int(body["expires_at"]), dict(body.get("grants") or {}), body.get("node"))

    def token_source(self, room: str | None = None, role: Role = "viewer") -> PlacedTokens:
        """A :data:`TokenSource` for a :class:`~switchboard_client.node.NodeClient`: room tokens when
        ``room`` is given, socket tokens otherwise, each with the node the API placed it on (the node
        client connects there, and asks again after losing its node, naming the lost one)."""
        return PlacedTokens(self, room, role)

    # --- HTTP -------------------------------------------------------------------------------------

    async def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        """One request to ``/api{path}``; the decoded JSON answer (``None`` for 204), or :class:`ApiError`."""
        if self._closed or self._http is None:
            raise ClosedError("this ApiClient is closed" if self._closed else "open() the ApiClient first")
        headers = {"Authorization": f"Bearer {await self.access_token()}"} if auth else {}
        async with self._http.request(method, f"{self.base_url}/api{path}", json=body, headers=headers) as resp:
            raw = await resp.read()
            decoded: Any = None
            if raw:
                try:
                    decoded = await resp.json(content_type=None)
                except ValueError:
                    decoded = raw.decode(errors="replace")
            if resp.status >= 400:
                detail = decoded.get("detail") or decoded.get("title") if isinstance(decoded, dict) else decoded
                raise ApiError(resp.status, str(detail), decoded)
            return decoded

    @staticmethod
    def _from_pair(body: dict[str, Any], user_id: str | None = None) -> Login:
        return Login(user_id=str(body.get("user_id") or user_id), access_token=body["access_token"],
                     refresh_token=body["refresh_token"], expires_at=time.time() + float(body["expires_in"]))
