"""The seal of a pipe between nodes: every datagram carries a keyed tag, so a stranger cannot inject,
and a counter, so nobody can replay one.

Pipes between the workers of one node run on 127.0.0.1 unsealed. A pipe between two nodes crosses a
network: each datagram (RTP, RTCP, control) gets an 8-byte counter and a 10-byte BLAKE2b tag appended,
keyed with the nodes' shared secret and the pipe's id (:meth:`Seal.for_pipe`: a datagram of one pipe
opens on no other). The receiving end checks the tag in constant time and strips both, and drops (and
counts, ``PipeTransport.forged``) any datagram whose tag is missing or wrong: the tag covers the whole
datagram and its counter, so a packet cannot be altered either. The counter's top bit says which end
sent it (the exporting one, or the importing one), its other bits count that end's datagrams; the
receiver keeps a replay window over the far end's counters (:class:`ReplayWindow`, as SRTP's, RFC 3711
section 3.3.2), so a genuine datagram sent again, or one of its own reflected back, is dropped and
counted as forged too.
"""

from __future__ import annotations

import hashlib
import hmac

TAG_BYTES = 10
COUNTER_BYTES = 8
SEAL_BYTES = COUNTER_BYTES + TAG_BYTES
"""What the seal adds to each datagram."""
MIN_SECRET_BYTES = 16
FROM_EXPORTER = 1 << 63
"""The counter's top bit: set by the exporting end of a pipe, clear from the importing end."""
WINDOW = 1024
"""How far behind the highest counter seen a datagram may arrive (reordered on the way) and still open."""


class Seal:
    """Seals and opens datagrams with one shared secret (and one pipe's id, see :meth:`for_pipe`)."""

    def __init__(self, secret: bytes, *, _key: bytes | None = None) -> None:
        if _key is None and len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"a pipe secret needs at least {MIN_SECRET_BYTES} bytes")
        self._key = _key or hashlib.blake2b(secret, digest_size=32, person=b"sb-pipe").digest()

    def for_pipe(self, pipe_id: str) -> Seal:
        """The seal of one pipe: the same secret, a key of its own."""
        key = hashlib.blake2b(pipe_id.encode("utf-8", "surrogatepass"), key=self._key, digest_size=32,
                              person=b"sb-pipe-id").digest()
        return Seal(b"", _key=key)

    def _tag(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._key, digest_size=TAG_BYTES).digest()

    def seal(self, data: bytes, counter: int) -> bytes:
        sealed = data + counter.to_bytes(COUNTER_BYTES, "big")
        return sealed + self._tag(sealed)

    def open(self, data: bytes) -> tuple[bytes, int] | None:
        """The datagram without its seal and its counter, or None when the tag is missing or wrong (forged)."""
        if len(data) <= SEAL_BYTES:
            return None
        sealed, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        if not hmac.compare_digest(self._tag(sealed), tag):
            return None
        return sealed[:-COUNTER_BYTES], int.from_bytes(sealed[-COUNTER_BYTES:], "big")


class ReplayWindow:
    """The counters one end has accepted from the other: each opens once, and only while it is no
    more than ``WINDOW`` behind the highest seen."""

    def __init__(self) -> None:
        self._top = -1
        self._seen = 0
        """Bit i set: counter ``_top - i`` was accepted."""

    def accept(self, counter: int) -> bool:
        """True (and remembered) the first time ``counter`` arrives within the window; False for a replay."""
        if counter > self._top:
            shift = counter - self._top
            self._seen = ((self._seen << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self._top = counter
            return True
        behind = self._top - counter
        if behind >= WINDOW or self._seen >> behind & 1:
            return False
        self._seen |= 1 << behind
        return True
