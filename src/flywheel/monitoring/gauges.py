"""Gauge families filled from several models' records, each metric name exported once.

The exporter serves every model's report from one `/metrics`; a family per model would repeat
the metric's HELP and TYPE lines, which is not valid exposition. Each sample carries its
model's `model_name` label instead, so two models' gauges never overwrite each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Every model's name and monitor folder, asked at each scrape (`model_logs.monitored_models`).
Folders = Callable[[], list[tuple[str, Path]]]


class GaugeSet:
    """One gauge family per metric name, created at its first sample (`family`: the class)."""

    def __init__(self, family: Any) -> None:
        self.family = family
        self._made: dict[str, Any] = {}

    def set(self, name: str, doc: str, labels: dict[str, str], value: Any) -> None:
        """Add a sample; a value of None leaves the family without it (nothing made up)."""
        gauge = self._made.get(name)
        if gauge is None:
            gauge = self._made[name] = self.family(name, doc, labels=list(labels))
        if value is not None:
            gauge.add_metric(list(labels.values()), float(value))

    def families(self) -> list[Any]:
        return list(self._made.values())


def each_model(
    folders: Folders,
    read: Callable[[Path], dict[str, Any] | None],
    add: Callable[[GaugeSet, str, dict[str, Any]], None],
    what: str,
) -> list[Any]:
    """The families of every model's record (`read` from its folder, `add`ed as gauges); an
    unreadable one is logged and left out, so one model's broken file hides no other's."""
    from prometheus_client.core import GaugeMetricFamily

    gauges = GaugeSet(GaugeMetricFamily)
    for name, folder in folders():
        try:
            record = read(folder)
        except (OSError, ValueError) as exc:
            log.warning("%s in %s unreadable: %s", what, folder, exc)
            continue
        if record is not None:
            add(gauges, name, record)
    return gauges.families()
