"""The aioice connection under a DTLS transport: where host candidates are gathered, and the media
sockets' receive buffer.

Private surface: ``RTCDtlsTransport.transport.iceGatherer._connection`` (the aioice ``Connection``);
its ``gather_candidates`` (replaced on the instance), ``_local_candidates_start``, ``_local_candidates``,
``_local_candidates_end``, ``_components`` and ``get_component_candidates`` (aioice skips 127.0.0.1
when it picks host addresses itself); the socket behind an asyncio datagram transport.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport


def ice_connection(dtls: RTCDtlsTransport) -> Any:
    """The aioice Connection under a DTLS transport."""
    return dtls.transport.iceGatherer._connection


def restrict_host_addresses(pc: RTCPeerConnection, addresses: tuple[str, ...]) -> None:
    """Make every ICE gatherer of ``pc`` use exactly ``addresses`` for host candidates.

    Call after transceivers exist and before ``setLocalDescription`` (which gathers).
    """
    for transceiver in pc.getTransceivers():
        conn = ice_connection(transceiver.sender.transport)
        if getattr(conn, "_switchboard_restricted", False):
            continue

        async def gather(conn: Any = conn) -> None:
            if conn._local_candidates_start:
                return
            conn._local_candidates_start = True
            for component in conn._components:
                conn._local_candidates += await conn.get_component_candidates(
                    component=component, addresses=list(addresses))
            conn._local_candidates_end = True

        conn.gather_candidates = gather
        conn._switchboard_restricted = True


RECEIVE_BUFFER = 1 << 22
"""SO_RCVBUF asked for media sockets (the kernel caps it at net.core.rmem_max, 4 MiB here): a keyframe
burst arriving while the loop fans out the previous packet to every viewer must not overflow it."""


def enlarge_receive_buffer(transport: Any) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
