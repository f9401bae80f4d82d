"""docs/api.md's ``$ curl`` examples, run by curl against ``switchboard up``; each answer is the one shown.

The commands run in bash as written, with only these changes: the doc's host ``localhost:8080`` is the
server's, curl also prints the status (``-w``), and the variables of :data:`VARIABLES` are set. An answer
matches its shown output when it is the same JSON: the same keys, the same values, except the values of
:data:`VARYING` (ids, times, tokens: checked against a pattern, and the shown value stands for the real
one in the commands and outputs that follow) and shown strings with ``...`` or ``<name>`` in them (any
text there). A shown problem's ``status`` is the HTTP status; an answer shown without one must be a 2xx.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Up, account, mailed_code, up_on_fresh_data

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
DOC_HOST = "localhost:8080"

VARIABLES = {
    "TOKEN": "the access token of a verified account (registered, verified and logged in over HTTP)",
    "ACCESS": "the same as TOKEN",
    "SOMEONE_ELSE": "the access token of another verified account",
    "SOMEONE_ELSES_ID": "that account's user id",
    "CODE": "the code last mailed to the address the doc registers (up has no SMTP: its log has the mail)",
}
"""The shell variables the doc's commands use, and what the test sets them to."""
DOC_EMAIL = "ada@example.com"
"""The address the doc registers: ``$CODE`` is the code mailed to it."""

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ROOM = r"show-[a-z2-7]{26}"
_JWT = r"eyJ[\w-]+\.[\w-]+\.[\w-]+"
VARYING = {
    "room": _ROOM,
    "watch_path": rf"/watch/{_ROOM}",
    "owner": _UUID,
    "user_id": _UUID,
    "notification_id": r"\d+",
    "created_at": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00",
    "access_token": _JWT,
    "token": _JWT,
    "refresh_token": r"[\w-]{20,}",
    "expires_at": r"\d{10}",
    "username": r"\d{10}:" + _UUID,
    "credential": r"[A-Za-z0-9+/]+=*",
}
"""Keys whose values differ on every run, and the pattern the real value must have."""


@dataclass
class Example:
    line: int
    command: str
    shown: str


def examples() -> list[Example]:
    """Every ``$ curl`` command of the doc (``\\`` continuations joined) and the output shown under it."""
    found: list[Example] = []
    in_block = False
    lines = DOC.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_block = not in_block
        elif in_block and line.startswith("$ curl "):
            start, command = i + 1, line[2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            shown = []
            while not lines[i + 1].startswith(("$ ", "```")):
                i += 1
                shown.append(lines[i])
            found.append(Example(start, command, "\n".join(shown)))
        i += 1
    return found


@pytest.fixture(scope="module")
def up() -> Iterator[Up]:
    with up_on_fresh_data("switchboard-apidoc-") as server:
        yield server


def _loose(shown: str) -> re.Pattern[str] | None:
    """A pattern for a shown string with ``...`` or ``<name>`` in it (any text there), else None."""
    parts = re.split(r"\.\.\.|<[a-z_]+>", shown)
    return re.compile(".+".join(map(re.escape, parts)), re.S) if len(parts) > 1 else None


def compare(shown: Any, real: Any, bound: dict[str, str], where: str = "") -> list[str]:
    """Where ``real`` is not ``shown``; fills ``bound`` (shown varying value -> real one)."""
    if isinstance(shown, dict) and isinstance(real, dict):
        if set(shown) != set(real):
            return [f"{where or '.'}: keys {sorted(shown)} shown, {sorted(real)} answered"]
        return [d for k in shown for d in _compare_key(k, shown[k], real[k], bound, f"{where}.{k}")]
    if isinstance(shown, list) and isinstance(real, list):
        if len(shown) != len(real):
            return [f"{where}: {len(shown)} items shown, {len(real)} answered"]
        pairs = enumerate(zip(shown, real, strict=True))
        return [d for n, (s, r) in pairs for d in compare(s, r, bound, f"{where}[{n}]")]
    loose = _loose(shown) if isinstance(shown, str) else None
    if loose is not None and isinstance(real, str):
        return [] if loose.fullmatch(real) else [f"{where}: {real!r} is not {shown!r}"]
    return [] if shown == real else [f"{where}: {json.dumps(real)} answered, {json.dumps(shown)} shown"]


def _compare_key(key: str, shown: Any, real: Any, bound: dict[str, str], where: str) -> list[str]:
    if key not in VARYING or isinstance(shown, dict | list):
        return compare(shown, real, bound, where)
    if real is None or shown is None:
        return [] if shown is real else [f"{where}: {json.dumps(real)} answered, {json.dumps(shown)} shown"]
    if isinstance(shown, str) and shown in bound.values():  # an earlier answer's value: the same one again
        return [] if shown == real else [f"{where}: {real!r} answered, {shown!r} (an earlier answer's) shown"]
    if not re.fullmatch(VARYING[key], str(real)):
        return [f"{where}: {real!r} is not like {VARYING[key]}"]
    if isinstance(shown, str) and _loose(shown) is None and shown != real:
        bound[shown] = str(real)
    return []


def _status_as_shown(shown: Any, status: int) -> bool:
    """A shown problem's ``status``, or any 2xx for an answer shown without one."""
    if isinstance(shown, dict) and isinstance(shown.get("status"), int):
        return bool(shown["status"] == status)
    return 200 <= status < 300


def _signed_in(up: Up, name: str) -> str:
    return str(account(up, name)["access_token"])


def test_every_curl_example_of_the_doc_answers_what_it_shows(up: Up) -> None:
    found = examples()
    assert len(found) >= 11, found
    env = {"PATH": "/usr/bin:/bin", "TOKEN": _signed_in(up, "doc-reader"),
           "SOMEONE_ELSE": _signed_in(up, "doc-someone-else"),
           "SOMEONE_ELSES_ID": str(account(up, "doc-someone-else")["user_id"])}
    env["ACCESS"] = env["TOKEN"]
    bound: dict[str, str] = {}
    wrong = []
    for example in found:
        command, shown = example.command, example.shown
        for doc_value, real in sorted(bound.items(), key=lambda kv: -len(kv[0])):
            command, shown = command.replace(doc_value, real), shown.replace(doc_value, real)
        if "$CODE" in command:
            env["CODE"] = mailed_code(up, DOC_EMAIL)
        used = set(re.findall(r"\$([A-Z_]+)", command))
        assert used <= set(VARIABLES), f"docs/api.md:{example.line} uses {used - set(VARIABLES)}: add to VARIABLES"
        command = command.replace(DOC_HOST, f"127.0.0.1:{up.port}") + " -w '\\n%{http_code}'"
        done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"docs/api.md:{example.line}: {command}\n{done.stderr}"
        body, _, status = done.stdout.rpartition("\n")
        expected = json.loads(shown)
        real = json.loads(body) if body else None
        problems = compare(expected, real, bound)
        if not _status_as_shown(expected, int(status)):
            problems.append(f"HTTP {status}")
        if problems:
            wrong.append(f"docs/api.md:{example.line}: {example.command}\n  answered {status} {body}\n  "
                         + "\n  ".join(problems))
    assert not wrong, "curl examples that do not answer what docs/api.md shows:\n" + "\n".join(wrong)
