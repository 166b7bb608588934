"""What crosses between a service worker and its challenger process, and how (one pipe each way).

Messages are pickled and length-prefixed. Both ends run this project's code in processes of
one service, and the pipes are private to them (`os.pipe`, handed to the child alone), so
pickle is safe here; it is also the cheapest way to move bytes, datetimes and small tuples,
which matters on the worker's side, where every microsecond shares the interpreter lock with
requests. A reader gets None at end of file: the other side closed its end or died.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from flywheel.data.spec import DatasetSpec

_HEADER = struct.Struct("!I")


class ShadowJob(NamedTuple):
    """One answered request: what the client sent and what the champion answered."""

    request_id: str
    time: datetime
    body: bytes
    answer: bytes


class ShadowResult(NamedTuple):
    """The comparison of one request, all the worker needs for its `flywheel_shadow_*` series."""

    reason: str | None  # why the challenger gave no answer (`invalid`, `predict`), or None
    records: int  # records both answered
    agreeing: int
    distances: list[float]  # |p_champion - p_challenger| per record that has both


class Scored(NamedTuple):
    """The child's answer to one message of jobs (every message gets exactly one)."""

    size: int  # jobs in the message
    version: str | None  # the challenger that scored them; None: none was loaded
    latency_s: float  # one call for all of them
    results: list[ShadowResult]


class Reloaded(NamedTuple):
    """An attempt to load the alias's version, as the registry watcher reports it."""

    outcome: str
    version: str | None
    previous: str | None


@dataclass(frozen=True)
class ChallengerSetup:
    """What the child needs, decided once by the service (identity, schema, log folder)."""

    model_name: str
    reload_interval_s: float
    spec: DatasetSpec  # the request schema of a model that carries none
    max_string_chars: int
    schema_change: str
    log: dict[str, Any]  # InferenceLog's keyword arguments (directory, rolls, retention, salt)


class PipeWriter:
    """Whole messages onto a pipe; safe from several threads."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_HEADER.pack(len(data)) + data)
        with self._lock:
            while view:
                view = view[os.write(self.fd, view):]

    def close(self) -> None:
        os.close(self.fd)


class PipeReader:
    """Whole messages from a pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def ready(self, timeout_s: float) -> bool:
        """Something (a message or the end of file) can be read now, or within `timeout_s`."""
        return bool(select.select([self.fd], [], [], timeout_s)[0])

    def receive(self) -> Any:
        """The next message; None at end of file (also when the writer died mid-message)."""
        header = self._exactly(_HEADER.size)
        if header is None:
            return None
        data = self._exactly(_HEADER.unpack(header)[0])
        return None if data is None else pickle.loads(data)

    def close(self) -> None:
        os.close(self.fd)

    def _exactly(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            chunk = os.read(self.fd, size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)
