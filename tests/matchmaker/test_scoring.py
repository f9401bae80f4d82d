"""Pure tests of compatibility, soft-preference expansion, scores and the greedy pair choice."""

from __future__ import annotations

import numpy as np
import pytest

from matchmaker.pool import Pool
from matchmaker.scoring import Expansion, compatible, pick_pairs, plan_round, score, soft_ok, soft_ok_by_rows
from matchmaker.ticket import parse_ticket
from switchboard.ids import UserId

NOW = 1_000_000_000_000.0
WIDE = Expansion(after_ms=(0,), age_gap_years=(0,), distance_km=(0,))


def make(pool: Pool, uid: str, premium: bool = False, waited_ms: float = 0.0, **payload: object) -> int:
    payload.setdefault("country", "FR")
    payload.setdefault("age", 30)
    ticket, _ = parse_ticket(UserId(uid), premium, payload)
    return pool.add(ticket, NOW - waited_ms * 1000)


def check(pool: Pool, a: int, b: int) -> bool:
    rows_a, rows_b = np.array([a]), np.array([b])
    return bool(compatible(pool.cols.take(rows_a), pool.cols.take(rows_b), rows_a, rows_b)[0, 0])


def ok(pool: Pool, a: int, b: int) -> bool:
    """Compatibility both ways, checked from each side (the function must be symmetric)."""
    one = bool(check(pool, a, b))
    other = bool(check(pool, b, a))
    assert one == other
    return one


def test_country_filter_is_checked_both_ways() -> None:
    pool = Pool()
    fr = make(pool, "fr", filters={"countries": ["FR"]})
    de = make(pool, "de", country="DE")
    fr2 = make(pool, "fr2")
    de_wants_de = make(pool, "dd", country="DE", filters={"countries": ["DE"]})
    assert not ok(pool, fr, de)
    assert ok(pool, fr, fr2)
    assert not ok(pool, fr2, de_wants_de)
    assert ok(pool, de, de_wants_de)


def test_premium_age_range_both_ways() -> None:
    pool = Pool()
    picky = make(pool, "p", premium=True, age=30, filters={"age_min": 25, "age_max": 35})
    young = make(pool, "y", age=20)
    right = make(pool, "r", age=33)
    old_picky = make(pool, "o", premium=True, age=50, filters={"age_min": 45})
    assert not ok(pool, picky, young)
    assert ok(pool, picky, right)
    assert not ok(pool, picky, old_picky)
    assert not ok(pool, right, old_picky)


def test_premium_distance_and_missing_location() -> None:
    pool = Pool()
    paris = make(pool, "paris", premium=True, lat=48.85, lon=2.35, filters={"max_km": 400})
    london = make(pool, "london", country="GB", lat=51.5, lon=-0.12)  # ~344 km
    berlin = make(pool, "berlin", country="DE", lat=52.52, lon=13.4)  # ~880 km
    nowhere = make(pool, "nowhere")
    assert ok(pool, paris, london)
    assert not ok(pool, paris, berlin)
    assert not ok(pool, paris, nowhere)
    assert ok(pool, london, nowhere)


def test_required_tags_both_ways_beyond_64_tags() -> None:
    pool = Pool()
    for i in range(70):  # pushes the tag vocabulary past one 64-bit word
        make(pool, f"filler{i}", tags=[f"t{i}"])
    seeker = make(pool, "s", premium=True, tags=["chess"], filters={"tags": ["t69", "go"]})
    both = make(pool, "both", tags=["t69", "go"])
    one = make(pool, "one", tags=["t69"])
    assert ok(pool, seeker, both)
    assert not ok(pool, seeker, one)


def test_non_premium_filters_do_not_restrict() -> None:
    pool = Pool()
    free = make(pool, "free", premium=False, age=30, filters={"age_min": 60})
    young = make(pool, "young", age=19)
    assert ok(pool, free, young)


def test_self_and_removed_rows_never_match() -> None:
    pool = Pool()
    a = make(pool, "a")
    b = make(pool, "b")
    assert not check(pool, a, a)
    pool.remove("b")
    assert not check(pool, a, b)


def test_expansion_steps_and_soft_widening() -> None:
    exp = Expansion(after_ms=(0, 1000), age_gap_years=(5, 0), distance_km=(100, 0))
    assert list(exp.steps(np.array([0.0, 999.0, 1000.0, 10**6]))) == [0, 0, 1, 1]
    pool = Pool()
    a = make(pool, "a", age=20)
    b = make(pool, "b", age=40)
    assert plan_round(pool.cols, np.array([a]), NOW, exp).pairs == ()
    pool.add(pool.tickets[a], NOW - 2_000_000)  # a has now waited 2 s: its gap is unlimited
    a = pool.rows["a"]
    plan = plan_round(pool.cols, np.array([a]), NOW, exp)
    assert plan.pairs == ((a, b),) and plan.widened == (1,)


def test_hard_filters_never_widen() -> None:
    exp = Expansion(after_ms=(0, 10), age_gap_years=(5, 0), distance_km=(100, 0))
    pool = Pool()
    a = make(pool, "a", premium=True, waited_ms=10**7, age=20, filters={"age_max": 25})
    make(pool, "b", age=40, waited_ms=10**7)
    assert plan_round(pool.cols, np.array([a]), NOW, exp).pairs == ()


def test_score_prefers_older_shared_tags_near_same_country() -> None:
    pool = Pool()
    head = make(pool, "h", tags=["chess", "go"], lat=48.85, lon=2.35)
    plain = make(pool, "plain", country="DE")
    older = make(pool, "older", country="DE", waited_ms=5000)
    tagged = make(pool, "tagged", country="DE", tags=["chess", "go"])
    near = make(pool, "near", country="DE", lat=48.9, lon=2.4)
    same = make(pool, "same")
    s = score(pool.cols.take(np.array([head])), pool.cols, NOW)[0]
    for better in (older, tagged, near, same):
        assert s[better] > s[plain]


def test_pick_pairs_oldest_first_and_disjoint() -> None:
    allowed = np.array([[False, True, True], [True, False, True], [True, True, False]])
    scores = np.array([[0, 1, 5], [1, 0, 2], [9, 9, 0]], dtype=np.float32)
    assert pick_pairs(allowed, scores, np.array([0, 1, 2])) == [(0, 2)]
    order = np.array([2, 0, 1])  # row i of the arrays belongs to heads[i]
    assert pick_pairs(allowed[order], scores[order], order) == [(2, 0)]


@pytest.mark.parametrize("seed", range(5))
def test_plan_pairs_are_disjoint_and_compatible(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool = Pool()
    for i in range(300):
        premium = rng.random() < 0.3
        payload: dict[str, object] = {"country": rng.choice(["FR", "DE", "US"]), "age": int(rng.integers(18, 70)),
                                      "tags": list(rng.choice(["a", "b", "c", "d"], size=2, replace=False))}
        if rng.random() < 0.5:
            payload |= {"lat": float(rng.uniform(-60, 60)), "lon": float(rng.uniform(-180, 180))}
        filters: dict[str, object] = {}
        if rng.random() < 0.3:
            filters["countries"] = [str(rng.choice(["FR", "DE", "US"]))]
        if premium:
            filters |= {"age_min": 18, "age_max": int(rng.integers(30, 80)), "tags": ["a"]}
            if "lat" in payload:
                filters["max_km"] = 8000
        make(pool, f"u{i}", premium=premium, waited_ms=float(rng.uniform(0, 5000)), **payload, filters=filters)
    rows = pool.live_rows_all()
    heads = rows[np.argsort(pool.cols.enq_us[rows])][:64]
    plan = plan_round(pool.cols, heads, NOW, WIDE, near=rows[:100], everyone=rows)
    used = [r for pair in plan.pairs for r in pair]
    assert len(plan.pairs) > 10 and len(used) == len(set(used))
    for a, b in plan.pairs:
        assert ok(pool, a, b)
    for row in plan.lonely:  # nobody in the whole pool would have done
        assert not any(ok(pool, row, other) for other in rows if other not in used and other != row)


def test_lonely_heads_are_reported() -> None:
    pool = Pool()
    a = make(pool, "a", premium=True, age=30, filters={"age_min": 70})
    make(pool, "b", age=30)
    assert plan_round(pool.cols, np.array([a]), NOW, WIDE).lonely == (a,)


@pytest.mark.parametrize("seed", range(3))
def test_per_row_soft_limits_equal_the_per_pair_step_lookup(seed: int) -> None:
    rng = np.random.default_rng(seed)
    exp = Expansion(after_ms=(0, 50, 100, 150), age_gap_years=(3, 8, 20, 0), distance_km=(300, 1000, 5000, 0))
    pool = Pool()
    for i in range(120):
        payload: dict[str, object] = {"age": int(rng.integers(18, 80))}
        if rng.random() < 0.6:
            payload |= {"lat": float(rng.uniform(-60, 60)), "lon": float(rng.uniform(-180, 180))}
        make(pool, f"u{i}", waited_ms=float(rng.uniform(0, 200)), **payload)
    rows = pool.live_rows_all()
    h, c = pool.cols.take(rows[:40]), pool.cols.take(rows)
    sh, sc = exp.steps((NOW - h.enq_us) / 1000.0), exp.steps((NOW - c.enq_us) / 1000.0)
    assert exp.widens
    by_pair = soft_ok(h, c, np.maximum(sh[:, None], sc[None, :]), exp)
    assert (soft_ok_by_rows(h, c, sh, sc, exp) == by_pair).all()
    narrowing = Expansion(after_ms=(0, 50), age_gap_years=(10, 3), distance_km=(0, 0))
    assert not narrowing.widens
    by_pair = soft_ok(h, c, np.maximum(sh[:, None], sc[None, :]).clip(0, 1), narrowing)
    assert (soft_ok_by_rows(h, c, sh.clip(0, 1), sc.clip(0, 1), narrowing) == by_pair).all()


def test_a_partner_only_this_head_can_take_comes_first() -> None:
    """"picky" accepts only "flexible"; "flexible" (oldest, served first) scores "other" higher
    (shared tag, longer wait), but "other" has another taker and "picky" has none: two pairs, not one."""
    pool = Pool()
    flexible = make(pool, "flexible", waited_ms=3000, age=30, tags=["chess"])
    other = make(pool, "other", waited_ms=2000, age=40, tags=["chess"])
    picky = make(pool, "picky", premium=True, waited_ms=1000, age=35, filters={"age_min": 30, "age_max": 30})
    other2 = make(pool, "other2", waited_ms=500, age=50)
    s = score(pool.cols.take(np.array([flexible])), pool.cols, NOW)[0]
    assert s[other] > s[picky]
    plan = plan_round(pool.cols, np.array([flexible, other, picky, other2]), NOW, WIDE)
    assert set(plan.pairs) == {(flexible, picky), (other, other2)}
