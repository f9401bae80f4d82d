"""Pure functions of a pool: hard compatibility (both ways), soft preferences with expansion,
scores, and the greedy choice of disjoint pairs for the oldest tickets. No I/O.

A round scores a window of ``K`` head rows (the oldest tickets) against every row of the pool,
as ``K x N`` arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from matchmaker.pool import Columns, cos_of_km

W_WAIT = 1.0
"""Weight of the candidate's wait (0..1 over ``WAIT_SCALE_MS``): older candidates first."""
WAIT_SCALE_MS = 10_000.0
W_TAG = 0.25
"""Per shared interest tag, up to ``MAX_SHARED_TAGS``."""
MAX_SHARED_TAGS = 4
W_DISTANCE = 0.5
"""Times closeness (1 at the same place, 0 at the antipode) when both gave a location."""
W_COUNTRY = 0.3
"""Same country."""


@dataclass(frozen=True)
class Expansion:
    """Soft preferences by waiting time, like FlexMatch expansions. Hard filters never widen."""

    after_ms: tuple[int, ...] = (0, 250, 1000, 3000)
    """Step ``i`` applies from this wait on; the first is 0."""
    age_gap_years: tuple[int, ...] = (5, 10, 20, 0)
    """Largest age difference accepted at each step; 0 means no limit."""
    distance_km: tuple[int, ...] = (500, 2000, 5000, 0)
    """Largest distance accepted at each step when both gave a location; 0 means no limit."""

    def __post_init__(self) -> None:
        if not (len(self.after_ms) == len(self.age_gap_years) == len(self.distance_km)) or self.after_ms[0] != 0:
            raise ValueError("expansion steps must line up and start at 0 ms")

    def steps(self, wait_ms: np.ndarray) -> np.ndarray:
        """The step each wait has reached."""
        return np.searchsorted(np.asarray(self.after_ms, np.float64), wait_ms, side="right") - 1

    def gap_table(self) -> np.ndarray:
        return np.array([g if g > 0 else 1_000 for g in self.age_gap_years], np.int16)

    def cos_table(self) -> np.ndarray:
        return np.array([cos_of_km(d) if d > 0 else -2.0 for d in self.distance_km], np.float32)


def compatible(h: Columns, c: Columns, h_rows: np.ndarray, c_rows: np.ndarray) -> np.ndarray:
    """``K x M``: head ``i`` and candidate ``j`` accept each other under every hard filter.
    ``h``/``c`` are gathered columns (``Columns.take``); the row ids only exclude self-pairs."""
    ok = c.live[None, :] & (h_rows[:, None] != c_rows[None, :])
    if not h.any_country.all():
        ok &= h.any_country[:, None] | h.want[:, c.country]
    if not c.any_country.all():
        ok &= c.any_country[None, :] | c.want[:, h.country].T
    ok &= (c.age[None, :] >= h.age_min[:, None]) & (c.age[None, :] <= h.age_max[:, None])
    ok &= (h.age[:, None] >= c.age_min[None, :]) & (h.age[:, None] <= c.age_max[None, :])
    if h.need_loc.any() or c.need_loc.any():
        dot = h.xyz @ c.xyz.T
        located = h.has_loc[:, None] & c.has_loc[None, :]
        limit = np.maximum(h.cos_max[:, None], c.cos_max[None, :])
        needed = h.need_loc[:, None] | c.need_loc[None, :]
        ok &= ~needed | (located & (dot >= limit))
    for w in range(c.tags.shape[1]):
        rh, rc = h.req[:, w], c.req[:, w]
        if rh.any():
            ok &= (c.tags[None, :, w] & rh[:, None]) == rh[:, None]
        if rc.any():
            ok &= (h.tags[:, w][:, None] & rc[None, :]) == rc[None, :]
    return ok


def pair_steps(h: Columns, c: Columns, now_us: float, expansion: Expansion) -> np.ndarray:
    """``K x M`` expansion step of each pair: the wider of the two tickets' steps."""
    sh = expansion.steps((now_us - h.enq_us) / 1000.0)
    sc = expansion.steps((now_us - c.enq_us) / 1000.0)
    return np.maximum(sh[:, None], sc[None, :])


def soft_ok(h: Columns, c: Columns, steps: np.ndarray | int, expansion: Expansion) -> np.ndarray:
    """``K x M``: the pair meets the soft preferences at its step (age gap; distance when located)."""
    gap = expansion.gap_table()[steps]
    ok = np.abs(h.age[:, None] - c.age[None, :]) <= gap
    cos_limit = expansion.cos_table()[steps]
    located = h.has_loc[:, None] & c.has_loc[None, :]
    ok &= ~located | ((h.xyz @ c.xyz.T) >= cos_limit)
    return ok


def score(h: Columns, c: Columns, now_us: float) -> np.ndarray:
    """``K x M`` desirability of candidate ``j`` for head ``i`` (higher is better)."""
    wait = np.minimum((now_us - c.enq_us) / 1000.0 / WAIT_SCALE_MS, 1.0).astype(np.float32)
    out = np.broadcast_to(W_WAIT * wait, (len(h.live), len(c.live))).copy()
    if h.tags.any() and c.tags.any():
        shared = np.zeros(out.shape, np.uint8)
        for w in range(c.tags.shape[1]):
            shared += np.bitwise_count(h.tags[:, w][:, None] & c.tags[None, :, w])
        out += np.float32(W_TAG) * np.minimum(shared, MAX_SHARED_TAGS)
    located = h.has_loc[:, None] & c.has_loc[None, :]
    out += np.where(located, np.float32(W_DISTANCE / 2) * (h.xyz @ c.xyz.T + 1.0), np.float32(0))
    out += np.float32(W_COUNTRY) * (h.country[:, None] == c.country[None, :])
    return out


def pick_pairs(allowed: np.ndarray, scores: np.ndarray, heads: np.ndarray,
               self_cols: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Greedy, oldest head first: each head takes its best allowed column not taken yet.
    ``heads[i]`` names row ``i``'s own column when heads are also candidates (square case);
    ``self_cols[i]`` does so otherwise (-1: not a candidate). Returns disjoint ``(head, column)``."""
    masked = np.where(allowed, scores, -np.inf)
    taken = np.zeros(allowed.shape[1], bool)
    own = heads if self_cols is None else self_cols
    done = np.zeros(len(heads), bool)
    column_owner = {int(col): i for i, col in enumerate(own) if col >= 0}
    pairs: list[tuple[int, int]] = []
    for i, head in enumerate(heads):
        if done[i] or (own[i] >= 0 and taken[own[i]]):
            continue
        row = np.where(taken, -np.inf, masked[i])
        j = int(np.argmax(row))
        if row[j] == -np.inf:
            continue
        taken[j] = True
        if own[i] >= 0:
            taken[own[i]] = True
        if j in column_owner:
            done[column_owner[j]] = True
        done[i] = True
        pairs.append((int(head), j))
    return pairs


@dataclass(frozen=True)
class Plan:
    """One round's proposal: disjoint pairs, and for each the expansion step that allowed it."""

    pairs: tuple[tuple[int, int], ...]
    widened: tuple[int, ...]
    """Per pair: 0 when step-0 preferences held, else the step that was needed."""
    lonely: tuple[int, ...] = ()
    """Heads with no acceptable partner in the whole pool (the caller parks them for a while)."""


def _allowed(cols: Columns, heads: np.ndarray, cands: np.ndarray, now_us: float, expansion: Expansion,
             excluded: Mapping[int, Iterable[int]]) -> tuple[np.ndarray, np.ndarray, Columns, Columns]:
    h, c = cols.take(heads), cols.take(cands)
    allowed = compatible(h, c, heads, cands)
    steps = pair_steps(h, c, now_us, expansion)
    allowed &= soft_ok(h, c, steps, expansion)
    if excluded:
        position = {int(r): j for j, r in enumerate(cands)}
        for i, h_row in enumerate(heads):
            for row in excluded.get(int(h_row), ()):
                if row in position:
                    allowed[i, position[row]] = False
    return allowed, steps, h, c


def plan_round(
    cols: Columns,
    heads: np.ndarray,
    now_us: float,
    expansion: Expansion,
    near: np.ndarray | None = None,
    everyone: np.ndarray | None = None,
    excluded: Mapping[int, Iterable[int]] | None = None,
) -> Plan:
    """Chooses disjoint pairs for ``heads`` (rows, oldest first).

    Pass 1 scores every head against ``near`` (the oldest rows of this process's shard: few lost
    claims, small arrays); heads left without a partner are tried against ``everyone`` (all live
    rows) in pass 2. ``excluded`` maps a head row to rows it must not get (refused before)."""
    if len(heads) == 0:
        return Plan((), ())
    everyone = cols_live(cols) if everyone is None else everyone
    near = everyone if near is None else near
    excluded = excluded or {}
    taken = np.zeros(len(cols.live), bool)
    pairs: list[tuple[int, int]] = []
    widened: list[int] = []
    lonely: list[int] = []
    todo = heads
    passes = [everyone] if near is everyone or len(near) == len(everyone) else [near, everyone]
    for cands in passes:
        if len(todo) == 0 or len(cands) == 0:
            break
        allowed, steps, h, c = _allowed(cols, todo, cands, now_us, expansion, excluded)
        allowed &= ~taken[cands][None, :]
        found = pick_pairs(allowed, score(h, c, now_us), np.arange(len(todo)), self_cols=_positions(todo, cands))
        matched = set()
        for i, j in found:
            head_row, row = int(todo[i]), int(cands[j])
            taken[head_row] = taken[row] = True
            pairs.append((head_row, row))
            matched.add(i)
            step = int(steps[i, j])
            if step and not soft_ok(h.take(np.array([i])), c.take(np.array([j])), 0, expansion)[0, 0]:
                widened.append(step)
            else:
                widened.append(0)
        rest = [i for i in range(len(todo)) if i not in matched and not taken[todo[i]]]
        if cands is passes[-1]:
            lonely = [int(todo[i]) for i in rest if not allowed[i].any()]
        todo = todo[rest]
    return Plan(tuple(pairs), tuple(widened), tuple(lonely))


def cols_live(cols: Columns) -> np.ndarray:
    return np.flatnonzero(cols.live)


def _positions(heads: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """For each head, its column among the candidates, or -1."""
    position = {int(r): j for j, r in enumerate(cands)}
    return np.array([position.get(int(r), -1) for r in heads], np.int64)
