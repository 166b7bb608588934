"""Start the service (`flywheel serve`) and package it with its model (`build_bento`).

Kept free of heavy imports at module level so that `flywheel --help` stays fast: BentoML and
MLflow are imported only inside the functions that need them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from flywheel.errors import ConfigError

logger = logging.getLogger(__name__)

SERVICE = "flywheel.serving.service:Flywheel"


def _bentoml() -> str:
    """The `bentoml` next to this interpreter, so the service runs in this very environment."""
    candidate = Path(sys.executable).with_name("bentoml")
    return str(candidate) if candidate.is_file() else "bentoml"


def serve_command(host: str, port: int, workers: int | None = None) -> list[str]:
    command = [_bentoml(), "serve", SERVICE, "--host", host, "--port", str(port)]
    if workers is not None:
        command += ["--arg", f"workers={workers}"]
    return command


def serve(host: str | None = None, port: int | None = None, workers: int | None = None,
          model: str | None = None, insecure_no_auth: bool = False) -> int:
    """Run `bentoml serve` in the foreground until it exits; returns its exit code.

    Defaults come from params.yaml `serve` (127.0.0.1:3000), so the one source of tunables
    decides and the CLI only overrides. Refuses to listen beyond loopback without a token.
    """
    from flywheel.config import load_params
    from flywheel.ports import require_free_port
    from flywheel.serving.auth import check_exposure
    from flywheel.settings import settings

    current = settings()
    params = load_params(current.params_path)
    host, port = host or params.serve.host, port or params.serve.port
    check_exposure(host, current.token is not None, insecure_no_auth)
    require_free_port(host, port, "flywheel serve")  # before BentoML's traceback would say so
    env = {**os.environ, "FLYWHEEL_ROOT": str(current.root)}
    name = model or params.promote.model_name
    env["FLYWHEEL_SERVE_MODEL"] = name
    command = serve_command(host, port, workers)
    with tempfile.TemporaryDirectory(prefix="flywheel-serve-") as scratch:
        spec = _champion_spec_file(current, name, name == params.promote.model_name, scratch)
        if spec is not None:
            env["FLYWHEEL_SERVE_SPEC"] = str(spec)
        return _run_in_foreground(command, current.root, env)


def _run_in_foreground(command: list[str], root: Path, env: dict[str, str]) -> int:
    home_lock = lock_bentoml_home(env)
    logger.info("starting %s", " ".join(command))
    # The server holds the home's lock too (an inherited descriptor) and stops with us.
    process = subprocess.Popen(command, cwd=root, env=env, pass_fds=(home_lock,),
                               preexec_fn=_stop_with_parent)
    # A supervisor's SIGTERM reaches only us: pass it on so the server is never orphaned.
    previous = signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:  # Ctrl+C reached the server too; give it time to stop
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def bentoml_home(env: dict[str, str]) -> Path:
    return Path(env.get("BENTOML_HOME") or Path.home() / "bentoml").expanduser()


def lock_bentoml_home(env: dict[str, str]) -> int:
    """An exclusive lock on BENTOML_HOME for this server's life; its descriptor.

    Each `bentoml serve` wipes `$BENTOML_HOME/prometheus_multiproc_dir` at start, which erased
    the metrics of a service already running with the same home: refused here with one line.
    """
    import fcntl

    home = bentoml_home(env)
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / ".flywheel-serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"another `flywheel serve` is running with BENTOML_HOME={home}; starting would wipe "
            "its metrics: give this one a folder of its own (BENTOML_HOME=... flywheel serve)"
        ) from None
    return fd


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when `flywheel serve` dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _champion_spec_file(current: Any, name: str, default: bool, scratch: str) -> Path | None:
    """The champion's own spec (its request schema), read once from its verified files.

    None for the default model with no champion yet: params' data.spec is its schema and the
    workers become ready when one is promoted. Another table's model needs its champion.
    """
    from flywheel.data.spec import save_spec
    from flywheel.registry.store import connect
    from flywheel.serving.registry_watch import champion_spec

    store = current.mlflow_uri.removeprefix("sqlite:///")
    empty = store != current.mlflow_uri and not Path(store).is_file()  # no registry at all
    spec = None if empty else champion_spec(connect(current), name)
    if spec is None and not default:
        _require_registered(current, name)  # a typo lists the registered models, as status does
        raise ConfigError(
            f"--model {name}: no {name}@champion with a registered dataset spec at "
            f"{current.mlflow_uri}; train it first (`flywheel run --data FILE --target COL`)"
        )
    if spec is None:
        return None
    path = Path(scratch) / "spec.yaml"
    save_spec(spec, path)
    return path


def _require_registered(current: Any, name: str) -> None:
    """Raise the registry's UnknownModel (which lists the registered models) unless `name` is
    one of them."""
    from flywheel.registry.status import registry_status

    registry_status(current, name)


def import_champion() -> str:
    """Copy the registry's champion into BentoML's model store, with its lineage as metadata.

    `bentoml build` then packs it into the bento (bentofile.yaml lists it), so a container
    built from the bento needs no registry access at start. The files imported are the very
    ones whose SHA-256 was just checked, and the digest travels in the metadata: the service
    checks the bundled copy again before loading it (`registry_watch.load_bundled`).
    """
    import tempfile

    import bentoml

    from flywheel.config import load_params
    from flywheel.identity import registered_model
    from flywheel.registry.integrity import DIGEST_TAG, verified_copy
    from flywheel.registry.status import describe_version
    from flywheel.registry.store import CHAMPION, connect, version_by_alias
    from flywheel.serving.registry_watch import BUNDLED_DIGEST, BUNDLED_MODEL
    from flywheel.settings import settings

    current = settings()
    name = registered_model(current, load_params(current.params_path))
    client = connect(current)
    version = version_by_alias(client, name, CHAMPION)
    if version is None:
        raise ConfigError(f"no {name}@{CHAMPION} in the registry at {current.mlflow_uri}; run "
                          "the pipeline (`flywheel run`) first")
    info = {**describe_version(client, version), BUNDLED_DIGEST: version.tags[DIGEST_TAG]}
    with tempfile.TemporaryDirectory(prefix="flywheel-bento-") as scratch:
        local = verified_copy(version, Path(scratch))  # refuses files altered in the store
        stored = bentoml.mlflow.import_model(
            f"{BUNDLED_MODEL}:v{info['version']}",
            str(local),
            labels={"registered_model": name, "version": info["version"]},
            metadata=info,
        )
    logger.info("imported %s version %s as %s", name, info["version"], stored.tag)
    return str(stored.tag)


def export_requirements(root: Path) -> Path:
    """Pin the bento's packages to uv.lock (bentofile.yaml reads the file written here)."""
    uv = shutil.which("uv")
    if uv is None:
        raise ConfigError("`uv` is not on PATH; bentoml build needs it (install uv, or put "
                          "the project's .tools/bin on PATH)")
    from flywheel.settings import settings

    target = settings().artifacts / "bento" / "requirements.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
                    "--output-file", str(target)], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)
    return target


def bentofile_for(root: Path, requirements: Path) -> Path:
    """bentofile.yaml pointed at the exported requirements, wherever the artifacts folder is."""
    import yaml

    config = yaml.safe_load((root / "bentofile.yaml").read_text())
    config["python"]["requirements_txt"] = requirements.resolve().relative_to(
        root.resolve()).as_posix()
    written = requirements.with_name("bentofile.yaml")
    written.write_text(yaml.safe_dump(config, sort_keys=False))
    return written


def build_bento() -> str:
    """Import the champion, pin requirements, then build bentofile.yaml; returns the bento tag."""
    import bentoml

    from flywheel.settings import settings

    current = settings()
    # BentoML reads build files only inside its build context (the project): refuse an
    # artifacts folder elsewhere with one line, before importing or exporting anything.
    _ = current.artifacts_in_project
    root = current.root
    import_champion()
    bentofile = bentofile_for(root, export_requirements(root))
    bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(root))
    logger.info("built bento %s", bento.tag)
    return str(bento.tag)
