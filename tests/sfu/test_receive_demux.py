"""The receive demux (sfu.aiortc_private.demux_receive) through real aiortc peers: media and RTCP
both ways still flow when SRTP/SRTCP is taken at the socket, STUN consent is still answered both
ways, and a nomination that moves to another socket is followed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sfu import aiortc_private
from sfu.events import MemoryEventSink
from sfu.transport import Role
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for

ROOM = RoomId("demux")
SECOND = "127.0.0.2"
"""A second loopback address (all of 127/8 is local on Linux): the node listens on two."""


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker(addresses=("127.0.0.1", SECOND), events=MemoryEventSink())
    await w.start()
    await w.open_room(ROOM)
    yield w
    await w.close()


def transport_of(worker: Worker, role: Role):  # type: ignore[no-untyped-def]
    return next(t for t in worker.routers[ROOM].transports.values() if t.role is role)


async def publisher_and_viewer(worker: Worker):  # type: ignore[no-untyped-def]
    pub = await start_publisher(worker, ROOM, "pub")
    await wait_for(lambda: len(worker.routers[ROOM].producers) == 2, 10)
    return pub, await start_viewer(worker, ROOM, "v")


async def remote_rtcp_seen(pc, kind: str) -> bool:  # type: ignore[no-untyped-def]
    """The client got RTCP about its stream from the SFU: RRs (``remote-inbound-rtp``, a publisher)
    or SRs (``remote-outbound-rtp``, a viewer)."""
    return any(s.type == kind for s in (await pc.getStats()).values())


async def test_media_and_rtcp_flow_both_ways_through_the_demux(worker: Worker) -> None:
    pub, viewer = await publisher_and_viewer(worker)
    try:
        await viewer.wait_frames(20, timeout=30)
        publisher, subscriber = transport_of(worker, Role.PUBLISHER), transport_of(worker, Role.SUBSCRIBER)
        assert publisher.received.installed == 2 and subscriber.received.installed == 2  # both sockets
        received = sum(p.packets_received for p in publisher.producers.values())
        # RTP from the publisher went through the demux (only what was queued before it sat down did not)
        assert publisher.received.rtp > received // 2 and publisher.received.refused == 0
        # RTCP in: the publisher's SRs, and the viewer's RRs
        await wait_for(lambda: publisher.received.rtcp > 0 and subscriber.received.rtcp > 0, 20)
        await wait_for(lambda: all(p.sr is not None for p in publisher.producers.values()), 20)
        # RTCP out: our RRs reached the publisher, our SRs the viewer
        for _ in range(100):
            if await remote_rtcp_seen(pub, "remote-inbound-rtp") and \
                    await remote_rtcp_seen(viewer.pc, "remote-outbound-rtp"):
                break
            await viewer.wait_frames(viewer.frames["video"] + 3, timeout=20)
        assert await remote_rtcp_seen(pub, "remote-inbound-rtp")
        assert await remote_rtcp_seen(viewer.pc, "remote-outbound-rtp")
        assert publisher.faults.counts == {} and subscriber.faults.counts == {}
    finally:
        await viewer.close()
        await pub.close()


async def test_stun_consent_is_answered_both_ways_with_the_demux_in(worker: Worker) -> None:
    pub, viewer = await publisher_and_viewer(worker)
    try:
        await viewer.wait_frames(10, timeout=30)
        for client, role in ((pub, Role.PUBLISHER), (viewer.pc, Role.SUBSCRIBER)):
            server = transport_of(worker, role)
            assert server.received.installed
            assert await aiortc_private.consent_check(client)  # client -> node: answered by aioice
            assert await aiortc_private.consent_check(server.pc)  # node -> client: the answer reaches aioice
        frames = viewer.frames["video"]
        await viewer.wait_frames(frames + 10, timeout=20)
    finally:
        await viewer.close()
        await pub.close()


async def test_a_nomination_moved_to_the_other_socket_is_followed(worker: Worker) -> None:
    pub, viewer = await publisher_and_viewer(worker)
    try:
        await viewer.wait_frames(10, timeout=30)
        publisher = transport_of(worker, Role.PUBLISHER)
        assert sorted(aiortc_private.local_hosts(publisher.pc)) == ["127.0.0.1", SECOND]
        nominated = aiortc_private.nominated_hosts(publisher.pc)
        assert nominated is not None
        ours, theirs = nominated
        other = next(h for h in aiortc_private.local_hosts(publisher.pc) if h != ours)
        # both ends move: the publisher now sends to our other socket, which we expect it on
        aiortc_private.renominate(pub, remote_host=other)
        aiortc_private.renominate(publisher.pc, local_host=other)
        before = publisher.received.rtp
        frames = viewer.frames["video"]
        await viewer.wait_frames(frames + 30, timeout=30)
        assert publisher.received.rtp > before  # taken at the new socket by the demux
        assert aiortc_private.nominated_hosts(publisher.pc) == (other, theirs)
        assert await aiortc_private.consent_check(pub) and await aiortc_private.consent_check(publisher.pc)
    finally:
        await viewer.close()
        await pub.close()


async def test_a_peer_sending_from_an_address_off_the_pair_keeps_the_normal_path(worker: Worker) -> None:
    """Only the nominated pair's address takes the shortcut; anything else still reaches aiortc."""
    pub, viewer = await publisher_and_viewer(worker)
    try:
        await viewer.wait_frames(10, timeout=30)
        publisher = transport_of(worker, Role.PUBLISHER)
        ours = (aiortc_private.nominated_hosts(publisher.pc) or ("", ""))[0]
        other = next(h for h in aiortc_private.local_hosts(publisher.pc) if h != ours)
        aiortc_private.renominate(pub, remote_host=other)  # only the publisher moves: we do not expect it there
        before = publisher.received.rtp
        frames = viewer.frames["video"]
        await viewer.wait_frames(frames + 30, timeout=30)
        assert publisher.received.rtp - before < 30  # what was in flight; the rest came through aiortc
    finally:
        await viewer.close()
        await pub.close()


async def test_a_counting_viewer_stamps_packets_at_whichever_of_its_sockets_the_node_sends_to(worker: Worker) -> None:
    """The load generator's counting hook (``count_incoming_rtp``) sits on every socket of the viewer's
    ICE connection: the node sends on the pair *it* nominated, which may end at another of the viewer's
    host candidates than the viewer's own nominated pair (the cluster bench saw it for ~7 % of its
    viewers, whose frames then carried their event loop's time instead of the kernel's)."""
    pub, viewer = await publisher_and_viewer(worker)
    try:
        await viewer.wait_frames(10, timeout=30)
        hosts = aiortc_private.local_hosts(viewer.pc)
        subscriber = transport_of(worker, Role.SUBSCRIBER)
        nominated = aiortc_private.nominated_hosts(subscriber.pc)
        assert nominated is not None
        others = [h for h in hosts if h != nominated[1] and ":" not in h]
        if not others:
            pytest.skip(f"the viewer has one IPv4 host candidate here ({hosts})")
        stamps: list[float | None] = []
        clocks = aiortc_private.count_incoming_rtp(viewer.pc, lambda data, at: stamps.append(at))
        assert len(clocks) == len(hosts)
        await wait_for(lambda: len(stamps) > 20, 20)
        aiortc_private.renominate(subscriber.pc, remote_host=others[0])  # the node now sends elsewhere
        await wait_for(lambda: aiortc_private.nominated_hosts(subscriber.pc) == (nominated[0], others[0]), 5)
        at_move = len(stamps)
        await wait_for(lambda: len(stamps) > at_move + 200, 30)  # the wire follows the pair at its tick
        assert sum(1 for c in clocks if c.kernel > 0) == 2  # both sockets counted media
        assert all(at is not None for at in stamps[at_move:]), "a packet counted without the kernel's stamp"
    finally:
        await viewer.close()
        await pub.close()
