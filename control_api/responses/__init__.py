"""Schemas of the success answers of the control API's operations, for the OpenAPI document:
``(METHOD, path) -> schema``, one module per part of the API. ``tests/control_api/test_openapi.py`` checks
with schemathesis that the server's answers conform.
"""

from __future__ import annotations

from typing import Any

from control_api.responses import accounts, moderation, money, social

COMPONENTS: dict[str, dict[str, Any]] = {
    **accounts.COMPONENTS,
    **social.COMPONENTS,
    **money.COMPONENTS,
    **moderation.COMPONENTS,
}
"""Named schemas, added to ``components.schemas``."""

RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    **accounts.RESPONSES,
    **social.RESPONSES,
    **money.RESPONSES,
    **moderation.RESPONSES,
}
"""The success answer of each operation, by method and OpenAPI path (``/api`` left out)."""
