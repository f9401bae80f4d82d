"""A node: the signaling WebSocket endpoint and the web pages, on one aiohttp application.

``install_node`` adds the node's routes and resources to an application the caller owns (the
node's own process, or the single listener of ``switchboard up``). ``/ws`` is served when the
composition root hands over a token verifier; the SFU and the queue when it hands over their openers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram

from sfu.types import NodePipes
from signaling.beacon import Beacon, Load
from signaling.call_media import CallMedia
from signaling.call_meter import CallMeter
from signaling.call_span import CallSpan
from signaling.calls import CallBook
from signaling.cascade import Cascade
from signaling.clips import ClipDesk
from signaling.dispatch import Dispatcher
from signaling.drain import Drain
from signaling.gateway import Gateway
from signaling.hub import Hub
from signaling.match_rejoin import MatchRejoin
from signaling.media_metrics import MediaMetrics
from signaling.pages import install_pages
from signaling.paid_shows import PaidShows
from signaling.presence_watch import PresenceWatch
from signaling.relations import Relations
from signaling.room_events import RoomEvents
from signaling.show_span import ShowSpan
from signaling.shows import ShowBook
from signaling.types import IceServersFor, MediaOpener, TicketOpener
from signaling.unavailable import UnavailableMedia
from switchboard.health import Readiness
from switchboard.ids import NodeId, RoomId, new_id
from switchboard.listener import Handshakes
from switchboard.paid import GIFT
from switchboard.redis_client import open_redis
from switchboard.registry import NodeRegistry
from switchboard.settings import CascadeSettings, NodeSettings
from switchboard.tokens import TokenVerifier
from switchboard.tracing import Tracing

FIRST_MEDIA_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
"""Join-to-first-frame buckets (seconds): ICE, DTLS and the next keyframe take about a second."""

REDIS_CONNECTIONS = 64
"""Redis connections one node may open (its pub/sub connection is one of them)."""

NODE_REDIS = web.AppKey("node_redis", aioredis.Redis)
NODE_HUB = web.AppKey("node_hub", Hub)
NODE_GATEWAY = web.AppKey("node_gateway", Gateway)
NODE_DISPATCHER = web.AppKey("node_dispatcher", Dispatcher)
NODE_DRAIN = web.AppKey("node_drain", Drain)


@dataclass(frozen=True)
class Announce:
    """How a node of many announces itself in the node registry (``switchboard node``; the single
    process of ``switchboard up`` does not register: its clients are already where they should be)."""

    url: Callable[[], str]
    """The node's base URL for clients, called at each heartbeat; empty until the node listens (its bound
    port is known then): the node is not announced before."""
    workers: int
    """SFU worker processes."""
    media_address: str = ""
    """The address in the SFU's ICE candidates (``node.announced_address``, else its first listen address)."""
    pipe_address: str = ""
    """Where other nodes send this node's pipes (``cascade.pipe_address``; empty: ``media_address``)."""
    viewer_cap: int = 0
    """``cascade.viewers_per_node``: sessions before placement sends a show's viewers to another node."""


@dataclass(frozen=True)
class NodeDeps:
    """What a node needs from the composition root."""

    settings: NodeSettings
    redis_url: str
    readiness: Readiness
    web_dir: Path
    verifier: TokenVerifier | None = None
    """Checks socket tokens (public key only); None: no ``/ws`` on this application."""
    open_media: MediaOpener | None = None
    """Opens the SFU; None: ``show.*`` requests get ``unavailable``."""
    open_tickets: TicketOpener | None = None
    """Makes the random-chat queue; None: ``queue.*`` requests get ``unavailable``."""
    tracing: Tracing = field(default_factory=Tracing)
    """Spans of the join path (``show.join`` and the member's media steps); off by default."""
    registry: CollectorRegistry | None = None
    """The process's metrics (``show_join_to_first_media_seconds``); None: not measured."""
    node_id: NodeId = field(default_factory=lambda: NodeId(new_id("node_")))
    """This node's id (written in presence keys)."""
    ice_servers: IceServersFor = field(default=lambda _grants: [])
    """The STUN/TURN list (with a fresh TURN credential) for a user: sent in ``hello`` and show replies."""
    announce: Announce | None = None
    """Register in the node registry, follow ``drain`` commands and drain on stop; None: a lone node."""
    handshakes: Handshakes | None = None
    """Connects under way, shared with the process's gated listener (``serve(gate=...)``); None: the
    gateway counts its own."""
    cascade: CascadeSettings | None = None
    """Pull shows from other nodes and serve ours to them (needs ``announce``, a ``cascade.secret`` and an
    SFU with pipes between nodes); None: each show lives on one node."""


def install_node(app: web.Application, deps: NodeDeps) -> None:
    gateway = (Gateway(deps.settings, deps.verifier, deps.ice_servers, deps.handshakes)
               if deps.verifier is not None else None)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # A blocking pool: thousands of sockets arriving at once wait for one of REDIS_CONNECTIONS.
        redis = open_redis(deps.redis_url, max_connections=REDIS_CONNECTIONS)
        app[NODE_REDIS] = redis
        deps.readiness.add("node_redis", redis.ping)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(redis.aclose)
            if gateway is not None:
                await _open_signaling(app, deps, redis, stack, gateway)
            yield

    app.cleanup_ctx.append(resources)

    app.on_shutdown.append(drain_on_stop)  # done already when the process's stop ran it first (it waits once)
    if gateway is not None:
        app[NODE_GATEWAY] = gateway
        app.router.add_get("/ws", gateway.handle)  # the bound method itself: no wrapper frame per socket
    index = deps.web_dir / "index.html"

    async def home(request: web.Request) -> web.FileResponse:
        return web.FileResponse(index)

    app.router.add_get("/", home)
    install_pages(app, deps.web_dir)


async def drain_on_stop(app: web.Application) -> None:
    """The node's drain (a no-op on a lone node). ``switchboard node`` runs it on SIGTERM before aiohttp's
    shutdown: that stops reading the open sockets, and the drain must see its clients' sockets close.
    Shutdown runs it too (before the resources close), for runners that stop the app directly."""
    drain = app.get(NODE_DRAIN)
    if drain is not None:
        await drain.run()


async def _open_signaling(app: web.Application, deps: NodeDeps, redis: aioredis.Redis,
                          stack: contextlib.AsyncExitStack, gateway: Gateway) -> None:
    """Opens the node's signaling pieces; ``stack`` closes them in reverse order."""
    s = deps.settings
    media = await stack.enter_async_context(deps.open_media(redis)) if deps.open_media else UnavailableMedia()
    tickets = deps.open_tickets(redis) if deps.open_tickets else None
    hub = Hub(redis, deps.node_id, s.presence_ttl_s)
    await hub.start()
    stack.push_async_callback(hub.close)
    first_media = None if deps.registry is None else Histogram(
        "show_join_to_first_media_seconds", "From show.join to the first RTP packet forwarded to that viewer",
        buckets=FIRST_MEDIA_BUCKETS, registry=deps.registry)
    if deps.registry is not None and deps.open_media is not None:
        media_metrics = MediaMetrics(media, deps.registry)
        media_metrics.start()
        stack.push_async_callback(media_metrics.close)
    shows = ShowBook(media, s.chat_rate_per_s, s.chat_burst, deps.ice_servers, Relations(redis), PaidShows(redis),
                     deps.tracing, first_media)
    hub.route(GIFT, shows.talk.gift_arrived)
    c = deps.cascade
    cascade = None
    if c is not None and c.secret and deps.announce is not None and isinstance(media, NodePipes):
        span = shows.edges.span = ShowSpan(redis, hub, deps.node_id)
        span.on_event = shows.edges.span_event
        span.start()
        stack.push_async_callback(span.close)
        cascade = shows.edges.cascade = Cascade(redis, hub, media, deps.node_id, c.pull_timeout_s)
        cascade.on_moved = shows.edges.moved
        cascade.start()
        stack.push_async_callback(cascade.close)
    shows.events = RoomEvents(redis)
    stack.push_async_callback(shows.close)
    # Without an SFU every call is P2P, whatever the setting says (nothing could carry it).
    call_media = CallMedia(media, s.call_media if deps.open_media else "p2p",
                           s.match_media if deps.open_media else "p2p", shows.doors)
    stack.push_async_callback(call_media.close)
    if cascade is not None and deps.open_media is not None:
        call_media.span = CallSpan(redis, hub, cascade, deps.node_id, lambda user: bool(hub.sessions(user)))
        call_media.span.start()
        stack.push_async_callback(call_media.span.close)

        async def lost(room: RoomId) -> None:
            await shows.edges.origin_lost(room)
            await call_media.lost(room)

        cascade.on_lost = lost
    calls = CallBook(redis, hub, s.call_ring_timeout_s, call_media,
                     CallMeter(redis, s.paid_minute_s, s.paid_hold_wait_s, s.call_ring_timeout_s),
                     NodeRegistry(redis) if deps.announce is not None else None, s.call_rejoin_s)
    if tickets is not None:
        calls.lease.end_match = tickets.part
        calls.rejoin_match = MatchRejoin(redis, hub, call_media, calls.lease, calls.relations, tickets.part,
                                         calls.enter)
    calls.lease.start()
    stack.push_async_callback(calls.close)
    watch = PresenceWatch(redis, hub, calls.relations)
    stack.push_async_callback(watch.close)
    clips = ClipDesk(media, redis, deps.node_id)
    await clips.start()
    stack.push_async_callback(clips.close)
    dispatcher = Dispatcher(hub, calls, shows, tickets, watch, clips)
    gateway.open(hub, calls, shows, dispatcher, tickets)
    stack.push_async_callback(gateway.close)
    app[NODE_HUB] = hub
    app[NODE_DISPATCHER] = dispatcher
    if deps.announce is not None:
        a = deps.announce
        beacon = Beacon(redis, s, deps.node_id, a.url, a.media_address, a.workers,
                        Load(sessions=lambda: hub.session_count, rooms=lambda: [str(r) for r in shows.rooms()]),
                        pipe_address=a.pipe_address, viewer_cap=a.viewer_cap)
        beacon.start()
        stack.push_async_callback(beacon.close)  # closed first: the registry forgets the node at once
        drain = Drain(hub, beacon, s.region, s.drain_grace_s, hosts=shows.hosts)
        calls.draining = lambda: drain.draining
        hub.on_command(drain.command)
        app[NODE_DRAIN] = drain
