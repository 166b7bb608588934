"""What a webhook must pass before the receiver reads its body: Host, token, type, size, time.

The receiver starts training runs, so it is a state-changing endpoint like any other: every
bind needs a token (a loopback bind generates one in a 0600 file that the CLI and the shipped
Alertmanager config read, so the first hour stays one command), a non-loopback bind needs one
configured, and each POST is checked in this order, each before any of the body is read:

    Host header is ours (403: DNS rebinding / CSRF against a loopback port)
    Authorization: Bearer <token>, constant-time (401)
    Content-Type is JSON (415: a browser form or `text/plain` cannot be a webhook)
    Content-Length within the cap (413), then the body read with the cap and a deadline

Text taken from a request is escaped and truncated before it is logged (`printable`).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from flywheel.errors import ConfigError
from flywheel.private_file import create_private, read_private
from flywheel.serving.auth import is_loopback
from flywheel.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
JSON_TYPES = frozenset({"application/json"})
LOG_TEXT_CHARS = 200


class Refused(Exception):
    """A request refused before its body is handled: the status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Guard:
    token: str
    allowed_hosts: frozenset[str]
    max_body_bytes: int
    body_timeout_s: float

    def check_headers(self, headers: Any) -> None:
        """Host, token and content type; raises `Refused` for the first that fails."""
        host = _hostname(headers.get("host", ""))
        if host not in self.allowed_hosts:
            raise Refused(403, f"Host {printable(host, 80)!r} is not one this receiver answers")
        given = headers.get("authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, f"Bearer {self.token}".encode()):
            raise Refused(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in JSON_TYPES:
            raise Refused(415, f"Content-Type {printable(kind, 80)!r}: expected application/json")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            raise Refused(413, f"body over {self.max_body_bytes} bytes")

    async def read_body(self, chunks: AsyncIterator[bytes]) -> bytes:
        """The body, refused past the cap (a chunked body has no Content-Length) or deadline."""
        body = bytearray()

        async def collect() -> None:
            async for chunk in chunks:
                body.extend(chunk)
                if len(body) > self.max_body_bytes:
                    raise Refused(413, f"body over {self.max_body_bytes} bytes")

        try:
            await asyncio.wait_for(collect(), self.body_timeout_s)
        except TimeoutError:
            raise Refused(408, f"body not received within {self.body_timeout_s:g} s") from None
        return bytes(body)


def _hostname(header: str) -> str:
    """`[::1]:9095` -> `::1`, `Example:80` -> `example`."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def allowed_hosts(settings: Settings, host: str) -> frozenset[str]:
    """Loopback names, the address bound (unless a wildcard) and FLYWHEEL_ALERT_ALLOWED_HOSTS."""
    extra = {h.strip().lower() for h in settings.alert_allowed_hosts.split(",") if h.strip()}
    bound = set() if host in {"0.0.0.0", "::", ""} else {host.strip("[]").lower()}
    return frozenset(LOOPBACK_NAMES | bound | extra)


def receiver_token(settings: Settings, host: str) -> str:
    """FLYWHEEL_ALERT_TOKEN, else the token file; on a loopback bind the file is generated.

    Beyond loopback a token must already be configured: one generated there would be known
    to no Alertmanager, and a receiver open to the network without one is refused outright.
    """
    if settings.alert_token is not None and settings.alert_token.get_secret_value():
        return settings.alert_token.get_secret_value()
    path = settings.alert_token_path
    if not path.exists():
        if not is_loopback(host):
            raise ConfigError(
                f"refusing to receive alerts on {host} without a token: anyone who can reach "
                "it could start training runs; set FLYWHEEL_ALERT_TOKEN or put one in "
                f"{path} (FLYWHEEL_ALERT_TOKEN_FILE) and give Alertmanager the same file"
            )
        create_private(path, secrets.token_urlsafe(32) + "\n")
    token = read_private(path, "alert receiver token").strip()
    if len(token) < 16:
        raise ConfigError(f"{path}: token shorter than 16 characters; expected a random secret")
    return token


def printable(text: str, limit: int = LOG_TEXT_CHARS) -> str:
    """Untrusted text made safe for one log line: escaped, truncated, no markup meaning."""
    cut = text[:limit]
    escaped = cut.encode("unicode_escape").decode("ascii").replace("[", "\\[")
    return escaped + (f"…(+{len(text) - limit} chars)" if len(text) > limit else "")
