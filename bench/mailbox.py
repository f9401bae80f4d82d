"""A verified account and its rooms for benches that need rooms (public protocols only).

Rooms are owned and named by the control API (``POST /api/rooms``), and only a verified account may
create one. The API mails the verification code over SMTP: :class:`Mailbox` is a minimal SMTP sink
on 127.0.0.1 that keeps each mail's body by recipient (set ``api.smtp_host``/``smtp_port`` to it).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp


class Mailbox:
    """Just enough SMTP for Python's ``smtplib`` to hand over a message; no relaying, no auth."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mails: dict[str, list[str]] = {}
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Mailbox:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rcpt: list[str] = []
        writer.write(b"220 bench mailbox\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"RCPT":
                    rcpt.append(line.decode(errors="replace").split("<", 1)[-1].split(">", 1)[0].lower())
                if verb == b"DATA":
                    writer.write(b"354 end with .\r\n")
                    body = []
                    while (data := await reader.readline()) not in (b".\r\n", b""):
                        body.append(data.decode(errors="replace"))
                    for to in rcpt:
                        self.mails.setdefault(to, []).append("".join(body))
                    rcpt = []
                if verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                if verb != b"DATA":
                    writer.write(b"250 ok\r\n")
                else:
                    writer.write(b"250 queued\r\n")
                await writer.drain()
        finally:
            writer.close()

    async def code_for(self, to: str, timeout_s: float = 15.0) -> str:
        """The last 6-digit code mailed to ``to`` (waits for it)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for body in reversed(self.mails.get(to.lower(), [])):
                    if found := re.search(r"\b(\d{6})\b", body):
                        return found.group(1)
                await asyncio.sleep(0.05)


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as resp:
        body = await resp.json(content_type=None)
        if resp.status >= 300:
            raise RuntimeError(f"{method} {url}: {resp.status} {body}")
        return body


async def owned_rooms(base: str, mailbox: Mailbox, count: int, email: str = "bench-host@example.com") -> list[str]:
    """Registers and verifies one account (code from ``mailbox``) and creates ``count`` rooms it owns."""
    creds = {"email": email, "password": "bench-host-password"}
    async with aiohttp.ClientSession() as session:
        await _json(session, "POST", f"{base}/auth/register", json=creds)
        code = await mailbox.code_for(email)
        await _json(session, "POST", f"{base}/auth/verify", json={"email": email, "code": code})
        token = (await _json(session, "POST", f"{base}/auth/login", json=creds))["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        return [(await _json(session, "POST", f"{base}/rooms", json={"title": f"bench {i}"}, headers=auth))["room"]
                for i in range(count)]
