"""``switchboard up --stripe-emulator``: localstripe runs beside it, a pack bought with a 3-D Secure
card is credited by localstripe's signed webhook, and stopping ``up`` stops localstripe too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from switchboard.embedded import free_port
from tests.e2e.test_up import Up, _alive, _get, data_dir, running, stop_up  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow
OPEN = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _call(method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None,
          form: dict[str, str] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with OPEN.open(request, timeout=30) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def test_up_with_the_stripe_emulator(running: list[Up], data_dir: Path) -> None:  # noqa: F811
    port = free_port()
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_HTTP_PORT": str(port)}
    env.pop("SWITCHBOARD_REDIS_URL", None)
    env.pop("SWITCHBOARD_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "switchboard", "up", "--stripe-emulator"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    up = Up(proc, port, [])
    running.append(up)
    deadline = time.monotonic() + 60
    while _get(up.url("/readyz"))[0] != 200:
        assert proc.poll() is None and time.monotonic() < deadline, "up did not get ready"
        time.sleep(0.2)
    assert "localstripe" in {p.name() for p in up.descendants()} or any(
        "localstripe" in " ".join(p.cmdline()) for p in up.descendants())
    api = up.url("/api")
    catalogue = _call("GET", f"{api}/payments/catalogue")
    stripe = catalogue["stripe"]["js"].split("/js.stripe.com")[0]
    creds = {"email": "buyer@example.com", "password": "buyer-password-1"}
    _call("POST", f"{api}/auth/register", creds)
    token = _call("POST", f"{api}/auth/login", creds)["access_token"]
    card = _call("POST", f"{stripe}/v1/payment_methods", token="sk_test_x", form={
        "type": "card", "card[number]": "4000000000003220", "card[exp_month]": "12", "card[exp_year]": "2030",
        "card[cvc]": "123"})["id"]
    intent = _call("POST", f"{api}/payments/credit-packs/small/intent", {"payment_method": card}, token)
    assert intent["status"] == "requires_action"
    _call("POST", f"{stripe}/v1/payment_intents/{intent['intent_id']}/_authenticate", token="sk_test_x",
          form={"client_secret": intent["client_secret"], "success": "true"})
    deadline = time.monotonic() + 20
    while _call("GET", f"{api}/wallet", token=token)["available"] != 100:
        assert time.monotonic() < deadline, "localstripe's webhook never credited the pack"
        time.sleep(0.3)
    started = stop_up(up)
    assert up.proc.returncode == 0 and not _alive(started), _alive(started)
    assert any("stripe   localstripe emulator" in line for line in up.lines), up.lines
