"""A request's headers must arrive within `serve.header_timeout_s`, or the connection closes.

Uvicorn (as BentoML runs it) has no header timeout: a client that opens connections and sends
its headers a byte at a time holds each one forever (the body timeout in flywheel.serving.limits
starts only once headers are complete). BentoML builds uvicorn's config itself, so the HTTP
protocol classes are extended here, in the worker: a timer is armed when a connection opens
and again when a response completes (keep-alive), and closes the connection if no new request's
headers were parsed by the time it fires.
"""

from __future__ import annotations

from typing import Any


def limit_header_time(seconds: float) -> None:
    """Arm the header timer on uvicorn's HTTP protocols (idempotent; the last value wins)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    protocols: list[Any] = [H11Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        protocols.append(HttpToolsProtocol)
    except ImportError:  # httptools is optional; uvicorn then uses h11
        pass
    for protocol in protocols:
        _extend(protocol, seconds)


def _extend(protocol: Any, seconds: float) -> None:
    if getattr(protocol, "header_timeout_s", None) is None:
        made, completed = protocol.connection_made, protocol.on_response_complete

        def connection_made(self: Any, transport: Any) -> None:
            made(self, transport)
            _arm(self)

        def on_response_complete(self: Any) -> None:
            completed(self)
            _arm(self)

        protocol.connection_made = connection_made
        protocol.on_response_complete = on_response_complete
    protocol.header_timeout_s = seconds


def _arm(connection: Any) -> None:
    waiting_after = connection.cycle  # the request before the headers we wait for (or None)

    def expire() -> None:
        transport = connection.transport
        if connection.cycle is waiting_after and not transport.is_closing():
            transport.close()

    connection.loop.call_later(connection.header_timeout_s, expire)
