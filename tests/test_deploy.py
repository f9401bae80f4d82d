"""deploy/: the Prometheus rules pass ``promtool check rules``, and every metric the rules and the
Grafana dashboard name is one a real process exports (a scrape of ``/metrics`` on the all-in-one
application, which holds the API, a node and a matchmaker on one registry)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from switchboard.cli.assembly import Process
from switchboard.cli.commands import build_up_app
from switchboard.keys import KeyPaths, ensure_secrets
from switchboard.settings import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "switchboard-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "switchboard.json"

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (labels, functions, keywords and ranges dropped)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges ([5m], [$__rate_interval])
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    names = set()
    for match in _IDENT.finditer(expr):
        name, rest = match.group(0), expr[match.end():]
        if name.lower() in _KEYWORDS or rest.lstrip().startswith("(") or expr[max(match.start() - 1, 0)] == "$":
            continue
        if re.fullmatch(r"[0-9.e+-]+", name) or (match.start() > 0 and expr[match.start() - 1].isdigit()):
            continue
        names.add(name)
    return names


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])]


def test_metric_names_of_an_expression() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(http_request_seconds_bucket{route="/a{b}"}[5m])))'
            " / clamp_min(sum(rate(x_total[$__rate_interval])), 1e-9) > 0.120 and on (job) up == 1")
    assert metric_names(expr) == {"http_request_seconds_bucket", "x_total", "up"}


@pytest.mark.promtool
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


async def test_rules_and_dashboard_name_only_exported_metrics(redis_url: str, database_url: str,
                                                              tmp_path: Path) -> None:
    settings = load_settings(environ={"SWITCHBOARD_DATA_DIR": str(tmp_path)})

    def build() -> web.Application:  # reads and writes the secrets files: off the loop
        ensure_secrets(KeyPaths.from_settings(settings))
        return build_up_app(settings, redis_url, database_url, Process.new())  # type: ignore[no-any-return]

    client = TestClient(TestServer(await asyncio.to_thread(build)))
    await client.start_server()
    try:
        # One request on the token route (refused: no login) so its labelled series exist.
        assert (await client.post("/api/rooms/show-x/token", json={})).status == 401
        scrape = await (await client.get("/metrics")).text()
    finally:
        await client.close()
    exported = {line.split()[2] for line in scrape.splitlines() if line.startswith("# TYPE ")}
    exported |= {_IDENT.match(line).group(0) for line in scrape.splitlines()  # type: ignore[union-attr]
                 if line and not line.startswith("#")}
    assert 'route="/api/rooms/{room}/token"' in scrape  # the route label the token SLO selects

    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    for where, exprs in (("rules", [rule["expr"] for rule in _rules()]), ("dashboard", _dashboard_exprs())):
        named = set().union(*(metric_names(e) for e in exprs))
        assert named, where
        missing = named - exported - recorded
        assert not missing, f"{where} name metrics no process exports: {sorted(missing)}"
