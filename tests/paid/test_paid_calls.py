"""Per-minute paid calls through the real API and a real node: two aiortc peers in a P2P call, the
caller with credits for two minutes (a 3-second minute here) is cut off within 2 s after the second
minute; the creator earns price x minutes x share; the books balance."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

from aiortc import RTCSessionDescription

from control_api.ledger.audit import check_ledger
from control_api.ledger.types import Kind
from switchboard.paid import BILLING_STREAM, BillingEntry, call_meter
from tests.control_api.conftest import ON_CLUSTER_TOO
from tests.paid.conftest import Live, LiveFactory
from tests.sfu.peers import MovingVideo, Viewer, client_pc
from tests.signaling.conftest import SETTINGS, Peer

MINUTE_S = 3.0
PRICE = 10
PAID = dataclasses.replace(SETTINGS, paid_minute_s=MINUTE_S)


async def until(probe: Any, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not await probe():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def wait_for(peer: Peer, kind: str, within_s: float) -> tuple[dict[str, Any], float]:
    """The next ``kind`` frame and the wall-clock time it arrived (frames between are kept)."""
    deadline = time.monotonic() + within_s
    while True:
        for i, m in enumerate(peer.seen):
            if m["type"] == kind:
                return peer.seen.pop(i), time.time()
        assert time.monotonic() < deadline, f"no {kind} frame"
        try:
            m = await peer.recv()
        except TimeoutError:
            continue
        if m["type"] == kind:
            return m, time.time()
        peer.seen.append(m)


async def creator_with_price(live: Live, price: int) -> Any:
    creator = await live.api.user("creator")
    status, body = await live.api.call("PUT", "/me/prices", creator, json={"call_price": price})
    assert status == 200, body
    return creator


async def test_paid_call_cut_off_when_the_credits_run_out(make_live: LiveFactory) -> None:
    live = await make_live(PAID)
    caller, creator = await live.api.user("caller"), await creator_with_price(live, PRICE)
    await live.fund(caller, 2 * PRICE)
    a = await live.node.connect(await live.ws_token(caller))
    b = await live.node.connect(await live.ws_token(creator))

    invited = (await a.ok("call.invite", to=creator.id))
    assert invited["price_per_minute"] == PRICE and invited["minute_s"] == MINUTE_S
    call_id = invited["call_id"]
    incoming = await b.expect("call.incoming", call_id=call_id)
    assert incoming["price_per_minute"] == PRICE
    assert (await live.ledger.balance(uuid.UUID(caller.id))).held == PRICE  # minute 1 held before it rang
    await b.ok("call.accept", call_id=call_id)
    accepted = await a.expect("call.accepted", call_id=call_id)
    assert accepted["price_per_minute"] == PRICE

    # Media between two real aiortc peers, the SDP relayed by the node.
    sender, receiver = client_pc(), Viewer(client_pc())

    @receiver.pc.on("track")
    def on_track(track: Any) -> None:
        receiver.tasks.append(asyncio.ensure_future(receiver._pull(track)))

    try:
        sender.addTrack(MovingVideo(160, 120))
        await sender.setLocalDescription(await sender.createOffer())
        await a.ok("call.offer", call_id=call_id, sdp=sender.localDescription.sdp)
        offer = await b.expect("call.offer", call_id=call_id)
        await receiver.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await receiver.pc.setLocalDescription(await receiver.pc.createAnswer())
        await b.ok("call.answer", call_id=call_id, sdp=receiver.pc.localDescription.sdp)
        answer = await a.expect("call.answer", call_id=call_id)
        await sender.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await receiver.wait_frames(3, 20)

        ended_a, at_a = await wait_for(a, "call.ended", 6 * MINUTE_S + 20)
        ended_b, at_b = await wait_for(b, "call.ended", 5)
    finally:
        await receiver.close()
        await sender.close()
    assert ended_a["reason"] == ended_b["reason"] == "insufficient_credits"
    fields = await live_meter(live, call_id)
    paid_until = int(fields[b"paid_until_ms"]) / 1000
    assert int(fields[b"held"]) == 2
    # Cut off after the second minute was used up, and within 2 s of it, on both sides.
    assert paid_until <= at_a <= paid_until + 2.0, (at_a - paid_until)
    assert paid_until <= at_b <= paid_until + 2.0, (at_b - paid_until)

    share = live.ledger.share_percent
    creator_id, caller_id = uuid.UUID(creator.id), uuid.UUID(caller.id)

    async def settled() -> bool:
        earned = await live.ledger.balance(creator_id, Kind.EARNINGS)
        return earned.available == 2 * (PRICE * share // 100)

    await until(settled)
    wallet = await live.ledger.balance(caller_id)
    assert (wallet.available, wallet.held) == (0, 0)
    report = await check_ledger(live.ledger.engine)
    assert report.ok, report


async def live_meter(live: Live, call_id: str) -> dict[bytes, bytes]:
    """The call's meter hash as the API and the node wrote it."""
    return dict(await live.redis.hgetall(call_meter(call_id)))


@ON_CLUSTER_TOO
async def test_a_caller_without_a_minute_of_credits_is_refused_before_it_rings(make_live: LiveFactory) -> None:
    live = await make_live(PAID)
    caller, creator = await live.api.user("poor"), await creator_with_price(live, PRICE)
    await live.fund(caller, PRICE - 1)
    a = await live.node.connect(await live.ws_token(caller))
    b = await live.node.connect(await live.ws_token(creator))
    refused = await a.request("call.invite", to=creator.id)
    assert refused["type"] == "error" and refused["code"] == "payment_required", refused
    assert not [m for m in b.seen if m["type"] == "call.incoming"]
    assert (await live.ledger.balance(uuid.UUID(caller.id))).available == PRICE - 1
    # The pair is free again: a free call (price 0) goes through at once.
    await live.api.call("PUT", "/me/prices", creator, json={"call_price": 0})
    free = await a.ok("call.invite", to=creator.id)
    assert "price_per_minute" not in free


@ON_CLUSTER_TOO
async def test_hangup_bills_every_started_minute_at_the_price_it_started_with(make_live: LiveFactory) -> None:
    live = await make_live(PAID)
    caller, creator = await live.api.user("rich"), await creator_with_price(live, PRICE)
    await live.fund(caller, 10 * PRICE)
    a = await live.node.connect(await live.ws_token(caller))
    b = await live.node.connect(await live.ws_token(creator))
    # Hung up while ringing: the first minute's hold is voided, nothing is charged.
    rang = (await a.ok("call.invite", to=creator.id))["call_id"]
    await a.ok("call.cancel", call_id=rang)
    caller_id = uuid.UUID(caller.id)

    async def released() -> bool:
        return (await live.ledger.balance(caller_id)).held == 0

    await until(released)
    assert (await live.ledger.balance(caller_id)).available == 10 * PRICE

    call_id = (await a.ok("call.invite", to=creator.id))["call_id"]
    await b.ok("call.accept", call_id=call_id)
    await b.expect("call.accepted", call_id=call_id)
    # A price change during the call changes nothing for it (the first minute fixed its price).
    await live.api.call("PUT", "/me/prices", creator, json={"call_price": 5 * PRICE})

    async def second_minute_started() -> bool:
        fields = await live_meter(live, call_id)
        return int(fields.get(b"held", 0)) >= 2 and time.time() * 1000 > int(fields[b"started_ms"]) + MINUTE_S * 1000

    await until(second_minute_started)
    await b.ok("call.hangup", call_id=call_id)

    async def settled() -> bool:
        wallet = await live.ledger.balance(caller_id)
        return wallet.held == 0 and wallet.available == 8 * PRICE

    await until(settled)  # two started minutes, charged whole (per started minute)
    earned = await live.ledger.balance(uuid.UUID(creator.id), Kind.EARNINGS)
    assert earned.available == 2 * (PRICE * live.ledger.share_percent // 100)
    assert (await check_ledger(live.ledger.engine)).ok


async def test_a_minute_held_for_a_node_that_died_goes_back_by_itself(make_live: LiveFactory) -> None:
    """A node asks for minute 1 and dies (no post, no end ever comes): the hold lapses."""
    live = await make_live(PAID)
    caller, creator = await live.api.user("orphan"), await creator_with_price(live, PRICE)
    await live.fund(caller, PRICE)
    await live.redis.hset(call_meter("call_dead"), mapping={"caller": caller.id, "callee": creator.id,
                                                              "minute_ms": 3000})
    await live.redis.xadd(BILLING_STREAM, BillingEntry("hold", call="call_dead", minute=1, timeout_s=1.0).encode())
    caller_id = uuid.UUID(caller.id)

    async def held() -> bool:
        return (await live.ledger.balance(caller_id)).held == PRICE

    await until(held)
    await asyncio.sleep(1.2)  # past the hold's timeout: the next read (or the sweeper) voids it

    async def back() -> bool:
        wallet = await live.ledger.balance(caller_id)
        return (wallet.available, wallet.held) == (PRICE, 0)

    await until(back)
    assert (await check_ledger(live.ledger.engine)).ok
