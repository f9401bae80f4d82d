"""docs/protocol.md read as data: its JSON examples by section, and the fields the code emits per server type.

An example is a ```json block under a ``### `type` `` heading; a block holds one object (possibly over
several lines) or one object per line. An example whose ``type`` is a client type (``SCHEMAS``) under a
heading that does not say "(server)" is a client example; every other one is a server example.

What the server sends is found in the code, not kept by hand: every dict literal in the node's packages
whose ``"type"`` is a server type (a string, or a module constant naming one) gives its constant keys.
Frames built otherwise (by the matchmaker's Lua and f-strings, or with ``**spread``) are captured from a
running node by the test, or listed in :data:`BUILT_ELSEWHERE` with the file that builds them.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signaling.dispatch import SERVER_TYPES
from signaling.messages import SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
EMITTERS = ("signaling", "matchmaker", "sfu", "control_api", "switchboard")
"""Packages whose dict literals may be frames a socket receives (control_api publishes ``show.gift``)."""

BUILT_ELSEWHERE: dict[str, tuple[frozenset[str], str]] = {
    "match.found": (frozenset({"type", "session_id", "peer", "offerer"}), "matchmaker/claims.py"),
    "match.ended": (frozenset({"type", "session_id", "reason"}), "matchmaker/lua/part.lua"),
}
"""Frames that are not dict literals: their keys, and the file that spells each of them."""
NODE_ADDS = {"match.found": frozenset({"media"})}
"""Keys a node adds to a frame built elsewhere (signaling/calls.py stamps ``media`` on ``match.found``)."""
PLACEHOLDER_KEYS = frozenset({"..."})
"""Keys that stand for "the other fields" (``{"type": "reply", "ref": 7, "...": "fields of the answer"}``)."""


@dataclass(frozen=True)
class Example:
    heading: str
    """The ``### ...`` line it sits under."""
    line: int
    """Its line in docs/protocol.md (1-based), for messages."""
    message: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.message.get("type"))

    @property
    def is_client(self) -> bool:
        return self.type in SCHEMAS and "(server)" not in self.heading

    def __str__(self) -> str:
        return f"docs/protocol.md:{self.line} ({self.heading.strip('# ')}): {json.dumps(self.message)}"


def examples(text: str | None = None) -> list[Example]:
    """Every JSON example of the doc, in doc order."""
    lines = (DOC.read_text() if text is None else text).splitlines()
    found: list[Example] = []
    heading, i = "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line
        if line.strip() == "```json":
            start = i + 1
            i += 1
            while lines[i].strip() != "```":
                i += 1
            found += [Example(heading, start + 1 + offset, obj) for offset, obj in _objects(lines[start:i])]
        i += 1
    return found


def _objects(block: list[str]) -> list[tuple[int, dict[str, Any]]]:
    try:
        return [(0, json.loads("\n".join(block)))]
    except json.JSONDecodeError:
        return [(n, json.loads(line)) for n, line in enumerate(block) if line.strip()]


def emitted_keys() -> dict[str, set[str]]:
    """Per server type, the constant keys of every dict literal in :data:`EMITTERS` that builds one."""
    keys: dict[str, set[str]] = {}
    for package in EMITTERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            names = _string_constants(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Dict):
                    continue
                pairs = {k.value: v for k, v in zip(node.keys, node.values, strict=True)
                         if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                kind = _string(pairs.get("type"), names)
                if kind in SERVER_TYPES:
                    keys.setdefault(kind, set()).update(pairs)
    for kind, (fields, source) in BUILT_ELSEWHERE.items():
        spelled = (ROOT / source).read_text()
        missing = [f for f in fields if not re.search(rf"""(["']|\b){re.escape(f)}\1""", spelled)]
        assert not missing, f"{source} no longer spells {missing} of {kind}: update BUILT_ELSEWHERE"
        keys.setdefault(kind, set()).update(fields | NODE_ADDS.get(kind, frozenset()))
    return keys


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """``NAME = "text"`` at a module's top level (``CHANGED = "presence.changed"``)."""
    return {target.id: stmt.value.value for stmt in tree.body if isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
            for target in stmt.targets if isinstance(target, ast.Name)}


def _string(node: ast.expr | None, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return names.get(node.id)
    return None


def documented_replies(text: str | None = None) -> dict[str, set[str]]:
    """Per client type, the top-level keys of the first "Reply `{...}`" of its section (its type and ref left out)."""
    found: dict[str, set[str]] = {}
    for section in re.split(r"\n(?=#)", DOC.read_text() if text is None else text):
        kinds = re.findall(r"`([a-z._]+)`", section.splitlines()[0]) if section.startswith("### ") else []
        shown = re.search(r"\b[Rr]eply\s+`(\{.*?\})`", section, re.S)
        if shown and kinds and "(server)" not in section.splitlines()[0]:
            for kind in kinds:
                found[kind] = _top_keys(shown.group(1)) - {"type", "ref"}
    return found


def _top_keys(shown: str) -> set[str]:
    """``{"a", "b": {"c": 1}, "d": [...]}`` -> ``{"a", "b", "d"}``: the quoted names at depth 1 in a key's
    place (after ``{`` or ``,``), with or without a value (the doc's "these fields" shorthand)."""
    keys: set[str] = set()
    depth, key_place = 0, False
    for token in re.findall(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]', shown):
        if token in "{[":
            depth += 1
            key_place = token == "{" and depth == 1
        elif token in "}]":
            depth -= 1
        elif token == ",":
            key_place = depth == 1
        elif token == ":":
            key_place = False
        elif key_place:
            keys.add(token[1:-1])
            key_place = False
    return keys


def inline_frames(text: str | None = None) -> list[Example]:
    """The frames the prose shows in backticks (``{"type": "error", "code": ..., "ref": null}``), as
    server examples with their top-level keys (shorthand keys without a value included, valued None)."""
    text = DOC.read_text() if text is None else text
    return [Example("(inline, server)", text[:m.start()].count("\n") + 1,
                    {**dict.fromkeys(_top_keys(m.group(1))), "type": m.group(2)})
            for m in re.finditer(r'`(\{"type": "([a-z._]+)".*?\})`', text, re.S)]
