"""Short-lived, in-process copies of the Postgres facts the token routes read on every request.

A room or socket token needs the caller's account (verified, premium, deleted, any ban on record,
the accounts blocked either way) and the room's owner. Read from Postgres each time, they cost more
than the rest of the request together; here they are kept for ``ttl_s`` (about a second) and
dropped at once when ``keyspace.SANCTIONS_CHANNEL`` names the account (ban, revoke, mute, premium,
block: every change that matters here is announced there). What acts on the next request does not
depend on this cache: the revocation epoch and the ban mark are read from Redis on every request
(:meth:`control_api.revocation.Revocations.standing`). While the channel is not subscribed (Redis
down, reconnecting), the cache serves nothing and every read goes to Postgres.

Room owners never change: they are kept ``room_ttl_s``. A room that does not exist is not kept (it
may be created the next moment).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import bindparam, exists, func, or_, select, union
from sqlalchemy.ext.asyncio import AsyncEngine

from control_api.models import Account, Room, Sanction
from control_api.services import SERVICES
from control_api.social_models import Block
from switchboard.keyspace import SANCTIONS_CHANNEL
from switchboard.redis_client import ready
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.api.cache")
T = TypeVar("T")
MAX_ENTRIES = 20_000
"""Accounts (and, apart, rooms) kept at most; past it the map is emptied (the live ones come back)."""
ROOM_TTL_S = 60.0
RESUBSCRIBE_S = 1.0


@dataclass(frozen=True)
class AccountFacts:
    """What the token routes need of an account, as Postgres said at most ``ttl_s`` ago."""

    verified: bool
    """The email is verified (broadcasting needs it)."""
    premium: bool
    """Premium tier."""
    deleted: bool
    """The account was deleted."""
    banned: bool
    """A ban on record is in force (Postgres is the truth; Redis mirrors it)."""
    blocks: frozenset[uuid.UUID]
    """Accounts blocked by, or blocking, this one."""


def _account_query() -> Any:
    """One round trip: the account's row, whether a ban is in force, and its blocks either way
    (built once; the account is the ``user`` parameter)."""
    user = bindparam("user", type_=Account.id.type)
    blocked = union(select(Block.blocked_id.label("other")).where(Block.blocker_id == user),
                    select(Block.blocker_id.label("other")).where(Block.blocked_id == user)).subquery()
    now = func.now()
    ban = exists().where(Sanction.account_id == user, Sanction.kind == "ban", Sanction.revoked_at.is_(None),
                         Sanction.starts_at <= now, or_(Sanction.ends_at.is_(None), Sanction.ends_at > now))
    return (select(Account.email_verified, Account.premium, Account.deleted_at.is_not(None), ban,
                   select(func.array_agg(blocked.c.other)).scalar_subquery())
            .where(Account.id == user))


class ReadCache:
    """Account facts and room owners, each read from Postgres at most once per ``ttl_s``."""

    def __init__(self, engine: AsyncEngine, redis: Redis, *, ttl_s: float) -> None:
        # Autocommit: each read is one statement, so no BEGIN and ROLLBACK round trips around it.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._redis = redis
        self.ttl_s = ttl_s
        self._accounts: dict[uuid.UUID, tuple[float, AccountFacts]] = {}
        self._rooms: dict[str, tuple[float, uuid.UUID]] = {}
        self._loading: dict[object, asyncio.Task[Any]] = {}
        """Reads under way: concurrent misses of one key share one query."""
        self._generation = 0
        """Moves on every drop: a read that started before one is not kept."""
        self.listening = False
        """Subscribed to the sanctions channel: only then are entries served."""
        self.hits = 0
        self.misses = 0
        self._task: asyncio.Task[None] | None = None
        self._account_query = _account_query()
        self._owner_query = select(Room.owner_id).where(Room.name == bindparam("name"))

    # --- reads ---------------------------------------------------------------------------------------

    async def account(self, user: uuid.UUID, *, fresh: bool = False) -> AccountFacts | None:
        """The account's facts (None: no such account). ``fresh`` reads Postgres whatever is kept
        (and keeps the answer): for decisions that must see a change made this very moment."""
        if not fresh and self.listening:
            kept = self._accounts.get(user)
            if kept is not None and kept[0] > time.monotonic():
                self.hits += 1
                return kept[1]
        self.misses += 1
        return await self._load(("account", user), lambda: self._read_account(user),
                                lambda facts: self._keep(self._accounts, user, facts, self.ttl_s))

    async def room_owner(self, name: str) -> uuid.UUID | None:
        """The room's owner (None: no such room)."""
        if self.listening:
            kept = self._rooms.get(name)
            if kept is not None and kept[0] > time.monotonic():
                self.hits += 1
                return kept[1]
        self.misses += 1
        return await self._load(("room", name), lambda: self._read_owner(name),
                                lambda owner: self._keep(self._rooms, name, owner, ROOM_TTL_S))

    async def _load(self, key: object, read: Callable[[], Awaitable[T | None]],
                    keep: Callable[[T], None]) -> T | None:
        """One read per key at a time, in its own task: a caller that goes away cancels neither the
        read nor the other callers waiting for it."""
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read_and_keep(key, read, keep))
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        return await asyncio.shield(task)  # type: ignore[no-any-return]

    async def _read_and_keep(self, key: object, read: Callable[[], Awaitable[T | None]],
                             keep: Callable[[T], None]) -> T | None:
        generation = self._generation
        try:
            value = await read()
        finally:
            del self._loading[key]
        if value is not None and generation == self._generation and self.listening:
            keep(value)
        return value

    def _keep(self, store: dict[Any, tuple[float, Any]], key: Any, value: Any, ttl_s: float) -> None:
        if len(store) >= MAX_ENTRIES:
            store.clear()
        store[key] = (time.monotonic() + ttl_s, value)

    async def _read_account(self, user: uuid.UUID) -> AccountFacts | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(self._account_query, {"user": user})).one_or_none()
        if row is None:
            return None
        verified, premium, deleted, banned, blocks = row
        return AccountFacts(bool(verified), bool(premium), bool(deleted), bool(banned), frozenset(blocks or ()))

    async def _read_owner(self, name: str) -> uuid.UUID | None:
        async with self._engine.connect() as conn:
            return await conn.scalar(self._owner_query, {"name": name})  # type: ignore[no-any-return]

    # --- invalidation --------------------------------------------------------------------------------

    def forget(self, *users: uuid.UUID) -> None:
        """Drops what is kept of ``users`` (and stops reads under way from being kept)."""
        self._generation += 1
        for user in users:
            self._accounts.pop(user, None)

    def clear(self) -> None:
        self._generation += 1
        self._accounts.clear()

    def notice(self, data: bytes | str) -> None:
        """A message of the sanctions channel: forget every account it names."""
        try:
            notice = json.loads(data)
            named = [uuid.UUID(str(notice[k])) for k in ("user", "other") if k in notice]
        except (ValueError, TypeError, KeyError, AttributeError):
            self.clear()  # unreadable: forget everything rather than miss a change
            return
        self.forget(*named)

    async def run(self) -> None:
        """Follows the sanctions channel until cancelled, resubscribing after a Redis failure."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await ready(self._redis)  # a cluster client picks the pub/sub's node from its slot map
                await pubsub.subscribe(SANCTIONS_CHANNEL)
                self.clear()  # notices may have been missed while not subscribed
                self.listening = True
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.notice(message["data"])
            except (RedisError, OSError):
                log.warning("sanctions channel lost; token routes read Postgres until it is back", exc_info=True)
            finally:
                self.listening = False
                self.clear()
                await pubsub.aclose()
            await asyncio.sleep(RESUBSCRIBE_S)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="read-cache")

    async def close(self) -> None:
        """Stops following the channel. Safe to call twice."""
        task, self._task = self._task, None
        reads = [t for t in [task, *self._loading.values()] if t is not None]
        await stop_tasks(reads)  # (a cancel redis-py swallows is repeated, within a deadline)
        self.listening = False
        self.clear()


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Marks a read's failure as seen when every caller waiting for it went away."""
    if not task.cancelled():
        task.exception()


READ_CACHE = web.AppKey("read_cache", ReadCache)


def install_read_cache(app: web.Application, engine: web.AppKey[AsyncEngine]) -> None:
    """Opens the cache once the app's services and ``engine`` exist (after their cleanup context)
    and closes it before they close."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        cache = ReadCache(app[engine], services.redis, ttl_s=services.settings.read_cache_ttl_ms / 1e3)
        app[READ_CACHE] = cache
        cache.start()
        yield
        await cache.close()

    app.cleanup_ctx.append(context)
