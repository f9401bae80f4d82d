"""Roster announcements are paced in big shows: a burst of changes sends the roster once at once and
once more at the end of the interval (the latest roster), not once per change; small shows announce
every change at once."""

from __future__ import annotations

import asyncio

from signaling.roster_pace import RosterPace
from switchboard.ids import RoomId

ROOM, OTHER = RoomId("show-big"), RoomId("show-small")


async def test_a_burst_in_a_big_show_is_merged_into_one_more_announcement() -> None:
    sent: list[RoomId] = []
    merged = asyncio.Event()

    def send(room: RoomId) -> None:
        sent.append(room)
        if sent.count(ROOM) == 2:
            merged.set()

    pace = RosterPace(send, interval_s=0.2, paced_from=32)
    for members in range(40, 140):  # 100 viewers join at once
        pace.announce(ROOM, members)
    assert sent == [ROOM]  # the first at once; the other 99 wait for one announcement
    for members in range(1, 4):
        pace.announce(OTHER, members)
    assert sent == [ROOM, OTHER, OTHER, OTHER]  # a small show: each change at once
    async with asyncio.timeout(10):
        await merged.wait()
    await asyncio.sleep(0.5)
    assert sent.count(ROOM) == 2  # nothing more came: nothing more goes


async def test_a_forgotten_show_announces_nothing_more() -> None:
    sent: list[RoomId] = []
    pace = RosterPace(sent.append, interval_s=0.05, paced_from=1)
    pace.announce(ROOM, 50)
    pace.announce(ROOM, 51)  # due at the end of the interval
    pace.forget(ROOM)  # the show ended
    await asyncio.sleep(0.3)
    assert sent == [ROOM]
    pace.announce(ROOM, 50)  # a new show in the same room starts afresh: at once
    assert sent == [ROOM, ROOM]
    pace.close()
