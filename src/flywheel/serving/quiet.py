"""Keep the service log readable under a flood of bad requests.

BentoML logs every request its input parser rejects as an ERROR with a full traceback (and
pydantic's list of every failed field): a few hundred hostile requests grew the log by
hundreds of thousands of lines. The client already gets a 4xx naming the problem, so here a
rejected request costs at most one line, and at most one such line per interval; the count of
the others is in that line and in `flywheel_invalid_requests_total`. Failures outside input
parsing (real server errors) keep their traceback.
"""

from __future__ import annotations

import logging
import math
import time

from flywheel.serving.logsafe import untrusted

BENTOML_LOGGER = "bentoml._internal.server.http_app"
# Frames of BentoML's request decoding: an exception raised under them is the client's.
PARSING_FRAMES = frozenset({"from_http_request", "parse_request", "deserialize_model"})


def _from_parsing(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name in PARSING_FRAMES:
            return True
        tb = tb.tb_next
    return False


class RejectionFilter(logging.Filter):
    """One line per `interval_s` for rejected input, without the traceback."""

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last = -math.inf
        self._quiet = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _from_parsing(exc):
            return True
        now = time.monotonic()
        if now - self._last < self.interval_s:
            self._quiet += 1
            return False
        first = untrusted((str(exc).splitlines() or [type(exc).__name__])[0])
        record.msg = "rejected a bad request (%s: %s); %d more since the last such line"
        record.args = (type(exc).__name__, first, self._quiet)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        self._last, self._quiet = now, 0
        return True


def quiet_rejections(interval_s: float = 10.0) -> None:
    """Install the filter once per worker process."""
    target = logging.getLogger(BENTOML_LOGGER)
    if not any(isinstance(f, RejectionFilter) for f in target.filters):
        target.addFilter(RejectionFilter(interval_s))
