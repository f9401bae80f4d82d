"""The load test's report: one HTML page with inline SVG figures (no plotting library needed)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, PAD = 560, 220, 40


def _bars(values: list[float], labels: list[str], title: str, unit: str, figure_id: str) -> str:
    """A bar chart: one bar per value, its label under it, the top value on the axis."""
    top = max(values, default=0.0) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / max(1, len(values))
    parts = [f'<svg id="{figure_id}" class="figure" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{PAD}" y="20" font-size="14" font-family="sans-serif">{html.escape(title)}</text>',
             f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>',
             f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>',
             f'<text x="{PAD - 4}" y="{PAD + 4}" font-size="10" text-anchor="end" font-family="sans-serif">'
             f'{top:g}</text>',
             f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" font-size="10" text-anchor="end" '
             'font-family="sans-serif">0</text>',
             f'<text x="{WIDTH - PAD}" y="{PAD - 6}" font-size="10" text-anchor="end" font-family="sans-serif">'
             f'{html.escape(unit)}</text>']
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        h = inner_h * value / top
        x = PAD + i * step + step * 0.1
        parts.append(f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}" '
                     f'fill="#3b7dd8"><title>{html.escape(label)}: {value:g} {html.escape(unit)}</title></rect>')
        if len(values) <= 40:
            parts.append(f'<text x="{x + step * 0.4:.1f}" y="{HEIGHT - PAD + 14}" font-size="9" text-anchor="middle" '
                         f'font-family="sans-serif">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(values: list[float], bins: int = 10) -> tuple[list[float], list[str]]:
    if not values:
        return [], []
    low, high = min(values), max(values)
    width = (high - low) / bins or 0.1
    counts = [0.0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / width))] += 1
    return counts, [f"{low + i * width:.2f}" for i in range(bins)]


def write_html(path: Path, plan: dict[str, Any], summary: dict[str, Any], viewers: list[dict[str, Any]]) -> None:
    """Writes the report: the plan, the summary, and four figures (join time distribution, then
    bitrate, loss and fps per viewer), with a table of every viewer."""
    joined = [v for v in viewers if v["join_s"] is not None]
    labels = [f"v{v['index']}" for v in joined]
    counts, edges = _histogram([v["join_s"] for v in joined])
    figures = [
        _bars(counts, edges, "Join time distribution (show.join to first frame)", "viewers per bin (s)", "join-time"),
        _bars([v["bitrate_kbps"] for v in joined], labels, "Received bitrate per viewer", "kbit/s", "bitrate"),
        _bars([v["loss_pct"] for v in joined], labels, "Video packet loss per viewer", "%", "loss"),
        _bars([v["fps"] for v in joined], labels, "Frames per second per viewer", "fps", "fps"),
    ]
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v[k] is None else str(v[k]))}</td>" for k in
                         ("index", "room", "join_s", "frames", "fps", "bitrate_kbps", "loss_pct", "error")) + "</tr>"
        for v in viewers)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchboard load test</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} td,th{{padding:2px 8px;text-align:left}}
svg{{display:block;margin:1em 0;border:1px solid #ddd}}</style></head><body>
<h1>Switchboard load test</h1>
<p>Plan: <code>{html.escape(json.dumps(plan))}</code></p>
<p>Summary: <code>{html.escape(json.dumps(summary))}</code></p>
{"".join(figures)}
<table><tr><th>viewer</th><th>room</th><th>join s</th><th>frames</th><th>fps</th><th>kbit/s</th><th>loss %</th>
<th>error</th></tr>{rows}</table>
</body></html>
"""
    path.write_text(page)
