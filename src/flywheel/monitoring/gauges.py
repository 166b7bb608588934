"""Gauge families filled from several models' records, each metric name exported once.

The exporter serves every model's report from one `/metrics`; a family per model would repeat
the metric's HELP and TYPE lines, which is not valid exposition. Each sample carries its
model's `model_name` label instead, so two models' gauges never overwrite each other.
"""

from __future__ import annotations

from typing import Any


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
