"""Password hashing (argon2) off the event loop, bounded.

Each hash or check costs tens of milliseconds of a core and a chunk of memory, and the doors that
cause one (register, login, reset, verify, forgot, resend) are open to anyone. A small pool of
``slots`` threads computes them; at most ``queue`` more wait, and any request beyond that is refused
at once with 503 and ``Retry-After`` instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from control_api.errors import Unavailable

T = TypeVar("T")


class PasswordWork:
    """The API's only way to hash or check a password."""

    def __init__(self, hasher: PasswordHasher, *, slots: int, queue: int, dummy_hash: str) -> None:
        self.slots = slots or os.cpu_count() or 1
        self.queue = queue
        self.hasher = hasher
        """The argon2 parameters; every hash and check goes through it."""
        self._dummy = dummy_hash
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="argon2")
        self._pending = 0
        self._closed = False

    @classmethod
    async def start(cls, hasher: PasswordHasher, *, slots: int, queue: int) -> PasswordWork:
        """Computes the dummy hash (a hash of no one's password) off the loop, then opens the pool."""
        dummy = await asyncio.to_thread(hasher.hash, "not a password")
        return cls(hasher, slots=slots, queue=queue, dummy_hash=dummy)

    @property
    def pending(self) -> int:
        """Hashes running or waiting."""
        return self._pending

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def check(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored``; with no stored hash it does the same work
        (against the dummy hash) and answers False, so an unknown account takes as long."""
        def verify() -> bool:
            try:
                return self.hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(verify)

    async def burn(self, text: str) -> None:
        """The work of one :meth:`check` for a path that has nothing to check, so that it costs what
        its sibling path costs (e.g. forgot for an unknown email)."""
        await self.check(None, text)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise Unavailable("the server is stopping", 1)
        if self._pending >= self.slots + self.queue:
            raise Unavailable("too many password checks in progress; retry shortly", 1)
        self._pending += 1
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

        def done(_: object) -> None:
            self._pending -= 1

        future.add_done_callback(done)
        # Shielded: a cancelled request does not free its slot before the thread really has.
        return await asyncio.shield(future)

    def close(self) -> None:
        """Stops taking work; threads finish what they run. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=False, cancel_futures=True)
