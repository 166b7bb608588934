"""Who may call the service: a bearer token on every write, and no open port without one.

Health (`/livez`, `/readyz`), `/metrics`, `/metadata` and the OpenAPI document are read-only
GETs and stay open, so probes and Prometheus need no secret. Every other method (`POST
/predict`, `/predict_batch`, feedback, anything added later) needs `Authorization: Bearer
<FLYWHEEL_API_TOKEN>` once a token is configured. Without a token the service may listen only
on loopback, unless the user says `--insecure-no-auth` in so many words.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from typing import Any

from flywheel.errors import ConfigError

OPEN_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


def check_exposure(host: str, has_token: bool, insecure_no_auth: bool) -> None:
    """Refuse to bind beyond loopback with no token, unless explicitly told to."""
    if has_token or insecure_no_auth or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve on {host} without a token: anyone who can reach it could call "
        "/predict; set FLYWHEEL_API_TOKEN (clients send 'Authorization: Bearer <token>'), or "
        "pass --insecure-no-auth if a proxy in front already authenticates"
    )


class BearerAuth:
    """ASGI middleware: 401 for a write request without the configured bearer token."""

    def __init__(self, app: Any, *, token: str, on_reject: Callable[[], None] | None = None):
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.on_reject = on_reject

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http" or scope["method"] in OPEN_METHODS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        if self.on_reject is not None:
            self.on_reject()
        body = json.dumps(
            {"error": "missing or wrong bearer token (Authorization: Bearer <FLYWHEEL_API_TOKEN>)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="flywheel"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
