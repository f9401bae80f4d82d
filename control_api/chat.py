"""Chat: 1:1 and group conversations, messages with attachments, cursor pages, read receipts and
unread counts. Online recipients get each message through their node (Redis pub/sub); offline ones
get a notification. Blocks hide: a 1:1 with a blocked user is not found, and in groups neither
sees the other's messages."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, Update, and_, bindparam, case, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import notifications, ppv, stats
from control_api.errors import Forbidden, NotFound, ValidationFailed
from control_api.graph import not_blocked, visible_account
from control_api.http import Call, Reply, Route
from control_api.ledger.types import MAX_AMOUNT
from control_api.payments.service import PAYMENTS
from control_api.sanctions import active_mute
from control_api.schema import Field, Schema
from control_api.social_models import Attachment, Block, Conversation, Media, Member, Message

MAX_GROUP = 50


def direct_key(a: uuid.UUID, b: uuid.UUID) -> str:
    """The one 1:1 conversation of a pair, whoever starts it."""
    return ":".join(sorted((str(a), str(b))))


async def member_ids(session: AsyncSession, conversation_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await session.scalars(select(Member.account_id).where(Member.conversation_id == conversation_id)))


@functools.cache
def _open_query() -> Select[Conversation]:
    """:func:`open_conversation`'s query with ``me`` and ``conversation_id`` bound per call: built
    once, because building it (and its cache key) cost more than running it (~1-2 ms a call here)."""
    me = bindparam("me", type_=Member.account_id.type)
    other = Member.__table__.alias("other")
    blocked_peer = exists().where(and_(other.c.conversation_id == Conversation.id, other.c.account_id != me,
                                       ~not_blocked(me, other.c.account_id)))
    return (select(Conversation)
            .join(Member, and_(Member.conversation_id == Conversation.id, Member.account_id == me))
            .where(Conversation.id == bindparam("conversation_id", type_=Conversation.id.type),
                   ~and_(Conversation.kind == "direct", blocked_peer)))


@functools.cache
def _read_own_query() -> Update:
    """The members of conversation ``conv`` (returned), the sender ``me`` marked as having read
    message ``msg``: built once (on the table: no member is loaded in a send's session)."""
    table = cast(Table, Member.__table__)
    me = bindparam("me", type_=table.c.account_id.type)
    return (update(table).where(table.c.conversation_id == bindparam("conv", type_=table.c.conversation_id.type))
            .values(last_read_id=case((table.c.account_id == me, bindparam("msg", type_=table.c.last_read_id.type)),
                                      else_=table.c.last_read_id))
            .returning(table.c.account_id))


async def open_conversation(session: AsyncSession, me: uuid.UUID, conversation_id: uuid.UUID) -> Conversation:
    """The conversation when ``me`` is a member and (for 1:1) no block stands between the two.
    One query: membership and the block check are part of it."""
    conv = await session.scalar(_open_query(), {"me": me, "conversation_id": conversation_id})
    if conv is None:
        raise NotFound("no such conversation")
    return conv


def attachment_json(att: Attachment, media: Media, me: uuid.UUID, paid: bool = False) -> dict[str, Any]:
    """An attachment as ``me`` sees it: ``url`` is None while it is private and not mine (or, with a
    ``price``, not paid by me: ``unlock_url`` pays); a private one has a blurred ``preview_url``."""
    mine = media.owner_id == me
    out: dict[str, Any] = {
        "media_id": str(media.id), "content_type": media.content_type, "private": att.private,
        "url": f"/api/media/{media.id}" if not att.private or mine or paid else None,
    }
    if att.private:
        out["preview_url"] = ppv.preview_url(media.id)
    if att.price is not None:
        out.update(price=att.price, unlocked=mine or paid,
                   unlock_url=None if mine else ppv.unlock_url(att.message_id, media.id))
    return out


def message_json(msg: Message, attachments: list[tuple[Attachment, Media]], me: uuid.UUID,
                 paid: set[ppv.Key] | frozenset[ppv.Key] = frozenset()) -> dict[str, Any]:
    """``paid``: the attachments (message id, media id) ``me`` paid for."""
    return {
        "id": msg.id,
        "conversation_id": str(msg.conversation_id),
        "sender_id": str(msg.sender_id) if msg.sender_id else None,
        "text": msg.text,
        "created_at": msg.created_at.isoformat(),
        "attachments": [attachment_json(a, m, me, (a.message_id, m.id) in paid) for a, m in attachments],
    }


async def _attachments(session: AsyncSession, ids: list[int]) -> dict[int, list[tuple[Attachment, Media]]]:
    out: dict[int, list[tuple[Attachment, Media]]] = {i: [] for i in ids}
    if ids:
        rows = await session.execute(
            select(Attachment, Media).join(Media, Media.id == Attachment.media_id).where(Attachment.message_id.in_(ids))
        )
        for att, med in rows.all():
            out[att.message_id].append((att, med))
    return out


async def _create(call: Call) -> Reply:
    me = call.me.user_id
    others = sorted(set(call.body["members"]) - {me})
    if not others:
        raise ValidationFailed({"members": "must name at least one other user"})
    group = len(others) > 1 or "title" in call.body
    async with call.services.sessions() as session, session.begin():
        for other in others:
            await visible_account(session, me, other)
        if not group:
            key = direct_key(me, others[0])
            existing = await session.scalar(select(Conversation).where(Conversation.direct_key == key))
            if existing is not None:
                return Reply(await _conversation_json(session, existing, me), 200)
        conv = Conversation(kind="group" if group else "direct", title=call.body.get("title", ""), created_by=me,
                            direct_key=None if group else direct_key(me, others[0]), last_message_id=0)
        session.add(conv)
        await session.flush()
        session.add_all([Member(conversation_id=conv.id, account_id=uid, last_read_id=0) for uid in [me, *others]])
        await session.flush()
        return Reply(await _conversation_json(session, conv, me), 201)


async def _conversation_json(session: AsyncSession, conv: Conversation, me: uuid.UUID) -> dict[str, Any]:
    members = (await session.execute(
        select(Member.account_id, Member.last_read_id).where(Member.conversation_id == conv.id)
    )).all()
    unread = await session.scalar(
        select(func.count()).select_from(Message)
        .where(Message.conversation_id == conv.id, Message.sender_id != me,
               Message.id > select(Member.last_read_id).where(Member.conversation_id == conv.id,
                                                              Member.account_id == me).scalar_subquery(),
               not_blocked(me, Message.sender_id))
    )
    return {
        "id": str(conv.id), "kind": conv.kind, "title": conv.title, "created_at": conv.created_at.isoformat(),
        "last_message_id": conv.last_message_id, "unread": int(unread or 0),
        "members": [{"user_id": str(uid), "last_read_id": last} for uid, last in members],
    }


async def _list_conversations(call: Call) -> Reply:
    me = call.me.user_id
    other = Member.__table__.alias("other")
    hidden_direct = exists().where(and_(other.c.conversation_id == Conversation.id, other.c.account_id != me,
                                        ~not_blocked(me, other.c.account_id)))
    stmt = (
        select(Conversation).join(Member, and_(Member.conversation_id == Conversation.id, Member.account_id == me))
        .where(~and_(Conversation.kind == "direct", hidden_direct))
        .order_by(Conversation.last_message_id.desc(), Conversation.created_at.desc())
        .limit(call.query.get("limit", 50))
    )
    async with call.services.sessions() as session:
        convs = list(await session.scalars(stmt))
        items = [await _conversation_json(session, c, me) for c in convs]
    return Reply({"items": items, "unread_total": sum(i["unread"] for i in items)})


async def _get(call: Call) -> Reply:
    async with call.services.sessions() as session:
        conv = await open_conversation(session, call.me.user_id, call.params["conversation_id"])
        return Reply(await _conversation_json(session, conv, call.me.user_id))


async def _messages(call: Call) -> Reply:
    me, limit = call.me.user_id, call.query.get("limit", 50)
    async with call.services.sessions() as session:
        conv = await open_conversation(session, me, call.params["conversation_id"])
        stmt = select(Message).where(Message.conversation_id == conv.id, not_blocked(me, Message.sender_id))
        if "before" in call.query:
            stmt = stmt.where(Message.id < call.query["before"])
        msgs = list(await session.scalars(stmt.order_by(Message.id.desc()).limit(limit)))
        atts = await _attachments(session, [m.id for m in msgs])
    for_sale = [(a.message_id, m.id) for pairs in atts.values() for a, m in pairs
                if a.price is not None and m.owner_id != me]
    paid = await ppv.paid(call.request.config_dict[PAYMENTS].ledger, me, for_sale) if for_sale else set()
    return Reply({
        "items": [message_json(m, atts[m.id], me, paid) for m in msgs],
        "next_cursor": msgs[-1].id if len(msgs) == limit else None,
    })


async def refuse_muted(session: AsyncSession, me: uuid.UUID) -> None:
    """Forbidden while a mute is in force (Postgres, the truth: the nodes follow its Redis mirror)."""
    mute = await active_mute(session, me)
    if mute is not None:
        until = mute.ends_at.isoformat() if mute.ends_at else "a moderator lifts it"
        raise Forbidden(f"you are muted until {until}: no messages meanwhile")


async def _send(call: Call) -> Reply:
    me, body = call.me.user_id, call.body
    wanted = body.get("attachments", [])
    if not body.get("text") and not wanted:
        raise ValidationFailed({"text": "a message needs text or attachments"})
    async with call.services.sessions() as session, session.begin():
        conv = await open_conversation(session, me, call.params["conversation_id"])
        await refuse_muted(session, me)
        msg = Message(conversation_id=conv.id, sender_id=me, text=body.get("text", ""), created_at=datetime.now(UTC))
        session.add(msg)
        await session.flush()
        pairs: list[tuple[Attachment, Media]] = []
        for i, item in enumerate(wanted):
            media = await session.get(Media, item["media_id"])
            if media is None or media.owner_id != me:
                raise ValidationFailed({f"attachments[{i}].media_id": "is not a media item you uploaded"})
            price = None
            if "price" in item:
                price = ppv.check_price(item["price"], f"attachments[{i}].price", private=item.get("private"),
                                        content_type=media.content_type,
                                        max_price=call.services.settings.ppv_max_price)
                if await ppv.load_preview(call.services.storage, media) is None:
                    raise ValidationFailed({f"attachments[{i}].media_id": "its file is gone: upload it again"})
            att = Attachment(message_id=msg.id, media_id=media.id, private=item.get("private", price is not None),
                             price=price)
            session.add(att)
            pairs.append((att, media))
        conv.last_message_id = msg.id
        await stats.track(session, me, "message")
        # The sender has read their own message; the same statement lists who should receive it.
        recipients = list(await session.scalars(_read_own_query(), {"conv": conv.id, "me": me, "msg": msg.id}))
        recipients = [uid for uid in recipients if uid != me]
        if conv.kind == "group" and recipients:
            hidden = set(await session.scalars(
                select(Block.blocked_id).where(Block.blocker_id == me, Block.blocked_id.in_(recipients))
                .union(select(Block.blocker_id).where(Block.blocked_id == me, Block.blocker_id.in_(recipients)))
            ))
            recipients = [uid for uid in recipients if uid not in hidden]
    offline = []
    for uid in recipients:
        event = {"type": "chat.message", "message": message_json(msg, pairs, uid)}
        if not await call.services.realtime.push(uid, event):
            offline.append(uid)
    if offline:
        data = {"conversation_id": str(conv.id), "message_id": msg.id, "from": str(me)}
        async with call.services.sessions() as session, session.begin():
            for uid in offline:
                notifications.add(session, uid, "message", data)
    return Reply(message_json(msg, pairs, me), 201)


async def _read(call: Call) -> Reply:
    me = call.me.user_id
    async with call.services.sessions() as session, session.begin():
        conv = await open_conversation(session, me, call.params["conversation_id"])
        member = await session.get(Member, (conv.id, me), with_for_update=True)
        assert member is not None
        member.last_read_id = max(member.last_read_id, min(call.body["message_id"], conv.last_message_id))
        others = [uid for uid in await member_ids(session, conv.id) if uid != me]
        read = member.last_read_id
    for uid in others:
        await call.services.realtime.push(
            uid, {"type": "chat.read", "conversation_id": str(conv.id), "user_id": str(me), "message_id": read}
        )
    return Reply({"conversation_id": str(conv.id), "last_read_id": read})


async def _add_members(call: Call) -> Reply:
    """Any member of a group adds others (each must be visible to the adder: no block either way)."""
    me = call.me.user_id
    async with call.services.sessions() as session, session.begin():
        conv = await open_conversation(session, me, call.params["conversation_id"])
        if conv.kind != "group":
            raise ValidationFailed({"members": "a 1:1 conversation cannot take members: start a group"})
        present = set(await member_ids(session, conv.id))
        new = [uid for uid in dict.fromkeys(call.body["members"]) if uid not in present]
        if len(present) + len(new) > MAX_GROUP + 1:
            raise ValidationFailed({"members": f"a group holds at most {MAX_GROUP + 1} members"})
        for uid in new:
            await visible_account(session, me, uid)
        # They start with nothing unread: the history is readable, not news.
        session.add_all([Member(conversation_id=conv.id, account_id=uid, last_read_id=conv.last_message_id)
                         for uid in new])
        await session.flush()
        return Reply(await _conversation_json(session, conv, me))


def routes() -> list[Route]:
    conv = Schema({"conversation_id": Field("uuid")})
    big = 2**63 - 1
    return [
        Route("POST", "/conversations", _create,
              "Start a conversation: one other member is a 1:1 (reused), more or a title is a group", "chat",
              body=Schema({
                  "members": Field("array", min_len=1, max_len=MAX_GROUP, items=Field("uuid")),
                  "title": Field("string", required=False, max_len=100),
              }), ok=201, repeat=200, idempotent=True),
        Route("GET", "/conversations", _list_conversations, "My conversations with unread counts", "chat",
              query=Schema({"limit": Field("integer", required=False, minimum=1, maximum=200)})),
        Route("GET", "/conversations/{conversation_id}", _get, "A conversation and its read receipts", "chat",
              params=conv),
        Route("GET", "/conversations/{conversation_id}/messages", _messages, "Messages, newest first", "chat",
              params=conv, query=Schema({
                  "before": Field("integer", required=False, minimum=1, maximum=big, description="next_cursor"),
                  "limit": Field("integer", required=False, minimum=1, maximum=100),
              })),
        Route("POST", "/conversations/{conversation_id}/messages", _send, "Send a message", "chat", params=conv,
              body=Schema({
                  "text": Field("string", required=False, max_len=4000),
                  "attachments": Field("array", required=False, max_len=10, items=Field("object", shape=Schema({
                      "media_id": Field("uuid", description="from POST /media"),
                      "private": Field("boolean", required=False,
                                       description="shown blurred; served only to me (and to who paid its price)"),
                      "price": Field("integer", required=False, minimum=1, maximum=MAX_AMOUNT,
                                     description="pay-per-view: credits a receiver pays to see it (implies "
                                                 "private; at most the api.ppv_max_price setting)"),
                  }))),
              }), ok=201, idempotent=True),
        Route("POST", "/conversations/{conversation_id}/members", _add_members, "Add members to a group", "chat",
              params=conv, body=Schema({"members": Field("array", min_len=1, max_len=MAX_GROUP, items=Field("uuid"))})),
        Route("POST", "/conversations/{conversation_id}/read", _read, "Mark read up to a message", "chat",
              params=conv, body=Schema({"message_id": Field("integer", minimum=0, maximum=big)})),
    ]
