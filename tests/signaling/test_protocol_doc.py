"""docs/protocol.md documents every type the server handles and every type it sends."""

from __future__ import annotations

import re
from pathlib import Path

from signaling.dispatch import SERVER_TYPES
from signaling.messages import SCHEMAS

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_every_handled_and_sent_type_has_a_section_with_an_example() -> None:
    text = DOC.read_text()
    headings = set()
    for line in text.splitlines():
        if line.startswith("### "):
            headings.update(re.findall(r"`([a-z._]+)`", line))
    missing = (set(SCHEMAS) | set(SERVER_TYPES)) - headings
    assert not missing, f"undocumented in docs/protocol.md: {sorted(missing)}"
    for kind in set(SCHEMAS) | set(SERVER_TYPES):
        assert f'"type": "{kind}"' in text, f"no example for {kind}"


def test_dispatcher_handles_exactly_the_schemas(node) -> None:  # type: ignore[no-untyped-def]
    from signaling.node import NODE_DISPATCHER

    assert node.app[NODE_DISPATCHER].types == frozenset(SCHEMAS)
