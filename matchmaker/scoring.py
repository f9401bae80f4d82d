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
W_SCARCE = 1.0
"""Divided by how many heads of the round accept the candidate: a partner only this head can take
beats a slightly better one that many others could take."""
WIDE_HEADS = 64
"""Heads left without a partner among the near candidates that are tried against the whole pool per round."""


@dataclass(frozen=True)
class Expansion:
    """Soft preferences by waiting time, like FlexMatch expansions. Hard filters never widen."""

    after_ms: tuple[int, ...] = (0, 50, 100, 150)
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

    @property
    def widens(self) -> bool:
        """Each step at least as wide as the one before: then a pair's limit (at the wider of its
        two steps) is the wider of the two tickets' limits, computed per row, not per pair."""
        gaps, cosines = self.gap_table(), self.cos_table()
        return bool((np.diff(gaps) >= 0).all() and (np.diff(cosines) <= 0).all())


def unit_dot(h: Columns, c: Columns) -> np.ndarray:
    """``K x M`` cosines of the central angles. Written out: a ``K x 3 @ 3 x M`` matmul goes to
    multithreaded BLAS, whose spinning threads compete with Redis for the cores."""
    hx, cx = h.xyz, c.xyz
    return hx[:, 0:1] * cx[:, 0] + hx[:, 1:2] * cx[:, 1] + hx[:, 2:3] * cx[:, 2]


def compatible(h: Columns, c: Columns, h_rows: np.ndarray, c_rows: np.ndarray,
               dot: np.ndarray | None = None) -> np.ndarray:
    """``K x M``: head ``i`` and candidate ``j`` accept each other under every hard filter.
    ``h``/``c`` are gathered columns (``Columns.take``); the row ids only exclude self-pairs.
    ``dot``: :func:`unit_dot` of the two, when the caller has it already."""
    ok = c.live[None, :] & (h_rows[:, None] != c_rows[None, :])
    if not h.any_country.all():
        ok &= h.any_country[:, None] | h.want[:, c.country]
    if not c.any_country.all():
        ok &= c.any_country[None, :] | c.want[:, h.country].T
    ok &= (c.age[None, :] >= h.age_min[:, None]) & (c.age[None, :] <= h.age_max[:, None])
    ok &= (h.age[:, None] >= c.age_min[None, :]) & (h.age[:, None] <= c.age_max[None, :])
    if h.need_loc.any() or c.need_loc.any():
        dot = unit_dot(h, c) if dot is None else dot
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


def soft_ok(h: Columns, c: Columns, steps: np.ndarray | int, expansion: Expansion,
            dot: np.ndarray | None = None) -> np.ndarray:
    """``K x M``: the pair meets the soft preferences at its step (age gap; distance when located)."""
    gap = expansion.gap_table()[steps]
    cos_limit = expansion.cos_table()[steps]
    return _soft(h, c, gap, cos_limit, dot)


def _soft(h: Columns, c: Columns, gap: np.ndarray, cos_limit: np.ndarray, dot: np.ndarray | None) -> np.ndarray:
    ok = np.abs(h.age[:, None] - c.age[None, :]) <= gap
    located = h.has_loc[:, None] & c.has_loc[None, :]
    ok &= ~located | ((unit_dot(h, c) if dot is None else dot) >= cos_limit)
    return ok


def soft_ok_by_rows(h: Columns, c: Columns, sh: np.ndarray, sc: np.ndarray, expansion: Expansion,
                    dot: np.ndarray | None = None) -> np.ndarray:
    """:func:`soft_ok` at each pair's step ``max(sh[i], sc[j])``, from per-row steps (no ``K x M``
    step matrix or table lookups when the expansion only ever widens)."""
    if not expansion.widens:
        return soft_ok(h, c, np.maximum(sh[:, None], sc[None, :]), expansion, dot)
    gaps, cosines = expansion.gap_table(), expansion.cos_table()
    gap = np.maximum(gaps[sh][:, None], gaps[sc][None, :])
    cos_limit = np.minimum(cosines[sh][:, None], cosines[sc][None, :])
    return _soft(h, c, gap, cos_limit, dot)


def score(h: Columns, c: Columns, now_us: float, dot: np.ndarray | None = None) -> np.ndarray:
    """``K x M`` desirability of candidate ``j`` for head ``i`` (higher is better)."""
    wait = np.minimum((now_us - c.enq_us) / 1000.0 / WAIT_SCALE_MS, 1.0).astype(np.float32)
    out = np.broadcast_to(W_WAIT * wait, (len(h.live), len(c.live))).copy()
    if h.tags.any() and c.tags.any():
        shared = np.zeros(out.shape, np.uint8)
        for w in range(c.tags.shape[1]):
            shared += np.bitwise_count(h.tags[:, w][:, None] & c.tags[None, :, w])
        out += np.float32(W_TAG) * np.minimum(shared, MAX_SHARED_TAGS)
    located = h.has_loc[:, None] & c.has_loc[None, :]
    closeness = np.float32(W_DISTANCE / 2) * ((unit_dot(h, c) if dot is None else dot) + np.float32(1.0))
    out += np.where(located, closeness, np.float32(0))
    out += np.float32(W_COUNTRY) * (h.country[:, None] == c.country[None, :])
    return out


def pick_pairs(allowed: np.ndarray, scores: np.ndarray, heads: np.ndarray,
               self_cols: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Greedy, oldest head first: each head takes its best allowed column not taken yet.
    ``heads[i]`` names row ``i``'s own column when heads are also candidates (square case);
    ``self_cols[i]`` does so otherwise (-1: not a candidate). Returns disjoint ``(head, column)``."""
    masked = np.where(allowed, scores, np.float32(-np.inf)).astype(np.float32, copy=False)
    own = heads if self_cols is None else self_cols
    done = np.zeros(len(heads), bool)
    column_owner = {int(col): i for i, col in enumerate(own) if col >= 0}
    pairs: list[tuple[int, int]] = []
    for i, head in enumerate(heads):
        if done[i]:
            continue
        row = masked[i]
        j = int(row.argmax())
        if row[j] == -np.inf:
            continue
        masked[:, j] = -np.inf  # a taken column is out for every later head (K writes, not M)
        if own[i] >= 0:
            masked[:, own[i]] = -np.inf
        owner = column_owner.get(j)
        if owner is not None:
            done[owner] = True
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


@dataclass
class _Scored:
    """One pass: heads ``todo`` against ``cands``, as ``K x M`` arrays."""

    allowed: np.ndarray
    scores: np.ndarray
    h: Columns
    c: Columns
    sh: np.ndarray
    sc: np.ndarray
    """Expansion step of each head and each candidate (a pair's step is the larger)."""


def _scored(cols: Columns, heads: np.ndarray, cands: np.ndarray, now_us: float, expansion: Expansion,
            excluded: Mapping[int, Iterable[int]]) -> _Scored:
    h, c = cols.take(heads), cols.take(cands)
    dot = unit_dot(h, c)  # shared by the distance filter, the soft distance and the score
    allowed = compatible(h, c, heads, cands, dot)
    sh = expansion.steps((now_us - h.enq_us) / 1000.0)
    sc = expansion.steps((now_us - c.enq_us) / 1000.0)
    allowed &= soft_ok_by_rows(h, c, sh, sc, expansion, dot)
    if excluded:
        position = {int(r): j for j, r in enumerate(cands)}
        for i, h_row in enumerate(heads):
            for row in excluded.get(int(h_row), ()):
                if row in position:
                    allowed[i, position[row]] = False
    scores = score(h, c, now_us, dot)
    # A candidate few heads can take comes first: whoever can take it does, before it is left alone.
    fits = allowed.sum(axis=0, dtype=np.int32)
    scores += (np.float32(W_SCARCE) / np.maximum(fits, 1).astype(np.float32))[None, :]
    return _Scored(allowed, scores, h, c, sh, sc)


def plan_round(
    cols: Columns,
    heads: np.ndarray,
    now_us: float,
    expansion: Expansion,
    near: np.ndarray | None = None,
    everyone: np.ndarray | None = None,
    excluded: Mapping[int, Iterable[int]] | None = None,
    wide_heads: int = WIDE_HEADS,
) -> Plan:
    """Chooses disjoint pairs for ``heads`` (rows, oldest first).

    Pass 1 scores every head against ``near`` (the oldest rows of this process's shard: few lost
    claims, small arrays); heads left without a partner are tried against ``everyone`` (all live
    rows) in pass 2, at most ``wide_heads`` of them, oldest first (pass 2 costs ``K x N``; the
    others stay heads for the next round). ``excluded`` maps a head row to rows it must not get
    (refused before)."""
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
        scored = _scored(cols, todo, cands, now_us, expansion, excluded)
        fits_someone = np.asarray(scored.allowed.any(axis=1))  # before this round's choices take partners away
        allowed = scored.allowed & ~taken[cands][None, :]
        found = pick_pairs(allowed, scored.scores, np.arange(len(todo)), self_cols=_positions(todo, cands))
        matched = set()
        if found:
            fi, fj = np.array(found, np.int64).T
            # Did the pair need its widened step? Step-0 preferences, for the chosen pairs only.
            narrow = soft_ok(scored.h.take(fi), scored.c.take(fj), 0, expansion).diagonal()
            needed = np.where(narrow, 0, np.maximum(scored.sh[fi], scored.sc[fj]))
        for k, (i, j) in enumerate(found):
            head_row, row = int(todo[i]), int(cands[j])
            taken[head_row] = taken[row] = True
            pairs.append((head_row, row))
            matched.add(i)
            widened.append(int(needed[k]))
        rest = [i for i in range(len(todo)) if i not in matched and not taken[todo[i]]]
        if cands is passes[-1]:
            lonely = [int(todo[i]) for i in rest if not fits_someone[i]]
        todo = todo[rest][:wide_heads]
    return Plan(tuple(pairs), tuple(widened), tuple(lonely))


def cols_live(cols: Columns) -> np.ndarray:
    return np.flatnonzero(cols.live)


def _positions(heads: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """For each head, its column among the candidates, or -1."""
    position = {int(r): j for j, r in enumerate(cands)}
    return np.array([position.get(int(r), -1) for r in heads], np.int64)
