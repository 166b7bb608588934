"""The page at `/`: BentoML's Swagger UI without its Google Tag Manager script.

BentoML's index page loads a tracking script from googletagmanager.com in every visitor's
browser (and an iframe for those without JavaScript). The page is served here instead, with
those blocks cut out and a Content-Security-Policy that allows only this service's own scripts,
styles and API calls, so nothing leaves for a third party even if a later BentoML adds another.
If the blocks cannot be cut out cleanly, a plain page with the service's links is served.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TRACKING = re.compile(
    r"<!-- Google Tag Manager( \(noscript\))? -->.*?"
    r"<!-- End Google Tag Manager( \(noscript\))? -->",
    re.DOTALL,
)
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
PLAIN = b"""<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8">
<title>Flywheel prediction service</title></head><body><h1>Flywheel prediction service</h1>
<ul><li><a href="docs.json">OpenAPI document</a></li><li><a href="metrics">metrics</a></li>
<li><a href="readyz">readiness</a></li></ul></body></html>
"""


@functools.cache
def index_html() -> bytes:
    """BentoML's Swagger page with the tracking blocks removed, or the plain page."""
    import _bentoml_impl.server

    source = Path(_bentoml_impl.server.__file__).with_name("main-openapi.html")
    try:
        page = _TRACKING.sub("", source.read_text())
    except OSError:
        return PLAIN
    if "googletagmanager" in page or "<iframe" in page:
        return PLAIN
    return page.encode()


class LocalIndex:
    """ASGI middleware answering `GET /` (and HEAD) itself; everything else passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope["path"] != "/" or scope["method"] not in (
                "GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        body = index_html()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"content-security-policy", CSP),
            (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})
