"""Bring your own model: a `train.candidates` entry `package.module:factory` beside the built-ins.

The factory is called as `factory(task=Task, params=dict, seed=int, input_dim=int)` (params from
params.yaml `train.custom["package.module:factory"]`, empty when absent) and returns either a
scikit-learn estimator (fit, then predict_proba for classification or predict for regression,
classes as the codes 0..k-1 of `task.classes`) or a torch.nn.Module mapping `input_dim` features
to `len(task.classes)` logits (multiclass) or one output (binary logit, or the standardised
value for regression), which our MLP loop trains with `train.mlp`'s settings (device, AMP, early
stopping; one process). The factory's `encoding` attribute picks its input matrix
(features/encoding.py: one_hot, the default, or native category codes).

The trained estimator is pickled into the model, so the factory's module must be importable
wherever the model is loaded (evaluate, serving): install it, or put its folder on PYTHONPATH
for every process. A scikit-learn estimator returned as is pickles as scikit-learn's own class
and needs only scikit-learn there. Where the code came from (module, file hash, version) goes
into the registered version's lineage (`origin`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flywheel.errors import ConfigError

ENCODING_ATTRIBUTE = "encoding"
KNOWN_ENCODINGS = ("one_hot", "native")


def is_custom(name: str) -> bool:
    """A candidate named by import path rather than a built-in name."""
    return ":" in name


def load_factory(name: str) -> Callable[..., Any]:
    """The factory `name` points at; a path that does not import is one line naming it."""
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is the user's module, named as such
        raise ConfigError(
            f"train.candidates: {name!r}: cannot import {module_name!r} ({type(exc).__name__}: "
            f"{exc}); install it or put its folder on PYTHONPATH"
        ) from exc
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ConfigError(
            f"train.candidates: {name!r}: module {module_name!r} has no callable {attribute!r}"
        )
    return factory


def encoding_of(name: str) -> str:
    """The input matrix the factory asks for (its `encoding` attribute), one_hot by default."""
    encoding = getattr(load_factory(name), ENCODING_ATTRIBUTE, "one_hot")
    if encoding not in KNOWN_ENCODINGS:
        raise ConfigError(
            f"train.candidates: {name!r}: encoding {encoding!r} unknown (expected one of "
            f"{list(KNOWN_ENCODINGS)})"
        )
    return str(encoding)


def origin(name: str) -> dict[str, str]:
    """Where the factory's code came from: its module, the file's sha256, and the installed
    distribution's version when it belongs to one."""
    module_name = name.partition(":")[0]
    module = importlib.import_module(module_name)
    source = Path(getattr(module, "__file__", "") or "")
    found = {"path": name, "module_file": str(source)}
    if source.is_file():
        found["file_sha256"] = hashlib.sha256(source.read_bytes()).hexdigest()
    top = module_name.split(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        found["package"] = f"{dist}=={importlib.metadata.version(dist)}"
        break
    return found
