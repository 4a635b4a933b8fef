"""The ``riskstrat`` command line (``spec/interface.md``, ``docs/cli.md``).

Every command has ``--help``. Bad input ends with one line naming the file and the problem
and an exit code that says which class of failure it was (:class:`riskstrat.errors.ExitCode`),
never a traceback; a bug ends with one line and exit code 70 (the traceback with
``--verbose``). Output shows counts, never row values. Logging is set up here, for the
command line only: importing riskstrat changes no logger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from riskstrat import __version__
from riskstrat.config import load_config
from riskstrat.errors import ExitCode, RiskstratError
from riskstrat.ingest.validate import ValidationReport, validate_extracts
from riskstrat.schema import Severity, counted_rules

__all__ = ["main"]

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, highlight=False)

#: ``--help``'s closing text: the exit codes and the logging options (docs/cli.md has the table)
EPILOG = f"""\b
Exit codes:
  {ExitCode.OK:>3}  done
  {ExitCode.INPUT:>3}  bad input: an extract breaks data contract v1, or another input or set-up problem
  {ExitCode.USAGE:>3}  usage: an unknown option or a bad option value
  {ExitCode.CONFIG:>3}  configuration or model specification
  {ExitCode.KEY:>3}  a key is missing, unreadable, too short or not the right key
  {ExitCode.RESOURCE:>3}  out of memory or disk, or a place cannot be written
  {ExitCode.BUSY:>3}  another run holds the work directory
  {ExitCode.INTERNAL:>3}  internal error: a bug in riskstrat (please report it)
  {ExitCode.INTERRUPTED:>3}  interrupted (Ctrl-C)

\b
Logging goes to standard error: warnings by default, everything with --verbose (with the
traceback of an internal error), errors only with --quiet. Results go to standard output.
See docs/cli.md.
"""


class _LineHandler(logging.Handler):
    """Log records as lines on standard error: the stream of the moment, so a test's captured
    stream gets them too."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


_HANDLER = _LineHandler()
_HANDLER.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))


def _configure_logging(verbose: bool, quiet: bool) -> None:
    """riskstrat's and MLflow's log records to standard error at the level the options ask.

    MLflow narrates at INFO ("Creating initial MLflow database tables", "Successfully
    registered model") and draws a progress bar when it downloads a model: only its warnings
    and errors reach the user unless ``--verbose``. Environment variables the user set win.
    """
    riskstrat_level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    mlflow_level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # MLflow's import leaves these loggers to us
    if not verbose:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name, level in (("riskstrat", riskstrat_level), ("mlflow", mlflow_level)):
        logger = logging.getLogger(name)
        logger.handlers = [_HANDLER]  # replaces MLflow's own handler when MLflow was imported first
        logger.setLevel(level)
    logging.getLogger("mlflow").propagate = False  # as MLflow's own set-up does


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("verbose"))


def _uses_mlflow(fn):
    """For a command that uses the MLflow store: MLflow's own lines printed outside logging
    ("Successfully registered model", "Created version") are shown only with --verbose."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from riskstrat.tracking import show_mlflow_prints

        show_mlflow_prints(_verbose())
        return fn(*args, **kwargs)

    return wrapper


def _exit(code: ExitCode, line: str) -> None:
    click.echo(line, err=True)
    raise click.exceptions.Exit(int(code))


class _Main(click.Group):
    """The command group: what leaves a command becomes one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except RiskstratError as exc:
            _exit(exc.exit_code, f"riskstrat: error: {exc}")
        except KeyboardInterrupt:
            _exit(ExitCode.INTERRUPTED, "riskstrat: interrupted")
        except Exception as exc:
            from riskstrat.stages.resources import as_resource_error

            resource = as_resource_error(exc)
            if resource is not None:
                _exit(resource.exit_code, f"riskstrat: error: {resource}")
            _internal_error(exc, bool(ctx.params.get("verbose")))


def _internal_error(exc: Exception, verbose: bool) -> None:
    """One line for a bug (its type and the first line of its message), exit 70; the
    traceback first with --verbose."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if verbose:
        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
        advice = "please report it with the traceback above"
    else:
        advice = "please report it; run with --verbose for the traceback"
    _exit(ExitCode.INTERNAL, f"riskstrat: internal error: {what} (a bug: {advice})")


def _command() -> str:
    return " ".join(["riskstrat", *sys.argv[1:]])


@contextlib.contextmanager
def _holding(workdir: Path):
    """Hold the work directory's lock for the block: one run per work directory
    (:mod:`riskstrat.stages.lock`; taking it moves a work directory of an earlier riskstrat to
    the current layout). A failure that leaves the block is recorded in the audit log (its kind
    and, for riskstrat's own one-line errors, the line)."""
    from riskstrat.stages.lock import WorkDirBusy, work_lock

    try:
        with work_lock(workdir, _command()) as note:
            if note:
                err_console.print(f"riskstrat: {note}")
            yield
    except WorkDirBusy:
        raise
    except BaseException as exc:
        _audit_failure(workdir, exc)
        raise


def _locked(fn):
    """Run the command holding the lock of its ``--workdir`` (:func:`_holding`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _holding(kwargs["workdir"]):
            return fn(*args, **kwargs)

    return wrapper


def _audit_failure(workdir: Path, exc: BaseException) -> None:
    """A failure record in W's audit log: what failed and why in counts and words, no row values."""
    from riskstrat.privacy.audit import AuditLog
    from riskstrat.stages.resources import as_resource_error
    from riskstrat.workdir import WorkDir

    if getattr(exc, "riskstrat_audited", False) or isinstance(exc, SystemExit | click.exceptions.Exit):
        return
    wd = WorkDir(workdir)
    if not wd.identifiable.is_dir():
        return
    known = exc if isinstance(exc, RiskstratError) else as_resource_error(exc) if isinstance(exc, Exception) else None
    with contextlib.suppress(OSError):
        AuditLog(wd.audit).record_stage(
            _command(),
            {},
            {},
            "failed",
            error=type(exc).__name__,
            message=str(known) if known is not None else "internal error (see the console)",
        )


def _tracking_uri(explicit: str | None, config_path: Path | None) -> str | None:
    """MLflow store: the option, else the configuration, else MLFLOW_TRACKING_URI, else
    (None) the embedded store in the work directory."""
    import os

    return explicit or load_config(config_path).tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")


def _workdir_option():
    return click.option("--workdir", type=click.Path(path_type=Path), required=True, help="Work directory W.")


def _as_of_option(help: str = "As-of date D (YYYY-MM-DD)."):
    return click.option("--as-of", "as_of", callback=_iso_date, required=True, help=help)


def _config_option(help: str):
    return click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help=help)


def _tracking_uri_option():
    return click.option(
        "--tracking-uri", default=None, help="MLflow tracking URI (default: configuration, else sqlite in W)."
    )


def _iso_date(ctx, param, value):
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date in YYYY-MM-DD form") from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(__version__, "--version", prog_name="riskstrat")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Log everything (riskstrat's details, MLflow's progress) and print an internal error's traceback.",
)
@click.option("-q", "--quiet", is_flag=True, help="Log errors only (no warnings).")
def main(verbose: bool, quiet: bool) -> None:
    """riskstrat: population risk stratification for the NHS.

    Validate SUS+ and GP extracts (data contract v1), pseudonymise them, build features,
    train and score admission-risk models, and produce practice lists and commissioner
    outputs.
    """
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet cannot be used together")
    _configure_logging(verbose, quiet)


# --------------------------------------------------------------------------- synth


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def run_synth(
    out: Path,
    patients: int,
    seed: int,
    truth: Path | None,
    years: int,
    extract_date: dt.date,
    faults: float,
    fmt: str,
    chunk_size: int,
    practices: int | None = None,
    structure: str = "default",
    order: str = "person",
):
    from riskstrat.synth import SynthOptions, generate

    opts = SynthOptions(
        patients=patients,
        seed=seed,
        years=years,
        extract_date=extract_date,
        fault_rate=faults,
        chunk_size=chunk_size,
        practices=practices,
    )
    with _progress() as bar:
        task = bar.add_task("synthetic population", total=patients)
        summary = generate(
            out,
            opts,
            truth,
            fmt=fmt,
            progress=lambda done, total: bar.update(task, completed=done),
            structure=structure,
            order=order,
        )
    return summary


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Extracts directory to write.")
@click.option(
    "--patients",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="People in the extracts over the whole period (about 75% registered at the end).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed: same seed, same data.")
@click.option(
    "--truth",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for true risks, fault counts and a manifest (never inside --out).",
)
@click.option("--years", type=click.IntRange(2, 20), default=7, show_default=True, help="Years of history.")
@click.option(
    "--extract-date",
    callback=_iso_date,
    default="2026-10-01",
    show_default=True,
    help="Date the extract is taken (YYYY-MM-DD).",
)
@click.option(
    "--faults",
    type=click.FloatRange(0, 0.05),
    default=0.0,
    show_default=True,
    help="Rate of injected faults per row and fault kind (e.g. 0.001); 0 = clean.",
)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option(
    "--practices",
    type=click.IntRange(min=1),
    default=None,
    help="Number of practices (default: about 8,000 registered people each).",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1000),
    default=100_000,
    show_default=True,
    help="People simulated together (bounds memory).",
)
@click.option(
    "--structure",
    type=click.Choice(["default", "alt"]),
    default="default",
    show_default=True,
    help="Generative model of health and risk: 'default', or 'alt', an independently parameterised "
    "second structure (latent urgent-care propensity and evolving frailty, medicine x condition "
    "interactions, monthly steps) to judge models on more than one structure. Same tables, same truth file.",
)
@click.option(
    "--order",  # riskstrat.synth.Order's values (not imported here: the generator is slow to import)
    type=click.Choice(["person", "date"]),
    default="person",
    show_default=True,
    help="Rows of the tables that name people: each person's together (as simulated), or sorted by date, "
    "as hospitals' and GP systems' monthly deliveries come (Parquet only). The same rows either way.",
)
def synth(out, patients, seed, truth, years, extract_date, faults, fmt, chunk_size, practices, structure, order):
    """Write a synthetic population in data contract v1 (all NHS numbers synthetic).

    --structure alt writes the same tables from a second, independent model of health and
    admission risk (docs/synthetic-population.md, "The alternative structure")."""
    if truth is not None and out.resolve() in (truth.resolve(), *truth.resolve().parents):
        raise RiskstratError("--truth must not be inside --out: true risks never go into the extracts")
    started = time.perf_counter()
    if order == "date" and fmt != "parquet":
        raise RiskstratError("--order date writes Parquet only: leave out --format csv")
    summary = run_synth(
        out,
        patients,
        seed,
        truth,
        years,
        extract_date,
        faults,
        fmt,
        chunk_size,
        practices,
        structure=structure,
        order=order,
    )
    table = RichTable(title=f"synthetic extracts in {out}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(f"as-of dates with true risks: {', '.join(summary.as_of_dates)}")
    if truth is not None:
        console.print(f"truth written to {truth}")
    console.print(f"done in {time.perf_counter() - started:.1f} s")


# --------------------------------------------------------------------------- validate


def print_report(report: ValidationReport, out: Console | None = None) -> None:
    """The validation report as tables, on ``out`` (standard output by default)."""
    out = out or console
    warnings = counted_rules(Severity.WARNING)  # report key -> the rule (rows kept, shown)
    table = RichTable(title=f"validation of {report.extracts} (data contract v1)")
    for col, just in (
        ("table", "left"),
        ("file", "left"),
        ("read", "right"),
        ("accepted", "right"),
        ("quarantined", "right"),
        ("of which duplicates", "right"),
        *((key.replace("_", " "), "right") for key in warnings),
        ("reconciles", "center"),
    ):
        table.add_column(col, justify=just)
    for t in report.tables.values():
        table.add_row(
            t.table,
            t.file,
            f"{t.rows_read:,}",
            f"{t.accepted:,}",
            f"{t.quarantined_rows:,}",
            f"{t.duplicates:,}",
            *(f"{sum(t.counted[key].values()):,}" for key in warnings),
            "yes" if t.reconciles else "NO",
        )
    out.print(table)
    rules = [(t.table, key, n) for t in report.tables.values() for key, n in t.quarantined_by_rule()]
    if rules:
        detail = RichTable(title="quarantined rows by rule")
        for col in ("table", "column", "rule", "rows"):
            detail.add_column(col, justify="right" if col == "rows" else "left")
        for tbl, key, n in rules:
            detail.add_row(tbl, key.column, key.rule, f"{n:,}")
        out.print(detail)
    for t in report.tables.values():
        for key, rule in warnings.items():
            for col, n in sorted(t.counted[key].items()):
                if n:
                    out.print(f"{key.replace('_', ' ')}: {t.table}.{col}: {n:,} rows kept ({rule.reason})")
    if report.absent_optional:
        out.print(f"optional tables absent: {', '.join(report.absent_optional)}")
    out.print(
        f"rows read {report.rows_read:,} = accepted {report.rows_read - report.quarantined_rows:,} "
        f"+ quarantined {report.quarantined_rows:,}: {'reconciled' if report.reconciles else 'NOT reconciled'}"
    )
    if report.quarantined_rows:
        out.print(f"quarantine files (identifiable): {report.quarantine_dir}")


@contextlib.contextmanager
def _table_progress():
    """A progress display with one line per table; yields the callback ``(table, rows)``."""
    with _progress() as bar:
        tasks: dict[str, int] = {}

        def progress(table: str, rows: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"validating {table}", total=None)
            bar.update(tasks[table], completed=rows)

        yield progress


def run_validate(extracts: Path, config_path: Path | None, quarantine: Path, accepted: Path | None = None):
    from riskstrat.stages.resources import usable_directory
    from riskstrat.workdir import private_files

    config = load_config(config_path)
    with private_files():  # the quarantine carries NHS numbers: 0600 files in 0700 folders
        usable_directory(quarantine, "--quarantine")
        quarantine.chmod(0o700)
        with _table_progress() as progress:
            return validate_extracts(extracts, config, quarantine, accepted, progress=progress)


@main.command()
@click.argument("extracts", type=click.Path(path_type=Path))
@_config_option("YAML configuration (column mappings, file names).")
@click.option(
    "--quarantine",
    type=click.Path(path_type=Path),
    default=None,
    help="Where quarantined rows go (default: EXTRACTS_quarantine beside the extracts).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(path_type=Path, allow_dash=True),
    default=None,
    help="Also write the report as JSON to this file; '-' writes it to standard output (the tables then go "
    "to standard error).",
)
def validate(extracts, config_path, quarantine, json_out):
    """Check an extracts directory against data contract v1 and print the report.

    Exit 3 when a required table or column is missing or a file cannot be read; rows that
    break a rule are quarantined (file, row, column, rule) and counted, and the rest pass.
    """
    quarantine = quarantine or extracts.parent / f"{extracts.name}_quarantine"
    report = run_validate(extracts, config_path, quarantine)
    if json_out is not None and str(json_out) == "-":
        print_report(report, err_console)
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    print_report(report)
    if json_out is not None:
        report.write_json(json_out)


# --------------------------------------------------------------------------- pseudonymise


def print_pseudonymise(report) -> None:
    table = RichTable(title="pseudonymise: every row accounted for")
    for col in ("table", "read", "quarantined", "opted out", "policy input", "written", "identifier"):
        table.add_column(col, justify="left" if col in ("table", "identifier") else "right")
    for name, t in report.tables.items():
        table.add_row(
            name,
            f"{t['read']:,}",
            f"{t['quarantined']:,}",
            f"{t['opted_out']:,}",
            f"{t['consumed']:,}",
            f"{t['written']:,}",
            str(t["identifier"]),
        )
    console.print(table)
    o = report.opted_out
    console.print(f"opt-outs: objections {o.get('objections', 'applied')}")
    if o.get("unreadable_objections_applied"):
        console.print(
            f"opt-outs: {o['unreadable_objections_applied']:,} people named in objection rows that could not be read "
            "in full are excluded from every use (objections fail closed; the rows are in the quarantine)"
        )
    if o.get("people_with_objections"):
        console.print(
            f"opt-outs: {o['people_with_objections']:,} people object (type 1 only {o['type1_only']:,}, national only "
            f"{o['ndoo_only']:,}, both {o['both']:,}); {o['removed_before_pseudonymisation']:,} removed before "
            f"pseudonymisation, {o['flagged_for_some_uses']:,} flagged for some uses"
        )
    else:
        console.print("opt-outs: no person in the extracts has an objection on record")
    if report.vault_rows is not None:
        console.print(
            f"vault: {report.vault_rows:,} registrations, encrypted; re-identification {report.reidentification}"
        )
    else:
        console.print(f"re-identification {report.reidentification}")
    console.print(
        f"{report.rows_read:,} rows in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s): "
        f"{'reconciled' if report.reconciles else 'NOT reconciled'}"
    )


def run_pseudonymise(extracts: Path, workdir: Path, config_path: Path | None):
    from riskstrat.privacy.keys import KeyName, load_key
    from riskstrat.stages.isolated import in_own_process
    from riskstrat.stages.pseudonymise import OWN_PROCESS, STAGE, pseudonymise

    config = load_config(config_path)
    pseudonym_key = load_key(KeyName.PSEUDONYM)
    try:
        vault_key = load_key(KeyName.VAULT)
    except RiskstratError:
        vault_key = None  # needed only when registrations carry NHS numbers; the stage says so
    call = (lambda *a, **k: in_own_process(STAGE, pseudonymise, *a, **k)) if OWN_PROCESS else pseudonymise
    with _table_progress() as progress:
        return call(
            extracts,
            workdir,
            config,
            pseudonym_key,
            vault_key,
            progress=progress,
            command=_command(),
        )


@main.command()
@click.option("--extracts", type=click.Path(path_type=Path), required=True, help="Extracts directory (contract v1).")
@_workdir_option()
@_config_option("YAML configuration (column mappings, opt-out policy, region).")
@_locked
def pseudonymise(extracts, workdir, config_path):
    """Validate, quarantine, apply opt-outs, pseudonymise and fill the vault.

    Needs RISKSTRAT_PSEUDONYM_KEY (the region key) and RISKSTRAT_VAULT_KEY (or the *_FILE
    variables). Writes W/pseudonymised/ (no NHS numbers) and W/identifiable/ (vault,
    quarantine, audit log).
    """
    report = run_pseudonymise(extracts, workdir, config_path)
    print_pseudonymise(report)


# --------------------------------------------------------------------------- features


@main.command()
@_workdir_option()
@_as_of_option("As-of date D (YYYY-MM-DD).")
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="duckdb (embedded) or spark (local session; needs riskstrat[spark] and Java).",
)
@_locked
def features(workdir, as_of, engine):
    """Build the feature table of the population at D (records strictly before D).

    Writes W/pseudonymised/features/<D>.parquet: one row per pseudonym; the data dictionary
    is docs/features.md.
    """
    from riskstrat.stages.features import build_features

    with err_console.status(f"building features at {as_of} on {engine}"):
        result = build_features(workdir, as_of, engine)
    console.print(
        f"features at {as_of}: {result.people:,} people x {result.features} features on {result.engine} "
        f"in {result.seconds:.1f} s -> {result.path}"
    )


# --------------------------------------------------------------------------- train


def print_training(result) -> None:
    table = RichTable(title=f"{result.model_name}: validation ({result.validation})")
    cols = ("model", "AUROC (95% CI)", "AUPRC", "Brier", "slope", "O/E", "PPV top 1%", "share of ceiling")
    for col in cols:
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in result.metrics.items():
        ci = f"{m.auroc:.3f} ({m.auroc_lo:.3f}-{m.auroc_hi:.3f})"
        ceiling = f"{m.share_of_ceiling:.3f}" if m.share_of_ceiling is not None else "-"
        table.add_row(
            name,
            ci,
            f"{m.auprc:.3f}",
            f"{m.brier:.4f}",
            f"{m.calibration_slope:.2f}",
            f"{m.observed_over_expected:.3f}",
            f"{m.ppv_top1pct:.3f}",
            ceiling,
        )
    console.print(table)
    if result.selection is not None:
        contest = ", ".join(f"{r.learner} {r.selection_auroc:.4f}" for r in result.selection.itertuples())
        console.print(f"learner: {result.learner} (selection AUROC, out of time: {contest})")
    console.print(f"registered {result.model_name} version {result.version}; champion: {result.reason}")
    console.print(f"MLflow run {result.run_id}; trained in {result.seconds:.1f} s")


@main.command()
@_workdir_option()
@_as_of_option("Training as-of date D; its outcome window must have closed in the data.")
@click.option(
    "--model-spec",
    type=click.Path(path_type=Path),
    default=None,
    help="Model specification (default: the packaged riskstrat/defaults/models/emergency_admission_12m.yaml).",
)
@_tracking_uri_option()
@_config_option("YAML configuration (mlflow.tracking_uri, monitoring.exposure_handling).")
@click.option(
    "--truth",
    type=click.Path(path_type=Path),
    default=None,
    help="Synthetic populations only: truth directory, to report the ceiling AUROC.",
)
@_uses_mlflow
@_locked
def train(workdir, as_of, model_spec, tracking_uri, config_path, truth):
    """Train, calibrate, evaluate and register an admission-risk model in MLflow."""

    from riskstrat.privacy.keys import KeyName, load_key
    from riskstrat.stages.train import train as run_train

    key = load_key(KeyName.PSEUDONYM) if truth is not None else None
    with err_console.status(f"training at {as_of}"):
        result = run_train(
            workdir, as_of, model_spec, _tracking_uri(tracking_uri, config_path), truth, key, load_config(config_path)
        )
    print_training(result)


# --------------------------------------------------------------------------- score


@main.command()
@_workdir_option()
@_as_of_option("As-of date D (YYYY-MM-DD).")
@click.option(
    "--model",
    "model_uri",
    default=None,
    help="Registered model URI (default models:/emergency_admission_12m@champion).",
)
@_tracking_uri_option()
@_config_option("YAML configuration (mlflow.tracking_uri).")
@_uses_mlflow
@_locked
def score(workdir, as_of, model_uri, tracking_uri, config_path):
    """Score the population at D: risk, band and reasons per person (pseudonymised)."""

    from riskstrat.stages.score import score as run_score
    from riskstrat.workdir import WorkDir

    with err_console.status(f"scoring the population at {as_of}"):
        result = run_score(workdir, as_of, model_uri, _tracking_uri(tracking_uri, config_path))
    bands = ", ".join(f"{k} {v:,}" for k, v in result.people_by_band.items())
    console.print(
        f"scored {result.people_scored:,} people at {as_of} with {result.model_name} version {result.model_version} "
        f"in {result.seconds:.1f} s ({bands}; {result.excluded_by_opt_out_policy:,} excluded by the opt-out policy)"
    )
    console.print(f"scores: {result.path}; manifest: {WorkDir(workdir).score_report(as_of)}")


# --------------------------------------------------------------------------- export


def run_export(workdir: Path, as_of: dt.date, config_path: Path | None = None):
    from riskstrat.privacy.keys import KeyName, load_key
    from riskstrat.stages.export import export as run

    try:
        vault_key = load_key(KeyName.VAULT)
    except RiskstratError:
        vault_key = None  # the stage says when it is needed
    config = load_config(config_path)
    region_key = load_key(KeyName.PSEUDONYM) if config.monitoring.holdout_share > 0 else None
    result = run(workdir, as_of, vault_key, config, region_key)
    print_export(result)
    return result


def print_export(result) -> None:
    print_warnings(result.warnings)
    if result.direct_care is not None:
        console.print(
            f"direct care: {result.patients_listed:,} patients in {result.practices} practice lists -> "
            f"{result.direct_care} (each practice's own patients only; every re-identification audited)"
        )
    else:
        console.print(result.note)
    console.print(
        f"commissioners: cohort table of {result.cohort_rows:,} pseudonymised people and suppressed aggregates -> "
        f"{result.commissioner}"
    )


def print_warnings(warnings: list[str]) -> None:
    for w in warnings:
        err_console.print(f"[bold]warning:[/bold] {w}")


@main.command()
@_workdir_option()
@_as_of_option("As-of date D of the scores.")
@_config_option(
    "YAML configuration (disclosure rules, validation.practice_drop_warning_share, monitoring.holdout_share)."
)
@_locked
def export(workdir, as_of, config_path):
    """Direct-care lists for every practice and commissioner outputs from the scores at D.

    Practice lists need RISKSTRAT_VAULT_KEY: each holds only that practice's patients. With a
    randomised hold-out (monitoring.holdout_share above 0) RISKSTRAT_PSEUDONYM_KEY chooses it.
    Writes the exposure log W/pseudonymised/exposure/<D>.parquet.
    """
    run_export(workdir, as_of, config_path)


# --------------------------------------------------------------------------- monitor


def _figure(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_monitoring(result, warnings: bool = True) -> None:
    e, ref = result.expected, result.reference_expected
    console.print(
        f"monitoring at {result.as_of} ({result.model}): score PSI {result.psi_score:.3f}, largest feature PSI "
        f"{max(result.psi_features.values(), default=0.0):.3f}; expected AUROC {_figure(e.get('expected_auroc'))} "
        f"(validation people {_figure(ref.get('expected_auroc'))})"
    )
    if result.realised is not None:
        r, x = result.realised["realised"], result.realised["expected"]
        console.print(
            f"      realised, scores at {result.realised['as_of']} ({result.realised['model']}): AUROC "
            f"{_figure(r.get('auroc'))} (expected {_figure(x.get('expected_auroc'))}), observed/expected events "
            f"{_figure(r.get('observed_over_expected'), 2)}"
        )
    else:
        console.print("      realised: no earlier scores whose outcome window has closed")
    console.print(f"      report: {result.page}; {len(result.warnings)} warning(s)")
    if warnings:
        print_warnings(result.warnings)


@main.command()
@_workdir_option()
@_as_of_option("As-of date D of the scores.")
@_tracking_uri_option()
@_config_option("YAML configuration (monitoring thresholds, mlflow.tracking_uri).")
@_uses_mlflow
@_locked
def monitor(workdir, as_of, tracking_uri, config_path):
    """The monitoring report of the scores at D: population stability, performance expected
    without labels, realised performance of the scores a horizon earlier, warnings.

    Writes W/pseudonymised/monitoring/<D>.json and W/reports/monitoring_<D>.html, and logs an
    MLflow run "monitoring at D" (riskstrat run does this after every export).
    """
    from riskstrat.stages.monitor import monitor as run_monitor

    with err_console.status(f"monitoring the scores at {as_of}"):
        result = run_monitor(workdir, as_of, _tracking_uri(tracking_uri, config_path), load_config(config_path))
    print_monitoring(result)


# --------------------------------------------------------------------------- models


def _registry(workdir: Path | None, tracking_uri: str | None, config_path: Path | None) -> None:
    """Point MLflow at the registry: the option, the configuration, MLFLOW_TRACKING_URI, else W's."""
    from riskstrat.tracking import point_at

    uri = _tracking_uri(tracking_uri, config_path)
    if uri is None and workdir is None:
        raise click.UsageError("give --workdir (its embedded registry) or --tracking-uri")
    point_at(workdir or Path("."), uri)


def _registry_options(fn):
    fn = _config_option("YAML configuration (mlflow.tracking_uri).")(fn)
    fn = _tracking_uri_option()(fn)
    return click.option(
        "--workdir", type=click.Path(path_type=Path), default=None, help="Work directory W (its embedded registry)."
    )(fn)


@main.group()
def models() -> None:
    """The model registry: versions with their metrics, the champion's history, promotion by hand."""


@models.command("list")
@click.argument("name", default="emergency_admission_12m")
@_registry_options
@_uses_mlflow
def models_list(name, workdir, tracking_uri, config_path):
    """Every version of the registered model NAME, newest first, with its key validation metrics."""
    from riskstrat.tracking import model_versions

    _registry(workdir, tracking_uri, config_path)
    table = RichTable(title=f"{name}: registered versions")
    for col in ("version", "champion", "registered", "trained at", "learner", "decision", "AUROC", "Brier", "O/E"):
        table.add_column(col, justify="right" if col in ("version", "AUROC", "Brier", "O/E") else "left")
    for v in model_versions(name):
        m = v["metrics"]
        table.add_row(
            v["version"],
            "champion" if v["champion"] else "",
            v["registered"],
            v["train_as_of"],
            v["learner"],
            v["decision"],
            _figure(m.get("auroc"), 4),
            _figure(m.get("brier"), 4),
            _figure(m.get("observed_over_expected")),
        )
    console.print(table)


@models.command("history")
@click.argument("name", default="emergency_admission_12m")
@_registry_options
@_uses_mlflow
def models_history(name, workdir, tracking_uri, config_path):
    """Every move of the champion alias of NAME, oldest first: when, from and to which version, how,
    by whom and why, with the new champion's validation AUROC."""
    from riskstrat.tracking import champion_history

    _registry(workdir, tracking_uri, config_path)
    moves = champion_history(name)
    table = RichTable(title=f"{name}: champion history")
    for col in ("time (UTC)", "from", "to", "how", "user", "AUROC", "reason"):
        table.add_column(col, justify="right" if col in ("from", "to", "AUROC") else "left")
    for m in moves:
        table.add_row(
            m.time, m.from_version or "-", m.to_version, m.how, m.user, _figure(m.metrics.get("auroc"), 4), m.reason
        )
    console.print(table)
    if not moves:
        console.print("no recorded moves of the champion alias")


@models.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--reason", required=True, help="Why the alias moves (recorded in the registry and the audit log).")
@click.option(
    "--workdir", type=click.Path(path_type=Path), required=True, help="Work directory W (its audit log and registry)."
)
@_tracking_uri_option()
@_config_option("YAML configuration (mlflow.tracking_uri).")
@_uses_mlflow
@_locked
def models_promote(name, version, reason, workdir, tracking_uri, config_path):
    """Make VERSION of NAME the champion by hand (a rollback, or a model the gate kept), recorded
    with the reason in the registry and in W's audit log. The next run scores with it."""
    from riskstrat.privacy.audit import AuditLog
    from riskstrat.tracking import champion_version, move_champion
    from riskstrat.workdir import WorkDir

    if not reason.strip():
        raise click.BadParameter("give a reason", param_hint="--reason")
    _registry(workdir, tracking_uri, config_path)
    current = champion_version(name)
    if current == str(version):
        console.print(f"{name} version {version} is already the champion: nothing moved")
        return
    move = move_champion(name, str(version), reason, "manual", AuditLog(WorkDir(workdir).audit))
    console.print(
        f"{name}: champion moved from version {move.from_version or '-'} to {move.to_version} "
        f"(recorded in the registry and in {WorkDir(workdir).audit})"
    )


# --------------------------------------------------------------------------- run


def run_pipeline(
    extracts: Path,
    workdir: Path,
    as_of: dt.date,
    config_path: Path | None,
    truth: Path | None = None,
    show_validation: bool = False,
    engine: str = "duckdb",
) -> None:
    """The stages of :data:`riskstrat.stages.pipeline.PIPELINE` in order, printed as they go
    (``show_validation``: the validation report too, as the demo shows it; ``engine``
    ``spark``: pseudonymisation, features, scoring and export on Spark, riskstrat.scaleout)."""
    from riskstrat.privacy.keys import KeyName, load_key
    from riskstrat.stages.pipeline import Run, StageName
    from riskstrat.stages.pipeline import run_pipeline as run_stages
    from riskstrat.workdir import WorkDir

    def show(stage: StageName, result) -> None:
        if stage is StageName.PSEUDONYMISE:
            if show_validation:
                print_report(result.validation)
            print_pseudonymise(result)
        elif stage is StageName.TRAIN:
            print_training(result)
        elif stage is StageName.EXPORT:
            print_export(result)
        elif stage is StageName.MONITOR:
            print_monitoring(result, warnings=False)

    started = time.perf_counter()
    config = load_config(config_path)
    pseudonym_key = load_key(KeyName.PSEUDONYM)
    try:
        vault_key = load_key(KeyName.VAULT)
    except RiskstratError:
        vault_key = None  # needed only when registrations carry NHS numbers; the stages say so
    run = Run(
        extracts,
        workdir,
        as_of,
        config,
        pseudonym_key,
        vault_key,
        _tracking_uri(None, config_path),
        truth,
        _command(),
        _table_progress,
        console.print,
        show,
    )
    if engine == "spark":
        from riskstrat.scaleout import cluster_session
        from riskstrat.scaleout.batch import spark_functions

        run.functions = spark_functions(cluster_session())
    clock = run_stages(run)
    wd = WorkDir(workdir)
    if run.warnings:
        console.print(f"{len(run.warnings)} warning{'s' if len(run.warnings) != 1 else ''} this run:")
        print_warnings(run.warnings)
    console.print(
        f"run finished in {time.perf_counter() - started:.1f} s, peak memory {clock.peak_rss_mb / 1024:.1f} GB "
        f"(stages: {wd.run_report(as_of)}); audit trail in {wd.audit}"
    )


@main.command()
@click.option("--extracts", type=click.Path(path_type=Path), required=True, help="Extracts directory (contract v1).")
@_workdir_option()
@_as_of_option("As-of date D (YYYY-MM-DD).")
@_config_option("YAML configuration.")
@click.option(
    "--truth",
    type=click.Path(path_type=Path),
    default=None,
    help="Synthetic populations only: truth directory, to report the ceiling AUROC when training.",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="duckdb (this machine) or spark (the cluster's session, else a local one; docs/scale-out.md).",
)
@_uses_mlflow
@_locked
def run(extracts, workdir, as_of, config_path, truth, engine):
    """Everything in order: pseudonymise, features, train when no model is registered (at D
    minus two horizons of the model specification and the dates a horizon apart before it,
    validated out of time one horizon later), score and export at D."""
    run_pipeline(extracts, workdir, as_of, config_path, truth, engine=engine)


# --------------------------------------------------------------------------- demo


@main.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=Path("demo-work"),
    show_default=True,
    help="Work directory for the demo (synthetic extracts, truth, outputs).",
)
@click.option("--patients", type=click.IntRange(min=100), default=20_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@_uses_mlflow
def demo(workdir, patients, seed):
    """Run riskstrat end to end on a freshly generated synthetic population.

    Generates synthetic extracts (with a low rate of injected faults, to show the
    quarantine at work), then validates, pseudonymises, builds features, trains, scores and
    exports them in WORKDIR/work.
    """
    from riskstrat.stages.resources import usable_directory

    usable_directory(workdir, "--workdir")
    with _holding(workdir / "work"):
        _demo(workdir, patients, seed)


def _demo(workdir: Path, patients: int, seed: int) -> None:
    """A synthetic population, then exactly what ``riskstrat run`` does (:func:`run_pipeline`)
    at its extract's last as-of date, with the validation report shown and the truth directory
    given (the ceiling AUROC)."""
    import os

    from riskstrat.privacy.keys import KeyName, throwaway_keys
    from riskstrat.stages.lock import LOCK_FILE
    from riskstrat.workdir import WorkDir

    extracts, truth, work = workdir / "extracts", workdir / "truth", workdir / "work"
    started = time.perf_counter()
    if not (os.environ.get(KeyName.PSEUDONYM.value) or os.environ.get(f"{KeyName.PSEUDONYM.value}_FILE")):
        for old in work.iterdir():  # pseudonyms of old throwaway keys cannot be linked (the lock stays)
            if old.name != LOCK_FILE:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        os.environ.update(throwaway_keys())
        console.print("demo: made throwaway pseudonymisation and vault keys for this run (held in memory only)")
    console.print(f"synthetic population of {patients:,} people -> {extracts}")
    summary = run_synth(extracts, patients, seed, truth, 7, dt.date(2026, 10, 1), 0.0005, "parquet", 100_000)
    console.print(f"      {sum(summary.rows.values()):,} rows in {len(summary.rows)} tables (truth in {truth})")
    as_of = dt.date.fromisoformat(summary.as_of_dates[-1])
    run_pipeline(extracts, work, as_of, None, truth, show_validation=True)
    wd = WorkDir(work)
    quarantined = json.loads(wd.pseudonymise_report().read_text())["validation"]["quarantined_rows"]
    injected = json.loads((truth / "faults.json").read_text())
    n_injected = sum(sum(v.values()) for v in injected.get("quarantined", {}).values())
    console.print(
        f"demo finished in {time.perf_counter() - started:.1f} s: {quarantined:,} rows "
        f"quarantined ({n_injected:,} faults were injected to be quarantined); pseudonymised tables in "
        f"{wd.pseudonymised}, vault and audit log in {wd.identifiable}"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
