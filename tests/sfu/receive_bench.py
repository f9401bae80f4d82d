"""In-process measurement of the SFU's receive path: ``python -m tests.sfu.receive_bench`` prints JSON.
(A measurement harness, so it lives in tests/, not in the product package: STYLE.md rule 16.)

A real aiortc publisher connects to a real in-process worker (no viewers: only the receive path
runs, up to ``Producer.on_rtp``). The publisher's track is then stopped and the harness makes SRTP
datagrams itself with the publisher's own sending SRTP session (fresh sequence numbers, so SRTP's
replay check passes), 1100-byte RTP like the bench's video, and hands them to the worker's ICE socket
callback exactly as the loop would (``datagram_received(data, addr)`` of the nominated pair's
protocol): once through the receive demux, once through aioice's original callback (STUN parse, queue,
aiortc's DTLS task, our hook), alternated in rounds. The loop thread's CPU (``time.thread_time``)
is divided by the packets the producer counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import time
from typing import Any

from sfu import aiortc_private
from sfu.events import MemoryEventSink
from sfu.transport import Role
from sfu.worker import Worker
from switchboard.ids import RoomId
from tests.sfu.peers import start_publisher

ROOM = RoomId("receive-bench")


async def run(packets: int, rounds: int) -> dict[str, Any]:
    worker = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
    await worker.start()
    await worker.open_room(ROOM)
    pub = await start_publisher(worker, ROOM, "pub", audio=False)
    try:
        router = worker.routers[ROOM]
        while not router.producers:  # noqa: ASYNC110 (aiortc state)
            await asyncio.sleep(0.05)
        transport = next(t for t in router.transports.values() if t.role is Role.PUBLISHER)
        while not transport.received.installed:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        producer = next(iter(transport.producers.values()))
        pub.getSenders()[0].replaceTrack(None)  # the publisher stops: only our datagrams arrive
        await asyncio.sleep(0.5)
        tx = pub.getTransceivers()[0].sender.transport._tx_srtp
        conn = aiortc_private.ice_connection(transport.pc.getTransceivers()[0].sender.transport)
        pair = conn._nominated[1]
        protocol, addr = pair.protocol, pair.remote_addr
        demux = protocol.datagram_received
        original = type(protocol).datagram_received.__get__(protocol)
        seq = [producer.max_seq + 1]
        payload = b"\x00" * 1088  # a VP8 continuation packet's size in the bench (P bit irrelevant)

        def datagrams(n: int) -> list[bytes]:
            out = []
            for _ in range(n):
                s = seq[0] & 0xFFFF
                seq[0] += 1
                out.append(tx.protect(struct.pack("!BBHII", 0x80, producer.codec.payload_type, s, s * 3000,
                                                  producer.ssrc) + payload))
            return out

        async def through(receive: Any, batch: list[bytes]) -> float:
            before = producer.packets_received
            t0 = time.thread_time()
            for i in range(0, len(batch), 50):
                for data in batch[i:i + 50]:
                    receive(data, addr)
                await asyncio.sleep(0)  # as the loop would between polls; the DTLS task drains here
            while producer.packets_received - before < len(batch):  # noqa: ASYNC110 (the DTLS task drains)
                await asyncio.sleep(0)
            return (time.thread_time() - t0) / len(batch) * 1e6

        results: dict[str, list[float]] = {"demux": [], "aioice_aiortc": []}
        for _ in range(rounds):
            results["demux"].append(await through(demux, datagrams(packets)))
            results["aioice_aiortc"].append(await through(original, datagrams(packets)))
        return {"bench": "receive_path", "packets_per_round": packets, "rounds": rounds,
                "us_per_received_packet_demux": round(sorted(results["demux"])[rounds // 2], 2),
                "us_per_received_packet_aioice_aiortc": round(sorted(results["aioice_aiortc"])[rounds // 2], 2),
                "all": {k: [round(v, 2) for v in vs] for k, vs in results.items()},
                "refused": transport.received.refused}
    finally:
        await pub.close()
        await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.packets, args.rounds))))


if __name__ == "__main__":
    main()
