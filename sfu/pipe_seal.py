"""The seal of a pipe between nodes: every datagram carries a keyed tag, so a stranger cannot inject.

Pipes between the workers of one node run on 127.0.0.1 unsealed. A pipe between two nodes crosses a
network: each datagram (RTP, RTCP, control) gets a 10-byte BLAKE2b tag keyed with the nodes' shared
secret appended; the receiving end checks it in constant time and strips it, and drops (and counts,
``PipeTransport.forged``) any datagram whose tag is missing or wrong. The tag covers the whole
datagram, so a packet cannot be altered either. Not covered: a replay of a genuine datagram (the
producers' sequence checks drop duplicates; a replay window is the next step, as in SRTP).
"""

from __future__ import annotations

import hashlib
import hmac

TAG_BYTES = 10
MIN_SECRET_BYTES = 16


class Seal:
    """Seals and opens datagrams with one shared secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"a pipe secret needs at least {MIN_SECRET_BYTES} bytes")
        self._key = hashlib.blake2b(secret, digest_size=32, person=b"sb-pipe").digest()

    def _tag(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._key, digest_size=TAG_BYTES).digest()

    def seal(self, data: bytes) -> bytes:
        return data + self._tag(data)

    def open(self, data: bytes) -> bytes | None:
        """The datagram without its tag, or None when the tag is missing or wrong (forged)."""
        if len(data) <= TAG_BYTES:
            return None
        body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        return body if hmac.compare_digest(self._tag(body), tag) else None
