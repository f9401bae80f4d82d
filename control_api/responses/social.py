"""The success answers of the social graph, chat, media, notifications, ICE servers and the API's index."""

from __future__ import annotations

from typing import Any

from control_api.notifications import KINDS
from control_api.responses.shapes import BOOL, INT, STR, TIME, UUID, array, nullable, obj, ref


def _note(kind: str, data: dict[str, Any], description: str) -> dict[str, Any]:
    """The notification of one kind, with the ``data`` it carries."""
    return obj({"kind": {"const": kind}, "data": obj(data)}, description=description)


_CURSOR = nullable("integer", description="Pass as `before` for the next page; null on the last page")

COMPONENTS: dict[str, dict[str, Any]] = {
    "Person": {"allOf": [ref("PublicProfile"), obj({"since": TIME})],
               "description": "A user in one of my lists, and since when (accepted, or asked for a request)"},
    "People": obj({"items": array(ref("Person"))}),
    "FollowState": obj({"user_id": UUID, "status": {"enum": ["pending", "accepted", "declined"]}},
                       description="Where a follow between me and this user stands"),
    "Attachment": obj(
        {"media_id": UUID, "content_type": STR, "private": BOOL,
         "url": nullable("string", description="null while private and not mine (or, priced, not paid by me)")},
        {"preview_url": {"type": "string", "description": "The blurred preview (private attachments)"},
         "price": {"type": "integer", "description": "Credits to see it (pay-per-view)"},
         "unlocked": {"type": "boolean", "description": "Mine, or paid by me (priced attachments)"},
         "unlock_url": nullable("string", description="POST it to pay (priced attachments; null when mine)")},
        description="A media item attached to a message, as the caller sees it"),
    "Message": obj({"id": INT, "conversation_id": UUID,
                    "sender_id": nullable("string", format="uuid", description="null once the sender is deleted"),
                    "text": STR, "created_at": TIME, "attachments": array(ref("Attachment"))},
                   description="A chat message (its id orders the conversation)"),
    "Conversation": obj(
        {"id": UUID, "kind": {"enum": ["direct", "group"]}, "title": STR, "created_at": TIME,
         "last_message_id": INT, "unread": {"type": "integer", "description": "Messages to me not yet read"},
         "members": array(obj({"user_id": UUID, "last_read_id": INT}))},
        description="A 1:1 or group conversation, with each member's read receipt"),
    "Notification": {
        "allOf": [obj({"id": INT, "kind": {"enum": list(KINDS)}, "data": {"type": "object"},
                       "created_at": TIME, "read": BOOL})],
        "oneOf": [
            _note("follow_request", {"user_id": UUID}, "Someone asked to follow me"),
            _note("follow_accepted", {"user_id": UUID}, "A follow between us was accepted"),
            _note("like", {"user_id": UUID}, "Someone liked me"),
            _note("message", {"conversation_id": UUID, "message_id": INT, "from": UUID},
                  "A message came while I was offline"),
            _note("live_invite", {"from": UUID, "room": STR}, "An invitation to watch a show"),
            _note("welcome", {}, "My email is verified"),
            _note("report_outcome", {"report_id": INT, "outcome": STR}, "A report of mine was closed"),
            _note("call_missed", {"user_id": UUID, "call_id": STR}, "A call to me went unanswered"),
            _note("moderation_warning", {"message": STR}, "A moderator warned me"),
        ],
        "description": "An in-app notification; `data` depends on `kind`",
    },
    "IceServer": obj({"urls": array(STR)}, {"username": STR, "credential": STR},
                     description="One RTCConfiguration.iceServers entry (TURN entries carry a credential)"),
}
"""Named schemas, added to ``components.schemas``."""

RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/"): obj({"service": STR, "openapi": STR}),
    ("GET", "/openapi.json"): obj({"openapi": STR, "info": {"type": "object"}, "paths": {"type": "object"},
                                   "components": {"type": "object"}}, description="This document"),
    ("POST", "/auth/forgot"): obj({"status": STR}),
    # social graph
    ("POST", "/users/{user_id}/follow"): ref("FollowState"),
    ("POST", "/me/follow-requests/{user_id}/accept"): ref("FollowState"),
    ("POST", "/me/follow-requests/{user_id}/decline"): ref("FollowState"),
    ("GET", "/me/follows"): ref("People"),
    ("GET", "/me/followers"): ref("People"),
    ("GET", "/me/follow-requests"): ref("People"),
    ("POST", "/users/{user_id}/like"): obj({"user_id": UUID, "total_likes": INT}),
    ("POST", "/users/{user_id}/block"): obj({"user_id": UUID, "blocked": {"const": True}}),
    ("GET", "/me/blocks"): obj({"items": array(UUID),
                                "people": array(obj({"id": UUID, "pseudo": nullable("string")}))},
                               description="The users I blocked, newest first (`people` names them)"),
    ("GET", "/search/users"): obj({"items": array(ref("PublicProfile"))}),
    ("POST", "/moderation/friends/rebuild"): obj({"pairs": {"type": "integer", "description": "Friend pairs"}}),
    # chat
    ("POST", "/conversations"): ref("Conversation"),
    ("GET", "/conversations"): obj({"items": array(ref("Conversation")), "unread_total": INT}),
    ("GET", "/conversations/{conversation_id}"): ref("Conversation"),
    ("GET", "/conversations/{conversation_id}/messages"): obj({"items": array(ref("Message")),
                                                               "next_cursor": _CURSOR}),
    ("POST", "/conversations/{conversation_id}/messages"): ref("Message"),
    ("POST", "/conversations/{conversation_id}/members"): ref("Conversation"),
    ("POST", "/conversations/{conversation_id}/read"): obj({"conversation_id": UUID, "last_read_id": INT}),
    ("POST", "/media"): obj({"id": UUID, "content_type": STR, "size": INT, "url": STR}),
    # notifications
    ("GET", "/notifications"): obj({"items": array(ref("Notification")), "unread": INT, "next_cursor": _CURSOR}),
    ("POST", "/notifications/read"): obj({"unread": INT}),
    # tokens
    ("GET", "/ice-servers"): obj({"ice_servers": array(ref("IceServer")),
                                  "ttl_s": {"type": "integer", "description": "The TURN credential's lifetime"}},
                                 description="Empty `ice_servers` when no TURN server is configured"),
}
"""The success answer of each typed operation, by method and OpenAPI path (``/api`` left out)."""
