"""DAU/WAU/MAU from seeded events (one row per user and day, whatever the number of events), the
finished days kept as rollups, and the console's counters."""

from __future__ import annotations

import uuid
from datetime import timedelta

from control_api import stats
from control_api.models import ActivityRollup
from tests.control_api.conftest import Api
from tests.control_api.moderation import make_staff, services


async def test_dau_wau_mau_from_seeded_events(api: Api) -> None:
    day = stats.today() - timedelta(days=400)  # a quiet past of its own: no other test writes there
    users = [uuid.uuid4() for _ in range(6)]
    seeded = {  # days before `day` -> who was active, with which events
        0: [(users[0], "login"), (users[0], "message"), (users[0], "message"), (users[1], "match")],
        3: [(users[2], "like"), (users[0], "report")],
        6: [(users[3], "register")],
        7: [(users[4], "login")],  # outside the week, inside the month
        29: [(users[5], "match")],
        30: [(uuid.uuid4(), "login")],  # outside the month
    }
    async with services(api).sessions() as session, session.begin():
        for back, events in seeded.items():
            for user, kind in events:
                await stats.track(session, user, kind, day - timedelta(days=back))
    async with services(api).sessions() as session, session.begin():
        figures = await stats.active_users(session, day)
    assert figures == {"dau": 2, "wau": 4, "mau": 6}
    async with services(api).sessions() as session:
        kept = await session.get(ActivityRollup, day)
        assert kept is not None and (kept.dau, kept.wau, kept.mau) == (2, 4, 6)
    # Kept means read, not counted again: a late event for a finished day does not move it.
    async with services(api).sessions() as session, session.begin():
        await stats.track(session, uuid.uuid4(), "login", day)
        assert await stats.active_users(session, day) == {"dau": 2, "wau": 4, "mau": 6}


async def test_console_counters_through_the_api(api: Api) -> None:
    ann, bob, mod = await api.user(), await api.user(), await make_staff(api, await api.user())
    status, before = await api.call("GET", "/moderation/stats", mod)
    assert status == 200, before
    assert before["active_users"]["dau"] >= 3  # registered and logged in today
    _, report = await api.call("POST", "/reports", ann, json={"user_id": bob.id, "reason": "other"})
    await api.call("POST", f"/moderation/reports/{report['id']}/claim", mod)
    await api.call("POST", f"/moderation/reports/{report['id']}/action", mod,
                   json={"sanction": {"kind": "mute", "duration": "1h"}})
    _, after = await api.call("GET", "/moderation/stats", mod)
    assert after["reports"]["today"] == before["reports"]["today"] + 1
    assert after["sanctions_active"]["mute"] == before["sanctions_active"]["mute"] + 1
    assert after["actions_today"][mod.id] == 3  # claimed, actioned, the mute
    assert (await api.call("GET", "/moderation/stats", ann))[0] == 403
    assert (await api.call("GET", "/moderation/stats?day=someday", mod))[0] == 422


async def test_a_match_from_the_events_stream_counts_both_users_once(api: Api) -> None:
    from sqlalchemy import select

    from control_api.app import EVENTS
    from control_api.models import Activity

    consumer = api.app._subapps[0][EVENTS]  # type: ignore[attr-defined]
    a, b = uuid.uuid4(), uuid.uuid4()
    fields = {b"type": b"match.paired", b"session_id": b"ses_x", b"a": str(a).encode(), b"b": str(b).encode(),
              b"at_us": b"1"}
    assert await consumer.handle("99-1", fields) is True
    assert await consumer.handle("99-1", fields) is False  # a replay changes nothing
    async with services(api).sessions() as session:
        rows = list(await session.scalars(select(Activity).where(Activity.account_id.in_([a, b]))))
    assert sorted(r.account_id for r in rows) == sorted([a, b])
    assert all(r.kinds == stats.EVENT_BITS["match"] and r.day == stats.today() for r in rows)


async def test_todays_figures_come_from_counters_not_the_raw_rows(api: Api) -> None:
    """Today's DAU/WAU/MAU are exact (they equal a distinct count of the raw rows) and the console
    reads no raw row to answer them: no statement of ``GET /moderation/stats`` names ``activity_days``,
    and today's raw rows deleted after tracking change nothing."""
    from sqlalchemy import event, func, select, text

    from control_api.models import Activity

    mod = await make_staff(api, await api.user())
    status, base = await api.call("GET", "/moderation/stats", mod)
    assert status == 200, base
    now = stats.today()
    users = [uuid.uuid4() for _ in range(9)]
    seeded = [  # (user, days back, kind), in the order the events arrive
        (users[0], 0, "login"), (users[0], 0, "message"), (users[0], 0, "message"),
        (users[1], 0, "match"), (users[1], 3, "like"),  # a late event of an earlier day: still today's
        (users[2], 5, "report"), (users[3], 10, "login"), (users[4], 29, "match"),
        (users[5], 30, "login"),  # outside the month
        (users[6], 40, "login"), (users[6], 0, "like"),  # back after more than a month
        (users[7], 3, "message"), (users[7], 0, "message"),  # back within the week: counted once
        (users[8], 8, "login"), (users[8], 2, "login"),  # twice in the month, not today
    ]
    for user, back, kind in seeded:
        async with services(api).sessions() as session, session.begin():
            await stats.track(session, user, kind, now - timedelta(days=back))
    status, seen = await api.call("GET", "/moderation/stats", mod)
    assert status == 200, seen
    got = {k: seen["active_users"][k] - base["active_users"][k] for k in ("dau", "wau", "mau")}
    assert got == {"dau": 4, "wau": 6, "mau": 8}, got
    async with services(api).sessions() as session:  # exact: the raw rows say the same
        for name, days in stats.WINDOWS.items():
            raw = await session.scalar(select(func.count(func.distinct(Activity.account_id))).where(
                Activity.day > now - timedelta(days=days), Activity.day <= now))
            assert raw == seen["active_users"][name], name

    engine = services(api).sessions.kw["bind"].sync_engine
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        status, again = await api.call("GET", "/moderation/stats", mod)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert status == 200 and again["active_users"] == seen["active_users"]
    assert statements and not [s for s in statements if "activity_days" in s], statements
    async with services(api).sessions() as session, session.begin():
        await session.execute(text("DELETE FROM activity_days WHERE day = :day"), {"day": now})
    status, after = await api.call("GET", "/moderation/stats", mod)
    assert status == 200 and after["active_users"] == seen["active_users"]


async def test_concurrent_first_events_keep_the_counters_exact(api: Api) -> None:
    """Many transactions at once, single users and pairs (a match's two), moving users from earlier
    days to today: none deadlocks and today's counters equal the raw distinct counts."""
    import asyncio

    from sqlalchemy import func, select

    from control_api.models import Activity

    now = stats.today()
    users = [uuid.UUID(int=(i << 64) | (i % 3)) for i in range(1, 33)]  # three shards only: rows shared
    for i, user in enumerate(users[:16]):
        async with services(api).sessions() as session, session.begin():
            await stats.track(session, user, "login", now - timedelta(days=i % 9))

    async def tracked(batch: list[uuid.UUID]) -> None:
        async with services(api).sessions() as session, session.begin():
            await stats.track_all(session, batch, "match")

    await asyncio.gather(*(tracked([users[i], users[(i * 7 + 3) % 32]]) for i in range(32)),
                         *(tracked([user]) for user in users[::3]))
    async with services(api).sessions() as session, session.begin():
        figures = await stats.active_users(session, now)
        for name, days in stats.WINDOWS.items():
            raw = await session.scalar(select(func.count(func.distinct(Activity.account_id))).where(
                Activity.day > now - timedelta(days=days), Activity.day <= now))
            assert figures[name] == raw, (name, figures)
