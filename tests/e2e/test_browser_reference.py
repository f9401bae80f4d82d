"""``/api/docs`` in Chromium, under the pages' real CSP (``switchboard up``): the renderer loads from
this origin, shows every operation of ``/api/openapi.json`` by tag, and filters them."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import Up
from tests.e2e.conftest import Pages

pytestmark = [pytest.mark.slow, pytest.mark.chromium]


def test_the_reference_page_renders_the_openapi_document(pages: Pages, up: Up) -> None:
    with urllib.request.urlopen(f"{up.base}/api/openapi.json", timeout=10) as resp:
        doc = json.load(resp)
    methods = ("get", "post", "put", "patch", "delete")
    operations = sum(1 for item in doc["paths"].values() for m in item if m in methods)
    page = pages.open("reader", "/api/docs", None)
    cards = page.locator("details.op")
    expect(cards).to_have_count(operations)
    token = page.locator("details.op", has_text="/rooms/{room}/token")
    expect(token).to_have_count(1)
    token.locator("summary").click()
    expect(token).to_contain_text("role")  # the request body's field
    page.fill("#filter", "ws-token")
    expect(page.locator("details.op:visible")).to_have_count(1)
    assert not [line for line in pages.console["reader"] if line.startswith(("error", "pageerror"))], pages.console
