"""Chat media: upload an image (decoded and re-encoded, see :mod:`control_api.images`), then attach it
to messages by id.

A private attachment (pay-per-view later) is served only to its owner; others see it blurred. A
block hides attachments as it hides messages: either way, the other's media is not found, even
what was sent before the block.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import and_, exists, select

from control_api.errors import Forbidden, NotFound
from control_api.graph import not_blocked
from control_api.http import Call, Reply, Route
from control_api.images import IMAGE_TYPES, read_image_upload
from control_api.models import Attachment, Media, Member, Message
from control_api.schema import Field, Schema


async def _upload(call: Call) -> Reply:
    data, kind = await read_image_upload(call, "an upload")
    async with call.services.sessions() as session, session.begin():
        media = Media(owner_id=call.me.user_id, content_type=kind, size=len(data))
        session.add(media)
        await session.flush()
        await call.services.storage.put(f"media-{media.id.hex}", data)
    return Reply({"id": str(media.id), "content_type": kind, "size": len(data), "url": f"/api/media/{media.id}"}, 201)


async def _download(call: Call) -> web.StreamResponse:
    me, media_id = call.me.user_id, call.params["media_id"]
    async with call.services.sessions() as session:
        media = await session.get(Media, media_id)
        if media is None:
            raise NotFound("no such media")
        if media.owner_id != me:
            shared = (
                select(Attachment.private)
                .join(Message, Message.id == Attachment.message_id)
                .where(Attachment.media_id == media_id, not_blocked(me, media.owner_id),
                       exists().where(and_(Member.conversation_id == Message.conversation_id, Member.account_id == me)))
            )
            flags = list(await session.scalars(shared))
            if not flags:
                raise NotFound("no such media")
            if all(flags):
                raise Forbidden("this attachment is private (pay-per-view is not open yet)")
    data = await call.services.storage.get(f"media-{media.id.hex}")
    if data is None:
        raise NotFound("no such media")
    return web.Response(body=data, content_type=media.content_type, headers={"Cache-Control": "private, max-age=3600"})


def routes() -> list[Route]:
    return [
        Route("POST", "/media", _upload, "Upload a chat attachment (raw image body)", "chat", upload=IMAGE_TYPES,
              ok=201, idempotent=True),
        Route("GET", "/media/{media_id}", _download, "Download an attachment I own or received", "chat",
              params=Schema({"media_id": Field("uuid")}), produces="image/*"),
    ]
