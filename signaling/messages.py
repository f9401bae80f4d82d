"""Every message a client may send: its fields, checked before any handler runs.

:func:`validate` is pure: a decoded frame (``dict``) in, a :class:`Message` out, or
:class:`~signaling.errors.BadMessage` / :class:`~signaling.errors.UnknownType` naming the problem.
docs/protocol.md documents each type in :data:`SCHEMAS` (a test holds it to that).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from signaling.errors import BadMessage, UnknownType

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 2000
MAX_SDP_CHARS = 60_000
MAX_USERS_PER_QUERY = 500
MAX_MINUTES = 7 * 24 * 60


class Kind(enum.Enum):
    ID = "id"
    """A non-empty string of at most MAX_ID_CHARS (user, call, room ids, tokens are longer: TOKEN)."""
    TOKEN = "token"
    """A non-empty string of at most 4096 characters."""
    TEXT = "text"
    """A non-empty chat line of at most MAX_TEXT_CHARS."""
    SDP = "sdp"
    """An SDP blob of at most MAX_SDP_CHARS."""
    OBJECT = "object"
    """A JSON object (checked further by its owner: tickets by the matchmaker)."""
    CANDIDATE = "candidate"
    """An RTCIceCandidate-like object ``{candidate, sdpMid?, sdpMLineIndex?}``, or null (end of candidates)."""
    USERS = "users"
    """A list of 1..MAX_USERS_PER_QUERY user ids."""
    COUNT = "count"
    """A positive integer below 2**53 (a show chat message id)."""
    MINUTES = "minutes"
    """A whole number of minutes, 1..MAX_MINUTES."""


@dataclass(frozen=True)
class Field:
    """One field of a message."""

    name: str
    """The key in the message object."""
    kind: Kind
    """What its value must be."""
    required: bool = True
    """Absent is an error when True; absent means None when False."""
    limit: int = 0
    """For the string kinds (ID, TOKEN, TEXT, SDP): the most characters; 0 for the others."""


def _f(name: str, kind: Kind, required: bool = True) -> Field:
    limit = {Kind.ID: MAX_ID_CHARS, Kind.TOKEN: 4096, Kind.TEXT: MAX_TEXT_CHARS, Kind.SDP: MAX_SDP_CHARS}.get(kind, 0)
    return Field(name, kind, required, limit)


_CALL = _f("call_id", Kind.ID)
_ROOM = _f("room", Kind.ID)

SCHEMAS: Mapping[str, tuple[Field, ...]] = {
    "auth": (_f("token", Kind.TOKEN), _f("resume", Kind.TOKEN, False)),
    "token.refresh": (_f("token", Kind.TOKEN),),
    "ping": (),
    "presence.query": (_f("users", Kind.USERS),),
    "presence.watch": (_f("users", Kind.USERS),),
    "call.invite": (_f("to", Kind.ID),),
    "call.accept": (_CALL,),
    "call.decline": (_CALL,),
    "call.cancel": (_CALL,),
    "call.hangup": (_CALL,),
    "call.rejoin": (_CALL,),
    "call.offer": (_CALL, _f("sdp", Kind.SDP)),
    "call.answer": (_CALL, _f("sdp", Kind.SDP)),
    "call.ice": (_CALL, _f("candidate", Kind.CANDIDATE, False)),
    "call.chat": (_CALL, _f("text", Kind.TEXT)),
    "call.like": (_CALL,),
    "call.follow_request": (_CALL,),
    "call.publish": (_CALL, _f("sdp", Kind.SDP)),
    "call.subscribe": (_CALL,),
    "call.sfu_answer": (_CALL, _f("leg", Kind.ID), _f("sdp", Kind.SDP)),
    "call.sfu_ice": (_CALL, _f("leg", Kind.ID), _f("candidate", Kind.CANDIDATE, False)),
    "call.list": (),
    "call.tap": (_CALL,),
    "call.untap": (_CALL,),
    "queue.join": (_f("ticket", Kind.OBJECT),),
    "queue.leave": (),
    "queue.next": (),
    "show.create": (_f("room", Kind.ID, False),),
    "show.join": (_ROOM, _f("traceparent", Kind.ID, False)),
    "show.leave": (_ROOM,),
    "show.end": (_ROOM,),
    "show.roster": (_ROOM,),
    "show.stats": (_ROOM,),
    "show.layers": (_ROOM, _f("max_layers", Kind.COUNT, False)),
    "show.list": (),
    "show.publish": (_ROOM, _f("sdp", Kind.SDP)),
    "show.subscribe": (_ROOM,),
    "show.answer": (_ROOM, _f("sdp", Kind.SDP)),
    "show.ice": (_ROOM, _f("candidate", Kind.CANDIDATE, False)),
    "show.chat": (_ROOM, _f("text", Kind.TEXT)),
    "show.chat_delete": (_ROOM, _f("message_id", Kind.COUNT)),
    "show.chat_pin": (_ROOM, _f("message_id", Kind.COUNT)),
    "show.mute": (_ROOM, _f("user", Kind.ID), _f("minutes", Kind.MINUTES)),
    "show.kick": (_ROOM, _f("user", Kind.ID), _f("minutes", Kind.MINUTES, False)),
    "clip.save": (_ROOM,),
}


@dataclass(frozen=True)
class Message:
    """A validated client message."""

    type: str
    """One of :data:`SCHEMAS`."""
    id: str | int | None
    """The request id to put in the reply's ``ref``; None: no reply on success."""
    body: Mapping[str, Any]
    """The schema's fields only (absent optional ones are None)."""


def request_id(raw: Mapping[str, Any]) -> str | int | None:
    """The ``id`` to echo as ``ref`` in an error frame, when it is usable (else None)."""
    rid = raw.get("id")
    if isinstance(rid, bool):
        return None
    if isinstance(rid, int) and -(2**53) < rid < 2**53:
        return rid
    if isinstance(rid, str) and 0 < len(rid) <= MAX_ID_CHARS:
        return rid
    return None


def _check(field: Field, value: Any) -> Any:
    limit = field.limit
    if limit:  # the string kinds, checked first: nearly every field is one
        if not isinstance(value, str) or not value:
            raise BadMessage(f"'{field.name}' must be a non-empty string")
        if len(value) > limit:
            raise BadMessage(f"'{field.name}' is longer than {limit} characters")
        return value
    name, kind = field.name, field.kind
    if kind is Kind.CANDIDATE:
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("candidate"), str):
            raise BadMessage(f"'{name}' must be null or an object with a string 'candidate'")
        mid, index = value.get("sdpMid"), value.get("sdpMLineIndex")
        if len(value["candidate"]) > 1024 or (mid is not None and (not isinstance(mid, str) or len(mid) > 64)):
            raise BadMessage(f"'{name}' is too long or has a bad sdpMid")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1024):
            raise BadMessage(f"'{name}'.sdpMLineIndex must be a small non-negative integer")
        return {"candidate": value["candidate"], "sdpMid": mid, "sdpMLineIndex": index}
    if kind is Kind.COUNT or kind is Kind.MINUTES:
        top = 2**53 if kind is Kind.COUNT else MAX_MINUTES + 1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < top:
            raise BadMessage(f"'{name}' must be an integer from 1 to {top - 1}")
        return value
    if kind is Kind.OBJECT:
        if not isinstance(value, dict):
            raise BadMessage(f"'{name}' must be an object")
        return value
    if kind is Kind.USERS:
        if not isinstance(value, list) or not 0 < len(value) <= MAX_USERS_PER_QUERY:
            raise BadMessage(f"'{name}' must be a list of 1 to {MAX_USERS_PER_QUERY} user ids")
        for item in value:
            if not isinstance(item, str) or not 0 < len(item) <= MAX_ID_CHARS:
                raise BadMessage(f"'{name}' must hold non-empty strings of at most {MAX_ID_CHARS} characters")
        return list(dict.fromkeys(value))
    raise AssertionError(f"no check for {kind}")  # every Kind is handled above


def validate(raw: Mapping[str, Any]) -> Message:
    """Checks a decoded frame against its type's schema. Extra keys are ignored."""
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
        raise UnknownType(f"unknown message type {shown!r}")
    rid = raw.get("id")
    if rid is not None:
        rid = request_id(raw)
        if rid is None:
            raise BadMessage(f"'id' must be a string of 1 to {MAX_ID_CHARS} characters or a safe integer")
    body: dict[str, Any] = {}
    for field in SCHEMAS[kind]:
        value = raw.get(field.name)
        if (value is None and field.kind is not Kind.CANDIDATE) or field.name not in raw:
            if field.required:
                raise BadMessage(f"'{kind}' needs '{field.name}'")
            body[field.name] = None
            continue
        body[field.name] = _check(field, value)
    return Message(kind, rid, body)
