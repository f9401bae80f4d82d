"""A show's roster goes to every member as that member may see it, and the roster everyone sees is
encoded once per wire codec, not once per member (signaling.roster_pace.send_roster)."""

from __future__ import annotations

from typing import Any

import pytest

import signaling.session
from sfu.types import PeerId
from signaling.roster_pace import send_roster
from signaling.session import Session
from signaling.show import Member, Show
from switchboard.ids import RoomId, SessionId, UserId
from switchboard.tokens import Grants
from switchboard.wire import Codec, decode

ROOM = RoomId("show-roster")


def _member(show: Show, user: str, codec: Codec) -> Session:
    session = Session(Grants(sub=UserId(user), room=ROOM, subscribe=True), codec, max_queue=16)
    show.members[session.id] = Member(session, PeerId(session.id), hidden=False)
    return session


def _sent(session: Session) -> list[dict[str, Any]]:
    """The frames queued for a session without a socket yet, decoded."""
    return [decode(f, session.codec, max_bytes=1 << 20) for f in session._queue or []]


def test_each_member_gets_its_roster_and_the_shared_one_is_encoded_once_per_codec(
        monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[Codec] = []
    real = signaling.session.encode

    def counting(message: dict[str, Any], codec: Codec) -> str | bytes:
        encoded.append(codec)
        return real(message, codec)

    monkeypatch.setattr(signaling.session, "encode", counting)
    show = Show(ROOM, UserId("host"), SessionId("s_host"))
    json_members = [_member(show, f"j{i}", Codec.JSON) for i in range(20)]
    msgpack_members = [_member(show, f"m{i}", Codec.MSGPACK) for i in range(20)]
    blocker, blocked = _member(show, "b1", Codec.JSON), _member(show, "b2", Codec.MSGPACK)
    show.keep_apart(UserId("b1"), {UserId("b2")})

    send_roster(show)

    everyone = sorted(m.session.user_id for m in show.members.values())
    for session in [*json_members, *msgpack_members]:
        (frame,) = _sent(session)
        assert frame["type"] == "show.roster" and sorted(frame["roster"]) == everyone
        assert frame["viewers"] == len(everyone)
    for session, hidden in ((blocker, "b2"), (blocked, "b1")):
        (frame,) = _sent(session)
        assert sorted(frame["roster"]) == [u for u in everyone if u != hidden]
    assert sorted(encoded, key=lambda c: c.value) == [Codec.JSON, Codec.JSON, Codec.MSGPACK, Codec.MSGPACK]
