"""Failing closed: objections never dropped, one run per work directory, nothing vanishing
unannounced, one month at a time, clean recovery after a kill (issue 12)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from riskstrat.config import Config, load_config
from riskstrat.errors import RiskstratError
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.pseudonym import pseudonym
from riskstrat.stages.lock import LOCK_FILE, WorkDirBusy, work_lock
from riskstrat.stages.pseudonymise import pseudonymise
from riskstrat.workdir import WorkDir
from tests.conftest import VAULT_KEY as SHARED_VAULT_KEY

KEY = "fail-closed-region-key-0123-4567-89abcdefghij"
VAULT_KEY = "fail-closed-vault-key-0123-4567-89abcdefghijk"


def _copy(extracts: Path, to: Path) -> Path:
    shutil.copytree(extracts, to)
    return to


def _people_without_objections(extracts: Path, n: int) -> list[str]:
    reg = pq.read_table(extracts / "gp_registrations.parquet", columns=["nhs_number", "registration_end"])
    open_ = reg.filter(pc.is_null(reg["registration_end"]))["nhs_number"].to_pylist()
    objectors = set(pq.read_table(extracts / "opt_outs.parquet")["nhs_number"].to_pylist())
    return [x for x in dict.fromkeys(open_) if x not in objectors][:n]


def _pseudonyms_in(work: Path, table: str) -> set[str]:
    return set(pq.read_table(WorkDir(work).table(table), columns=["pseudonym"])["pseudonym"].to_pylist())


# --------------------------------------------------------------------------- objections


def test_unreadable_objections_exclude_the_person_from_every_use(clean_population, tmp_path):
    """An objection typed 'type2' and one whose NHS number is written with spaces are both
    quarantined, and both people are still removed from everything."""
    extracts = _copy(clean_population[0], tmp_path / "x")
    spaced, mistyped = _people_without_objections(extracts, 2)
    oo = pq.read_table(extracts / "opt_outs.parquet")
    extra = pa.table(
        {
            "nhs_number": [f"{spaced[:3]} {spaced[3:6]} {spaced[6:]}", mistyped],
            "opt_out_type": ["ndoo", "type2"],
            "recorded_date": pa.array([dt.date(2024, 1, 1)] * 2, oo.schema.field("recorded_date").type),
        }
    ).cast(oo.schema)
    pq.write_table(pa.concat_tables([oo, extra]), extracts / "opt_outs.parquet")
    work = tmp_path / "W"
    report = pseudonymise(extracts, work, Config(), KEY, VAULT_KEY)
    assert report.validation.tables["opt_outs"].quarantined_rows == 2
    assert report.opted_out["unreadable_objections_applied"] == 2
    gone = {pseudonym(spaced, KEY), pseudonym(mistyped, KEY)}
    for table in ("gp_registrations", "gp_events", "gp_medications", "sus_apc", "sus_op", "sus_ecds"):
        assert not gone & _pseudonyms_in(work, table), table
    assert report.tables["gp_registrations"]["opted_out"] >= 2  # and the counts still reconcile
    assert report.reconciles


def test_an_extract_without_opt_outs_is_refused_unless_applied_upstream(clean_population, tmp_path):
    """Month 1 removes the objectors; month 2's extract lacks opt_outs: refused, month 1 kept.
    With the configuration saying the DSCRO applied them, it runs and says so."""
    extracts = _copy(clean_population[0], tmp_path / "x")
    work = tmp_path / "W"
    first = pseudonymise(extracts, work, Config(), KEY, VAULT_KEY)
    removed = first.opted_out["removed_before_pseudonymisation"]
    assert removed > 0 and first.opted_out["objections"].startswith("applied from the opt_outs table")
    before = pq.read_metadata(WorkDir(work).table("gp_registrations")).num_rows
    (extracts / "opt_outs.parquet").unlink()
    with pytest.raises(RiskstratError, match=r"no opt_outs table.*applied_upstream"):
        pseudonymise(extracts, work, Config(), KEY, VAULT_KEY)
    assert pq.read_metadata(WorkDir(work).table("gp_registrations")).num_rows == before  # month 1 untouched
    failed = [r for r in AuditLog(WorkDir(work).audit).records() if r.get("outcome") == "failed"]
    assert failed and "no opt_outs table" in failed[-1]["message"]
    config_file = tmp_path / "upstream.yaml"
    config_file.write_text("opt_outs:\n  applied_upstream: DSCRO North\n")
    second = pseudonymise(extracts, work, load_config(config_file), KEY, VAULT_KEY)
    assert second.opted_out["objections"] == f"applied upstream by DSCRO North (configuration {config_file})"
    assert second.opted_out["people_with_objections"] == 0


def test_a_required_table_with_no_rows_stops_unless_expected(clean_population, tmp_path):
    extracts = _copy(clean_population[0], tmp_path / "x")
    ecds = pq.read_table(extracts / "sus_ecds.parquet")
    pq.write_table(ecds.slice(0, 0), extracts / "sus_ecds.parquet")
    with pytest.raises(RiskstratError, match=r"required table\(s\) with no rows: sus_ecds \(sus_ecds.parquet\)"):
        pseudonymise(extracts, tmp_path / "W", Config(), KEY, VAULT_KEY)
    config_file = tmp_path / "empty-ok.yaml"
    config_file.write_text("validation:\n  expected_empty: [sus_ecds]\n")
    report = pseudonymise(extracts, tmp_path / "W", load_config(config_file), KEY, VAULT_KEY)
    assert report.tables["sus_ecds"]["written"] == 0


def test_a_table_missing_this_month_is_never_read_from_last_month(clean_population, tmp_path):
    extracts = _copy(clean_population[0], tmp_path / "x")
    work = tmp_path / "W"
    pseudonymise(extracts, work, Config(), KEY, VAULT_KEY)
    assert WorkDir(work).table("deaths").exists()
    (extracts / "deaths.parquet").unlink()
    pseudonymise(extracts, work, Config(), KEY, VAULT_KEY)
    assert not WorkDir(work).table("deaths").exists()


def test_staged_copies_and_quarantine_are_private_and_staging_is_gone(faulty_population, tmp_path):
    _, faulty, _ = faulty_population
    work = tmp_path / "W"
    pseudonymise(faulty, work, Config(), KEY, VAULT_KEY)
    wd = WorkDir(work)
    assert not wd.staging.exists()
    quarantined = sorted(wd.quarantine.glob("*.csv"))
    assert quarantined
    for f in quarantined:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    assert stat.S_IMODE(wd.quarantine.stat().st_mode) == 0o700


# --------------------------------------------------------------------------- one run per W


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "RISKSTRAT_PSEUDONYM_KEY": KEY, "RISKSTRAT_VAULT_KEY": VAULT_KEY, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "riskstrat", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for_lock(work: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = work / LOCK_FILE
        if path.exists() and path.stat().st_size:
            return json.loads(path.read_text())
        time.sleep(0.02)
    raise AssertionError("the first run never took the lock")


def test_two_runs_on_one_work_directory_one_refused(faulty_population, tmp_path):
    """Two real processes: the second stops at once with one line naming the first; the first
    finishes unharmed."""
    _, faulty, _ = faulty_population
    work = tmp_path / "W"
    first = _cli("pseudonymise", "--extracts", str(faulty), "--workdir", str(work))
    holder = _wait_for_lock(work)
    assert holder["pid"] == first.pid and "pseudonymise" in holder["command"]
    second = _cli("pseudonymise", "--extracts", str(faulty), "--workdir", str(work))
    out, err = second.communicate(timeout=120)
    assert second.returncode == 7 and "Traceback" not in err
    assert err.strip().startswith(f"riskstrat: error: {work}: in use by another riskstrat run (process {first.pid}")
    assert len(err.strip().splitlines()) == 1
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert "reconciled" in out
    assert (work / LOCK_FILE).read_text() == ""  # released and cleared on a clean exit


def test_a_killed_runs_lock_is_taken_over(tmp_path):
    work = tmp_path / "W"
    work.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from pathlib import Path; from riskstrat.stages.lock import work_lock\n"
            f"with work_lock(Path({str(work)!r}), 'riskstrat run (test)'):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(WorkDirBusy, match="in use by another riskstrat run"):
        with work_lock(work, "riskstrat features"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with work_lock(work, "riskstrat features") as note:
        assert note is not None and f"process {holder.pid}" in note and "stopped without finishing" in note
        with work_lock(work, "nested stage") as inner:  # re-entrant within a process
            assert inner is None


def test_a_file_as_work_directory_is_one_line(tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    for args in (
        ["features", "--workdir", str(a_file), "--as-of", "2026-10-01"],
        ["features", "--workdir", str(a_file / "below"), "--as-of", "2026-10-01"],
        ["validate", str(tmp_path), "--quarantine", str(a_file)],
    ):
        proc = _cli(*args)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1 and "not-a-folder" in err and "folder" in err, err


# --------------------------------------------------------------------------- registry


def test_a_version_registered_before_a_kill_is_made_champion_not_retrained(tmp_path):
    import mlflow
    from mlflow import MlflowClient

    from riskstrat import tracking
    from riskstrat.modelling.estimators import PriorAdmissionsRule

    work = tmp_path / "W"
    work.mkdir()
    with work_lock(work, "riskstrat run (test)"):
        tracking.configure(work, None, "killed-model")
        frame = pd.DataFrame({"emergency_admissions_365d": [0, 1, 2, 0] * 10})
        with tracking.start_run("killed", work):
            version = tracking.log_model(PriorAdmissionsRule().fit(frame, [0, 1, 1, 0] * 10), frame, "killed-model")
        # killed here: no champion decision
        left_running = MlflowClient().create_run(
            mlflow.get_experiment_by_name("killed-model").experiment_id,
            tags={tracking.WORKDIR_TAG: str(work.resolve())},
        )
        assert tracking.champion_version("killed-model") is None
        # the rerun
        tracking.configure(work, None, "killed-model", end_abandoned=True)
        assert MlflowClient().get_run(left_running.info.run_id).info.status == "FAILED"
        assert tracking.complete_pending("killed-model") == version
        assert tracking.champion_version("killed-model") == version
        tags = MlflowClient().get_model_version("killed-model", version).tags
        assert tags[tracking.DECISION_TAG] == "promoted"
        assert tracking.complete_pending("killed-model") is None  # nothing left to complete


# --------------------------------------------------------------------------- one month at a time


@pytest.fixture(scope="module")
def scored_months(pseudonymised, tmp_path_factory):
    """The shared pseudonymised W, copied, with a champion and scores at two dates."""
    from riskstrat.stages.score import score
    from riskstrat.stages.train import train

    work = tmp_path_factory.mktemp("months") / "W"
    shutil.copytree(pseudonymised, work)
    spec = _fast_spec(tmp_path_factory.mktemp("spec"))
    train(work, dt.date(2024, 10, 1), spec)
    for d in (dt.date(2026, 9, 1), dt.date(2026, 10, 1)):
        score(work, d)
    return work


def _files(month: Path) -> dict[str, bytes]:
    """Every file of a month's folder (the practices' lists, pages and their own folders of files)."""
    return {str(p.relative_to(month)): p.read_bytes() for p in sorted(month.rglob("*")) if p.is_file()}


def _fast_spec(folder: Path) -> Path:
    from riskstrat.modelling.spec import DEFAULT_SPEC

    text = DEFAULT_SPEC.read_text()
    text = text.replace("candidates: [lightgbm, logistic]", "candidates: [lightgbm]")
    text = text.replace("max_trials: 20", "max_trials: 1").replace("n_estimators: 3000", "n_estimators: 60")
    text = text.replace("time_budget_seconds: 90", "time_budget_seconds: 1")
    path = folder / "fast.yaml"
    path.write_text(text)
    return path


def test_each_month_in_its_own_folder_and_current_moves_last(scored_months, monkeypatch):
    import riskstrat.stages.export as export_stage

    work = scored_months
    wd = WorkDir(work)
    september, october = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
    export_stage.export(work, september, SHARED_VAULT_KEY)
    assert os.readlink(wd.current(wd.direct_care)) == "2026-09-01"
    assert os.readlink(wd.current(wd.commissioner)) == "2026-09-01"
    september_lists = _files(wd.month(wd.direct_care, september))
    lst = pd.read_csv(next(wd.month(wd.direct_care, september).glob("*.csv")), dtype=str)
    assert set(lst["as_of"]) == {"2026-09-01"} and lst["model_version"].str.match(r".+ version \d+$").all()
    agg = pd.read_csv(wd.month(wd.commissioner, september) / "aggregates.csv", dtype=str)
    assert set(agg["as_of"]) == {"2026-09-01"}
    # October's export is killed after its commissioner files and some lists are written
    calls = {"n": 0}
    real = export_stage.write_atomically

    def dying(content, path):
        calls["n"] += 1
        if calls["n"] > 6:
            raise KeyboardInterrupt  # as a kill would, mid-way through the practices
        real(content, path)

    monkeypatch.setattr(export_stage, "write_atomically", dying)
    with pytest.raises(KeyboardInterrupt):
        export_stage.export(work, october, SHARED_VAULT_KEY)
    monkeypatch.undo()
    assert os.readlink(wd.current(wd.direct_care)) == "2026-09-01"  # last month's set, whole
    assert not wd.month(wd.direct_care, october).exists() and not wd.month(wd.commissioner, october).exists()
    assert _files(wd.current(wd.direct_care)) == september_lists
    # the rerun clears the half-written month and publishes October; September stays
    result = export_stage.export(work, october, SHARED_VAULT_KEY)
    assert result.direct_care == wd.month(wd.direct_care, october)
    assert os.readlink(wd.current(wd.direct_care)) == "2026-10-01"
    assert os.readlink(wd.current(wd.commissioner)) == "2026-10-01"
    assert _files(wd.month(wd.direct_care, september)) == september_lists
    assert not list(wd.direct_care.glob(".*"))
    # exporting an earlier month again never moves current back
    export_stage.export(work, september, SHARED_VAULT_KEY)
    assert os.readlink(wd.current(wd.direct_care)) == "2026-10-01"
    assert stat.S_IMODE(wd.month(wd.direct_care, october).stat().st_mode) == 0o700


def test_people_who_cannot_be_listed_are_announced(scored_months, tmp_path):
    """Registrations quarantined at a practice are counted on its page; a practice missing from
    ref_practices is named with its people; a list half last month's length is warned."""
    from riskstrat.stages.export import export

    work = tmp_path / "W"
    shutil.copytree(scored_months, work, symlinks=True)
    wd = WorkDir(work)
    october = dt.date(2026, 10, 1)
    september = dt.date(2026, 9, 1)
    assert export(work, september, SHARED_VAULT_KEY).warnings == []
    # a registration quarantined at the first practice, as validation would leave it
    ref = pq.read_table(wd.table("ref_practices")).to_pandas().sort_values("practice_code")
    first, second = ref["practice_code"].iloc[0], ref["practice_code"].iloc[1]
    wd.quarantine.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"row": [7], "rule": ["registration_before_birth"], "practice_code": [first], "nhs_number": ["x"]}
    ).to_csv(wd.quarantine / "gp_registrations.csv", index=False)
    # the second practice's reference row lost, as if quarantined
    pq.write_table(
        pa.Table.from_pandas(ref[ref["practice_code"] != second], preserve_index=False), wd.table("ref_practices")
    )
    pd.DataFrame({"row": [2], "practice_code": [second]}).to_csv(wd.quarantine / "ref_practices.csv", index=False)
    # and last month the first practice's list was twice as long
    previous = wd.reports / "export_2026-09-01.json"
    record = json.loads(previous.read_text())
    was = record["practices"][first]["listed"] * 2
    record["practices"][first]["listed"] = was
    previous.write_text(json.dumps(record))
    result = export(work, october, SHARED_VAULT_KEY)
    text = " | ".join(result.warnings)
    assert f"at practice {second} on 2026-10-01 are not scored: {second} is not in ref_practices (its row was" in text
    assert "1 registrations at 1 practices could not be used (quarantined)" in text
    record = json.loads((wd.reports / "export_2026-10-01.json").read_text())
    now = record["practices"][first]["listed"]
    assert 0.45 < 1 - now / was < 0.55
    assert f"practice {first}: {now:,} patients listed against {was:,} at 2026-09-01 (down 5" in text
    assert len(result.warnings) == 3
    assert record["practices"][first]["registrations_quarantined"] == 1
    assert second not in record["practices"]
    page = (wd.month(wd.direct_care, october) / f"{first}.html").read_text()
    assert "1 registration could not be used: see the quarantine report." in page
