"""The baseline of ``python -m bench sfu --baseline relay``: an aiortc MediaRelay server.

This is how an aiortc application forwards a show without our SFU: the publisher's tracks are
received (decoded) and each viewer gets ``MediaRelay().subscribe(track, buffered=False)`` (re-encoded
per viewer). Offer/answer over a small HTTP API on 127.0.0.1 (the server makes the viewer's offer,
as the node does):

    POST /publish   {"sdp": offer}  -> {"sdp": answer}
    POST /subscribe {}              -> {"id": ..., "sdp": offer}
    POST /answer    {"id", "sdp"}   -> {}

    python -m bench.sfu_relay --port P     (prints "listening" when ready; SIGTERM stops it)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay


class RelayServer:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.tracks: list[Any] = []
        self.pcs: dict[str, RTCPeerConnection] = {}
        self._ids = itertools.count(1)

    async def publish(self, request: web.Request) -> web.Response:
        body = await request.json()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs[f"pub{next(self._ids)}"] = pc

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.tracks.append(track)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def subscribe(self, request: web.Request) -> web.Response:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer = f"v{next(self._ids)}"
        self.pcs[peer] = pc
        for track in self.tracks:
            pc.addTrack(self.relay.subscribe(track, buffered=False))
        await pc.setLocalDescription(await pc.createOffer())
        return web.json_response({"id": peer, "sdp": pc.localDescription.sdp})

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.pcs[body["id"]].setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="answer"))
        return web.json_response({})

    async def close(self) -> None:
        for pc in self.pcs.values():
            await pc.close()


async def serve(port: int) -> None:
    server = RelayServer()
    app = web.Application()
    app.router.add_post("/publish", server.publish)
    app.router.add_post("/subscribe", server.subscribe)
    app.router.add_post("/answer", server.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("listening", flush=True)
    try:
        await stop.wait()
    finally:
        await server.close()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sfu_relay")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
