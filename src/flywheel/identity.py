"""Which registered model a command, the service or a flow means: decided here, once, at the edge.

Three inputs can name it, in this order: an explicit name (`--model`, `FLYWHEEL_SERVE_MODEL`),
a dataset spec other than params' own (a table of another shape gets a registered model of its
own, `flywheel-<spec name>`, so its candidates are never compared with a champion trained on
other columns), and params' `promote.model_name` for the default dataset. Every caller asks
this function and passes the answer down; nothing below the edge works the name out again.
"""

from __future__ import annotations

from pathlib import Path

from flywheel.config import Params
from flywheel.settings import Settings

SPEC_MODEL_PREFIX = "flywheel-"


def default_spec_path(settings: Settings, params: Params) -> Path:
    """Params' `data.spec`, absolute."""
    path = params.data.spec
    return path if path.is_absolute() else settings.root / path


def is_default_spec(settings: Settings, params: Params, spec_path: Path) -> bool:
    return spec_path.resolve() == default_spec_path(settings, params).resolve()


def registered_model(
    settings: Settings,
    params: Params,
    explicit: str | None = None,
    spec_path: Path | None = None,
) -> str:
    """The registered model's name: `explicit`, else the spec's own, else params' default."""
    if explicit:
        return explicit
    if spec_path is None or is_default_spec(settings, params, spec_path):
        return params.promote.model_name
    from flywheel.data.spec import load_spec

    return f"{SPEC_MODEL_PREFIX}{load_spec(spec_path).name}"
