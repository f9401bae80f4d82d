"""docs/protocol.md's examples against a running node: each client example is sent, in doc order, and
understood (never ``bad_message``); each server example has a server type and only fields the node emits.

One node for the whole doc (the signaling fixtures: the real node app on the session's Redis, its SFU a
fake at the MediaService boundary). ``u1`` holds a token for the doc's room ``r1`` with every grant and
sends the examples; ``u2`` is online (the callee of ``call.invite``, a name in ``presence.query``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from signaling.calls import RELAYED
from signaling.dispatch import SERVER_TYPES
from tests.signaling.conftest import SETTINGS, STEP_S, NodeFactory, Peer, befriend
from tests.signaling.protocol_doc import (
    PLACEHOLDER_KEYS,
    Example,
    documented_replies,
    emitted_keys,
    examples,
    inline_frames,
)

ROOM = "r1"
"""The doc's room; its users are ``u1``, ``u2``, ``u3`` as written (tokens here name any user)."""

SUBSTITUTIONS: dict[str, str] = {
    "<jwt>": "token:u1",
    "<a fresh jwt for the same user>": "token:u1",
    "call_...": "bound:call_id",
    "optional, defaults to the token's room": ROOM,
    "show-... or a call's / match's id": ROOM,
}
"""Placeholder values of the client examples and what the test sends instead: ``token:<user>`` a fresh
token, ``bound:<key>`` a value a reply earlier in the doc gave (below), anything else as is."""
DROPPED = frozenset({"<resume_token, optional>"})
"""Optional fields whose placeholder has no real value here (a first ``auth`` resumes nothing)."""
BOUND_FROM_REPLIES = {"call.invite": "call_id"}
"""Replies whose field the later examples use: ``call.invite``'s ``call_id`` is the doc's ``call_...``."""
MESSAGE_IDS = {12, 14}
"""The doc's show chat line numbers: replaced by the line ``show.chat`` really made."""
SENDERS = {"call.accept": "u2", "call.decline": "u2"}
"""Callee-only doors: sent by the callee of the doc's call. Everything else (but ``auth``) by ``u1``."""
LAST = ("call.hangup", "show.end", "show.leave")
"""Sent after the other examples, in this order: hanging up the call, or the host ending or leaving the
show, first would leave the doc's later call and show examples nothing to talk to."""
NOT_UNDERSTOOD = frozenset({"bad_message", "bad_frame", "unknown_type", "too_large"})


class Recorder:
    """The doc's sockets, and every frame the node sent on them."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def exchange(self, peer: Peer, message: dict[str, Any]) -> dict[str, Any]:
        """Sends ``message`` (it has an id) and reads up to its ``reply`` or ``error``."""
        await peer.send(message)
        async with asyncio.timeout(STEP_S):
            while True:
                frame = await peer.recv()
                self.frames.append(frame)
                if frame.get("ref") == message["id"] and frame["type"] in ("reply", "error"):
                    return frame

    async def drain(self, peer: Peer) -> None:
        """Everything sent to ``peer`` so far is recorded (a ping's reply comes after it)."""
        await self.exchange(peer, {"type": "ping", "id": "drain"})


def _client_message(example: Example, tokens: dict[str, str], bound: dict[str, Any],
                    chat_line: int | None) -> dict[str, Any]:
    message: dict[str, Any] = {}
    for key, value in example.message.items():
        if isinstance(value, str) and value in DROPPED:
            continue
        if isinstance(value, str) and value in SUBSTITUTIONS:
            how, _, what = SUBSTITUTIONS[value].partition(":")
            value = {"token": tokens.get(what), "bound": bound.get(what, value)}.get(how, SUBSTITUTIONS[value])
        if key == "message_id" and value in MESSAGE_IDS and chat_line is not None:
            value = chat_line
        message[key] = value
    message.setdefault("id", f"doc-{example.line}")  # any message may carry an id: then it is answered
    return message


async def test_every_client_example_is_understood_and_every_server_example_is_what_the_node_sends(
        make_node: NodeFactory, token: Any, redis: Any) -> None:
    node = await make_node(dataclasses.replace(SETTINGS, ws_abuse_limit=1000))  # the doc's errors are many
    await befriend(redis, "u1", "u2")  # presence shows friends only
    tokens = {"u1": token("u1", ROOM, publish=True, subscribe=True, moderate=True), "u2": token("u2")}
    u1, u2 = await node.connect(tokens["u1"]), await node.connect(tokens["u2"])
    recorder = Recorder()
    recorder.frames += [u1.hello, u2.hello]  # type: ignore[attr-defined]
    everything = examples()
    client = [e for e in everything if e.is_client]
    ordered = [e for e in client if e.type not in LAST] + sorted((e for e in client if e.type in LAST),
                                                                 key=lambda e: LAST.index(e.type))
    bound: dict[str, Any] = {}
    chat_line: int | None = None
    answers: list[tuple[Example, dict[str, Any], dict[str, Any]]] = []
    for example in ordered:
        message = _client_message(example, tokens, bound, chat_line)
        if example.type == "auth":  # the first message of a socket opened without a token
            fresh = await node.connect(None, hello=False)
            answer = await recorder.exchange(fresh, message)
            recorder.frames.append(await fresh.expect("hello"))
            await fresh.ws.close()
        else:
            answer = await recorder.exchange({"u1": u1, "u2": u2}[SENDERS.get(example.type, "u1")], message)
        answers.append((example, message, answer))
        if answer["type"] == "reply" and example.type in BOUND_FROM_REPLIES:
            bound[BOUND_FROM_REPLIES[example.type]] = answer[BOUND_FROM_REPLIES[example.type]]
        if answer["type"] == "reply" and example.type == "show.chat":
            chat_line = answer["id"]
    for peer in (u1, u2):
        await recorder.drain(peer)
        recorder.frames += peer.seen

    outcomes = "\n".join(f"  {e.line} {json.dumps(m)} -> {json.dumps(a)[:200]}" for e, m, a in answers)
    refused = [str(e) + f" -> {a}" for e, _, a in answers if a["type"] == "error" and a["code"] in NOT_UNDERSTOOD]
    assert not refused, "client examples the node does not understand:\n" + "\n".join(refused) + "\n" + outcomes
    assert bound.get("call_id") and chat_line, f"the doc's call and chat line were not made:\n{outcomes}"

    shown = documented_replies()
    replies = [f"{e}: the doc's reply has {sorted(shown[e.type])}, the node's {sorted(set(a) - {'type', 'ref'})}"
               for e, _, a in answers if a["type"] == "reply" and e.type in shown
               and shown[e.type] != set(a) - {"type", "ref"}]
    assert not replies, "documented replies that are not the node's:\n" + "\n".join(replies)

    sent_types = {f["type"] for f in recorder.frames}
    undeclared = sent_types - set(SERVER_TYPES) - set(RELAYED)
    assert not undeclared, f"the node sent types signaling.dispatch.SERVER_TYPES does not declare: {undeclared}"
    emitted = emitted_keys()
    for frame in recorder.frames:
        emitted.setdefault(frame["type"], set()).update(frame)
    wrong = []
    for example in [e for e in everything if not e.is_client] + inline_frames():
        kind = example.type
        if kind not in SERVER_TYPES and kind not in RELAYED:
            wrong.append(f"{example}: not a type the server sends (signaling.dispatch.SERVER_TYPES)")
        elif kind not in emitted:
            wrong.append(f"{example}: no code builds it and the node never sent it")
        elif extra := set(example.message) - PLACEHOLDER_KEYS - emitted[kind]:
            wrong.append(f"{example}: fields {sorted(extra)} are never sent (sent: {sorted(emitted[kind])})")
    assert not wrong, "server examples that are not what the node sends:\n" + "\n".join(wrong)


async def test_the_error_example_is_the_nodes_own_words(make_node: NodeFactory, token: Any) -> None:
    """The ``error`` section's example is what a ``call.invite`` without ``to`` really gets."""
    (shown,) = [e.message for e in examples() if e.heading.startswith("### `error`")]
    assert shown["code"] == "bad_message" and shown["message"] == "'call.invite' needs 'to'", shown
    peer = await (await make_node()).connect(token("u1"))
    assert await peer.request("call.invite") | {"ref": shown["ref"]} == shown
