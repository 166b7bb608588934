"""The run summary as Markdown: what ran, how long, and whether a model was promoted and why.

The Prefect flow publishes it as an artifact, so a scheduled run's page answers the first
question anyone asks of it without opening logs.
"""

from __future__ import annotations

import json
from typing import Any


def run_summary_markdown(
    report: list[dict[str, Any]], failure: str | None = None, notes: tuple[str, ...] = ()
) -> str:
    """`report` rows are {"step", "seconds", "summary"}; `failure` names what stopped the run;
    `notes` are paragraphs after the decision (the data refresh, why nothing ran)."""
    lines = ["# Flywheel run", "", _decision(report, failure), ""]
    lines += [line for note in notes for line in (_cell(note), "")]
    lines.append("| step | seconds | result |")
    lines.append("| --- | ---: | --- |")
    for row in report:
        result = ", ".join(
            f"{k}={json.dumps(v) if isinstance(v, dict) else v}"
            for k, v in row["summary"].items()
            if k != "reason"
        )
        lines.append(f"| {row['step']} | {row['seconds']:.1f} | {_cell(result)} |")
    return "\n".join(lines) + "\n"


def _decision(report: list[dict[str, Any]], failure: str | None) -> str:
    if failure is not None:
        return f"**Failed**: {_cell(failure)}. Nothing was promoted."
    promote = next((r["summary"] for r in report if r["step"] == "promote"), None)
    if promote is None:
        return "No promote step ran."
    if "skipped" in promote:
        serving = f" {promote['serving']}." if promote.get("serving") else ""
        return f"Nothing registered: promote {promote['skipped']} (inputs unchanged).{serving}"
    verdict = "**promoted to champion**" if promote["promoted"] else "**not promoted**"
    return (
        f"{promote['model_name']} version {promote['version']}: {verdict} "
        f"(champion before: {promote['champion_before']}, after: {promote['champion_after']}). "
        f"Why: {promote['reason']}"
    )


def _cell(text: str) -> str:
    """Table cells and one-line paragraphs: no pipes, no newlines."""
    return text.replace("|", "\\|").replace("\n", " ")
