"""What a task's evaluation contributes to the shared report: numbers, files, plots, tables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportParts:
    """Metrics per model, slice records, files (path -> JSON-able value or bytes), PNGs by plot
    name, the page's one-line summary of the rows, and extra HTML sections."""

    metrics: dict[str, dict[str, float]]
    slices: list[dict]
    files: dict[str, object]
    pngs: dict[str, bytes]
    summary: str
    sections: str = ""
