"""No open port without a token: where `flywheel serve` may listen.

Without a predict token (`FLYWHEEL_API_TOKEN`) the service may listen only on loopback, unless
the user says `--insecure-no-auth` in so many words. Which token each route needs is decided
per request by flywheel.serving.guard (scopes in flywheel.tokens).
"""

from __future__ import annotations

import ipaddress

from flywheel.errors import ConfigError


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
