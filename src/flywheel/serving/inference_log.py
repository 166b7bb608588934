"""The inference log: sampled requests' inputs, outputs and lineage, as Parquet files on disk.

Requests only append raw bytes to a list (no parsing, no I/O, no thread wake-up on the request
path); a background thread takes what piled up every `POLL_S`, parses it, buffers rows and
writes one Parquet file per roll (rows or age, whichever first). Waking the writer for each
request, as a `queue.Queue` does, handed it the GIL mid-request: ~2 ms on a one-record
request. Memory is bounded twice, and predictions never wait for the log: the pending list is
capped in entries and bytes (`max_pending_bytes`; past it an entry is dropped and counted in
`flywheel_inference_log_dropped_requests_total{reason="queue_full"}`: load shedding, not
back-pressure), and the rows buffered for the next file are written as soon as they pass
`max_buffered_bytes`, whatever the roll interval. A write that fails (full disk, unwritable
folder) is logged and counted and never reaches a request. Retention never deletes the file
just written (privacy.enforce_retention). The monitoring work reads these files for drift.
A hot-swapped champion that takes other columns is logged with its own (`use_spec`): what is
buffered is written first, so one file holds one set of columns. The answer's columns are the
task's flat ones (data/answers.py): `prediction` (text, or float64 for a regression), binary's
`probability`, multiclass's `probability_<class>`. Each row says which `role` answered it
(the champion, or a shadow challenger scoring the same request id off the response path:
serving/shadow.py); readers keep the champion's rows unless asked (monitoring/logread.py).
A reader that needs rows not rolled yet asks for them through the folder
(`monitoring.flush_request`): the writer checks at each poll and writes its buffer at once, so
`/feedback` and `flywheel monitor` see a request answered a moment ago while files still roll
rarely (few files for the monitor to read).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from flywheel.data.answers import PROBABILITY, class_column
from flywheel.data.spec import DatasetSpec
from flywheel.data.task import task_of
from flywheel.monitoring.flush_request import mark_done, requested_since
from flywheel.monitoring.logread import CHAMPION_ROLE
from flywheel.serving.logsafe import untrusted
from flywheel.serving.privacy import DROP, HASH, enforce_retention, pii_policy, pseudonymize

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
# How often the writer takes pending requests: rare enough to parse them in bulk, often enough
# that the pending list stays small (at 1,000 requests/s, 200 entries).
POLL_S = 0.2


@dataclass(frozen=True)
class LogEntry:
    request_id: str
    time: datetime
    request_body: bytes
    response_body: bytes
    # The body as the gate decoded it, when it did: the writer then skips decoding it again.
    request: Any = None
    role: str = CHAMPION_ROLE
    latency_s: float | None = None  # a challenger's scoring time (the champion's is on /metrics)

    @property
    def size(self) -> int:
        """Bytes it holds while pending; decoded records take ~3.2x their JSON (measured)."""
        decoded = 0 if self.request is None else 4 * len(self.request_body)
        return len(self.request_body) + len(self.response_body) + decoded


# An entry with its decoded records and answers (as many of each).
_Parsed = tuple[LogEntry, list[Any], list[Any]]


class InferenceLog:
    """Bounded pending list in front of a Parquet writer thread; `submit` never blocks or raises."""

    def __init__(self, directory: Path, spec: DatasetSpec, *, roll_rows: int,
                 roll_seconds: float, queue_size: int, metrics: Any = None,
                 max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
                 pii_salt: str | None = None, max_age_s: float | None = None,
                 max_bytes: int | None = None) -> None:
        self.directory = directory
        self.spec = spec
        self.pii = pii_policy(spec, pii_salt)
        self._salt = pii_salt or ""
        self._next_spec: DatasetSpec | None = None  # handed over by use_spec, taken by the writer
        self.retention = (max_age_s, max_bytes) if max_age_s and max_bytes else None
        self.roll_rows = roll_rows
        self.roll_seconds = roll_seconds
        self.max_pending_bytes = max_pending_bytes
        self.max_buffered_bytes = max_buffered_bytes
        self.metrics = metrics
        self.queue_size = queue_size
        self._pending: deque[LogEntry] = deque()
        self._pending_bytes = 0
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._tables: list[Any] = []  # one pyarrow table per poll that found requests
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._buffered_requests = 0
        self._first_row_at: float | None = None
        self._seq = 0
        self._seen_request = 0  # the last flush request served (monitoring.flush_request)
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="flywheel-inference-log",
                                        daemon=True)

    def start(self) -> None:
        if self.retention is not None:
            enforce_retention(self.directory, *self.retention)
        self._thread.start()

    def submit(self, entry: LogEntry) -> bool:
        size = entry.size
        with self._lock:
            if (len(self._pending) < self.queue_size
                    and self._pending_bytes + size <= self.max_pending_bytes):
                self._pending.append(entry)
                self._pending_bytes += size
                return True
        self._count("log_dropped", reason="queue_full")
        return False

    def use_spec(self, spec: DatasetSpec) -> None:
        """Log the columns of `spec` from the writer's next poll on (a new champion's schema)."""
        if spec != self.spec:
            self._next_spec = spec

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what is pending and buffered, then stop the writer."""
        if not self._thread.is_alive():
            return
        self._closing.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("inference log still writing at shutdown; its tail may be lost")

    def _run(self) -> None:
        while True:
            closing = self._closing.wait(min(POLL_S, self._time_to_roll()))
            self._add(self._take())
            if self._next_spec is not None:
                self._switch(self._next_spec)
            if closing:
                self._flush()
                return
            asked = requested_since(self.directory, self._seen_request)
            if self._tables and (asked is not None or self._buffered_rows >= self.roll_rows
                                 or self._buffered_bytes >= self.max_buffered_bytes
                                 or self._time_to_roll() <= 0):
                self._flush()
            if asked is not None:
                self._answer(asked)

    def _answer(self, asked: int) -> None:
        """A reader asked for what is buffered (`/feedback`, `flywheel monitor`): it is written."""
        self._seen_request = asked
        try:
            mark_done(self.directory)
        except OSError as exc:
            logger.warning("inference log: cannot answer a flush request (%s)", exc)

    def _take(self) -> list[LogEntry]:
        with self._lock:
            entries = list(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
        return entries

    def _time_to_roll(self) -> float:
        if self._first_row_at is None:
            return self.roll_seconds
        return max(0.0, self._first_row_at + self.roll_seconds - time.monotonic())

    def _add(self, entries: list[LogEntry]) -> None:
        """Parse what piled up since the last poll into one table (column-wise: cheap on the GIL).

        One Arrow build per poll, not one per request: a roll of 10,000 one-row tables took
        ~0.5 s to concatenate and write, ~150 ms of it holding the GIL the requests need.
        """
        parsed = [p for p in map(self._parsed, entries) if p is not None]
        if not parsed:
            return
        try:
            tables = [self._table(parsed)]
            requests = len(parsed)
        except (ValueError, TypeError, AttributeError):  # one odd entry fails it all: skip it
            tables = [t for t in (self._table_of_one(p) for p in parsed) if t is not None]
            requests = len(tables)
        if not tables:
            return
        if self._first_row_at is None:
            self._first_row_at = time.monotonic()
        self._tables += tables
        self._buffered_rows += sum(t.num_rows for t in tables)
        self._buffered_bytes += sum(t.nbytes for t in tables)
        self._buffered_requests += requests

    @staticmethod
    def _parsed(entry: LogEntry) -> _Parsed | None:
        try:
            # orjson: this thread shares the GIL with requests, and parses ~3x faster than json.
            records = (orjson.loads(entry.request_body) if entry.request is None
                       else entry.request)
            answers = orjson.loads(entry.response_body)
            if isinstance(records, dict):
                records = [records]
            n = min(len(records), len(answers))
        except (ValueError, TypeError) as exc:
            logger.warning("request %s: not logged (%s)", entry.request_id, untrusted(exc))
            return None
        return entry, records[:n], answers[:n]

    def _table_of_one(self, parsed: _Parsed) -> Any:
        try:
            return self._table([parsed])
        except (ValueError, TypeError, AttributeError) as exc:
            logger.warning("request %s: not logged (%s)", parsed[0].request_id,
                           untrusted(exc))
            return None

    def _table(self, parsed: list[_Parsed]) -> Any:
        import pyarrow as pa

        schema = self._schema
        values: dict[str, list[Any]] = {name: [] for name in schema.names}
        for entry, records, answers in parsed:
            values["request_id"] += [entry.request_id] * len(records)
            values["time"] += [entry.time] * len(records)
            values["model_version"] += [a.get("model_version") for a in answers]
            values["role"] += [entry.role] * len(records)
            values["latency_s"] += [entry.latency_s] * len(records)
            for feature in self._logged_features:
                column = [r.get(feature.name) for r in records]
                if self.pii.get(feature.name) == HASH:
                    column = [pseudonymize(v, self._salt) for v in column]
                values[feature.name] += column
            for name, pick in self._answer_fields.items():
                values[name] += [pick(a) for a in answers]
        return pa.Table.from_arrays(
            [pa.array(values[f.name], f.type) for f in schema], schema=schema)

    def _switch(self, spec: DatasetSpec) -> None:
        """Write what is buffered under the old columns, then log those of `spec`."""
        self._flush()
        self._next_spec = None
        self.spec = spec
        self.pii = pii_policy(spec, self._salt or None)
        for cached in ("_logged_features", "_schema", "_answer_fields"):
            self.__dict__.pop(cached, None)

    @functools.cached_property
    def _logged_features(self) -> list[Any]:
        return [f for f in self.spec.features if self.pii.get(f.name) != DROP]

    @functools.cached_property
    def _schema(self) -> Any:
        import pyarrow as pa

        fields = [pa.field("request_id", pa.string()),
                  pa.field("time", pa.timestamp("us", tz="UTC")),
                  pa.field("model_version", pa.string()),
                  pa.field("role", pa.string()), pa.field("latency_s", pa.float64())]
        for feature in self._logged_features:
            numeric = feature.kind == "numeric" and feature.name not in self.pii
            kind = pa.float64() if numeric else pa.string()
            fields.append(pa.field(feature.name, kind))
        label = pa.string() if task_of(self.spec).is_classification else pa.float64()
        fields += [pa.field(name, label if name == "prediction" else pa.float64())
                   for name in self._answer_fields]
        return pa.schema(fields)

    @functools.cached_property
    def _answer_fields(self) -> dict[str, Any]:
        """The answer's flat columns (data/answers.py) and how each is read from an answer."""
        def probability_of(label: str) -> Any:
            return lambda answer: (answer.get("probabilities") or {}).get(label)

        task = task_of(self.spec)
        picks: dict[str, Any] = {"prediction": lambda answer: answer.get("prediction")}
        if task.kind == "binary":
            picks[PROBABILITY] = lambda answer: answer.get(PROBABILITY)
        elif task.kind == "multiclass":
            picks |= {class_column(label): probability_of(label) for label in task.classes}
        return picks

    def _flush(self) -> None:
        tables, entries = self._tables, self._buffered_requests
        self._tables, self._buffered_rows, self._first_row_at = [], 0, None
        self._buffered_bytes = 0
        self._buffered_requests = 0
        if not tables:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._seq += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"inference-{stamp}-{os.getpid()}-{self._seq:05d}.parquet"
        try:
            table = pa.concat_tables(tables)
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".parquet.tmp")
            pq.write_table(table, tmp)
            tmp.replace(path)  # readers never see half a file
        except Exception as exc:
            # Reported once per failure streak, counted every time; predictions are unaffected.
            if not self._failing:
                logger.error("inference log: cannot write %s (%s); dropping rows until it "
                             "works again", path, exc)
            self._failing = True
            self._count("log_errors")
            self._count("log_dropped", amount=entries, reason="write_error")
            return
        if self._failing:
            logger.info("inference log: writing to %s works again", self.directory)
        self._failing = False
        self._count("log_rows", amount=table.num_rows)
        if self.retention is not None:
            enforce_retention(self.directory, *self.retention, keep=path)

    def _count(self, name: str, amount: int = 1, **labels: str) -> None:
        if self.metrics is None:
            return
        metric = getattr(self.metrics, name)
        (metric.labels(**labels) if labels else metric).inc(amount)
