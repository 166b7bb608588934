"""The service's front door: Host, token scope and content type, checked before any body is read.

For every state-changing request (any method but GET/HEAD/OPTIONS), in this order:

1. `Host` must name this service: a loopback name or address with the port the request arrived
   on, the very address it arrived on, or a name in `FLYWHEEL_ALLOWED_HOSTS`; otherwise 403.
   A web page cannot then drive a loopback service through DNS rebinding or a form post.
2. The bearer token must grant the route's scope (flywheel.tokens); otherwise 401.
3. The body must be declared `application/json`; otherwise 415 (a browser form or `text/plain`
   cross-site post cannot pass, and no other decoder is ever reached). `/predict_image` also
   takes `multipart/form-data` (an upload): it needs the predict token like `/predict`, and it
   decodes nothing but images (serving/image_upload.py).

Reads stay open (probes, `/metrics`, the OpenAPI document), except `/metadata`, which needs
the predict token once one is set. Nothing here reads the body: a refused request costs its
headers only.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable
from typing import Any

from flywheel.tokens import ADMIN, FEEDBACK, PREDICT, ScopeTokens

OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCOPE_BY_PATH = {"/predict": PREDICT, "/predict_batch": PREDICT, "/predict_image": PREDICT,
                 "/feedback": FEEDBACK}
UPLOAD_PATHS = frozenset({"/predict_image"})  # these take a multipart form as well as JSON
FORM_TYPE = b"multipart/form-data"
GUARDED_READS = {"/metadata": PREDICT}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
JSON_TYPE = b"application/json"


def parse_allowed_hosts(text: str) -> frozenset[str]:
    """`FLYWHEEL_ALLOWED_HOSTS`: comma-separated `name` (any port) or `name:port`, any case."""
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def host_allowed(host: bytes, server: tuple[str, int] | None, allowed: Iterable[str]) -> bool:
    """Whether a request's Host header names this service (see the module docstring)."""
    text = host.decode("latin-1").strip().lower()
    name, port = _split_host(text)
    if text in allowed or name in allowed:
        return True
    if server is None:
        return False
    local_address, local_port = server[0], int(server[1])
    same_port = port == local_port or (port is None and local_port == 80)
    if not same_port:
        return False
    return name in LOOPBACK_NAMES or _same_address(name, local_address)


def _split_host(text: str) -> tuple[str, int | None]:
    name, sep, port = text.rpartition(":")
    if not sep or name.endswith(":") or (text.startswith("[") and not name.endswith("]")):
        return text, None  # no port (a bare IPv6 literal in brackets included)
    return (name, int(port)) if port.isdigit() else (text, None)


def _same_address(name: str, local: str) -> bool:
    try:
        return ipaddress.ip_address(name.strip("[]")) == ipaddress.ip_address(local)
    except ValueError:
        return False  # a name: only the allow-list may vouch for it


def declares_json(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == JSON_TYPE


def declares_accepted(path: str, content_type: bytes) -> bool:
    """JSON everywhere; a multipart form on the upload routes too."""
    declared = content_type.split(b";", 1)[0].strip().lower()
    return declared == JSON_TYPE or (path in UPLOAD_PATHS and declared == FORM_TYPE)


class RequestGuard:
    """ASGI middleware in front of every route; `on_reject(reason)` counts each refusal."""

    def __init__(self, app: Any, *, tokens: ScopeTokens, allowed_hosts: frozenset[str],
                 on_reject: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.tokens = tokens
        self.allowed_hosts = allowed_hosts
        self.on_reject = on_reject

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await self._refuse(send, *refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: dict[str, Any]) -> tuple[int, str, str] | None:
        """(status, reason, message) for a request to refuse, None to let it through."""
        path, method = scope["path"], scope["method"]
        writes = method not in OPEN_METHODS
        needed = SCOPE_BY_PATH.get(path, ADMIN) if writes else GUARDED_READS.get(path)
        if needed is None:
            return None
        headers = dict(scope["headers"])
        if writes and not host_allowed(headers.get(b"host", b""), scope.get("server"),
                                       self.allowed_hosts):
            return 403, "foreign_host", (
                "Host header does not name this service; add the name to "
                "FLYWHEEL_ALLOWED_HOSTS if it is yours")
        if not self.tokens.is_open(needed) and not self.tokens.allows(
                needed, headers.get(b"authorization", b"")):
            return 401, "unauthorized", _token_hint(needed)
        if writes and not declares_accepted(path, headers.get(b"content-type", b"")):
            form = " or multipart/form-data" if path in UPLOAD_PATHS else ""
            return 415, "not_json", ("send the body as JSON with Content-Type: application/json"
                                     + form)
        return None

    async def _refuse(self, send: Callable[..., Any], status: int, reason: str,
                      message: str) -> None:
        if self.on_reject is not None:
            self.on_reject(reason)
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="flywheel"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _token_hint(scope: str) -> str:
    where = {PREDICT: "FLYWHEEL_API_TOKEN",
             FEEDBACK: "FLYWHEEL_FEEDBACK_TOKEN or the local token in .flywheel/tokens.json",
             ADMIN: "FLYWHEEL_ADMIN_TOKEN or the local token in .flywheel/tokens.json"}[scope]
    return f"missing or wrong bearer token for the {scope} scope (Authorization: Bearer <{where}>)"
