"""The operator's commands on the node registry: ``switchboard nodes`` and ``switchboard node drain``."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from switchboard import keyspace, redis_client
from switchboard.registry import NodeEntry, NodeRegistry

COLUMNS = ("id", "url", "region", "workers", "cpu", "viewers", "rooms", "state", "age")


def table(entries: list[NodeEntry], now_ms: int | None = None) -> str:
    """The registry as an aligned text table (one header line, one line per node)."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    rows = [COLUMNS] + [
        (e.id, e.url, e.region or "-", str(e.workers), f"{e.cpu * 100:.0f}%", str(e.viewers), str(e.rooms),
         "draining" if e.draining else "up", f"{max(0, now_ms - e.started_ms) // 1000}s")
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


async def list_nodes(redis_url: str, as_json: bool) -> str:
    redis = redis_client.open_redis(redis_url)
    try:
        entries = await NodeRegistry(redis).nodes()
    finally:
        await redis.aclose()
    if as_json:
        return json.dumps([asdict(e) for e in entries], indent=2)
    return table(entries)


async def drain_node(redis_url: str, node_id: str) -> tuple[bool, str]:
    """Asks node ``node_id`` to drain. (ok, what to print): not ok when no such node is registered."""
    redis = redis_client.open_redis(redis_url)
    try:
        if await NodeRegistry(redis).get(node_id) is None:
            return False, f"no node {node_id!r} in the registry (see `switchboard nodes`)"
        await redis.publish(keyspace.node_channel(node_id), json.dumps({"kind": "drain"}))
    finally:
        await redis.aclose()
    return True, f"{node_id}: draining (it sends its clients to another node, then stops)"
