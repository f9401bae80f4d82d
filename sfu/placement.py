"""Where a room lives in a :class:`sfu.pool.WorkerPool`, and its stats over every worker it spans."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from sfu.types import PeerId, ProducerStats, RoomStats
from switchboard.ids import RoomId

if TYPE_CHECKING:
    from sfu.worker_handle import WorkerHandle


def room_stats_from(data: dict[str, Any]) -> RoomStats:
    """A worker's ``room_stats`` answer (msgpack of the dataclass) back into a RoomStats."""
    producers = tuple(ProducerStats(**p) for p in data.pop("producers"))
    return RoomStats(producers=producers, **data)


def merged_stats(room_id: RoomId, parts: list[RoomStats]) -> RoomStats:
    """One room over its workers (home first): publishers from the home, viewers and consumers summed."""
    home = parts[0]
    consumers: dict[str, int] = {}
    for part in parts:
        for p in part.producers:
            consumers[p.producer_id] = consumers.get(p.producer_id, 0) + p.consumers
    producers = tuple(dataclasses.replace(p, consumers=consumers[p.producer_id]) for p in home.producers)
    return RoomStats(room_id=room_id, publishers=home.publishers, viewers=sum(p.viewers for p in parts),
                     producers=producers, packets_forwarded=sum(p.packets_forwarded for p in parts))


class RoomPlacement:
    """Where one room lives: its home worker (publishers), the workers piped from it, each peer's worker."""

    def __init__(self, home: WorkerHandle) -> None:
        self.home = home
        self.pipes: dict[WorkerHandle, str] = {}
        """Workers the room is piped into, with the pipe's id."""
        self.peers: dict[PeerId, tuple[WorkerHandle, bool]] = {}
        """Each peer's worker, and whether it is a viewer (subscriber)."""

    def hosts(self) -> list[WorkerHandle]:
        return [self.home, *self.pipes]

    def viewers_on(self, w: WorkerHandle) -> int:
        return sum(1 for h, viewer in self.peers.values() if h is w and viewer)
