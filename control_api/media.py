"""Chat media: upload an image (decoded and re-encoded, see :mod:`control_api.images`), then attach it
to messages by id.

Each upload also gets a blurred preview (:mod:`control_api.ppv`). A private attachment is served whole
only to its owner and, when it has a price, to each receiver who paid for it (402 until then); others
get the preview. A block hides attachments as it hides messages: either way, the other's media is not
found, even what was sent before the block.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_api import ppv
from control_api.errors import Forbidden, NotFound, PaymentRequired
from control_api.graph import not_blocked
from control_api.http import Call, Reply, Route
from control_api.images import IMAGE_TYPES, PREVIEW_TYPE, read_image_upload
from control_api.payments.service import PAYMENTS
from control_api.schema import Field, Schema
from control_api.social_models import Attachment, Media, Member, Message


async def _upload(call: Call) -> Reply:
    data, kind = await read_image_upload(call, "an upload")
    async with call.services.sessions() as session, session.begin():
        media = Media(owner_id=call.me.user_id, content_type=kind, size=len(data))
        session.add(media)
        await session.flush()
        await call.services.storage.put(f"media-{media.id.hex}", data)
        # Made now, whether or not it is ever sent private: an upload is decoded once, here.
        await ppv.store_preview(call.services.storage, media.id, data)
    return Reply({"id": str(media.id), "content_type": kind, "size": len(data), "url": f"/api/media/{media.id}"}, 201)


async def _seen(session: AsyncSession, me: uuid.UUID, media_id: uuid.UUID) -> tuple[Media, list[Any]]:
    """The media and, unless it is mine, the attachments of it I can see (message id, private, price);
    NotFound when none (not mine, not in a conversation of mine, or hidden by a block)."""
    media = await session.get(Media, media_id)
    if media is None:
        raise NotFound("no such media")
    if media.owner_id == me:
        return media, []
    shared = (
        select(Attachment.message_id, Attachment.private, Attachment.price)
        .join(Message, Message.id == Attachment.message_id)
        .where(Attachment.media_id == media_id, not_blocked(me, media.owner_id),
               exists().where(and_(Member.conversation_id == Message.conversation_id, Member.account_id == me)))
    )
    rows = list((await session.execute(shared)).all())
    if not rows:
        raise NotFound("no such media")
    return media, rows


async def _download(call: Call) -> web.StreamResponse:
    me, media_id = call.me.user_id, call.params["media_id"]
    async with call.services.sessions() as session:
        media, rows = await _seen(session, me, media_id)
    if rows and all(private for _, private, _ in rows):
        priced = [(message_id, price) for message_id, _, price in rows if price is not None]
        ledger = call.request.config_dict[PAYMENTS].ledger
        if not priced or not await ppv.paid(ledger, me, [(m, media_id) for m, _ in priced]):
            if not priced:
                raise Forbidden("this attachment is private")
            message_id, price = min(priced, key=lambda p: p[1])
            raise PaymentRequired(f"this attachment costs {price} credits: POST "
                                  f"{ppv.unlock_url(message_id, media_id)} to see it")
    data = await call.services.storage.get(f"media-{media.id.hex}")
    if data is None:
        raise NotFound("no such media")
    return web.Response(body=data, content_type=media.content_type, headers={"Cache-Control": "private, max-age=3600"})


async def _preview(call: Call) -> web.StreamResponse:
    async with call.services.sessions() as session:
        media, _ = await _seen(session, call.me.user_id, call.params["media_id"])
    data = await ppv.load_preview(call.services.storage, media)
    if data is None:
        raise NotFound("no such media")
    return web.Response(body=data, content_type=PREVIEW_TYPE, headers={"Cache-Control": "private, max-age=3600"})


def routes() -> list[Route]:
    media = Schema({"media_id": Field("uuid")})
    return [
        Route("POST", "/media", _upload, "Upload a chat attachment (raw image body)", "chat", upload=IMAGE_TYPES,
              ok=201, idempotent=True),
        Route("GET", "/media/{media_id}", _download,
              "Download an attachment I own or received (a pay-per-view one once paid: 402 before)", "chat",
              params=media, produces="image/*"),
        Route("GET", "/media/{media_id}/preview", _preview,
              "The blurred preview of an attachment I own or received (what pay-per-view shows before paying)",
              "chat", params=media, produces=PREVIEW_TYPE),
        *ppv.routes(),  # paying for a private attachment: the other half of these doors
    ]
