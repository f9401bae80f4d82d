"""The success answers of moderation and administration: reports and their review, sanctions, the audit
log, the console's counters, evidence clips, and webhook endpoints with their delivery log."""

from __future__ import annotations

from typing import Any

from control_api.reports import CONTEXTS, REASONS, STATUSES
from control_api.responses.shapes import BOOL, INT, NUM, STR, TIME, UUID, array, maybe, nullable, obj, ref
from control_api.sanctions import KINDS
from control_api.webhooks.outbox import EVENT_TYPES

_NULL_TIME = nullable("string", format="date-time")
_NULL_UUID = nullable("string", format="uuid")


def page(item: str) -> dict[str, Any]:
    """A page of ``item``, newest first, and the cursor of the next one."""
    return obj({"items": array(ref(item)),
                "next_cursor": {**nullable("integer"), "description": "pass as `before` for the next page; "
                                                                      "null: this page is the last"}},
               description=f"A page of {item}s, newest first")


COMPONENTS: dict[str, dict[str, Any]] = {
    "Report": obj({
        "id": INT, "reporter_id": {**_NULL_UUID, "description": "null once the reporter's account is gone"},
        "user_id": {**UUID, "description": "the reported user"}, "context": {"enum": list(CONTEXTS)},
        "message_id": nullable("integer"), "session_id": nullable("string"), "room": nullable("string"),
        "reason": {"enum": list(REASONS)}, "comment": STR, "status": {"enum": list(STATUSES)},
        "created_at": TIME,
    }, description="A report, as its reporter sees it"),
    "ReviewedReport": {"allOf": [ref("Report"), obj({
        "claimed_by": _NULL_UUID, "claimed_at": _NULL_TIME, "closed_at": _NULL_TIME,
        "resolution": {**STR, "description": "the closing moderator's note"},
        "sanction_id": nullable("integer"),
        "clip": maybe(obj({"id": STR, "url": STR}, description="the evidence clip")),
    })], "description": "A report with its review, as moderators see it"},
    "ReportPage": page("ReviewedReport"),
    "Sanction": obj({
        "id": INT, "account_id": UUID, "kind": {"enum": list(KINDS)}, "reason": STR, "starts_at": TIME,
        "ends_at": {**_NULL_TIME, "description": "null: until lifted"}, "created_by": _NULL_UUID,
        "report_id": nullable("integer"), "lifted_at": _NULL_TIME, "lifted_by": _NULL_UUID, "lift_reason": STR,
        "active": BOOL,
    }, description="A warning, mute or ban on an account"),
    "SanctionPage": page("Sanction"),
    "AuditEntry": obj({"id": INT, "at": TIME, "actor_id": {**_NULL_UUID, "description": "null: the system"},
                       "action": STR, "subject": STR, "detail": {"type": "object"}},
                      description="One privileged act"),
    "AuditPage": page("AuditEntry"),
    "Clip": obj({"id": STR, "room": STR, "moderator_id": _NULL_UUID, "content_type": STR, "size": INT,
                 "duration_ms": INT, "tracks": INT, "url": {**STR, "description": "the file"}, "created_at": TIME},
                description="An evidence clip of a live room's last seconds"),
    "WebhookEndpoint": obj({"id": UUID, "url": STR,
                            "events": {**array({"enum": list(EVENT_TYPES)}), "description": "empty: all"},
                            "description": STR, "created_at": TIME},
                           description="A registered receiver of webhooks"),
    "WebhookEndpointSecret": {"allOf": [ref("WebhookEndpoint"), obj({"secret": STR})],
                              "description": "An endpoint with its signing secret (shown on creation and rotation)"},
    "WebhookAttempt": obj({"id": INT, "event_id": STR, "type": {"enum": list(EVENT_TYPES)}, "attempt": INT,
                           "at": TIME, "status_code": {**nullable("integer"), "description": "null: no answer"},
                           "latency_ms": NUM, "error": STR},
                          description="One delivery attempt of an event to an endpoint"),
    "WebhookAttemptPage": page("WebhookAttempt"),
}
"""Named schemas, added to ``components.schemas``."""

_TARGET = obj({
    "user_id": UUID, "email_verified": BOOL, "created_at": _NULL_TIME, "deleted": BOOL,
    "profile": maybe(obj({"pseudo": nullable("string"), "bio": STR, "country": nullable("string"),
                          "photo_url": nullable("string")})),
})

RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/reports"): ref("Report"),
    ("GET", "/moderation/reports"): ref("ReportPage"),
    ("GET", "/moderation/reports/{report_id}"): {"allOf": [ref("ReviewedReport"), obj({"context_detail": obj({
        "target": _TARGET,
        "message": maybe(obj({"id": INT, "text": STR, "sender_id": _NULL_UUID, "created_at": TIME})),
        "prior_reports": {**array(ref("ReviewedReport")), "description": "the target's other reports (20 newest)"},
        "sanctions": {**array(ref("Sanction")), "description": "the target's sanctions (20 newest)"},
    })})]},
    ("POST", "/moderation/reports/{report_id}/claim"): ref("ReviewedReport"),
    ("POST", "/moderation/reports/{report_id}/action"): ref("ReviewedReport"),
    ("POST", "/moderation/reports/{report_id}/dismiss"): ref("ReviewedReport"),
    ("POST", "/moderation/accounts/{account_id}/sanctions"): ref("Sanction"),
    ("GET", "/moderation/accounts/{account_id}/sanctions"): obj({"items": array(ref("Sanction"))}),
    ("POST", "/moderation/sanctions/{sanction_id}/lift"): ref("Sanction"),
    ("GET", "/moderation/sanctions"): ref("SanctionPage"),
    ("GET", "/moderation/audit"): ref("AuditPage"),
    ("GET", "/moderation/stats"): obj({
        "reports": obj({"open": INT, "in_review": INT, "today": INT}),
        "sanctions_active": obj({"ban": INT, "mute": INT}),
        "actions_today": {"type": "object", "additionalProperties": INT,
                          "description": "sanction and report actions today, by moderator id"},
        "active_users": obj({"day": {"type": "string", "format": "date"}, "dau": INT, "wau": INT, "mau": INT}),
    }),
    ("POST", "/moderation/clips"): ref("Clip"),
    ("GET", "/moderation/clips/{clip_id}"): ref("Clip"),
    ("POST", "/admin/webhooks"): ref("WebhookEndpointSecret"),
    ("GET", "/admin/webhooks"): obj({"items": array(ref("WebhookEndpoint"))}),
    ("POST", "/admin/webhooks/{endpoint_id}/rotate"): {"allOf": [ref("WebhookEndpointSecret"), obj({
        "previous_expires_at": {**TIME, "description": "until when the previous secret still signs"}})]},
    ("GET", "/admin/webhooks/{endpoint_id}/deliveries"): ref("WebhookAttemptPage"),
}
"""The success answer of each typed operation, by method and OpenAPI path (``/api`` left out)."""
