"""The bots in examples/ run as their own processes against a real ``switchboard up``."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from switchboard_client import NodeClient, RandomChat, publish_show
from switchboard_client.media import FrameCounter, TestPattern
from tests.client.conftest import Register, SignUp
from tests.e2e.browser import Up

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def _start(script: str, *args: str, email: str, password: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "SWITCHBOARD_EMAIL": email, "SWITCHBOARD_PASSWORD": password}
    return await asyncio.create_subprocess_exec(sys.executable, str(EXAMPLES / script), *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)


LOG_LEVELS = ("DEBUG ", "INFO ", "WARNING ", "ERROR ", "CRITICAL ")
"""How the examples' log records begin (their logging format): kept in ``seen``, never taken for the
bot's own lines (a renegotiation racing the end of a match is logged as a warning, harmlessly)."""


async def _line(proc: asyncio.subprocess.Process, seen: list[str]) -> str:
    """The bot's next line of its own output (log records on the same pipe are skipped)."""
    assert proc.stdout is not None
    while True:
        raw = await proc.stdout.readline()
        if not raw:
            raise AssertionError("the bot exited:\n" + "".join(seen))
        seen.append(raw.decode())
        if not seen[-1].startswith(LOG_LEVELS):
            return seen[-1]


async def test_watch_bot_counts_frames_of_a_show(up: Up, sign_up: SignUp, register: Register) -> None:
    host = await sign_up("host")
    room = (await host.create_room("watched by a bot")).room
    email, password = await register("watcher")
    async with NodeClient(up.base, host.token_source(room, "broadcaster")) as node:
        show = await publish_show(node, room, [TestPattern()])
        bot = await _start("watch_show.py", "--url", up.base, "--room", room, "--seconds", "2",
                           email=email, password=password)
        try:
            async with asyncio.timeout(90):
                out, _ = await bot.communicate()
        finally:
            if bot.returncode is None:
                bot.kill()
                await bot.wait()
        await show.close()
    text = out.decode()
    assert bot.returncode == 0, text
    assert "first frame after" in text and "160x120" in text
    watched = [line for line in text.splitlines() if line.startswith("watched ")]
    assert watched and int(watched[0].split()[1]) > 0, text


async def test_random_chat_bot_answers_a_match(up: Up, sign_up: SignUp, register: Register) -> None:
    email, password = await register("bot")
    bot = await _start("random_chat_bot.py", "--url", up.base, "--matches", "1", email=email, password=password)
    seen: list[str] = []
    person = await sign_up("person")
    try:
        async with asyncio.timeout(90):
            assert (await _line(bot, seen)).startswith("queued as ")
            async with (NodeClient(up.base, person.token_source()) as node,
                        RandomChat(node, {"country": "FR", "age": 28}) as queue):
                match = await queue.match()
                await match.start([TestPattern()])
                counter = FrameCounter(await match.track("video"))
                assert (await counter.first_frame()).width == 160  # the bot's test pattern
                assert (await match.chats.get())["text"] == "hello from the test pattern bot"
                await match.chat("nice bars")
                assert (await match.chats.get())["text"] == "you said: nice bars"
                await counter.close()
            # leaving the queue ended the bot's match: it served its one match and exits
            assert (await _line(bot, seen)).startswith(f"match {match.call_id} with {person.user_id}")
            assert (await _line(bot, seen)).strip() == f"match {match.call_id} ended (leave)"
            assert await bot.wait() == 0, "".join(seen)
    finally:
        if bot.returncode is None:
            bot.kill()
            rest, _ = await bot.communicate()
            print("the bot said:", "".join(seen), rest.decode(errors="replace"))
