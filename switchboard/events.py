"""The events stream's entries (``keyspace.EVENTS_STREAM``): one declaration for writers and the reader.

Nodes write durable facts (a like or a follow request made in a call, a moderator's tap opened or
closed, a show chat moderation act, a show's room and participants for the integrators' webhooks)
with :func:`encode`; the control API reads them back with :func:`decode`. An entry has two fields: ``type`` (an
:class:`EventType`) and ``data`` (a JSON object whose keys are the fields of that type's
dataclass). The Redis stream entry id is the event's identity: the reader deduplicates on it
(room events carry their own ``id`` as well, the webhook event id). Types this module does not
declare (``match.paired`` from the matchmaker's Lua) decode to :class:`OtherEvent` and are the
reader's to ignore.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

MAX_TEXT = 200
"""Longest id or room name an entry may carry (the audit log's subject column holds 200)."""
MAX_LINE = 2000
"""Longest chat line a moderation entry may quote (a show chat line's own limit)."""


class EventType(enum.StrEnum):
    """Types of stream entries the control API acts on."""

    LIKE = "like"
    FOLLOW_REQUEST = "follow_request"
    CALL_MISSED = "call_missed"
    """A 1:1 call rang out or was called off before the callee answered (``from`` the caller)."""
    TAP_OPENED = "tap_opened"
    TAP_CLOSED = "tap_closed"
    ROOM_STARTED = "room_started"
    """A show's room opened (webhooks; :class:`RoomEvent`)."""
    ROOM_FINISHED = "room_finished"
    PARTICIPANT_JOINED = "participant_joined"
    """A visible member joined a room: never written for a hidden tap."""
    PARTICIPANT_LEFT = "participant_left"
    TRACK_PUBLISHED = "track_published"
    SHOW_MODERATED = "show_moderated"
    """A show's owner or a moderator deleted or pinned a chat line, muted or removed a viewer
    (:class:`ModerationEvent`): the control API writes its audit row."""


ROOM_TYPES = frozenset({EventType.ROOM_STARTED, EventType.ROOM_FINISHED, EventType.PARTICIPANT_JOINED,
                        EventType.PARTICIPANT_LEFT, EventType.TRACK_PUBLISHED})
"""The node's facts that the control API forwards to integrators' webhooks as they are."""


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise ValueError(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid unicode") from None
    if "\x00" in value:  # Postgres text and jsonb refuse NUL
        raise ValueError(f"{name} holds a NUL character")
    return value


def _ms(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 53:
        raise ValueError(f"{name} must be milliseconds since the epoch")
    return value


@dataclass(frozen=True)
class SocialEvent:
    """A like or a follow request one party of a call or match made to the other, or a call the
    callee missed (``from`` the caller, ``to`` the callee)."""

    type: EventType
    """``like``, ``follow_request`` or ``call_missed``."""
    from_user: str
    """Who liked or asked (``from`` on the wire)."""
    to_user: str
    """Who is liked or asked (``to`` on the wire)."""
    call_id: str = ""
    """The call or match it happened in."""
    at_ms: int = 0
    """Wall-clock time, milliseconds since the epoch."""

    def __post_init__(self) -> None:
        if self.type not in (EventType.LIKE, EventType.FOLLOW_REQUEST, EventType.CALL_MISSED):
            raise ValueError(f"not a social event type: {self.type}")
        _text(self.from_user, "from")
        _text(self.to_user, "to")
        _ms(self.at_ms, "at_ms")

    def data(self) -> dict[str, Any]:
        return {"from": self.from_user, "to": self.to_user, "call_id": self.call_id, "at_ms": self.at_ms}

    @classmethod
    def from_data(cls, kind: EventType, data: dict[str, Any]) -> SocialEvent:
        return cls(kind, data.get("from"), data.get("to"), str(data.get("call_id", "")),  # type: ignore[arg-type]
                   data.get("at_ms", 0))


@dataclass(frozen=True)
class TapEvent:
    """A moderator's hidden subscriber (a tap) opened or closed on a show or an SFU call."""

    type: EventType
    """``tap_opened`` or ``tap_closed``."""
    moderator: str
    """The user id of the moderator who tapped."""
    room: str
    """The SFU room tapped: a show's room, or a call's id."""
    peer: str
    """The tap's peer id in that room (pairs an opened entry with its closed one)."""
    at_ms: int
    """When it happened, milliseconds since the epoch (the node's clock)."""
    publishers: tuple[str, ...] = field(default_factory=tuple)
    """User ids publishing in the room at that moment: whose media the moderator saw."""
    opened_at_ms: int | None = None
    """On ``tap_closed``: when this tap opened (so one row says how long it lasted)."""

    def __post_init__(self) -> None:
        if self.type not in (EventType.TAP_OPENED, EventType.TAP_CLOSED):
            raise ValueError(f"not a tap event type: {self.type}")
        _text(self.moderator, "moderator")
        _text(self.room, "room")
        _text(self.peer, "peer")
        _ms(self.at_ms, "at_ms")
        if not isinstance(self.publishers, tuple) or len(self.publishers) > 64:
            raise ValueError("publishers must be a list of at most 64 user ids")
        for user in self.publishers:
            _text(user, "publishers[]")
        if self.opened_at_ms is not None:
            _ms(self.opened_at_ms, "opened_at_ms")

    def data(self) -> dict[str, Any]:
        return {**_without_type(self), "publishers": list(self.publishers)}

    @classmethod
    def from_data(cls, kind: EventType, data: dict[str, Any]) -> TapEvent:
        _known(cls, data, "tap")
        publishers = data.get("publishers", [])
        if not isinstance(publishers, list):
            raise ValueError("publishers must be a list")
        return cls(kind, data.get("moderator"), data.get("room"), data.get("peer"),  # type: ignore[arg-type]
                   data.get("at_ms"), tuple(publishers), data.get("opened_at_ms"))  # type: ignore[arg-type]


_Event = TypeVar("_Event")


def _without_type(event: Any) -> dict[str, Any]:
    """An event dataclass's fields but its type: the entry's ``data``."""
    out = asdict(event)
    del out["type"]
    return out


def _known(cls: type, data: dict[str, Any], label: str) -> None:
    """Refuses ``data`` naming a field ``cls`` does not have."""
    unknown = set(data) - ({f.name for f in fields(cls)} - {"type"})
    if unknown:
        raise ValueError(f"unknown {label} event fields: {sorted(unknown)}")


def _built(cls: type[_Event], kind: EventType, data: dict[str, Any], label: str) -> _Event:
    """``cls(kind, **data)``, or ValueError naming an unknown or a missing field."""
    _known(cls, data, label)
    try:
        return cls(kind, **data)  # type: ignore[call-arg]
    except TypeError as exc:  # a required field missing
        raise ValueError(str(exc)) from None


MODERATION_ACTIONS = ("delete", "pin", "mute", "kick")
"""Show chat moderation acts (signaling/show_moderation.py); audited as ``show.<action>``."""


@dataclass(frozen=True)
class ModerationEvent:
    """One show chat moderation act, as the node that took it saw it (the show's other nodes only
    apply it: one entry per act)."""

    type: EventType
    """``show_moderated``."""
    moderator: str
    """The acting user's id: the real moderator even when hidden (members saw only ``moderator``)."""
    role: str
    """``owner`` (the show's broadcaster) or ``moderator`` (a moderator's token)."""
    hidden: bool
    """The actor was a hidden session (a tap): never in the roster."""
    room: str
    """The show's room."""
    action: str
    """One of :data:`MODERATION_ACTIONS`."""
    user: str
    """Whom it concerns: the viewer muted or removed, or the author of the line deleted or pinned."""
    at_ms: int
    """When it happened, milliseconds since the epoch (the node's clock)."""
    message_id: int | None = None
    """``delete``/``pin``: the show's chat line id."""
    text: str = ""
    """``delete``/``pin``: the line as it was (the evidence once it is gone from every screen)."""
    until: int | None = None
    """``mute``/``kick``: unix seconds the mute or the cool-down ends."""

    def __post_init__(self) -> None:
        if self.type is not EventType.SHOW_MODERATED:
            raise ValueError(f"not a moderation event type: {self.type}")
        for name in ("moderator", "room", "user"):
            _text(getattr(self, name), name)
        if self.role not in ("owner", "moderator"):
            raise ValueError("role must be owner or moderator")
        if self.action not in MODERATION_ACTIONS:
            raise ValueError(f"action must be one of {MODERATION_ACTIONS}")
        if not isinstance(self.hidden, bool):
            raise ValueError("hidden must be a boolean")
        _ms(self.at_ms, "at_ms")
        for name in ("message_id", "until"):
            value = getattr(self, name)
            if value is not None:
                _ms(value, name)
        if not isinstance(self.text, str) or len(self.text) > MAX_LINE:
            raise ValueError(f"text must be a string of at most {MAX_LINE} characters")
        try:
            self.text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text is not valid unicode") from None
        if "\x00" in self.text:  # Postgres jsonb refuses NUL
            raise ValueError("text holds a NUL character")

    def data(self) -> dict[str, Any]:
        return _without_type(self)

    @classmethod
    def from_data(cls, kind: EventType, data: dict[str, Any]) -> ModerationEvent:
        return _built(cls, kind, data, "moderation")


@dataclass(frozen=True)
class RoomEvent:
    """A fact about a room and its visible participants, for the integrators' webhooks."""

    type: EventType
    """One of :data:`ROOM_TYPES`."""
    id: str
    """The event's unique id (written by the node): the webhook event id, so a replay inserts once."""
    room: str
    """The room (a show's room name)."""
    at_ms: int
    """When it happened, milliseconds since the epoch (the node's clock)."""
    user: str = ""
    """The participant (participant and track events) or the owner (room events)."""
    peer: str = ""
    """The participant's peer id in the room."""
    kind: str = ""
    """``track_published``: ``audio`` or ``video``."""
    reason: str = ""
    """``room_finished`` and ``participant_left``: why (``ended``, ``owner left``, ``left``...)."""

    def __post_init__(self) -> None:
        if self.type not in ROOM_TYPES:
            raise ValueError(f"not a room event type: {self.type}")
        _text(self.id, "id")
        _text(self.room, "room")
        _ms(self.at_ms, "at_ms")
        for name in ("user", "peer", "kind", "reason"):
            value = getattr(self, name)
            if value:
                _text(value, name)
            elif not isinstance(value, str):
                raise ValueError(f"{name} must be a string")

    def data(self) -> dict[str, Any]:
        return _without_type(self)

    @classmethod
    def from_data(cls, kind: EventType, data: dict[str, Any]) -> RoomEvent:
        return _built(cls, kind, data, "room")


@dataclass(frozen=True)
class OtherEvent:
    """An entry of a type this schema does not declare (kept as read; the reader ignores it)."""

    type: str
    """The entry's ``type`` field."""


Event = SocialEvent | TapEvent | RoomEvent | ModerationEvent | OtherEvent


def encode(event: SocialEvent | TapEvent | RoomEvent | ModerationEvent) -> dict[str, str]:
    """The fields of a stream entry (``XADD events * type ... data ...``)."""
    return {"type": str(event.type), "data": json.dumps(event.data(), ensure_ascii=False, separators=(",", ":"))}


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode(entry: dict[Any, Any]) -> Event:
    """A stream entry's fields (bytes or str) back into its event; ValueError (or UnicodeDecodeError)
    when the entry is malformed."""
    decoded = {_str(k): _str(v) for k, v in entry.items()}
    kind = decoded.get("type", "")
    if not kind:
        raise ValueError("entry has no type")
    try:
        event_type = EventType(kind)
    except ValueError:
        return OtherEvent(kind)
    try:
        data = json.loads(decoded.get("data", "{}"))
    except RecursionError:
        raise ValueError("entry data nested too deep") from None
    if not isinstance(data, dict):
        raise ValueError("entry data is not a JSON object")
    if event_type in (EventType.TAP_OPENED, EventType.TAP_CLOSED):
        return TapEvent.from_data(event_type, data)
    if event_type in ROOM_TYPES:
        return RoomEvent.from_data(event_type, data)
    if event_type is EventType.SHOW_MODERATED:
        return ModerationEvent.from_data(event_type, data)
    return SocialEvent.from_data(event_type, data)
