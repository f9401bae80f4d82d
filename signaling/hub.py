"""The node's sessions by user, and delivery to a user wherever their socket is.

A user with a session here gets messages directly; any other user is reached through Redis pub/sub
on ``keyspace.user_channel(user)``, which the node holding that user's sessions subscribes to.
(One user's sockets are expected on one node at a time: a message for a user with a session here
is not also published to other nodes.)

Sanctions arrive on ``keyspace.SANCTIONS_CHANNEL``, which every node subscribes with its own
channel; the hub hands each kind to its handler: ``ban`` and ``revoke`` (the gateway ends the
user's sessions, when the user has one here) and ``block`` (calls and matches between the two end,
when either has a session here), ``mute``/``unmute`` (the user's chat is refused or allowed again:
:class:`~signaling.mutes.Mutes`; their sockets are told) and ``warning`` (sent to the user's sockets).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from signaling.mutes import Mutes
from signaling.session import Session
from signaling.subscriptions import Subscriptions
from switchboard.ids import NodeId, UserId
from switchboard.keyspace import SANCTIONS_CHANNEL, banned, node_channel, presence, token_epoch, user_channel
from switchboard.redis_client import is_cluster, mget, ready
from switchboard.tasks import stop_tasks

log = logging.getLogger("switchboard.signaling")

SANCTION_KINDS = ("ban", "revoke", "block", "mute", "unmute", "warning")
"""The notices of ``keyspace.SANCTIONS_CHANNEL`` a node acts on."""

Observer = Callable[[UserId, dict[str, Any]], Awaitable[None]]
"""Sees every message for a local user before the user's sockets do (calls keep their state so)."""
BanHandler = Callable[[UserId], Awaitable[None]]
"""Told when the control API bans a user, or revokes their tokens (on the nodes where the user is)."""
BlockHandler = Callable[[UserId, UserId], Awaitable[None]]
"""Told ``(blocker, blocked)`` when the control API records a block (on the nodes where either is)."""
PresenceHandler = Callable[[UserId, bool], None]
"""Told (synchronously: it schedules its own work) when a user's first session arrives on this node
(True) or their last one leaves (False)."""
CommandHandler = Callable[[dict[str, Any]], Awaitable[None]]
"""Told each command published on this node's own channel (``keyspace.node_channel``: drain)."""
Route = Callable[[UserId, dict[str, Any]], None]
"""Delivers one message type for a local user in place of the default (every session of the user)."""


class Hub:
    """Parent of every session on this node; subscribes each present user's channel."""

    def __init__(self, redis: aioredis.Redis, node_id: NodeId, presence_ttl_s: int) -> None:
        self._redis = redis
        self._cluster = is_cluster(redis)
        self.node_id = node_id
        self._presence_ttl_s = presence_ttl_s
        self._users: dict[UserId, tuple[Session, ...]] = {}
        """A user's sessions here (a tuple: usually one, and 160 bytes less than a set)."""
        self._shown: set[UserId] = set()
        """Users here with a session that is not a hidden moderator's: only they have a presence key
        (and are announced online). A moderator whose only socket here is hidden (the console's)
        reads offline to everyone, as if away."""
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._subscriptions = Subscriptions(redis, self._pubsub, node_id, presence_ttl_s)
        self._observers: list[tuple[Observer, frozenset[str]]] = []
        """Each observer with the message types it sees (a relayed line meets none of them)."""
        self._on_ban: BanHandler | None = None
        self._on_revoke: BanHandler | None = None
        self._on_block: list[BlockHandler] = []
        self._on_presence: PresenceHandler | None = None
        self._routes: dict[str, Route] = {}
        self._observing: dict[UserId, asyncio.Future[None]] = {}
        """A local user's latest delivery whose observers are still running: the user's later messages
        wait for it, so a relayed ``call.offer`` never overtakes the ``match.found`` it answers."""
        self._on_command: CommandHandler | None = None
        self._commands: dict[str, CommandHandler] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.mutes = Mutes()
        """Muted users with a session here (the dispatcher checks chat against it)."""

    def observe(self, observer: Observer, types: frozenset[str]) -> None:
        """``observer`` sees every message of one of ``types`` for a local user, before its sockets."""
        self._observers.append((observer, types))

    def on_ban(self, handler: BanHandler) -> None:
        self._on_ban = handler

    def on_revoke(self, handler: BanHandler) -> None:
        self._on_revoke = handler

    def on_block(self, handler: BlockHandler) -> None:
        """Adds a handler (the gateway ends calls and shows; presence tells the watchers)."""
        self._on_block.append(handler)

    def on_command(self, handler: CommandHandler, kinds: tuple[str, ...] = ()) -> None:
        """Commands of ``kinds`` go to ``handler``; with no kinds, every other command (drain)."""
        if not kinds:
            self._on_command = handler
        for kind in kinds:
            self._commands[kind] = handler

    async def command(self, node_id: str, message: dict[str, Any]) -> None:
        """Publishes ``message`` on another node's channel (the cascade's requests and show events)."""
        await self._redis.publish(node_channel(node_id), json.dumps(message, separators=(",", ":")))

    def on_presence(self, handler: PresenceHandler) -> None:
        self._on_presence = handler

    def route(self, kind: str, deliver: Route) -> None:
        """Messages of type ``kind`` for a local user go to ``deliver`` instead of every session."""
        self._routes[kind] = deliver

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._subscribe_node_channel(), name="hub-subscribe"),
                       loop.create_task(self._read(), name="hub-pubsub"),
                       loop.create_task(self._heartbeat(), name="hub-presence")]
        self._subscriptions.start()

    async def _subscribe_node_channel(self) -> None:
        """Connects the pubsub (later subscribes share that one connection). A node whose Redis is
        down at start keeps trying, and answers /readyz 503 meanwhile, instead of failing to start."""
        delay = 0.1
        while True:
            try:
                await ready(self._redis)  # a cluster client picks the pub/sub's node from its slot map
                await self._pubsub.subscribe(node_channel(self.node_id), SANCTIONS_CHANNEL)
                self._subscriptions.connected.set()
                return
            except (ConnectionError, OSError, aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                log.warning("pubsub subscribe failed, retrying", extra={"error": str(exc), "retry_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        await stop_tasks(list(self._tasks))
        await self._subscriptions.close()
        for sessions in list(self._users.values()):
            for session in list(sessions):
                await session.close()
        if self._users:
            await self._redis.delete(*(presence(u) for u in self._users))
        self._users.clear()
        await self._pubsub.aclose()

    def sessions(self, user_id: UserId) -> tuple[Session, ...]:
        return self._users.get(user_id, ())

    def all_sessions(self) -> list[Session]:
        """Every session on this node (a copy: callers may close them as they go)."""
        return [s for sessions in self._users.values() for s in sessions]

    @property
    def session_count(self) -> int:
        return sum(len(s) for s in self._users.values())

    async def add(self, session: Session) -> str | None:
        """Adds ``session``. Returns None, or why it is refused: ``banned`` (the user is), ``revoked``
        (its token was issued before the user's token epoch); the caller then refuses and removes it."""
        sessions = self._users.get(session.user_id, ())
        if session in sessions:
            return None
        self._users[session.user_id] = (*sessions, session)
        user, shown = session.user_id, not session.grants.hidden
        if not sessions:
            why, mute = await self._subscriptions.join(user, session.grants.iat, shown)
            if why is None:
                self.mutes.loaded(user, mute)
                if shown:
                    self._show(user)
            return why
        why = await self.refusal(user, session.grants.iat)
        if why is None and shown and user not in self._shown:  # the user's hidden socket was alone
            await self._subscriptions.refresh([user])
            self._show(user)
        return why

    def _show(self, user: UserId) -> None:
        self._shown.add(user)
        if self._on_presence is not None:
            self._on_presence(user, True)

    async def refusal(self, user: UserId, iat: int) -> str | None:
        """``banned``, ``revoked`` (a token issued at ``iat`` is older than the user's epoch), or None."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(banned(user))
            pipe.get(token_epoch(user))
            is_banned, epoch = await pipe.execute()
        if is_banned:
            return "banned"
        try:
            if epoch is not None and iat < float(epoch):
                return "revoked"
        except ValueError:  # not a number: no epoch (the Lua check reads it the same way)
            log.warning("unreadable token epoch ignored", extra={"user": user})
        return None

    async def remove(self, session: Session) -> bool:
        """Forgets ``session``; True when it was the user's last one here (the user is now offline)."""
        sessions = self._users.get(session.user_id, ())
        if session not in sessions:
            return False
        rest = tuple(s for s in sessions if s is not session)
        user = session.user_id
        if rest:
            self._users[user] = rest
            if user in self._shown and all(s.grants.hidden for s in rest):  # only a hidden socket is left
                self._shown.discard(user)
                await self._redis.delete(presence(user))
                if self._on_presence is not None:
                    self._on_presence(user, False)
            return False
        del self._users[user]
        self.mutes.clear(user)
        await self._subscriptions.leave(user)
        if user in self._shown:
            self._shown.discard(user)
            if self._on_presence is not None:
                self._on_presence(user, False)
        return True

    async def deliver(self, user_id: UserId, message: dict[str, Any]) -> bool:
        """Sends ``message`` to every session of the user; False when the user is nowhere online."""
        if user_id in self._users:
            await self._local(user_id, message)
            return True
        receivers = await self._redis.publish(user_channel(user_id), json.dumps(message, separators=(",", ":")))
        if receivers or not self._cluster:
            return bool(receivers)
        # On a Redis Cluster PUBLISH counts only the subscribers of the cluster node that took it
        # (it reaches the others too): whether some node holds the user, its presence key says.
        return bool(await self._redis.exists(presence(user_id)))

    async def _local(self, user_id: UserId, message: dict[str, Any]) -> None:
        """Observers first, then the sockets; one user's messages reach the sockets in the order they
        came, even when an observer awaits (Redis) while a relayed line for the same user arrives."""
        kind = message.get("type", "")
        observers = [observer for observer, types in self._observers if kind in types]
        before = self._observing.get(user_id)
        if before is None and not observers:
            self._send(user_id, kind, message)  # the relay's path: nothing to wait for
            return
        mine = asyncio.get_running_loop().create_future()
        self._observing[user_id] = mine
        try:
            if before is not None:
                await asyncio.shield(before)
            for observer in observers:
                await observer(user_id, message)
            self._send(user_id, kind, message)
        finally:
            mine.set_result(None)
            if self._observing.get(user_id) is mine:
                del self._observing[user_id]

    def _send(self, user_id: UserId, kind: str, message: dict[str, Any]) -> None:
        route = self._routes.get(kind)
        if route is not None:
            route(user_id, message)
            return
        for session in self._users.get(user_id, ()):
            session.send(message)

    async def _read(self) -> None:
        prefix = len(user_channel(""))
        while True:
            if not self._pubsub.subscribed:
                await asyncio.sleep(0.05)
                continue
            try:
                item = await self._pubsub.get_message(timeout=1.0)
            except (ConnectionError, aioredis.ConnectionError) as exc:
                log.warning("pubsub read failed, retrying", extra={"error": str(exc)})
                await asyncio.sleep(0.5)
                continue
            if item is None or item.get("type") != "message":
                continue
            channel = item["channel"].decode() if isinstance(item["channel"], bytes) else item["channel"]
            if channel == node_channel(self.node_id):
                await self._command(item["data"])
                continue
            if channel != SANCTIONS_CHANNEL and not channel.startswith(user_channel("")):
                continue
            try:
                message = json.loads(item["data"])
            except ValueError:
                log.warning("undecodable pubsub message dropped", extra={"channel": channel})
                continue
            if channel == SANCTIONS_CHANNEL:
                await self._sanction(message)
            elif isinstance(message, dict) and isinstance(message.get("type"), str):
                try:
                    await self._local(UserId(channel[prefix:]), message)
                except Exception:
                    log.exception("delivering a pubsub message failed")

    async def _command(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
            log.warning("unknown node command dropped")
            return
        handler = self._commands.get(message["kind"], self._on_command)
        if handler is not None:
            try:
                await handler(message)
            except Exception:
                log.exception("acting on a node command failed", extra={"kind": message["kind"]})

    async def _sanction(self, message: object) -> None:
        if isinstance(message, dict) and message.get("kind") == "premium" and isinstance(message.get("user"), str):
            # Premium bought or lapsed: the user's live sessions take it at once (their next queue.join).
            for session in self._users.get(UserId(message["user"]), ()):
                session.grants = dataclasses.replace(session.grants, premium=message.get("premium") is True)
            return
        kind = message.get("kind") if isinstance(message, dict) else None
        user = message.get("user") if isinstance(message, dict) else None
        other = message.get("other") if isinstance(message, dict) else None
        if not isinstance(user, str) or kind not in SANCTION_KINDS or (
                kind == "block" and not isinstance(other, str)):
            log.warning("unknown sanction notice dropped")
            return
        try:
            if kind in ("mute", "unmute", "warning"):
                if user in self._users:
                    self._moderation(UserId(user), kind, message)  # type: ignore[arg-type]
            elif kind == "block":
                if user in self._users or other in self._users:
                    for on_block in self._on_block:
                        await on_block(UserId(user), UserId(str(other)))
            else:
                handler = self._on_ban if kind == "ban" else self._on_revoke
                if handler is not None and user in self._users:
                    await handler(UserId(user))
        except Exception:
            log.exception("acting on a sanction failed", extra={"kind": kind})

    def _moderation(self, user: UserId, kind: str, message: dict[str, Any]) -> None:
        """A mute, unmute or warning for a user here: the mute table follows, the sockets are told."""
        if kind == "mute":
            until = message.get("until")
            until = until if isinstance(until, int | float) and not isinstance(until, bool) else None
            self.mutes.set(user, until)
            notice = {"type": "moderation.muted", "until": until}
        elif kind == "unmute":
            self.mutes.clear(user)
            notice = {"type": "moderation.unmuted"}
        else:
            text = message.get("message")
            notice = {"type": "moderation.warning",
                      "message": text[:1000] if isinstance(text, str) and text else "A moderator warned you."}
        for session in self._users.get(user, ()):
            session.send(notice)

    async def _heartbeat(self) -> None:
        """Refreshes the presence TTL of every shown user here, at a third of the TTL."""
        while True:
            await asyncio.sleep(self._presence_ttl_s / 3)
            try:
                await self._subscriptions.refresh(list(self._shown))
            except aioredis.RedisError as exc:  # the next beat retries; keys outlive two missed beats
                log.warning("presence refresh failed", extra={"error": str(exc)})

    async def query(self, users: list[str]) -> dict[str, bool]:
        """Online (True) or not, for each user id."""
        values = await mget(self._redis, [presence(u) for u in users])
        return {u: v is not None for u, v in zip(users, values, strict=True)}
