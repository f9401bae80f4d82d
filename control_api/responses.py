"""Schemas of the success answers of the most used operations (accounts, profiles, rooms and tokens),
for the OpenAPI document: ``(METHOD, path) -> schema``. Every other operation still documents ``{}``.

Objects name their required fields and types but stay open (``additionalProperties`` allowed): a field
added later is not a broken contract. ``tests/control_api/test_openapi.py`` checks with schemathesis that
the server's answers conform.
"""

from __future__ import annotations

from typing import Any

_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_UUID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {**required, **(optional or {})},
                              "required": list(required)}
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


COMPONENTS: dict[str, dict[str, Any]] = {
    "Tokens": _obj({"access_token": _STR, "token_type": {"const": "Bearer"}, "expires_in": _INT,
                    "refresh_token": _STR, "user_id": _UUID},
                   description="An access token (Bearer, `expires_in` seconds) and a one-use refresh token"),
    "PublicProfile": _obj({"id": _UUID, "pseudo": _nullable("string"), "bio": _STR,
                           "interests": {"type": "array", "items": _STR}, "country": _nullable("string"),
                           "age": _nullable("integer"), "photo_url": _nullable("string"), "total_likes": _INT},
                          description="What any user may see of another"),
    "Me": _obj({
        "id": _UUID, "email": _STR, "email_verified": _BOOL, "role": _STR, "premium": _BOOL,
        "profile": {"allOf": [_ref("PublicProfile"), _obj({"birth_date": _nullable("string", format="date"),
                                                           "latitude": _nullable("number"),
                                                           "longitude": _nullable("number")})]},
        "onboarding": _obj({"complete": _BOOL, "missing": {"type": "array", "items": _STR}}),
    }, description="My account, profile and onboarding state"),
    "Room": _obj({"room": _STR, "owner": _UUID, "kind": _STR, "title": _STR, "created_at": _TIME,
                  "watch_path": _STR}),
    "RoomToken": _obj(
        {"token": _STR, "expires_at": _INT,
         "grants": _obj({"room": _nullable("string"), "publish": _BOOL, "subscribe": _BOOL, "hidden": _BOOL,
                         "moderate": _BOOL, "premium": _BOOL, "verified": _BOOL})},
        {"traceparent": {"type": "string", "description": "W3C trace context of this request (tracing on): pass "
                                                          "it on in show.join"}},
        description="A token for the node (`expires_at` in Unix seconds) and the grants it carries"),
}
"""Named schemas, added to ``components.schemas``."""

RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/auth/register"): _obj({"status": _STR}),
    ("POST", "/auth/verify"): _obj({"email": _STR, "email_verified": {"const": True}}),
    ("POST", "/auth/verify/resend"): _obj({"status": _STR}),
    ("POST", "/auth/login"): _ref("Tokens"),
    ("POST", "/auth/refresh"): _ref("Tokens"),
    ("GET", "/me"): _ref("Me"),
    ("PATCH", "/me/profile"): _ref("Me"),
    ("PUT", "/me/photo"): _obj({"photo_url": _STR, "content_type": _STR, "size": _INT}),
    ("GET", "/users/{user_id}"): {"allOf": [_ref("PublicProfile"), _obj({"relation": _obj(
        {"following": _STR, "follows_me": _BOOL, "liked": _BOOL})})]},
    ("POST", "/rooms"): _ref("Room"),
    ("GET", "/rooms/{room}"): _ref("Room"),
    ("POST", "/rooms/{room}/token"): _ref("RoomToken"),
    ("POST", "/ws-token"): _ref("RoomToken"),
    ("POST", "/users/{user_id}/invite"): _obj({"user_id": _UUID, "room": _STR, "notification_id": _INT}),
}
"""The success answer of each typed operation, by method and OpenAPI path (``/api`` left out)."""
