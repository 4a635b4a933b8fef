"""The command line as a batch job sees it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from riskstrat.errors import ExitCode
from riskstrat.workdir import WorkDir

from .conftest import REGION_KEY, VAULT_KEY
from .test_validate import write_extracts

REPO = Path(__file__).resolve().parents[1]


def riskstrat(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "riskstrat", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "command",
    [[], ["synth"], ["validate"], ["pseudonymise"], ["features"], ["train"], ["score"], ["export"], ["run"], ["demo"]],
)
def test_every_command_has_help(command):
    result = riskstrat(*command, "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout


def test_validate_reports_and_reconciles(tmp_path):
    extracts = write_extracts(tmp_path / "x", {"gp_events": [{"snomed_code": "bad"}, {}]})
    result = riskstrat(
        "validate", str(extracts), "--json", str(tmp_path / "r.json"), "--quarantine", str(tmp_path / "q")
    )
    assert result.returncode == 0, result.stderr
    assert "reconciled" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    events = report["tables"]["gp_events"]
    assert (events["rows_read"], events["accepted"], events["quarantined_rows"]) == (3, 1, 2)
    assert events["quarantined"] == {"*:duplicate_row": 1, "snomed_code:code_shape_snomed": 1}
    assert "9990000018" not in result.stdout + result.stderr  # counts only, never row values
    assert (tmp_path / "q" / "gp_events.csv").exists()


def test_missing_required_table_is_one_line_and_exit_3(tmp_path):
    extracts = write_extracts(tmp_path / "x")
    (extracts / "sus_ecds.csv").unlink()
    result = riskstrat("validate", str(extracts))
    assert result.returncode == ExitCode.INPUT == 1
    assert "Traceback" not in result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1
    assert "required table sus_ecds is missing" in lines[0]


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tables:\n  sus_apc:\n    columns:\n      not_a_column: X\n",
            "tables.sus_apc.columns.not_a_column: no such column",
        ),
        ("disclosure:\n  rates: round3\n", "disclosure.rates: must be one of round5, midpoint6 (got 'round3')"),
        ("validation:\n  batch_rowz: 5\n", "validation.batch_rowz: unknown key; known keys: batch_rows,"),
        ("[1, 2]\n", "a configuration must be a mapping of keys to values (got [1, 2])"),
    ],
)
def test_bad_config_is_one_line(tmp_path, text, message):
    extracts = write_extracts(tmp_path / "x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    result = riskstrat("validate", str(extracts), "--config", str(cfg))
    assert result.returncode == ExitCode.CONFIG == 4
    assert f"{cfg}: {message}" in _one_line(result)


def test_bad_model_specification_is_one_line(tmp_path):
    from riskstrat.modelling.spec import DEFAULT_SPEC

    spec = tmp_path / "m.yaml"
    spec.write_text(DEFAULT_SPEC.read_text().replace("{name: high, top_share: 0.05}", "{name: high, top_share: 0.001}"))
    work = tmp_path / "W"
    result = riskstrat("train", "--workdir", str(work), "--as-of", "2024-04-01", "--model-spec", str(spec))
    assert result.returncode == ExitCode.CONFIG == 4
    assert f"{spec}: risk_bands[1].top_share: must be above the band before's (0.005) (got 0.001)" in _one_line(result)
    missing = riskstrat(
        "train", "--workdir", str(work), "--as-of", "2024-04-01", "--model-spec", str(tmp_path / "no.yaml")
    )
    assert missing.returncode == ExitCode.CONFIG
    assert f"{tmp_path / 'no.yaml'}: model specification not found" in _one_line(missing)


def test_missing_extracts_directory(tmp_path):
    result = riskstrat("validate", str(tmp_path / "nope"))
    assert result.returncode == ExitCode.INPUT and "Traceback" not in result.stderr
    assert "extracts directory not found" in result.stderr


def test_synth_refuses_truth_inside_extracts(tmp_path):
    result = riskstrat("synth", "--out", str(tmp_path / "x"), "--truth", str(tmp_path / "x" / "t"), "--patients", "100")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--truth must not be inside --out" in result.stderr


def test_synth_then_validate_has_nothing_quarantined(tmp_path):
    result = riskstrat(
        "synth", "--out", str(tmp_path / "x"), "--truth", str(tmp_path / "t"), "--patients", "1500", "--format", "csv"
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "t" / "true_risk.parquet").exists()
    result = riskstrat("validate", str(tmp_path / "x"), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["quarantined_rows"] == 0


def test_bad_option_value_is_a_usage_error(tmp_path):
    result = riskstrat("synth", "--out", str(tmp_path / "x"), "--extract-date", "2026-13-01")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "YYYY-MM-DD" in result.stderr


# --------------------------------------------------------------------------- exit codes, output, logging


def test_every_exit_code_is_in_the_help_and_the_docs():
    help_text = riskstrat("--help").stdout
    docs = (REPO / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | `{code.name}` |" in docs, code
        assert any(line.strip().startswith(f"{code.value}  ") for line in help_text.splitlines()), code
    assert "--verbose" in help_text and "--quiet" in help_text


def test_a_missing_key_exits_5(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTRAT_")}
    extracts = write_extracts(tmp_path / "x")
    command = ["pseudonymise", "--extracts", str(extracts), "--workdir", str(tmp_path / "W")]
    result = subprocess.run([sys.executable, "-m", "riskstrat", *command], capture_output=True, text=True, env=env)
    assert result.returncode == ExitCode.KEY == 5, result.stderr
    assert result.stderr.strip() == (
        "riskstrat: error: no key: set RISKSTRAT_PSEUDONYM_KEY (or RISKSTRAT_PSEUDONYM_KEY_FILE to a file holding it)"
    )


def test_a_busy_work_directory_exits_7(tmp_path):
    from riskstrat.stages.lock import work_lock

    work = tmp_path / "W"
    with work_lock(work, "riskstrat run (held by the test)"):
        result = riskstrat("features", "--workdir", str(work), "--as-of", "2025-10-01")
    assert result.returncode == ExitCode.BUSY == 7, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"riskstrat: error: {work}: in use by another riskstrat run")
    assert f"process {os.getpid()}" in lines[0] and "held by the test" in lines[0]


_BROKEN_VALIDATE = """
import sys
import riskstrat.cli as cli

def broken(*args, **kwargs):
    raise ZeroDivisionError("division by zero\\nsecond line")

cli.run_validate = broken
sys.argv = ["riskstrat", *sys.argv[1:]]
cli.main()
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_a_bug_is_one_line_and_exit_70_with_the_traceback_only_when_verbose(tmp_path, verbose):
    options = ["--verbose"] if verbose else []
    command = [sys.executable, "-c", _BROKEN_VALIDATE, *options, "validate", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == ExitCode.INTERNAL == 70
    lines = result.stderr.strip().splitlines()
    if verbose:
        assert lines[0] == "Traceback (most recent call last):" and "in broken" in result.stderr
        assert lines[-1] == (
            "riskstrat: internal error: ZeroDivisionError: division by zero "
            "(a bug: please report it with the traceback above)"
        )
    else:
        assert lines == [
            "riskstrat: internal error: ZeroDivisionError: division by zero "
            "(a bug: please report it; run with --verbose for the traceback)"
        ]


def test_validate_writes_json_to_standard_output_with_a_dash(tmp_path):
    extracts = write_extracts(tmp_path / "x", {"gp_events": [{"snomed_code": "bad"}, {}]})
    result = riskstrat("validate", str(extracts), "--json", "-", "--quarantine", str(tmp_path / "q"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # only JSON on standard output
    events = report["tables"]["gp_events"]
    assert (events["rows_read"], events["accepted"], events["quarantined_rows"]) == (3, 1, 2)
    assert "reconciled" in result.stderr  # the tables went to standard error
    assert not (Path.cwd() / "-").exists()


def test_version_from_a_source_checkout_without_package_metadata():
    code = (
        "import importlib.metadata as m, sys\n"
        "def without_riskstrat(lookup):\n"
        "    def find(name):\n"
        "        if name.lower() == 'riskstrat':\n"
        "            raise m.PackageNotFoundError(name)\n"
        "        return lookup(name)\n"
        "    return find\n"
        "for f in ('version', 'distribution', 'metadata'):\n"
        "    setattr(m, f, without_riskstrat(getattr(m, f)))\n"
        "sys.argv = ['riskstrat', '--version']\n"
        "from riskstrat.cli import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "riskstrat, version 0.1.0"
    assert riskstrat("--version", cwd=REPO).stdout.strip() == "riskstrat, version 0.1.0"


def test_importing_riskstrat_leaves_mlflows_loggers_alone():
    code = (
        "import logging, mlflow\n"
        "log = logging.getLogger('mlflow')\n"
        "log.setLevel(logging.DEBUG)\n"
        "handlers = list(log.handlers)\n"
        "import riskstrat.tracking, riskstrat.cli\n"
        "print(log.level, log.handlers == handlers)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10", "True"]


_MLFLOW_CHATTER = """
import logging, sys
import riskstrat.cli as cli

verbose = sys.argv[1] == "verbose"
cli._configure_logging(verbose=verbose, quiet=False)
from mlflow.utils.logging_utils import eprint
from riskstrat.tracking import show_mlflow_prints

show_mlflow_prints(verbose)
logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
logging.getLogger("mlflow.tracking").warning("an MLflow warning")
eprint("Successfully registered model 'm'.")
logging.getLogger("riskstrat.modelling").debug("a riskstrat detail")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_mlflow_chatter_reaches_the_user_only_with_verbose(verbose):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    command = [sys.executable, "-c", _MLFLOW_CHATTER, "verbose" if verbose else "default"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "mlflow.tracking: WARNING: an MLflow warning" in result.stderr
    for chatter in ("Creating initial MLflow database tables", "Successfully registered model", "a riskstrat detail"):
        assert (chatter in result.stderr) == verbose, (chatter, result.stderr)


def _job_env(region_key: str, vault_key: str) -> dict[str, str]:
    """The environment of a batch job: its keys, and no MLflow settings from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return {**env, "RISKSTRAT_PSEUDONYM_KEY": region_key, "RISKSTRAT_VAULT_KEY": vault_key}


def _run(extracts: Path, workdir: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    command = ["run", "--extracts", str(extracts), "--workdir", str(workdir), "--as-of", "2026-10-01", *extra]
    return subprocess.run([sys.executable, "-m", "riskstrat", *command], capture_output=True, text=True, env=env)


def test_run_does_everything_in_order(tmp_path):
    assert riskstrat("synth", "--out", str(tmp_path / "x"), "--patients", "6000", "--practices", "2").returncode == 0
    env = _job_env("cli-run-region-key-0123-4567-89abcdefghijkl", "cli-run-vault-key-0123-4567-89abcdefghijklm")
    result = _run(tmp_path / "x", tmp_path / "W", env)
    assert result.returncode == 0, result.stderr[-2000:]
    out = " ".join(result.stdout.split())
    assert "no champion registered: train at 2024-10-01" in out and "run finished" in out
    for chatter in ("Successfully registered model", "Created version", "Downloading artifacts", "INFO"):
        assert chatter not in result.stdout + result.stderr, chatter  # MLflow's narration only with --verbose
    assert sorted(p.name for p in (tmp_path / "W" / "direct_care" / "current").iterdir()) == [
        "Y90000",  # the practice's folder: recently discharged, import files, NHS number lists
        "Y90000.csv",
        "Y90000.html",
        "Y90001",
        "Y90001.csv",
        "Y90001.html",
    ]
    assert (tmp_path / "W" / "commissioner" / "current" / "aggregates.csv").exists()
    record = json.loads((tmp_path / "W" / "reports" / "run_2026-10-01.json").read_text())
    stages = [r["stage"] for r in record["stages"]]
    # features at D, the three stacked training dates and the validation date, then training
    assert stages == [
        "pseudonymise",
        "features at 2026-10-01",
        "features at 2024-10-01",
        "features at 2023-10-02",
        "features at 2022-10-02",
        "features at 2025-10-01",
        "train at 2024-10-01",
        "score at 2026-10-01",
        "export at 2026-10-01",
        "monitor at 2026-10-01",
    ]
    assert all(r["seconds"] > 0 and r["peak_rss_mb"] > 50 and not r["skipped"] for r in record["stages"])
    lists = {
        p.name: p.read_bytes() for p in (tmp_path / "W" / "direct_care" / "current").iterdir() if p.suffix == ".csv"
    }
    # a rerun skips what is unchanged and gives the same lists
    again = _run(tmp_path / "x", tmp_path / "W", env)
    out = " ".join(again.stdout.split())
    assert again.returncode == 0 and "a champion is registered: no training" in out
    assert "extracts, configuration and key unchanged since the last run today: kept" in out
    assert "scores at 2026-10-01 kept" in out and "2026-10-01: pseudonymised tables and feature definitions" in out
    rerun = json.loads((tmp_path / "W" / "reports" / "run_2026-10-01.json").read_text())
    assert [r["stage"] for r in rerun["stages"] if r["skipped"]] == [
        "pseudonymise",
        "features at 2026-10-01",
        "score at 2026-10-01",
    ]
    assert {
        p.name: p.read_bytes() for p in (tmp_path / "W" / "direct_care" / "current").iterdir() if p.suffix == ".csv"
    } == lists
    # a changed extract is pseudonymised again, and what follows from it is rebuilt
    import pyarrow.parquet as pq

    deaths = tmp_path / "x" / "deaths.parquet"
    table = pq.read_table(deaths)
    pq.write_table(table.slice(0, table.num_rows - 1), deaths)
    third = _run(tmp_path / "x", tmp_path / "W", env)
    assert third.returncode == 0, third.stderr[-2000:]
    rerun = json.loads((tmp_path / "W" / "reports" / "run_2026-10-01.json").read_text())
    assert not any(r["skipped"] for r in rerun["stages"])


def test_run_on_csv_extracts_without_the_optional_tables(tmp_path):
    """Contract v1 allows CSV and lets deaths, opt_outs and ref_lsoa be absent: run still
    produces every output, and says nothing alarming on the way."""
    x = tmp_path / "x"
    made = riskstrat("synth", "--out", str(x), "--patients", "4000", "--practices", "2", "--format", "csv")
    assert made.returncode == 0
    for optional in ("deaths", "opt_outs", "ref_lsoa"):
        (x / f"{optional}.csv").unlink()
    env = _job_env("cli-csv-region-key-abc-def-ghij-klmn-opqrst", "cli-csv-vault-key-abc-def-ghij-klmn-opqrstu")
    refused = _run(x, tmp_path / "W", env)
    assert refused.returncode == 1 and "no opt_outs table" in refused.stderr and "Traceback" not in refused.stderr
    config = tmp_path / "upstream.yaml"  # without opt_outs, only when someone applied them upstream
    config.write_text("opt_outs:\n  applied_upstream: the DSCRO\n")
    result = _run(x, tmp_path / "W", env, "--config", str(config))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Warning" not in result.stderr and "WARNING" not in result.stderr, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "W" / "reports" / "score_2026-10-01.json").read_text())
    lists = sorted((tmp_path / "W" / "direct_care" / "current").glob("*.csv"))
    assert [p.name for p in lists] == ["Y90000.csv", "Y90001.csv"]
    listed = sum(len(p.read_text().splitlines()) - 1 for p in lists)
    assert listed == manifest["people_scored"] > 2000  # no opt-outs: everyone scored is on a list
    assert "objections applied upstream by the DSCRO" in " ".join(result.stdout.split())
    for output in ("cohort.parquet", "aggregates.csv", "report.html"):
        assert (tmp_path / "W" / "commissioner" / "current" / output).stat().st_size > 0


def test_running_out_of_memory_is_one_line_naming_the_stage_and_the_setting(pseudonymised, tmp_path):
    import shutil

    work = tmp_path / "W"
    shutil.copytree(pseudonymised, work)
    env = {**os.environ, "RISKSTRAT_DUCKDB_MEMORY": "2MB"}
    command = [sys.executable, "-m", "riskstrat", "features", "--workdir", str(work), "--as-of", "2025-10-01"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == ExitCode.RESOURCE == 6
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines[0].startswith("riskstrat: error: features at 2025-10-01: out of memory (DuckDB memory limit 2MB")
    assert "RISKSTRAT_DUCKDB_MEMORY" in lines[0]
    # nothing half-written is left behind, and the stage runs once the limit allows it
    wd = WorkDir(work)
    assert not list(wd.features_dir.glob(".*")) and not wd.spill.exists()
    env["RISKSTRAT_DUCKDB_MEMORY"] = "2GB"
    assert subprocess.run(command, capture_output=True, text=True, env=env).returncode == 0


def test_running_out_of_memory_in_pseudonymisation_is_one_line_and_writes_nothing(clean_population, tmp_path):
    """Pseudonymisation runs in a process of its own (riskstrat.stages.isolated): its failure
    still reaches the user as one line naming the stage and the setting."""
    extracts, _ = clean_population
    work = tmp_path / "W"
    env = {**_job_env(REGION_KEY, VAULT_KEY), "RISKSTRAT_DUCKDB_MEMORY": "1MB"}
    command = [sys.executable, "-m", "riskstrat", "pseudonymise", "--extracts", str(extracts), "--workdir", str(work)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == ExitCode.RESOURCE == 6
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines[0].startswith("riskstrat: error: pseudonymise: out of memory (DuckDB memory limit 1MB")
    assert not WorkDir(work).linked.exists() or not any(WorkDir(work).linked.iterdir())
    assert not WorkDir(work).staging.exists()  # identifiable staged copies never stay


def test_resource_errors_name_the_stage_and_what_ran_out():
    import errno

    from riskstrat.stages.resources import as_resource_error, stage

    def raised(exc):
        try:
            with stage("outer"), stage("score at 2026-10-01"):
                raise exc
        except Exception as caught:
            return as_resource_error(caught)

    memory = raised(MemoryError())
    assert str(memory).startswith("score at 2026-10-01: out of memory")  # the innermost stage
    disk = raised(OSError(errno.ENOSPC, "No space left on device", "/w/scores.parquet"))
    assert str(disk).startswith("score at 2026-10-01: no space left on the disk (/w/scores.parquet)")
    assert raised(ValueError("a bug")) is None  # anything else is not dressed up as a resource problem


def test_the_score_stage_names_itself_in_a_resource_error(monkeypatch, tmp_path):
    import datetime as dt

    from riskstrat.stages import score as score_stage
    from riskstrat.stages.resources import as_resource_error

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(score_stage, "features_path", out_of_memory)
    with pytest.raises(MemoryError) as caught:
        score_stage.score(tmp_path, as_of=dt.date(2026, 10, 1))
    assert str(as_resource_error(caught.value)).startswith("score at 2026-10-01: out of memory")


def test_stage_records_are_the_same_in_every_process():
    from riskstrat.config import load_config
    from riskstrat.stages.manifest import canonical

    code = "import json; from riskstrat.config import load_config; from riskstrat.stages.manifest import canonical;"
    code += "print(json.dumps(canonical(load_config(None))))"
    # string hashing differs between processes (PYTHONHASHSEED): set order must not leak into a record
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outs) == 1 and json.loads(outs.pop()) == canonical(load_config(None))


def test_synth_in_date_order_refuses_csv_in_one_line(tmp_path):
    from riskstrat.cli import synth
    from riskstrat.synth import Order

    order = next(p for p in synth.params if p.name == "order")
    assert list(order.type.choices) == [o.value for o in Order]  # the options are the generator's
    command = [sys.executable, "-m", "riskstrat", "synth", "--out", str(tmp_path / "x"), "--patients", "100"]
    result = subprocess.run([*command, "--order", "date", "--format", "csv"], capture_output=True, text=True)
    assert result.returncode == ExitCode.INPUT
    assert result.stderr.strip() == "riskstrat: error: --order date writes Parquet only: leave out --format csv"
    assert not (tmp_path / "x").exists()
