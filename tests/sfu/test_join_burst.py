"""A join burst is paced (sfu.admission): bounded joins in flight, none while the loop is late, FIFO,
a bounded queue that sheds with ``Busy`` (``unavailable`` on the wire); real viewers all get in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from sfu import aiortc_private
from sfu.admission import Admission, LoopLag
from sfu.errors import Busy
from sfu.events import MemoryEventSink, RedisEventSink
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import MovingVideo, Viewer, answer_offer, client_pc, start_publisher, start_viewer
from tests.sfu.test_forwarding import wait_for
from tests.signaling.conftest import NodeFactory, make_node, signer, token, token_key  # noqa: F401 (fixtures)

ROOM = RoomId("burst")


async def settle() -> None:
    """Let the tasks woken so far run (a few loop iterations; no timing involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


def still_lag(late: float = 0.0) -> LoopLag:
    """A probe that is not running: the test sets what it saw."""
    lag = LoopLag()
    lag.samples.append(late)
    return lag


async def test_joins_beyond_the_slots_wait_in_order_and_the_queue_sheds() -> None:
    admission = Admission(still_lag(), in_flight=2, queue=2)
    first, second = await admission.enter(), await admission.enter()
    third = asyncio.ensure_future(admission.enter())
    fourth = asyncio.ensure_future(admission.enter())
    await settle()
    assert admission.waiting == 2 and not third.done()
    with pytest.raises(Busy):
        await admission.enter()  # the queue is full: refused at once
    first.release()
    first.release()  # idempotent: frees one slot only
    await settle()
    assert third.done() and not fourth.done()
    second.release()
    (await third).release()
    (await fourth).release()
    assert (admission.admitted, admission.refused, admission.active) == (4, 1, 0)


async def test_no_join_is_admitted_while_the_loop_runs_late() -> None:
    lag = still_lag(late=1.0)
    admission = Admission(lag, in_flight=4)
    waiting = asyncio.ensure_future(admission.enter())
    await settle()
    assert not waiting.done() and admission.active == 0
    lag.samples.clear()
    lag.samples.append(0.0)
    assert lag.on_sample is not None
    lag.on_sample()  # the probe's next sample
    (await waiting).release()


async def test_a_join_that_waits_too_long_is_refused() -> None:
    admission = Admission(still_lag(), in_flight=1, wait_s=0.05)
    held = await admission.enter()
    with pytest.raises(Busy):
        await admission.enter()
    held.release()
    assert admission.waiting == 0 and admission.refused == 1
    (await admission.enter()).release()  # the slot was given back, not leaked


async def test_a_burst_of_viewers_is_paced_and_every_viewer_gets_frames(worker: Worker) -> None:
    worker.admission = Admission(worker.lag, in_flight=2, lag_limit_s=10.0)  # pace by slots only
    pub = await start_publisher(worker, ROOM, "pub", audio=False, size=(160, 120))
    viewers = []
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewers = list(await asyncio.gather(*(start_viewer(worker, ROOM, f"v{i}") for i in range(6))))
        for v in viewers:
            await v.wait_frames(5, timeout=30)
        assert worker.admission.admitted == 6
        assert pub.connectionState == "connected"
        await wait_for(lambda: worker.admission.active == 0, 10)  # every slot came back once connected
    finally:
        for v in viewers:
            await v.close()
        await pub.close()


async def test_a_refused_join_is_unavailable_over_ws(make_node: NodeFactory,  # noqa: F811 (fixture)
                                                     token: Callable[..., str]) -> None:  # noqa: F811
    workers: list[Worker] = []

    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        w = Worker(addresses=("127.0.0.1",), events=RedisEventSink(redis))
        # one slot, no queue; the loop's lag never refuses here (a lag spike on a busy box refused the
        # first join too), so the second is refused for the slot alone
        w.admission = Admission(w.lag, in_flight=1, queue=0, lag_limit_s=3600.0)
        workers.append(w)
        await w.start()
        try:
            yield w
        finally:
            await w.close()

    node = await make_node(open_media=open_media)
    host = await node.connect(token("caster", str(ROOM), publish=True))
    await host.ok("show.create")
    first = await node.connect(token("a", str(ROOM), subscribe=True))
    await first.ok("show.join", room=str(ROOM))
    await first.ok("show.subscribe", room=str(ROOM))  # holds the one slot: it never answers
    second = await node.connect(token("b", str(ROOM), subscribe=True))
    await second.ok("show.join", room=str(ROOM))
    await second.send({"type": "show.subscribe", "id": 9, "room": str(ROOM)})
    error = await second.expect("error", ref=9)
    assert error["code"] == "unavailable"
    assert workers[0].admission.refused == 1


class Closed:
    """Listener that records ``peer_closed`` calls (renegotiations are not needed here)."""

    def __init__(self) -> None:
        self.closed: list[tuple[str, str]] = []

    async def renegotiation_needed(self, room_id: RoomId, peer_id: PeerId) -> None:
        return None

    async def first_media(self, room_id: RoomId, peer_id: PeerId) -> None:
        return None

    async def peer_closed(self, room_id: RoomId, peer_id: PeerId, reason: str) -> None:
        self.closed.append((peer_id, reason))


async def test_a_worker_that_stays_late_sheds_its_newest_viewers_and_keeps_the_publisher() -> None:
    worker = Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), tick_s=0.05)
    worker.shed_lag_s = 10.0  # only the lag this test sets below sheds (the loaded suite's must not)
    listener = Closed()
    worker.set_listener(listener)
    await worker.start()
    await worker.open_room(ROOM)
    pub = await start_publisher(worker, ROOM, "pub", audio=False, size=(160, 120))
    viewers = []
    try:
        await wait_for(lambda: len(worker.routers[ROOM].producers) == 1, 10)
        viewers = [await start_viewer(worker, ROOM, f"v{i}") for i in range(3)]
        for v in viewers:
            await v.wait_frames(3, timeout=30)
        worker.shed_lag_s = -1.0  # as if the loop could not keep up
        await wait_for(lambda: listener.closed, 10)
        worker.shed_lag_s = 10.0
        assert listener.closed[0] == ("v2", "overloaded")  # the newest first
        assert all(reason == "overloaded" and peer != "pub" for peer, reason in listener.closed)
        assert "pub" in worker.routers[ROOM].transports and pub.connectionState == "connected"
        await viewers[0].wait_frames(viewers[0].frames["video"] + 3, timeout=30)  # the rest still watch
    finally:
        for v in viewers:
            await v.close()
        await pub.close()
        await worker.close()


async def test_a_shed_viewer_is_told_over_ws_and_the_broadcaster_is_not(
        make_node: NodeFactory, token: Callable[..., str]) -> None:  # noqa: F811 (fixtures)
    workers: list[Worker] = []

    @contextlib.asynccontextmanager
    async def open_media(redis: Any) -> AsyncIterator[Worker]:
        w = Worker(addresses=("127.0.0.1",), events=MemoryEventSink(), tick_s=0.05)
        w.shed_lag_s = 10.0  # only the lag this test sets below sheds (the loaded suite's must not)
        workers.append(w)
        await w.start()
        try:
            yield w
        finally:
            await w.close()

    node = await make_node(open_media=open_media)
    host = await node.connect(token("caster", str(ROOM), publish=True))
    await host.ok("show.create")
    pc = client_pc()
    pc.addTrack(MovingVideo(160, 120))
    await pc.setLocalDescription(await pc.createOffer())
    answer = (await host.ok("show.publish", room=str(ROOM), sdp=pc.localDescription.sdp))["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    try:
        await wait_for(lambda: workers[0].routers[ROOM].producers, 20)
        fan = await node.connect(token("fan", str(ROOM), subscribe=True))
        await fan.ok("show.join", room=str(ROOM))
        offer = (await fan.ok("show.subscribe", room=str(ROOM)))["sdp"]
        viewer = Viewer(client_pc())
        await fan.ok("show.answer", room=str(ROOM), sdp=await answer_offer(viewer, offer))
        await wait_for(lambda: viewer.pc.connectionState == "connected", 20)
        workers[0].shed_lag_s = -1.0  # as if the worker could not keep up
        closed = await fan.expect("show.peer_closed")
        workers[0].shed_lag_s = 10.0
        assert closed == {"type": "show.peer_closed", "room": str(ROOM), "reason": "overloaded"}
        assert not [m for m in host.seen if m["type"] in ("show.peer_closed", "show.media_stopped")]
        assert not [m for m in fan.seen if m["type"] == "show.media_stopped"]
        await wait_for(lambda: [t.role.value for t in workers[0].routers[ROOM].transports.values()]
                       == ["publisher"], 10)
        await viewer.close()
    finally:
        await pc.close()


async def test_a_receive_backlog_lets_the_loop_read_its_sockets_between_batches() -> None:
    """aiortc's DTLS task awaits our hook once per packet and aioice hands a backlog over without
    suspending: unless the hook yields, a socket callback (a STUN consent check) waits for all of it."""

    class Dtls:
        """Only what the hook touches: the two handler slots and a state-change event."""

        def on(self, event: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
            return lambda handler: handler

    dtls: Any = Dtls()
    handled: list[bytes] = []
    aiortc_private.hook_dtls(dtls, handled.append, lambda data: None)
    seen_at: list[int] = []

    async def drain() -> None:  # what RTCDtlsTransport.__run does with a queued backlog
        for i in range(100):
            await dtls._handle_rtp_data(bytes([0x80, 96, 0, i]), 0)

    task = asyncio.ensure_future(drain())
    await asyncio.sleep(0)  # the drain starts
    asyncio.get_running_loop().call_soon(lambda: seen_at.append(len(handled)))  # a datagram callback
    await task
    assert len(handled) == 100
    assert seen_at and seen_at[0] <= 2 * aiortc_private.RECEIVE_BATCH


async def test_an_idle_loop_lets_more_joins_in_flight_and_a_busier_one_only_the_base_slots() -> None:
    """``burst_in_flight`` slots while the loop keeps its timers within ``idle_lag_s``; once it runs
    later (still under ``lag_limit_s``), only ``in_flight``: the extra joins wait, and get in as
    joins finish or the loop is idle again."""
    lag = still_lag(late=0.0)
    admission = Admission(lag, in_flight=2, burst_in_flight=4, idle_lag_s=0.02, lag_limit_s=0.1)
    held = [await admission.enter() for _ in range(4)]  # idle: four at once
    fifth = asyncio.ensure_future(admission.enter())
    await settle()
    assert not fifth.done() and admission.active == 4  # never beyond the burst slots
    lag.samples.append(0.05)  # busier: late, but under the lag limit
    held.pop().release()
    held.pop().release()
    await settle()
    assert not fifth.done() and admission.active == 2  # base slots only, and both are taken
    held.pop().release()
    await settle()
    assert fifth.done() and admission.active == 2
    lag.samples.clear()
    lag.samples.append(0.0)
    sixth, seventh = asyncio.ensure_future(admission.enter()), asyncio.ensure_future(admission.enter())
    await settle()
    assert sixth.done() and seventh.done() and admission.active == 4  # idle again: the burst slots
    for ticket in (held.pop(), await fifth, await sixth, await seventh):
        ticket.release()
    assert admission.active == 0
