"""Pay-per-view: a private chat attachment with a price. Its receivers see a blurred preview
(``/api/media/{id}/preview``, made at upload) until they pay; paying is one ledger spend on the
sender (their creator share to earnings) whose operation id names the payer and the attachment, so
paying twice charges once. The ledger is the only record of who paid: access and money cannot
disagree. In a group each member pays for themselves."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

from sqlalchemy import and_, select

from control_api.errors import Conflict, NotFound, ValidationFailed
from control_api.graph import not_blocked
from control_api.http import Call, Reply, Route
from control_api.images import blurred_preview
from control_api.ledger.book import Ledger
from control_api.payments.service import PAYMENTS
from control_api.schema import Field, Schema
from control_api.social_models import Attachment, Media, Member, Message
from control_api.types import Storage

Key = tuple[int, uuid.UUID]
"""An attachment: (message id, media id)."""


def op_id(message_id: int, media_id: uuid.UUID, payer: uuid.UUID) -> str:
    """The ledger operation of ``payer`` buying one attachment (its idempotency key)."""
    return f"ppv:{message_id}:{media_id.hex}:{payer.hex}"


def preview_name(media_id: uuid.UUID) -> str:
    return f"preview-{media_id.hex}"


def preview_url(media_id: uuid.UUID) -> str:
    return f"/api/media/{media_id}/preview"


def unlock_url(message_id: int, media_id: uuid.UUID) -> str:
    return f"/api/messages/{message_id}/attachments/{media_id}/unlock"


async def paid(ledger: Ledger, payer: uuid.UUID, keys: Iterable[Key]) -> set[Key]:
    """Which of the attachments ``payer`` has paid for (one query)."""
    wanted = {op_id(m, media, payer): (m, media) for m, media in keys}
    return {wanted[found] for found in await ledger.applied(list(wanted))}


async def store_preview(storage: Storage, media_id: uuid.UUID, image: bytes) -> bytes:
    """Makes (off the loop) and stores the blurred preview of a re-encoded image."""
    preview = await asyncio.to_thread(blurred_preview, image)
    await storage.put(preview_name(media_id), preview)
    return preview


async def load_preview(storage: Storage, media: Media) -> bytes | None:
    """The stored preview, made now from the image for media uploaded before previews existed."""
    preview = await storage.get(preview_name(media.id))
    if preview is not None:
        return preview
    image = await storage.get(f"media-{media.id.hex}")
    return None if image is None else await store_preview(storage, media.id, image)


def check_price(price: object, field: str, *, private: bool | None, content_type: str, max_price: int) -> int:
    """A price a sender may put on an attachment (ValidationFailed naming ``field`` otherwise)."""
    if isinstance(price, bool) or not isinstance(price, int) or not 0 < price <= max_price:
        raise ValidationFailed({field: f"must be a whole number of credits from 1 to {max_price}"})
    if private is False:
        raise ValidationFailed({field: "only a private attachment has a price (leave out private, or set it true)"})
    if not content_type.startswith("image/"):
        raise ValidationFailed({field: "only an image can be sold (pay-per-view shows a blurred preview first)"})
    return price


async def _unlock(call: Call) -> Reply:
    me, message_id, media_id = call.me.user_id, call.params["message_id"], call.params["media_id"]
    async with call.services.sessions() as session:
        # Mine to buy only as a member of its conversation and with no block either way with its
        # sender (in a 1:1 the sender is the only other member): otherwise it does not exist for me.
        row = (await session.execute(
            select(Attachment.price, Attachment.private, Message.sender_id)
            .join(Message, Message.id == Attachment.message_id)
            .join(Member, and_(Member.conversation_id == Message.conversation_id, Member.account_id == me))
            .where(Attachment.message_id == message_id, Attachment.media_id == media_id,
                   Message.sender_id.is_not(None), not_blocked(me, Message.sender_id))
        )).one_or_none()
    if row is None:
        raise NotFound("no such attachment")
    price, private, sender = row
    if sender == me:
        raise Conflict("this attachment is yours: there is nothing to unlock")
    if price is None:
        raise Conflict("this attachment is not for sale" if private else "this attachment is not locked")
    payments = call.request.config_dict[PAYMENTS]
    spend = await payments.spend_on(op_id(message_id, media_id, me), me, sender, price, kind="ppv",
                                    meta={"message": message_id, "media": str(media_id)})
    return Reply({"message_id": message_id, "media_id": str(media_id), "price": price, "charged": spend.amount,
                  "replayed": spend.replayed, "url": f"/api/media/{media_id}"}, 200 if spend.replayed else 201)


def routes() -> list[Route]:
    return [
        Route("POST", "/messages/{message_id}/attachments/{media_id}/unlock", _unlock,
              "Pay for a pay-per-view attachment (once: paying again charges nothing)", "chat",
              params=Schema({"message_id": Field("integer", minimum=1, maximum=2**63 - 1),
                             "media_id": Field("uuid")}), ok=201, repeat=200),
    ]

