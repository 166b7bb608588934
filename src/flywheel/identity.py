"""Which registered model a command, the service or a flow means: decided here, once, at the edge.

Three inputs can name it, in this order: an explicit name (`--model`, `FLYWHEEL_SERVE_MODEL`),
a dataset spec other than params' own (a table of another shape gets a registered model of its
own, `flywheel-<spec name>`, so its candidates are never compared with a champion trained on
other columns), and params' `promote.model_name` for the default dataset. Every caller asks
this function and passes the answer down; nothing below the edge works the name out again.
The name becomes a folder (`artifacts/models/<name>`, `logs/<kind>/<name>`), so it is checked
here: one path component, nothing that climbs out or hides.
"""

from __future__ import annotations

import re
from pathlib import Path

from flywheel.config import Params
from flywheel.errors import ConfigError
from flywheel.settings import Settings

SPEC_MODEL_PREFIX = "flywheel-"
# Letters, digits, `.`, `_`, `-` and spaces, starting with a letter or digit: never `..`, a
# slash or a hidden folder once it is a path component.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\- ]{0,199}")


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
        return checked_model_name(explicit)
    if spec_path is None or is_default_spec(settings, params, spec_path):
        return checked_model_name(params.promote.model_name)
    from flywheel.data.spec import load_spec

    return checked_model_name(f"{SPEC_MODEL_PREFIX}{load_spec(spec_path).name}")


def checked_model_name(name: str) -> str:
    """`name` if it is safe as one folder name; a ConfigError saying what is allowed otherwise."""
    if _SAFE_NAME.fullmatch(name) is None or name.endswith((" ", ".")):
        raise ConfigError(
            f"model name {name!r}: expected 1-200 letters, digits, '.', '_', '-' or spaces, "
            "starting with a letter or digit (it names the model's folders)"
        )
    return name
