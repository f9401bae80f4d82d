"""Profiles and onboarding: pseudo (unique, case-insensitive), birth date (18+), bio, interests,
country, optional location, and the profile photo (decoded, re-encoded and stored via Storage)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from control_api.errors import Conflict, NotFound, ValidationFailed
from control_api.graph import age, public_profile, visible_account
from control_api.http import Call, Reply, Route
from control_api.images import IMAGE_TYPES, read_image_upload
from control_api.schema import Field, Schema
from control_api.social_models import Follow, Like, Profile
from control_api.storage import sniff_image

ADULT = 18
PSEUDO = r"[A-Za-z0-9_.-]{3,32}"


def onboarding(profile: Profile | None) -> dict[str, Any]:
    missing = [name for name in ("pseudo", "birth_date") if profile is None or getattr(profile, name) is None]
    return {"complete": not missing, "missing": missing}


async def _me(call: Call) -> Reply:
    async with call.services.sessions() as session:
        account = await visible_account(session, call.me.user_id, call.me.user_id)
        profile = await session.get(Profile, account.id)
    today = datetime.now(UTC).date()
    return Reply({
        "id": str(account.id),
        "email": account.email,
        "email_verified": account.email_verified,
        "role": account.role.value,
        "premium": account.premium,
        "profile": {
            **public_profile(account.id, profile, today),
            "birth_date": profile.birth_date.isoformat() if profile and profile.birth_date else None,
            "latitude": profile.latitude if profile else None,
            "longitude": profile.longitude if profile else None,
        },
        "onboarding": onboarding(profile),
    })


def check_adult(birth: date, today: date) -> None:
    if birth > today:
        raise ValidationFailed({"birth_date": "is in the future"})
    if age(birth, today) < ADULT:
        raise ValidationFailed({"birth_date": f"you must be at least {ADULT} years old"})


async def _update(call: Call) -> Reply:
    body = dict(call.body)
    if "birth_date" in body:
        check_adult(body["birth_date"], datetime.now(UTC).date())
    if ("latitude" in body) != ("longitude" in body):
        missing = "longitude" if "latitude" in body else "latitude"
        raise ValidationFailed({missing: "latitude and longitude go together"})
    if "interests" in body:
        body["interests"] = sorted({tag.lower() for tag in body["interests"]})
    if "country" in body and body["country"] is not None:
        body["country"] = body["country"].upper()
    try:
        async with call.services.sessions() as session, session.begin():
            await visible_account(session, call.me.user_id, call.me.user_id)
            profile = await session.get(Profile, call.me.user_id, with_for_update=True)
            if profile is None:
                profile = Profile(account_id=call.me.user_id, bio="", interests=[], total_likes=0)
                session.add(profile)
            if "pseudo" in body:
                taken = await session.scalar(
                    select(Profile.account_id).where(
                        func.lower(Profile.pseudo) == body["pseudo"].lower(), Profile.account_id != call.me.user_id
                    )
                )
                if taken is not None:
                    raise Conflict("this pseudo is taken")
            for name, value in body.items():
                setattr(profile, name, value)
            profile.updated_at = datetime.now(UTC)
    except IntegrityError:
        raise Conflict("this pseudo is taken") from None
    return await _me(call)


async def _user(call: Call) -> Reply:
    me = call.me.user_id
    async with call.services.sessions() as session:
        account = await visible_account(session, me, call.params["user_id"])
        profile = await session.get(Profile, account.id)
        mine = await session.get(Follow, (me, account.id))
        theirs = await session.get(Follow, (account.id, me))
        liked = await session.get(Like, (me, account.id))
    # The caller's own view of the pair (the profile page's buttons): nothing about third parties.
    relation = {"following": mine.status if mine else "none",
                "follows_me": theirs is not None and theirs.status == "accepted", "liked": liked is not None}
    return Reply({**public_profile(account.id, profile, datetime.now(UTC).date()), "relation": relation})


async def _put_photo(call: Call) -> Reply:
    data, kind = await read_image_upload(call, "a photo")
    name = f"photo-{uuid.uuid4().hex}"
    await call.services.storage.put(name, data)
    async with call.services.sessions() as session, session.begin():
        await visible_account(session, call.me.user_id, call.me.user_id)
        profile = await session.get(Profile, call.me.user_id, with_for_update=True)
        if profile is None:
            profile = Profile(account_id=call.me.user_id, bio="", interests=[], total_likes=0)
            session.add(profile)
        old, profile.photo = profile.photo, name
    if old:
        await call.services.storage.delete(old)
    return Reply({"photo_url": f"/api/photos/{name}", "content_type": kind, "size": len(data)})


async def _delete_photo(call: Call) -> Reply:
    async with call.services.sessions() as session, session.begin():
        profile = await session.get(Profile, call.me.user_id, with_for_update=True)
        old = profile.photo if profile else None
        if profile is not None:
            profile.photo = None
    if old:
        await call.services.storage.delete(old)
    return Reply(None, 204)


async def _photo(call: Call) -> web.StreamResponse:
    name = call.params["name"]
    data = await call.services.storage.get(name)
    if data is None:
        raise NotFound("no such photo")
    return web.Response(body=data, content_type=sniff_image(data) or "application/octet-stream",
                        headers={"Cache-Control": "public, max-age=86400, immutable"})


def routes() -> list[Route]:
    profile = Schema({
        "pseudo": Field("string", required=False, pattern=PSEUDO, description="unique, case-insensitive"),
        "birth_date": Field("date", required=False, description="18 or older"),
        "bio": Field("string", required=False, max_len=500),
        "interests": Field("array", required=False, max_len=20, items=Field("string", pattern=r"[A-Za-z0-9_-]{1,32}")),
        "country": Field("string", required=False, nullable=True, pattern=r"[A-Za-z]{2}", description="ISO 3166-1"),
        "latitude": Field("number", required=False, nullable=True, minimum=-90, maximum=90),
        "longitude": Field("number", required=False, nullable=True, minimum=-180, maximum=180),
    })
    return [
        Route("GET", "/me", _me, "My account, profile and onboarding state", "profiles"),
        Route("PATCH", "/me/profile", _update, "Update my profile (onboarding: pseudo and birth date)",
              "profiles", body=profile),
        Route("PUT", "/me/photo", _put_photo, "Upload my profile photo (raw image body)", "profiles",
              upload=IMAGE_TYPES),
        Route("DELETE", "/me/photo", _delete_photo, "Remove my profile photo", "profiles", ok=204),
        Route("GET", "/users/{user_id}", _user, "A user's public profile (not found when blocked)", "profiles",
              params=Schema({"user_id": Field("uuid")})),
        Route("GET", "/photos/{name}", _photo, "A profile photo", "profiles", auth=False,
              params=Schema({"name": Field("string", pattern=r"photo-[0-9a-f]{32}")}), produces="image/*"),
    ]
