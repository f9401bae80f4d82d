"""Security headers on every response of a process: pages, static files, the API, media, errors.

One hook on the root application (``on_response_prepare``, which aiohttp runs for every response a
handler, a sub-application or a raised HTTP error produces, file responses included) rather than a
middleware: nothing stays on a socket's stack, and no route can forget them.

- ``X-Content-Type-Options: nosniff``: an upload is shown as the type it is served as, never
  sniffed into HTML or script.
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no page can be framed (clickjacking).
- ``Referrer-Policy: no-referrer``: room names and ids in our addresses go nowhere else.
- ``Content-Security-Policy``: HTML pages load scripts, styles and media from this origin only and
  talk to this host over HTTP and WebSocket; every other response (JSON, images, scripts) gets a
  policy that allows nothing, so a file that reaches a browser as a document runs nothing.
"""

from __future__ import annotations

import re

from aiohttp import web

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'{ws}; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""CSP of HTML pages; ``{ws}`` becomes this host's ws:/wss: origins (older browsers do not count
them as 'self'). Inline style attributes stay allowed (a page hides an element with one); inline
scripts do not."""

OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
"""CSP of everything that is not a page."""

_HOST = re.compile(r"^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$")


_ORIGIN = re.compile(r"^(https?)://((?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?)/?$")


def socket_origins(urls: tuple[str, ...]) -> tuple[str, ...]:
    """The ws:/wss: origins of other nodes' base URLs (``https://n2.example.com`` -> ``wss://n2.example.com``).
    ValueError names a URL that is not a plain http(s) origin (no path, query or user)."""
    origins = []
    for url in urls:
        match = _ORIGIN.match(url)
        if match is None:
            raise ValueError(f"not an http(s) origin: {url!r}")
        scheme = "wss" if match.group(1) == "https" else "ws"
        origins.append(f"{scheme}://{match.group(2)}")
    return tuple(origins)


def page_policy(host: str, others: tuple[str, ...] = ()) -> str:
    """The pages' CSP for a request to ``host`` (its Host header, used only when it is a plain host[:port]),
    which may also open sockets to ``others`` (ws:/wss: origins from :func:`socket_origins`)."""
    ws = f" ws://{host} wss://{host}" if _HOST.match(host) else ""
    return PAGE_POLICY.format(ws=ws + "".join(f" {o}" for o in others))


async def _add_headers(request: web.BaseRequest, response: web.StreamResponse, others: tuple[str, ...]) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    # A 304 carries no body and so no type of its own, yet its headers replace the cached page's:
    # it keeps the policy the page was sent with.
    if "Content-Security-Policy" not in headers and response.status != 304:
        html = response.content_type == "text/html"
        headers["Content-Security-Policy"] = page_policy(request.host, others) if html else OTHER_POLICY


def install_security_headers(app: web.Application, socket_urls: tuple[str, ...] = ()) -> None:
    """Adds the headers to every response of ``app`` and of the sub-applications mounted on it; the
    pages may also open sockets to the nodes at ``socket_urls`` (base URLs, checked here)."""
    others = socket_origins(socket_urls)

    async def add(request: web.BaseRequest, response: web.StreamResponse) -> None:
        await _add_headers(request, response, others)

    app.on_response_prepare.append(add)
