"""Is the Prefect API the user configured there? Asked up front, so a stopped server is one line.

Without this check the Prefect client retries, then fails deep in a flow call with a long
traceback. httpx (a Prefect dependency) is enough; Prefect itself is not imported here.
"""

from __future__ import annotations

from flywheel.errors import ConfigError

HEALTH_TIMEOUT_S = 3.0


def check_reachable(url: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Raise `ConfigError` naming `url` when its `/health` does not answer 200."""
    import httpx

    health = url.rstrip("/") + "/health"
    try:
        answer = httpx.get(health, timeout=timeout)
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
    else:
        if answer.status_code == 200:
            return
        reason = f"HTTP {answer.status_code}"
    raise ConfigError(
        f"Prefect API at {url} is not reachable ({reason}): start it with `prefect server "
        "start`, or unset PREFECT_API_URL to run on a temporary local server"
    )
