"""A bot that watches a show and counts its video frames.

    python examples/watch_show.py --url http://127.0.0.1:8080 --room show-... --seconds 10

Signs in with SWITCHBOARD_EMAIL / SWITCHBOARD_PASSWORD (or --email/--password), takes a viewer token
for the room, joins the show, and prints one line when the first frame arrives and one at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from switchboard_client import ApiClient, NodeClient, view_show
from switchboard_client.media import FrameCounter


async def watch(url: str, email: str, password: str, room: str, seconds: float) -> int:
    async with ApiClient(url) as api:
        await api.login(email, password)
        async with NodeClient(url, api.token_source(room)) as node:
            viewing = await view_show(node, room)
            try:
                async with asyncio.timeout(30):
                    counter = FrameCounter(await viewing.track("video"))
                    first = await counter.first_frame()
                print(f"first frame after {first.first_frame_s:.2f} s: {first.width}x{first.height}", flush=True)
                await asyncio.sleep(seconds)
                count = await counter.close()
            finally:
                await viewing.close()
    print(f"watched {count.frames} frames in {seconds:g} s ({count.fps():.1f} fps)", flush=True)
    return 0 if count.frames else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the deployment's HTTP root")
    parser.add_argument("--room", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--email", default=os.environ.get("SWITCHBOARD_EMAIL"))
    parser.add_argument("--password", default=os.environ.get("SWITCHBOARD_PASSWORD"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.email or not args.password:
        parser.error("give --email and --password (or SWITCHBOARD_EMAIL and SWITCHBOARD_PASSWORD)")
    return asyncio.run(watch(args.url, args.email, args.password, args.room, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
