"""The SDK's verify: a good signature, a wrong secret or altered body, a stale timestamp, a rotation."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchboard_client.webhooks import WebhookSignatureError, verify

SECRET = "whsec_test"
BODY = json.dumps({"id": "evt_1", "type": "room_started", "created": 1, "data": {"room": "r"}}).encode()


def sign(body: bytes, t: int, *secrets: str) -> str:
    parts = [f"t={t}"] + [f"v1={hmac.new(s.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"
                          for s in secrets]
    return ",".join(parts)


def test_good_signature_gives_the_event() -> None:
    now = int(time.time())
    assert verify(BODY, sign(BODY, now, SECRET), SECRET)["id"] == "evt_1"
    # During a rotation the header carries one v1 per live secret: either secret verifies.
    both = sign(BODY, now, "whsec_new", SECRET)
    assert verify(BODY, both, SECRET)["type"] == "room_started"
    assert verify(BODY, both, "whsec_new")["type"] == "room_started"


def test_bad_signature_is_refused_with_a_reason() -> None:
    now = int(time.time())
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify(BODY, sign(BODY, now, "whsec_other"), SECRET)
    with pytest.raises(WebhookSignatureError, match="no signature matches"):
        verify(BODY + b" ", sign(BODY, now, SECRET), SECRET)
    with pytest.raises(WebhookSignatureError, match="missing"):
        verify(BODY, "", SECRET)
    with pytest.raises(WebhookSignatureError, match="no v1"):
        verify(BODY, f"t={now}", SECRET)
    with pytest.raises(WebhookSignatureError, match="no timestamp"):
        verify(BODY, "v1=abc", SECRET)
    with pytest.raises(WebhookSignatureError, match="not a number"):
        verify(BODY, "t=soon,v1=abc", SECRET)


def test_stale_signature_is_refused() -> None:
    then = int(time.time()) - 301
    with pytest.raises(WebhookSignatureError, match="over the 300 s tolerance"):
        verify(BODY, sign(BODY, then, SECRET), SECRET)
    assert verify(BODY, sign(BODY, then, SECRET), SECRET, tolerance_s=600)["id"] == "evt_1"
    assert verify(BODY, sign(BODY, 1000, SECRET), SECRET, now=1200)["id"] == "evt_1"


@given(st.text(), st.binary())
def test_any_header_or_body_is_refused_cleanly(header: str, body: bytes) -> None:
    with pytest.raises(WebhookSignatureError):
        verify(body, header, SECRET)
