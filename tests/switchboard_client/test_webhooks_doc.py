"""docs/webhooks.md's verify example, run as written: a good delivery, a repeat, a forgery, a stale one."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

DOC = Path(__file__).parents[2] / "docs" / "webhooks.md"


def _example() -> Any:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    scope: dict[str, Any] = {}
    exec(compile(blocks[0], str(DOC), "exec"), scope)
    return scope["handle"]


def _signed(body: bytes, secret: str, t: int) -> str:
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_the_documented_handler_verifies_and_dedupes() -> None:
    handle, secret, seen = _example(), "whsec_doc", set()
    body = json.dumps({"id": "evt_1", "type": "room_started", "created": 1, "data": {"room": "r1"}}).encode()
    now = int(time.time())
    assert handle(body, _signed(body, secret, now), secret, seen) == (200, "room_started in r1")
    assert handle(body, _signed(body, secret, now), secret, seen) == (200, "duplicate")
    status, why = handle(body, _signed(body, "whsec_other", now), secret, seen)
    assert status == 400 and "no signature matches" in why
    status, why = handle(body, _signed(body, secret, now - 3600), secret, seen)
    assert status == 400 and "tolerance" in why
