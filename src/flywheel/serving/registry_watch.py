"""Which model answers: the champion from the registry (or the one bundled in a bento).

A background thread polls the `champion` alias; when it moves, the new version is loaded off the
request path and swapped in by replacing one reference, which is atomic in Python. A request
reads that reference once, so a batch is answered by exactly one version. A load that fails
keeps the old model serving and is logged and counted (docs/architecture.md, principle 5).
A version whose signed verdict is missing, forged or not fit to serve (registry/signing.py) is
refused before any of its files are downloaded, counted as `signature_refused`. A loaded model
is paired with its request schema before the swap (`prepare`, serving/schema_swap.py); one whose
schema change is refused there keeps the old model serving, counted as `schema_refused`.

When the registry is unreachable (tracking server stopped, store locked or gone) each poll
fails fast, is counted as `registry_error`, and the first failure of a streak is logged in
one line; the poll after it comes back logs the recovery and picks up any new champion.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.data.spec import DatasetSpec
from flywheel.errors import IncompatibleModel
from flywheel.registry.integrity import IntegrityError, SignatureRefused
from flywheel.registry.lineage import UNKNOWN
from flywheel.registry.status import describe_version
from flywheel.registry.store import CHAMPION, version_by_alias
from flywheel.serving.request_schema import RequestSchema, SchemaRefused

logger = logging.getLogger(__name__)

# Name of the model inside a bento's model store (see launch.build_bento), and the metadata
# key of its registered SHA-256.
BUNDLED_MODEL = "flywheel-champion"
BUNDLED_DIGEST = "model_sha256"
# MLflow's HTTP client retries a refused connection 7 times with exponential backoff (minutes)
# and waits 120 s for an answer: one poll of a stopped tracking server would stall the watcher
# that long. A poll is retried by the next poll anyway, so it fails fast instead; an operator's
# own values of these variables win.
FAIL_FAST_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


# What a refused or failed champion is told as, by the outcome it is counted under.
REFUSALS = {
    "integrity_error": "failed its integrity check",
    "signature_refused": "failed its signature check",
    "schema_refused": "was refused by the schema-change rule (serve.schema_change)",
    "failure": "failed to load",
}


@dataclass(frozen=True)
class LoadedModel:
    """A loaded pyfunc model and the lineage every answer carries."""

    pyfunc: Any
    name: str
    version: str
    git_commit: str = UNKNOWN
    data_md5: str = UNKNOWN
    trained_at: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = "registry"
    # What requests answered by this model are validated against (serving/schema_swap.py).
    request_schema: RequestSchema | None = None

    @functools.cached_property
    def inner(self) -> Any:
        """Our model inside the pyfunc (a `TabularModel` or `ImageModel`), or None."""
        from flywheel.images.model import ImageModel
        from flywheel.model import TabularModel

        try:
            inner = getattr(self.pyfunc.unwrap_python_model(), "model", None)
        except Exception:  # not a python_function model of ours
            return None
        return inner if isinstance(inner, TabularModel | ImageModel) else None

    @property
    def image_model(self) -> Any:
        """The `ImageModel` this version is, or None for a table's model (or a foreign one)."""
        from flywheel.images.model import ImageModel

        return self.inner if isinstance(self.inner, ImageModel) else None

    @functools.cached_property
    def spec(self) -> DatasetSpec | None:
        """The dataset spec inside this very model (its columns), if it is one of ours. An
        image model's columns are what its requests are logged as: the per-image statistics
        and the embedding summary (images/monitored.py), never the pixels."""
        from flywheel.images.monitored import monitored_spec

        if self.inner is None:
            return None
        return monitored_spec(self.inner.spec) if self.image_model else self.inner.spec

    @functools.cached_property
    def predict(self) -> Callable[[Any], Any]:
        """The registered model's own predict, past MLflow's schema enforcement.

        Requests were validated against the dataset spec, which is stricter than the
        signature, before they get here (an image was decoded by the spec's own rules);
        enforcing the signature again cost ~2.5 ms a request and half the model time on large
        bodies. Any other pyfunc keeps its full predict.
        """
        return self.pyfunc.predict if self.inner is None else self.inner.predict

    def metadata(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "trained_at": self.trained_at,
            "test_metrics": self.metrics,
            "git_commit": self.git_commit,
            "data_md5": self.data_md5,
            "source": self.source,
            "features": list(self.request_schema.fields) if self.request_schema else None,
        }


def load_version(client: Any, version: Any, accept: frozenset[str] | None = None) -> LoadedModel:
    """Load one registry version, preprocessing included (the very model that was registered).

    Its signature is checked first: by default only a version signed `promoted` or `forced`
    (fit to be champion) loads; `accept` widens that (explicit batch scoring of a version).
    """
    from flywheel.registry.integrity import load_verified
    from flywheel.registry.signing import SERVABLE

    try:
        pyfunc = load_verified(version, accept=SERVABLE if accept is None else accept)
    except IncompatibleModel as exc:  # raised while unpickling, which cannot know the version
        raise IncompatibleModel(f"{version.name} version {version.version}: {exc}") from None
    info = describe_version(client, version)
    return LoadedModel(
        pyfunc=pyfunc,
        **{k: info[k] for k in ("name", "version", "git_commit", "data_md5", "trained_at",
                                "metrics")},
    )


def champion_spec(client: Any, name: str) -> DatasetSpec | None:
    """The dataset spec registered with `name@champion` (its request schema), if it has one.

    Read from the version's own verified files, so a model of any table is served with the
    columns it was trained on, whatever params.yaml's data.spec says.
    """
    import tempfile

    from flywheel.data.spec import load_spec
    from flywheel.registry.integrity import verified_copy
    from flywheel.registry.pyfunc import SPEC_ARTIFACT

    version = version_by_alias(client, name, CHAMPION)
    if version is None:
        return None
    with tempfile.TemporaryDirectory(prefix="flywheel-spec-") as scratch:
        local = verified_copy(version, Path(scratch))
        found = sorted((local / "artifacts").glob(f"*.{SPEC_ARTIFACT}.yaml"))
        return load_spec(found[0]) if found else None


def request_spec(settings: Any, default: Path) -> DatasetSpec:
    """The request schema's spec, read without touching the registry (this runs at import).

    `flywheel serve` resolves the champion once, reads the spec from its verified files and
    hands it over as `FLYWHEEL_SERVE_SPEC`; without it (a bento, or `bentoml serve` by hand)
    the default model's spec, params' data.spec, is the schema.
    """
    from flywheel.data.spec import load_spec

    return load_spec(settings.serve_spec or default)


def load_bundled() -> LoadedModel | None:
    """The model a bento carries (imported by `build_bento`), or None outside a bento."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        stored = bentoml.models.get(f"{BUNDLED_MODEL}:latest")
    except NotFound:
        return None
    meta: dict[str, Any] = dict(stored.info.metadata)
    _check_bundled(stored, meta)
    pyfunc = bentoml.mlflow.load_model(stored)
    return LoadedModel(
        pyfunc=pyfunc,
        name=str(meta.get("name", BUNDLED_MODEL)),
        version=str(meta.get("version", stored.tag.version)),
        git_commit=str(meta.get("git_commit", UNKNOWN)),
        data_md5=str(meta.get("data_md5", UNKNOWN)),
        trained_at=meta.get("trained_at"),
        metrics={k: float(v) for k, v in dict(meta.get("metrics") or {}).items()},
        source="bento",
    )


def _check_bundled(stored: Any, meta: dict[str, Any]) -> None:
    """The bundled files must hash to the digest registered with the version (tamper check)."""
    import bentoml

    from flywheel.registry.integrity import check_folder

    what = f"bundled model {stored.tag}"
    expected = meta.get(BUNDLED_DIGEST)
    if not expected:
        raise IntegrityError(f"{what} carries no SHA-256 ({BUNDLED_DIGEST} in its metadata); "
                             "rebuild the bento with `flywheel bento`")
    folder = Path(stored.path_of(bentoml.mlflow.MLFLOW_MODEL_FOLDER))  # what load_model reads
    check_folder(folder, str(expected), what,
                 "the bento's model store")


def bundled_or_refuse() -> LoadedModel | None:
    """`load_bundled` at service start; a bundled model that fails its digest stops the server.

    Respawning the worker would only fail again (BentoML restarts a failed worker every ~10 s,
    forever, with a traceback each time): one line, then the serve process is asked to stop.
    """
    try:
        return load_bundled()
    except IntegrityError as exc:
        logger.error("%s; refusing to start", " ".join(str(exc).split()))
        os.kill(os.getppid(), signal.SIGTERM)  # the worker's parent: `bentoml serve` itself
        os._exit(exc.exit_code)


class ModelHolder:
    """The one reference requests read; replaced whole, never mutated."""

    def __init__(self) -> None:
        self.current: LoadedModel | None = None
        # Why the champion is not serving when it was refused or failed to load (None
        # otherwise): a client told "no champion yet" would send the operator the wrong way.
        self.refused: str | None = None

    @property
    def ready(self) -> bool:
        return self.current is not None


class RegistryWatcher:
    """Polls `models:/NAME@champion` and hot-swaps the holder's model when the alias moves.

    Another `alias` (the shadow's `challenger`) is watched the same way, except that removing
    it empties the holder: a champion keeps serving when its alias goes, a challenger stops.
    """

    def __init__(self, holder: ModelHolder, client_factory: Callable[[], Any], name: str,
                 interval_s: float,
                 on_reload: Callable[[str, LoadedModel | None, str | None], None],
                 prepare: Callable[[LoadedModel, LoadedModel | None], LoadedModel] | None = None,
                 alias: str = CHAMPION, accept: frozenset[str] | None = None) -> None:
        self.holder = holder
        self.client_factory = client_factory
        self.name = name
        self.interval_s = interval_s
        self.on_reload = on_reload  # (outcome, new model or None, previous version)
        self.prepare = prepare  # (loaded, current) -> what is swapped in; may refuse it
        self.alias = alias
        self.accept = accept  # signed verdicts that may load (load_version's default: servable)
        self._client: Any = None
        self._failed_version: str | None = None
        self._failed_polls = 0  # consecutive polls that could not reach the registry
        self.aliased: bool | None = None  # the alias existed at the last poll (None: no poll yet)
        for key, value in FAIL_FAST_ENV.items():
            os.environ.setdefault(key, value)  # MLflow reads them on every request
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flywheel-registry-watch",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def check_once(self) -> None:
        """One poll: load and swap if the alias points somewhere new; never raises."""
        current = self.holder.current
        try:
            if self._client is None:
                self._client = self.client_factory()
            version = version_by_alias(self._client, self.name, self.alias)
        except Exception as exc:
            self._client = None
            self._poll_failed(exc, current)
            return
        self.aliased = version is not None
        if self._failed_polls:  # at the outage's level, so it shows wherever the outage did
            logger.warning("registry reachable again after %d failed polls", self._failed_polls)
            self._failed_polls = 0
        if version is None and current is not None and self.alias != CHAMPION:
            self.holder.current = None
            logger.info("%s@%s removed; %s version %s unloaded", self.name, self.alias,
                        self.alias, current.version)
            self.on_reload("removed", None, current.version)
            return
        if version is None:
            self.holder.refused = None
            if current is None and self.alias == CHAMPION:
                logger.info("no %s@%s in the registry yet; run the pipeline (`flywheel run`)",
                            self.name, CHAMPION)
            return
        target = str(version.version)
        if (current is not None and current.version == target) or target == self._failed_version:
            return
        logger.info("loading %s version %s (%s moved)", self.name, target, self.alias)
        loaded = self._load(version, current)
        if loaded is None:
            self._failed_version = target  # not retried until the alias moves again
            return
        self._failed_version = None
        self.holder.current, self.holder.refused = loaded, None
        logger.info("now serving %s version %s (%s)", self.name, target, self.alias)
        self.on_reload("success", loaded, current.version if current else None)

    def _load(self, version: Any, current: LoadedModel | None) -> LoadedModel | None:
        """The new version ready to swap in, or None (logged and counted) to keep `current`."""
        keeping = current.version if current else None
        unexpected: Exception | None = None
        try:
            loaded = load_version(self._client, version, self.accept)
            return self.prepare(loaded, current) if self.prepare else loaded
        except (IntegrityError, SchemaRefused, IncompatibleModel) as exc:
            outcome = ("signature_refused" if isinstance(exc, SignatureRefused) else
                       "schema_refused" if isinstance(exc, SchemaRefused) else
                       "failure" if isinstance(exc, IncompatibleModel) else "integrity_error")
            reason = f"{REFUSALS[outcome]}: {' '.join(str(exc).split())[:500]}"
        except Exception as exc:
            outcome, unexpected = "failure", exc  # not ours to explain: keep its traceback
            reason = f"{REFUSALS[outcome]}: {type(exc).__name__}: {str(exc)[:300]}"
        self.holder.refused = f"the champion v{version.version} {reason}"
        logger.error("%s (%s); keeping %s", self.holder.refused, self.name,
                     keeping or "nothing", exc_info=unexpected)
        self.on_reload(outcome, None, keeping)
        return None

    def _poll_failed(self, exc: Exception, current: LoadedModel | None) -> None:
        """Count every failed poll; log only the first of a streak (an outage must not flood)."""
        self._failed_polls += 1
        serving = current.version if current else None
        if self._failed_polls == 1:
            logger.warning("registry poll for %s@%s failed (%s: %s); still serving %s, "
                           "retrying every %g s quietly", self.name, self.alias,
                           type(exc).__name__, " ".join(str(exc).split())[:200],
                           serving or "nothing", self.interval_s)
        self.on_reload("registry_error", None, serving)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check_once()
