"""Arbitrary Unicode (lone surrogates included) in every text field of the protocol, through a real
``/ws`` socket, in JSON and msgpack frames: the sender always gets its answer (a lone surrogate is
``bad_message`` at the edge, with the request's id), nothing is ``internal``, and the recipients'
sockets keep delivering (a frame one of them could not encode must never end its send task)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from signaling.messages import SCHEMAS, Kind
from switchboard.keyspace import user_channel
from tests.signaling.conftest import SETTINGS, STEP_S, NodeFactory, Peer

LOOSE = dataclasses.replace(SETTINGS, ws_rate_per_s=1e6, ws_rate_burst=1_000_000, ws_abuse_limit=1_000_000,
                            chat_rate_per_s=1e6, chat_burst=1_000_000)
SKIPPED = {"call.hangup", "call.decline", "call.cancel", "show.leave", "show.end", "queue.join", "queue.leave",
           "queue.next"}
"""Types that would end the sender's call or show (or pair it with itself in the fake queue)."""
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
"""Any code point, surrogates (category Cs) included."""


def surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def template(kind: str, ctx: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind}
    for f in SCHEMAS[kind]:
        body[f.name] = {
            Kind.ID: {"call_id": ctx["call"], "room": ctx["room"], "to": ctx["b"], "leg": "publish"}.get(f.name, "x"),
            Kind.TOKEN: "t", Kind.TEXT: "hello", Kind.SDP: "v=0 fuzz",
            Kind.OBJECT: {"country": "FR", "age": 30},
            Kind.CANDIDATE: {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0"},
            Kind.USERS: [ctx["b"]], Kind.COUNT: 1, Kind.MINUTES: 1,
        }[f.kind]
    return body


def text_slots(kind: str) -> list[str]:
    """Every place of a message of ``kind`` that holds text (dotted for nested ones)."""
    slots = ["id", "type", "key"]
    for f in SCHEMAS[kind]:
        if f.kind in (Kind.ID, Kind.TOKEN, Kind.TEXT, Kind.SDP):
            slots.append(f.name)
        elif f.kind is Kind.CANDIDATE:
            slots += [f"{f.name}.candidate", f"{f.name}.sdpMid"]
        elif f.kind is Kind.USERS:
            slots.append(f"{f.name}.0")
        elif f.kind is Kind.OBJECT:
            slots.append(f"{f.name}.country")
    return slots


def put(message: dict[str, Any], slot: str, text: str) -> None:
    if slot == "key":
        message[text] = "extra"
        return
    head, _, rest = slot.partition(".")
    if not rest:
        message[head] = text
    elif rest == "0":
        message[head] = [text]
    else:
        message[head] = {**message[head], rest: text}


def frame(message: dict[str, Any], peer: Peer) -> str | bytes:
    if peer.codec.value == "json":
        return json.dumps(message)  # ASCII: a lone surrogate travels as its \ud800 escape
    return msgpack.packb(message, use_bin_type=True, unicode_errors="surrogatepass")


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, str]:
    kind = draw(st.sampled_from(sorted(set(SCHEMAS) - SKIPPED)))
    return kind, draw(st.sampled_from(text_slots(kind))), draw(ANY_TEXT)


@pytest.mark.parametrize("msgpack_codec", [False, True], ids=["json", "msgpack"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
async def test_any_text_in_any_field_is_answered_and_kills_no_socket(make_node: NodeFactory,
                                                                    token: Callable[..., str],
                                                                    msgpack_codec: bool,
                                                                    case: tuple[str, str, str]) -> None:
    state = _STATE.setdefault(msgpack_codec, {})
    if "a" not in state:
        await _setup(state, make_node, token, msgpack_codec)
    a, b, ctx = state["a"], state["b"], state["ctx"]
    kind, slot, text = case
    state["n"] += 1
    rid = f"f{state['n']}"
    message = template(kind, ctx) | {"id": rid}
    assume(slot != "key" or text not in message)
    put(message, slot, text)
    data = frame(message, a)
    await (a.ws.send_str(data) if isinstance(data, str) else a.ws.send_bytes(data))
    answer = await _answer(a, rid if slot != "id" else None)
    assert answer.get("code") != "internal", answer
    if surrogate(text):
        assert (answer["type"], answer["code"]) == ("error", "bad_message"), (kind, slot, answer)
    # Both still talk: a relayed line and a show line reach b, and a gets its replies.
    probe = f"probe {state['n']}"
    await a.ok("call.chat", call_id=ctx["call"], text=probe)
    await b.expect("call.chat", text=probe)
    await a.ok("show.chat", room=ctx["room"], text=probe)
    await b.expect("show.chat", text=probe)
    b.seen.clear()
    a.seen.clear()


_STATE: dict[bool, dict[str, Any]] = {}
"""One node and one pair of sockets per codec for all examples (hypothesis reruns the body)."""


@pytest.fixture(autouse=True)
def _fresh_state() -> Any:
    _STATE.clear()
    yield
    _STATE.clear()


async def _setup(state: dict[str, Any], make_node: NodeFactory, token: Callable[..., str], packed: bool) -> None:
    node = await make_node(settings=LOOSE)
    tag = "m" if packed else "j"
    room = f"fuzzroom-{tag}"
    a = await node.connect(token(f"fuzz-a-{tag}", room, publish=True), msgpack=packed)
    b = await node.connect(token(f"fuzz-b-{tag}", room, subscribe=True), msgpack=packed)
    await a.ok("show.create")
    await b.ok("show.join", room=room)
    call_id = (await a.ok("call.invite", to=f"fuzz-b-{tag}"))["call_id"]
    await b.expect("call.incoming", call_id=call_id)
    await b.ok("call.accept", call_id=call_id)
    await a.expect("call.accepted", call_id=call_id)
    state.update(a=a, b=b, n=0, ctx={"call": call_id, "room": room, "b": f"fuzz-b-{tag}"})


async def _answer(peer: Peer, rid: str | None) -> dict[str, Any]:
    """The reply or error to request ``rid`` (or, when the id itself was fuzzed, the next one)."""
    async with asyncio.timeout(STEP_S):
        while True:
            m = await peer.recv()
            if m["type"] in ("reply", "error") and (rid is None or m.get("ref") == rid):
                return m
            peer.seen.append(m)


@pytest.mark.parametrize("packed", [False, True], ids=["json", "msgpack"])
async def test_a_frame_a_recipient_cannot_encode_is_dropped_alone(make_node: NodeFactory, token: Callable[..., str],
                                                                  redis: Any, packed: bool) -> None:
    """Text reaching a socket from elsewhere (another node, the control API) is not checked by this
    node's edge: a lone surrogate in it is dropped for that frame only, and the socket goes on."""
    node = await make_node()
    who = f"enc-{'m' if packed else 'j'}"
    peer = await node.connect(token(who), msgpack=packed)
    bad = '{"type": "call.chat", "call_id": "c", "text": "\\ud800 lone"}'
    for text in ("first", None, "after"):
        await redis.publish(user_channel(who), bad if text is None else json.dumps({"type": "call.chat", "text": text}))
    assert (await peer.expect("call.chat", text="first"))["text"] == "first"
    assert (await peer.expect("call.chat", text="after"))["text"] == "after"
    assert (await peer.ok("ping"))["pong"] is True
    assert not [m for m in peer.seen if m["type"] == "call.chat"]


@pytest.mark.parametrize("packed", [False, True], ids=["json", "msgpack"])
async def test_a_lone_surrogate_in_the_first_message_is_refused_with_its_id(make_node: NodeFactory,
                                                                            packed: bool) -> None:
    node = await make_node()
    peer = await node.connect(None, msgpack=packed)
    data = frame({"type": "auth", "id": 4, "token": "abc\udfff"}, peer)
    await (peer.ws.send_str(data) if isinstance(data, str) else peer.ws.send_bytes(data))
    error = await peer.expect("error", ref=4)
    assert error["code"] == "unauthorized" and "valid Unicode" in error["message"]
    assert await peer.closed() == 4001
