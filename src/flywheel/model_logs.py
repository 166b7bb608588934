"""Where a served and monitored model writes: `logs/<kind>/<registered model>/`, one per model.

Any number of models live in one project, so nothing a service, a monitor run or a retrain
writes about a model is shared with another: its inference log, its feedback labels and its
monitor reports (with the retrain status) each sit in a folder named after it, under the
roots the `FLYWHEEL_*_DIR` settings name. Readers glob one folder, never below it.

A project from before this layout kept the default model's files directly in the roots. The
first time the default model's folders are asked for, those files are moved into them (a
rename each, same file system), so an upgraded project keeps its log, labels and drift streak.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flywheel.identity import checked_model_name
from flywheel.settings import Settings

log = logging.getLogger(__name__)

# The files each root held before the per-model layout: what its readers read there.
_OLD_LAYOUT = {
    "inference": ("*.parquet",),
    "feedback": ("*.parquet",),
    "monitor": ("latest.json", "report.html", "retrain.json"),
}


@dataclass(frozen=True)
class ModelLogs:
    """The folders of one registered model."""

    name: str
    inference: Path
    feedback: Path
    monitor: Path


def model_logs(settings: Settings, name: str, default_model: str) -> ModelLogs:
    """The folders of `name`; `default_model` (params' promote.model_name) adopts old files."""
    checked_model_name(name)
    logs = ModelLogs(
        name, settings.inference_log / name, settings.feedback / name, settings.monitor / name
    )
    if name == default_model:
        for kind, root in (
            ("inference", settings.inference_log),
            ("feedback", settings.feedback),
            ("monitor", settings.monitor),
        ):
            _adopt(root, getattr(logs, kind), _OLD_LAYOUT[kind])
    return logs


def monitored_models(settings: Settings) -> list[tuple[str, Path]]:
    """Every model with a monitor folder, and that folder: what the exporter serves."""
    root = settings.monitor
    if not root.is_dir():
        return []
    return sorted((p.name, p) for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _adopt(root: Path, folder: Path, patterns: tuple[str, ...]) -> None:
    """Move the old layout's files of `root` into `folder` (a no-op once they are moved)."""
    if not root.is_dir():
        return
    old = [p for pattern in patterns for p in root.glob(pattern) if p.is_file()]
    if not old:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for path in old:
        target = folder / path.name
        if target.exists():
            continue  # already adopted by a process racing this one
        try:
            path.replace(target)
        except FileNotFoundError:
            continue  # the racing process moved it first
    log.info("moved %d file(s) of the old layout from %s into %s", len(old), root, folder)
