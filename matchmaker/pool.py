"""The candidate pool as columns of numpy arrays, one row per queued ticket, kept up to date
incrementally (a round adds the new tickets and drops the paired or gone ones, never rebuilds).

Pure in-memory state: no I/O, so scoring is tested on pools built from tickets directly.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from matchmaker.ticket import Ticket

EARTH_KM = 6371.0
COUNTRIES = 26 * 26
"""Country codes index a fixed table: ``(c0 - 'A') * 26 + (c1 - 'A')``."""


def country_index(code: str) -> int:
    return (ord(code[0]) - 65) * 26 + (ord(code[1]) - 65)


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """Point on the unit sphere: the dot product of two is the cosine of their central angle."""
    la, lo = math.radians(lat), math.radians(lon)
    return (math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la))


def cos_of_km(km: float) -> float:
    """The dot-product threshold for "within ``km``" (no arccos per pair: compare cosines)."""
    return math.cos(min(km, math.pi * EARTH_KM) / EARTH_KM)


@dataclass
class Columns:
    """Arrays of equal length (the capacity); ``live`` marks the rows in use."""

    live: np.ndarray
    enq_us: np.ndarray
    shard: np.ndarray
    country: np.ndarray
    any_country: np.ndarray
    want: np.ndarray
    age: np.ndarray
    age_min: np.ndarray
    age_max: np.ndarray
    xyz: np.ndarray
    has_loc: np.ndarray
    cos_max: np.ndarray
    need_loc: np.ndarray
    tags: np.ndarray
    req: np.ndarray

    @classmethod
    def empty(cls, n: int, words: int) -> Columns:
        return cls(
            live=np.zeros(n, bool), enq_us=np.zeros(n, np.float64), shard=np.zeros(n, np.uint32),
            country=np.zeros(n, np.int32), any_country=np.ones(n, bool), want=np.zeros((n, COUNTRIES), bool),
            age=np.zeros(n, np.int16), age_min=np.zeros(n, np.int16), age_max=np.zeros(n, np.int16),
            xyz=np.zeros((n, 3), np.float32), has_loc=np.zeros(n, bool), cos_max=np.full(n, -2.0, np.float32),
            need_loc=np.zeros(n, bool), tags=np.zeros((n, words), np.uint64), req=np.zeros((n, words), np.uint64),
        )

    def take(self, rows: np.ndarray) -> Columns:
        """The given rows only (a copy): rounds score gathered heads against gathered candidates."""
        return Columns(**{name: array[rows] for name, array in vars(self).items()})

    def grown(self, n: int, words: int) -> Columns:
        bigger = Columns.empty(n, words)
        old = len(self.live)
        for name, array in vars(self).items():
            target = getattr(bigger, name)
            if array.ndim == 2 and name in ("tags", "req"):
                target[:old, : array.shape[1]] = array
            else:
                target[:old] = array
        return bigger


class Pool:
    """Queued tickets by user id, with their row in :class:`Columns`."""

    def __init__(self, capacity: int = 1024) -> None:
        self.cols = Columns.empty(capacity, 1)
        self.tickets: list[Ticket | None] = [None] * capacity
        self.rows: dict[str, int] = {}
        self._free = list(range(capacity - 1, -1, -1))
        self._tag_bits: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, user_id: str) -> bool:
        return user_id in self.rows

    def enqueued_us(self, user_id: str) -> float:
        return float(self.cols.enq_us[self.rows[user_id]])

    def _bits(self, tags: frozenset[str]) -> np.ndarray:
        for tag in tags:
            self._tag_bits.setdefault(tag, len(self._tag_bits))
        words = (len(self._tag_bits) + 63) // 64 or 1
        if words > self.cols.tags.shape[1]:
            self.cols = self.cols.grown(len(self.cols.live), words)
        out = np.zeros(self.cols.tags.shape[1], np.uint64)
        for tag in tags:
            bit = self._tag_bits[tag]
            out[bit // 64] |= np.uint64(1 << (bit % 64))
        return out

    def add(self, ticket: Ticket, enqueued_us: float) -> int:
        """Adds (or replaces) the user's ticket; returns its row."""
        self.remove(ticket.user_id)
        if not self._free:
            old = len(self.cols.live)
            self.cols = self.cols.grown(old * 2, self.cols.tags.shape[1])
            self.tickets.extend([None] * old)
            self._free = list(range(old * 2 - 1, old - 1, -1))
        tags, req = self._bits(ticket.tags), self._bits(ticket.filters.tags)
        row = self._free.pop()
        c, f = self.cols, ticket.filters
        c.live[row] = True
        c.enq_us[row] = enqueued_us
        c.shard[row] = zlib.crc32(ticket.user_id.encode())
        c.country[row] = country_index(ticket.country)
        c.any_country[row] = not f.countries
        c.want[row] = False
        for code in f.countries:
            c.want[row, country_index(code)] = True
        c.age[row], c.age_min[row], c.age_max[row] = ticket.age, f.age_min, f.age_max
        c.has_loc[row] = ticket.has_location
        c.xyz[row] = unit_vector(ticket.lat, ticket.lon) if ticket.lat is not None and ticket.lon is not None else 0
        c.need_loc[row] = f.max_km is not None
        c.cos_max[row] = cos_of_km(f.max_km) if f.max_km is not None else -2.0
        c.tags[row], c.req[row] = tags, req
        self.tickets[row] = ticket
        self.rows[ticket.user_id] = row
        return row

    def remove(self, user_id: str) -> None:
        row = self.rows.pop(user_id, None)
        if row is None:
            return
        self.cols.live[row] = False
        self.tickets[row] = None
        self._free.append(row)

    def discard(self, ticket: Ticket) -> None:
        """Removes this very ticket; a newer ticket of the same user (a re-join) stays."""
        row = self.rows.get(ticket.user_id)
        if row is not None and self.tickets[row] is ticket:
            self.remove(ticket.user_id)

    def live_rows_all(self) -> np.ndarray:
        return np.flatnonzero(self.cols.live)

    def user(self, row: int) -> str:
        ticket = self.tickets[row]
        assert ticket is not None
        return ticket.user_id
