"""The success answers of accounts, profiles, rooms and tokens."""

from __future__ import annotations

from typing import Any

from control_api.responses.shapes import BOOL, INT, STR, TIME, UUID, array, nullable, obj, ref

COMPONENTS: dict[str, dict[str, Any]] = {
    "Tokens": obj({"access_token": STR, "token_type": {"const": "Bearer"}, "expires_in": INT,
                    "refresh_token": STR, "user_id": UUID},
                   description="An access token (Bearer, `expires_in` seconds) and a one-use refresh token"),
    "PublicProfile": obj({"id": UUID, "pseudo": nullable("string"), "bio": STR,
                           "interests": array(STR), "country": nullable("string"),
                           "age": nullable("integer"), "photo_url": nullable("string"), "total_likes": INT},
                          description="What any user may see of another"),
    "Me": obj({
        "id": UUID, "email": STR, "email_verified": BOOL, "role": STR, "premium": BOOL,
        "profile": {"allOf": [ref("PublicProfile"), obj({"birth_date": nullable("string", format="date"),
                                                           "latitude": nullable("number"),
                                                           "longitude": nullable("number")})]},
        "onboarding": obj({"complete": BOOL, "missing": array(STR)}),
    }, description="My account, profile and onboarding state"),
    "Room": obj({"room": STR, "owner": UUID, "kind": STR, "title": STR, "created_at": TIME,
                  "watch_path": STR}),
    "RoomToken": obj(
        {"token": STR, "expires_at": INT,
         "grants": obj({"room": nullable("string"), "publish": BOOL, "subscribe": BOOL, "hidden": BOOL,
                         "moderate": BOOL, "premium": BOOL, "verified": BOOL})},
        {"traceparent": {"type": "string", "description": "W3C trace context of this request (tracing on): pass "
                                                          "it on in show.join"},
         "node": {**nullable("string"), "description": "The base URL of the node to open /ws at (null: this host)"},
         "alternates": {**array(STR), "description": "A viewer's room token: base URLs of the nodes to open /ws "
                                                     "at with this token if `node` is lost, best first"}},
        description="A token for the node (`expires_at` in Unix seconds) and the grants it carries"),
}
"""Named schemas, added to ``components.schemas``."""

RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/auth/register"): obj({"status": STR}),
    ("POST", "/auth/verify"): obj({"email": STR, "email_verified": {"const": True}}),
    ("POST", "/auth/verify/resend"): obj({"status": STR}),
    ("POST", "/auth/login"): ref("Tokens"),
    ("POST", "/auth/refresh"): ref("Tokens"),
    ("GET", "/me"): ref("Me"),
    ("PATCH", "/me/profile"): ref("Me"),
    ("PUT", "/me/photo"): obj({"photo_url": STR, "content_type": STR, "size": INT}),
    ("GET", "/users/{user_id}"): {"allOf": [ref("PublicProfile"), obj({"relation": obj(
        {"following": STR, "follows_me": BOOL, "liked": BOOL})})]},
    ("POST", "/rooms"): ref("Room"),
    ("GET", "/rooms/{room}"): ref("Room"),
    ("POST", "/rooms/{room}/token"): ref("RoomToken"),
    ("POST", "/ws-token"): ref("RoomToken"),
    ("POST", "/users/{user_id}/invite"): obj({"user_id": UUID, "room": STR, "notification_id": INT}),
}
"""The success answer of each typed operation, by method and OpenAPI path (``/api`` left out)."""
