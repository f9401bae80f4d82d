"""The framing between the node and its worker processes: one msgpack message per frame behind a
4-byte big-endian length, both ways over the worker's unix socket (``sfu.pool`` writes calls and
reads answers and callbacks; ``sfu.process`` the other way round). Its own module so the parent's
pool and the worker's body share it without importing each other."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgpack

_LEN = struct.Struct("!I")


async def read_message(reader: asyncio.StreamReader) -> Any:
    size = _LEN.unpack(await reader.readexactly(4))[0]
    return msgpack.unpackb(await reader.readexactly(size))


def write_message(writer: asyncio.StreamWriter, message: Any) -> None:
    data = msgpack.packb(message)
    writer.write(_LEN.pack(len(data)) + data)
