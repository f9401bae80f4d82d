"""The client side of ``bench signaling``: relay client processes, the warm-up pairs, the connect storm.

Each runs in its own process (or thread, for the warm-up) with its own loop, and reports through a
multiprocessing queue: the node's figures stay the node's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from switchboard.ids import UserId
from switchboard.tokens import Grants, TokenSigner

WARMUP_PAIRS = 16
"""Sockets (pairs) opened before the baseline RSS reading and kept open to the end."""


async def _client(url: str, pairs: list[tuple[str, str, str, str]], seconds: float, rate: float,
                  go: Any, out: Any) -> None:
    errors, latencies, sent = 0, [], 0
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:
        sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        t0 = time.monotonic()
        sem = asyncio.Semaphore(200)

        async def connect(user: str, token: str) -> None:
            nonlocal errors
            async with sem:
                try:
                    for _ in range(30):  # a node at capacity says "overloaded": retry after its retry_after
                        try:
                            ws = await http.ws_connect(url, params={"token": token}, autoping=True, heartbeat=None)
                        except aiohttp.WSServerHandshakeError as exc:  # or 503 + Retry-After before the upgrade
                            if exc.status != 503:
                                raise
                            await asyncio.sleep(float(exc.headers.get("Retry-After", "1") if exc.headers else 1))
                            continue
                        hello = json.loads((await ws.receive(timeout=30)).data)
                        if hello.get("code") != "overloaded":
                            break
                        await ws.close()
                        await asyncio.sleep(hello["retry_after"])
                    assert hello["type"] == "hello", hello
                    sockets[user] = ws
                except Exception as exc:
                    errors += 1
                    if errors == 1:
                        print(f"bench client: first connect error: {exc!r}", file=sys.stderr)

        await asyncio.gather(*(connect(u, t) for a, ta, b, tb in pairs for u, t in ((a, ta), (b, tb))))
        connected_s = time.monotonic() - t0
        out.put(("connected", len(sockets), connected_s))
        # 1:1 calls: a invites b, b accepts.
        calls: dict[str, str] = {}

        async def setup(a: str, b: str) -> None:
            nonlocal errors
            try:
                wa, wb = sockets[a], sockets[b]
                await wa.send_str(json.dumps({"type": "call.invite", "id": 1, "to": b}))
                call_id = None
                while call_id is None:
                    m = json.loads((await wa.receive(timeout=30)).data)
                    if m["type"] == "reply":
                        call_id = m["call_id"]
                    elif m["type"] == "error":
                        raise RuntimeError(m)
                await wb.send_str(json.dumps({"type": "call.accept", "id": 2, "call_id": call_id}))
                while True:
                    m = json.loads((await wb.receive(timeout=30)).data)
                    if m["type"] == "reply":
                        break
                    if m["type"] == "error":
                        raise RuntimeError(m)
                calls[a] = call_id
            except Exception as exc:
                errors += 1
                if errors == 1:
                    print(f"bench client: first call setup error: {exc!r}", file=sys.stderr)

        await asyncio.gather(*(setup(a, b) for a, _, b, _ in pairs if a in sockets and b in sockets))
        out.put(("ready", len(calls)))

        async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal errors
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                m = json.loads(msg.data)
                if m["type"] == "call.chat":
                    sent_at = float(m["text"])
                    latencies.append((sent_at, time.time() - sent_at))
                elif m["type"] == "error":
                    errors += 1

        readers = [asyncio.create_task(reader(ws)) for ws in sockets.values()]
        await asyncio.get_running_loop().run_in_executor(None, go.wait)  # every client process is ready
        callers = list(calls.items())
        if callers and rate > 0:
            interval = 1.0 / rate
            end = time.monotonic() + seconds
            nxt = time.monotonic()
            i = 0
            while time.monotonic() < end:
                a, call_id = callers[i % len(callers)]
                i += 1
                try:
                    await sockets[a].send_str(json.dumps({"type": "call.chat", "call_id": call_id,
                                                          "text": repr(time.time())}))
                    sent += 1
                except Exception:
                    errors += 1
                nxt += interval
                delay = nxt - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        await asyncio.sleep(1.0)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for ws in sockets.values():
            await ws.close()
    out.put(("done", sent, latencies, errors))


def client_main(url: str, pairs: list[tuple[str, str, str, str]], seconds: float, rate: float,
                 go: Any, out: Any) -> None:
    import uvloop

    uvloop.run(_client(url, pairs, seconds, rate, go, out))


class Warmup:
    """WARMUP_PAIRS pairs that connect, call and chat once, then stay connected until :meth:`stop`
    (a thread of the main process with its own loop): the node's one-time costs happen before the
    baseline RSS is read, and these sockets are in both readings."""

    def __init__(self, url: str, signer: TokenSigner) -> None:
        self._url = url
        self._signer = signer
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="bench-warmup", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60) or self._error is not None:
            raise RuntimeError(f"warm-up failed: {self._error!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:
            sockets = []
            for i in range(WARMUP_PAIRS):
                pair = []
                for side in ("a", "b"):
                    token = self._signer.sign(Grants(sub=UserId(f"warm-{side}{i}"), verified=True))
                    ws = await http.ws_connect(self._url, params={"token": token})
                    await ws.receive(timeout=30)  # hello
                    pair.append(ws)
                a, b = pair
                await a.send_str(json.dumps({"type": "call.invite", "id": 1, "to": f"warm-b{i}"}))
                call_id = await _reply_field(a, "call_id")
                await b.send_str(json.dumps({"type": "call.accept", "id": 2, "call_id": call_id}))
                await _reply_field(b, "call_id")
                await a.send_str(json.dumps({"type": "call.chat", "id": 3, "call_id": call_id, "text": "warm"}))
                await _reply_field(a, None)
                sockets += pair
            self._ready.set()
            await asyncio.get_running_loop().run_in_executor(None, self._stop.wait)
            for ws in sockets:
                await ws.close()


async def _reply_field(ws: aiohttp.ClientWebSocketResponse, key: str | None) -> Any:
    while True:
        m = json.loads((await ws.receive(timeout=30)).data)
        if m["type"] == "error":
            raise RuntimeError(m)
        if m["type"] == "reply":
            return m.get(key) if key else None


async def _raw_connect(host: str, port: int, path: str) -> tuple[asyncio.StreamWriter, dict[str, Any]]:
    """A WebSocket upgrade written by hand and the first frame read (server frames are unmasked):
    a storm of aiohttp client handshakes would spend the client's CPU, not the node's."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if status.startswith(b"HTTP/1.1 503 ") and b"\r\nretry-after:" in head.lower():
        writer.close()  # refused at accept (switchboard/listener.py): a refusal, like the frame's
        return writer, {"type": "error", "code": "overloaded"}
    if b" 101 " not in status:
        writer.close()
        raise ConnectionError(status.decode())
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    payload = await reader.readexactly(length)
    if b0 & 0x0F != 1:
        writer.close()
        raise ConnectionError(f"first frame opcode {b0 & 0x0F}")
    return writer, json.loads(payload)


async def _storm(url: str, tokens: list[str], at_s: float, hold_s: float, go: Any, out: Any) -> None:
    """``at_s`` after the relay starts, opens every socket of ``tokens`` at once; each is accepted
    (``hello``: its connect-to-hello time), shed (an ``overloaded`` frame, or a 503 with
    ``Retry-After`` before the upgrade) or an error. Accepted
    sockets stay open ``hold_s``, then close."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    await asyncio.sleep(at_s)
    accepted: list[float] = []
    shed = errors = 0
    kept: list[asyncio.StreamWriter] = []
    started = time.time()

    async def one(token: str) -> None:
        nonlocal shed, errors
        t0 = time.perf_counter()
        try:
            writer, first = await asyncio.wait_for(_raw_connect(host, port, f"{parts.path}?token={token}"), 60)
        except Exception:
            errors += 1
            return
        if first["type"] == "hello":
            accepted.append(time.perf_counter() - t0)
            kept.append(writer)
            return
        if first.get("code") == "overloaded":
            shed += 1
        else:
            errors += 1
        writer.close()

    await asyncio.gather(*(one(t) for t in tokens))
    ended = time.time()
    await asyncio.sleep(max(0.0, started + hold_s - time.time()))
    for writer in kept:
        writer.close()
    out.put(("storm", started, ended, accepted, shed, errors))


def storm_main(url: str, tokens: list[str], at_s: float, hold_s: float, go: Any, out: Any) -> None:
    import uvloop

    uvloop.run(_storm(url, tokens, at_s, hold_s, go, out))
