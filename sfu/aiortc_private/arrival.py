"""The kernel's arrival time of the datagram a socket callback is handling (the load generator's
counting viewers: a browser stamps arrival in its network thread, not after its event loop got round
to the packet).

``SIOCGSTAMPNS`` (``ioctl``) on a UDP socket answers the receive time the kernel put on the last
datagram read from it (``CLOCK_REALTIME``, the clock of ``time.time()``). uvloop (libuv) and asyncio's
selector loop read one datagram and call ``datagram_received`` before they read the next, so asked
inside that callback the answer is this datagram's. The first ask turns timestamping on for the
socket (the kernel then stamps every packet as it arrives); until a stamped datagram was read it
fails with ENOENT, or answers the time of the ask (so does a datagram that arrived before the kernel
turned its receive stamps on: that takes a moment after the first socket asks). Such an answer is
not taken for a stamp: :meth:`ArrivalClock.stamp` then gives None.

Private surface: the socket behind aioice's datagram transport (``StunProtocol.transport``, through
``get_extra_info("socket")``: uvloop's ``PseudoSocket``), whose descriptor is asked.
"""

from __future__ import annotations

import errno
import struct
import time
from fcntl import ioctl
from typing import Any

SIOCGSTAMPNS = 0x8907
"""linux/sockios.h: the last received datagram's timestamp as a ``struct timespec``."""
_TIMESPEC = struct.Struct("qq")


class ArrivalClock:
    """Kernel arrival times of the datagrams read from one socket (``CLOCK_REALTIME``: they compare
    with ``time.time()`` and across processes). :attr:`kernel` counts the stamps the kernel gave,
    :attr:`fallback` the asks it did not answer (the caller then takes ``time.time()``)."""

    def __init__(self, transport: Any) -> None:
        self.kernel = 0
        self.fallback = 0
        self._buf = bytearray(_TIMESPEC.size)
        sock = transport.get_extra_info("socket") if transport is not None else None
        self._fd = sock.fileno() if sock is not None else -1
        if self._fd >= 0:
            self._ask()  # turns timestamping on: datagrams from now on are stamped as they arrive

    @property
    def available(self) -> bool:
        """Whether the kernel is still asked (False once it refused for another reason than ENOENT)."""
        return self._fd >= 0

    def _ask(self) -> bool:
        try:
            ioctl(self._fd, SIOCGSTAMPNS, self._buf, True)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # ENOTTY (not Linux, not a socket), EINVAL, EBADF: never again
                self._fd = -1
            return False
        return True

    def stamp(self) -> float | None:
        """Unix time the datagram being handled arrived at the socket; None when the kernel has none."""
        if self._fd >= 0:
            asked = time.time()
            if self._ask():
                sec, nsec = _TIMESPEC.unpack_from(self._buf)
                at = sec + nsec * 1e-9
                if at < asked:  # else the kernel answered the time of the ask: the datagram had no stamp
                    self.kernel += 1
                    return at
        self.fallback += 1
        return None

