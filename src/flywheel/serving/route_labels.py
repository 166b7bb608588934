"""`/metrics` labels only known routes: any other path is counted under one label.

BentoML's request metrics label each request by its raw path, 404s included: 7,000 GETs of
made-up paths made `/metrics` 165 MB and a scrape took 16 s, so the target looked down. Its
metrics middleware is built by BentoML before ours and reads `scope["path"]` itself, so the
class it builds from is swapped here (in the worker, before BentoML builds the app) for a
subclass that shows it `UNKNOWN_ROUTE` for paths that are not routes of this service, and puts
the real path back for the routing underneath: a made-up path still gets its 404.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

UNKNOWN_ROUTE = "/_unknown"
_ORIGINAL = "flywheel.original_path"


def fold_unknown_routes(known: Iterable[str], prefixes: tuple[str, ...]) -> None:
    """Make BentoML's request metrics label unknown paths `UNKNOWN_ROUTE` (idempotent)."""
    from bentoml._internal.server.http import instruments

    base: Any = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "folds_unknown_routes", False):
        return
    routes = frozenset(known)

    class FoldedRouteMetrics(base):  # type: ignore[misc, valid-type]
        folds_unknown_routes = True

        def __init__(self, app: Any, **options: Any) -> None:
            super().__init__(_RestorePath(app), **options)

        async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                           send: Callable[..., Any]) -> None:
            path = scope.get("path", "")
            if scope["type"] == "http" and path not in routes and not path.startswith(prefixes):
                scope = {**scope, "path": UNKNOWN_ROUTE, _ORIGINAL: path}
            await super().__call__(scope, receive, send)

    setattr(instruments, "RunnerTrafficMetricsMiddleware", FoldedRouteMetrics)  # noqa: B010


class _RestorePath:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if _ORIGINAL in scope:
            scope = {**scope, "path": scope[_ORIGINAL]}
        await self.app(scope, receive, send)
