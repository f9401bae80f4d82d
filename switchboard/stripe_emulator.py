"""localstripe as a child process, for ``switchboard up --stripe-emulator`` and the bench.

localstripe is GPL: it is only ever run as its own program (the ``localstripe`` script installed
next to this interpreter by the test extras), never imported or copied. It keeps its objects in
memory (and rewrites /tmp/localstripe.pickle on each change); ``--from-scratch`` ignores old ones.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from switchboard.embedded import _Child, free_port
from switchboard.errors import EmbeddedServiceError

API_KEY = "sk_test_switchboard_emulator"
"""localstripe accepts any key; this one names where it came from in logs."""


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never a proxy


class StripeEmulator(_Child):
    """One localstripe on 127.0.0.1:<port>; ``url`` is its API base, ``webhook_secret`` signs its events."""

    name = "localstripe"

    def __init__(self, directory: Path, port: int = 0) -> None:
        super().__init__()
        self.directory = directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_secret = "whsec_" + secrets.token_hex(16)

    def start(self, timeout_s: float = 30.0) -> str:
        exe = Path(sys.executable).with_name("localstripe")
        if not exe.exists():
            found = shutil.which("localstripe")
            if found is None:
                raise EmbeddedServiceError("localstripe is not installed (pip install -e '.[test]')")
            exe = Path(found)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._spawn([str(exe), "--port", str(self.port), "--from-scratch"], self.directory / "localstripe.log")
        self._wait_ready(self._answers, timeout_s)
        return self.url

    def _answers(self) -> bool:
        request = urllib.request.Request(self.url + "/v1/customers?limit=1",
                                         headers={"Authorization": f"Bearer {API_KEY}"})
        try:
            with _opener().open(request, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def send_webhooks_to(self, url: str) -> None:
        """localstripe signs every event with :attr:`webhook_secret` and posts it to ``url``."""
        data = urllib.parse.urlencode({"url": url, "secret": self.webhook_secret}).encode()
        request = urllib.request.Request(self.url + "/_config/webhooks/switchboard", data=data,
                                         headers={"Authorization": f"Bearer {API_KEY}"})
        with _opener().open(request, timeout=5):
            pass
