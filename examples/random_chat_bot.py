"""A bot that answers random-chat matches with a test pattern and a greeting.

    python examples/random_chat_bot.py --url http://127.0.0.1:8080 --matches 3

Signs in with SWITCHBOARD_EMAIL / SWITCHBOARD_PASSWORD (or --email/--password; a verified account),
joins the queue, and for each match sends moving colour bars (an aiortc VideoStreamTrack) and says
hello in the chat, answers each chat line, and waits for the other side to leave or go next.
After ``--matches`` matches it leaves the queue (0: forever).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from switchboard_client import ApiClient, Call, ClosedError, NodeClient, NodeError, RandomChat
from switchboard_client.media import TestPattern


async def converse(match: Call) -> None:
    """Echoes every chat line until the match ends."""
    with contextlib.suppress(ClosedError, NodeError):
        while True:
            line = await match.chats.get()
            await match.chat(f"you said: {line['text']}")


async def run(url: str, email: str, password: str, matches: int) -> int:
    async with ApiClient(url) as api:
        await api.login(email, password)
        async with NodeClient(url, api.token_source()) as node, RandomChat(node, {"country": "FR", "age": 30}) as queue:
            print(f"queued as {api.user_id}", flush=True)
            served = 0
            while not matches or served < matches:
                match = await queue.match()
                print(f"match {match.call_id} with {match.peer_user} ({match.media})", flush=True)
                await match.start([TestPattern()])
                await match.chat("hello from the test pattern bot")
                echo = asyncio.create_task(converse(match))
                ended = await match.wait_ended()
                echo.cancel()
                served += 1
                print(f"match {match.call_id} ended ({ended.get('reason')})", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the deployment's HTTP root")
    parser.add_argument("--matches", type=int, default=0, help="matches to answer before leaving (0: forever)")
    parser.add_argument("--email", default=os.environ.get("SWITCHBOARD_EMAIL"))
    parser.add_argument("--password", default=os.environ.get("SWITCHBOARD_PASSWORD"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.email or not args.password:
        parser.error("give --email and --password (or SWITCHBOARD_EMAIL and SWITCHBOARD_PASSWORD)")
    return asyncio.run(run(args.url, args.email, args.password, args.matches))


if __name__ == "__main__":
    sys.exit(main())
