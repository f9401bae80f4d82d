"""A show as one node holds it (:class:`Show`) and each session in it (:class:`Member`); the book
that runs them is :class:`signaling.shows.ShowBook`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sfu.types import PeerId
from signaling.limits import TokenBucket
from signaling.session import Session
from signaling.show_moderation import ChatLines
from switchboard.ids import NodeId, RoomId, SessionId, UserId


@dataclass
class Member:
    """One session in one show."""

    session: Session
    peer_id: PeerId
    hidden: bool
    """A moderator tap: invisible to everyone else."""
    trace: str | None = None
    """The traceparent of its ``show.join`` span (tracing on): parent of its media steps' spans."""
    joined_ns: int = field(default_factory=time.time_ns)
    """When it joined: join-to-first-frame runs from here to the first packet forwarded to it."""


@dataclass
class Show:
    """One show: its owner (the broadcaster) and its members by session."""

    room: RoomId
    owner: UserId
    host: SessionId
    """The owner's session that created the show: its one publisher; the show ends when it leaves."""
    members: dict[SessionId, Member] = field(default_factory=dict)
    chat: dict[UserId, TokenBucket] = field(default_factory=dict)
    apart: dict[UserId, set[UserId]] = field(default_factory=dict)
    """User -> the members with a block either way with them (symmetric): kept out of each other's
    roster and chat."""
    lines: ChatLines = field(default_factory=ChatLines)
    """Recent chat lines (ids, for delete and pin), the pinned one, mutes and kicks in this show."""
    show_id: str = ""
    """This show session's id (a paid show's tickets name it)."""
    started_ms: int = 0
    paid: bool = False
    """Viewers need this session's ticket (the room's price when the show started was above 0)."""
    origin: NodeId | None = None
    """An edge's copy of a show: the node it is pulled from (None: this node is the show's origin)."""
    remote: list[UserId] = field(default_factory=list)
    """The visible members' users on the show's other nodes (read from Redis at each roster change)."""

    def roster(self, viewer: UserId | None = None) -> dict[str, Any]:
        """The roster as ``viewer`` may see it (without the people a block keeps apart from them)."""
        hide = self.apart.get(viewer, set()) if viewer is not None else set()
        users = list(dict.fromkeys([m.session.user_id for m in self.members.values()
                                    if not m.hidden and m.session.user_id not in hide]
                                   + [u for u in self.remote if u not in hide]))
        viewers = {u for u in users if u != self.owner}
        return {"room": self.room, "owner": self.owner, "roster": users, "viewers": len(viewers)}

    def users(self) -> set[UserId]:
        """The visible members' users (on every node of the show)."""
        return {m.session.user_id for m in self.members.values() if not m.hidden} | set(self.remote)

    def keep_apart(self, user: UserId, others: set[UserId]) -> None:
        for other in others:
            self.apart.setdefault(user, set()).add(other)
            self.apart.setdefault(other, set()).add(user)

    def forget(self, user: UserId) -> None:
        """``user`` has no session left in the show: its blocks are read again if it comes back."""
        for other in self.apart.pop(user, set()):
            peers = self.apart.get(other)
            if peers is not None:
                peers.discard(user)
                if not peers:
                    del self.apart[other]
