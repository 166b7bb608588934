"""The page at `/`: BentoML's Swagger UI without its Google Tag Manager script.

BentoML's index page loads a tracking script from googletagmanager.com in every visitor's
browser (and an iframe for those without JavaScript). The page is served here instead, with
those blocks cut out and a Content-Security-Policy that allows only this service's own scripts,
styles and API calls, so nothing leaves for a third party even if a later BentoML adds another.
If the blocks cannot be cut out cleanly, a plain page with the service's links is served.
Its script that starts Swagger UI is served here too, with the online validator turned off:
Swagger UI otherwise sends the document to validator.swagger.io and shows its badge, a broken
image offline (and one more third party).
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


INITIALIZER = "/static_content/swagger-initializer.js"
INITIALIZER_JS = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "./docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
};
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
    return page.replace("BentoML Prediction Service", "Flywheel prediction service").encode()


_PAGES: dict[str, tuple[Callable[[], bytes], bytes]] = {
    "/": (index_html, b"text/html; charset=utf-8"),
    INITIALIZER: (lambda: INITIALIZER_JS, b"text/javascript; charset=utf-8"),
}


class LocalIndex:
    """ASGI middleware answering `GET /` and the Swagger initializer (and HEAD) itself;
    everything else passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] != "http" or scope["path"] not in _PAGES or scope["method"] not in (
                "GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        page, kind = _PAGES[scope["path"]]
        body = page()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", kind),
            (b"content-length", str(len(body)).encode()),
            (b"content-security-policy", CSP),
            (b"x-content-type-options", b"nosniff")]})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})
