"""The work directory's layout and the pipeline's declaration.

The pseudonymised zone is laid out by kind (linked/, features/, scores/); a work directory
of an earlier riskstrat is moved to it once, at the start of a command holding the lock.
The pipeline is declared once (:data:`riskstrat.stages.pipeline.PIPELINE`): each stage reads
only what an earlier stage wrote or what comes from outside.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from riskstrat.errors import RiskstratError
from riskstrat.privacy.audit import AuditLog, verify_chain
from riskstrat.stages import manifest
from riskstrat.stages.features import build_features
from riskstrat.stages.features import stage_inputs as features_inputs
from riskstrat.stages.features import stage_name as features_stage
from riskstrat.stages.lock import work_lock
from riskstrat.stages.migrate import migrate_layout, old_layout_moves
from riskstrat.stages.pipeline import EXTERNAL, PIPELINE, Place, StageName, stage
from riskstrat.workdir import WorkDir

D = dt.date(2025, 10, 1)


def _to_old_layout(wd: WorkDir) -> dict[str, bytes]:
    """Put ``wd``'s tables where an earlier riskstrat kept them (and its stage records naming
    them there); returns each old-layout file's bytes by its old name."""
    moved = {}
    for path in sorted(wd.linked.glob("*.parquet")):
        moved[path.name] = path.read_bytes()
        path.rename(wd.pseudonymised / path.name)
    for kind, folder in (("features", wd.features_dir), ("scores", wd.scores_dir)):
        for path in sorted(folder.glob("*.parquet")):
            old = f"{kind}_{path.name}"
            moved[old] = path.read_bytes()
            path.rename(wd.pseudonymised / old)
        shutil.rmtree(folder, ignore_errors=True)
    wd.linked.rmdir()
    for record in wd.stage_records.glob("*.json"):
        body = json.loads(record.read_text())
        body["outputs"] = {
            str(p).replace("/linked/", "/").replace("/features/", "/features_").replace("/scores/", "/scores_"): f
            for p, f in body["outputs"].items()
        }
        record.write_text(json.dumps(body))
    return moved


@pytest.fixture
def old_layout(pseudonymised, tmp_path) -> tuple[Path, dict[str, bytes]]:
    work = tmp_path / "W"
    shutil.copytree(pseudonymised, work)
    wd = WorkDir(work)
    for stale in (wd.features_dir, wd.scores_dir):
        shutil.rmtree(stale, ignore_errors=True)
    build_features(work, D)
    return work, _to_old_layout(wd)


def test_an_old_layout_is_moved_once_and_its_stage_records_stay_current(old_layout):
    work, old = old_layout
    wd = WorkDir(work)
    assert "features_2025-10-01.parquet" in old and "sus_apc.parquet" in old and "opt_out_uses.parquet" in old
    assert not manifest.is_current(wd, features_stage(D), features_inputs(work, D))  # its table is not where it was
    with work_lock(work, "riskstrat features --as-of 2025-10-01"):
        pass
    assert not list(wd.pseudonymised.glob("*.parquet"))
    assert wd.features(D).read_bytes() == old["features_2025-10-01.parquet"]
    linked = {n: b for n, b in old.items() if not n.startswith("features_")}
    assert {p.name: p.read_bytes() for p in wd.linked.glob("*.parquet")} == linked
    # a rename keeps size and modification time: the features at D need not be built again
    assert manifest.is_current(wd, features_stage(D), features_inputs(work, D))
    migrations = [r for r in AuditLog(wd.audit).records() if r["event"] == "workdir_migrated"]
    assert len(migrations) == 1
    assert migrations[0]["moved"] == {"linked": len(linked), "features": 1, "scores": 0}
    assert migrations[0]["command"] == "riskstrat features --as-of 2025-10-01"
    assert verify_chain(wd.audit)
    # idempotent: the next command finds nothing to move and records nothing
    size = wd.audit.stat().st_size
    assert migrate_layout(work) == 0 and old_layout_moves(wd) == {}
    with work_lock(work, "riskstrat score"):
        pass
    assert wd.audit.stat().st_size == size


def test_a_command_on_an_old_layout_runs_on_the_moved_tables(old_layout):
    work, _ = old_layout
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    command = [sys.executable, "-m", "riskstrat", "features", "--workdir", str(work), "--as-of", "2026-10-01"]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    wd = WorkDir(work)
    assert wd.features(dt.date(2026, 10, 1)).exists() and wd.features(D).exists()
    assert not list(wd.pseudonymised.glob("*.parquet"))


def test_a_table_in_both_places_stops_the_move_with_one_line(old_layout):
    work, _ = old_layout
    wd = WorkDir(work)
    wd.linked.mkdir()
    shutil.copy(wd.pseudonymised / "sus_apc.parquet", wd.table("sus_apc"))
    with pytest.raises(RiskstratError, match=r"sus_apc\.parquet: an earlier riskstrat's copy") as err:
        migrate_layout(work)
    assert "\n" not in str(err.value)
    assert (wd.pseudonymised / "deaths.parquet").exists()  # nothing moved


def test_every_stage_reads_what_an_earlier_stage_wrote_or_what_comes_from_outside():
    assert [s.name for s in PIPELINE] == list(StageName)
    written: set[Place] = set(EXTERNAL)
    for s in PIPELINE:
        assert set(s.inputs) <= written, (s.name, set(s.inputs) - written)
        written |= set(s.outputs)
    assert {Place.DIRECT_CARE, Place.COMMISSIONER} <= written
    assert stage("score").function.__name__ == "score" and stage(StageName.TRAIN).outputs == (Place.MODEL,)


def test_the_pipeline_s_places_are_the_work_directory_s():
    wd = WorkDir(Path("W"))

    def template(path: Path) -> str:
        return path.as_posix().replace(D.isoformat(), "<D>").replace("Y90000", "<practice_code>")

    assert template(wd.table("<table>")) == Place.LINKED
    assert template(wd.features(D)) == Place.FEATURES
    assert template(wd.scores(D)) == Place.SCORES
    assert template(wd.vault) == Place.VAULT
    assert template(wd.quarantine) + "/" == Place.QUARANTINE
    assert template(wd.month(wd.direct_care, D) / "Y90000.csv") == Place.DIRECT_CARE
    assert template(wd.month(wd.commissioner, D)) + "/" == Place.COMMISSIONER
    # the pseudonymised zone by kind, with places reserved for exposure and monitoring records
    kinds = {p.relative_to(wd.pseudonymised).as_posix() for p in (wd.linked, wd.features_dir, wd.scores_dir)}
    assert kinds == {"linked", "features", "scores"}
    assert wd.exposure.parent == wd.monitoring.parent == wd.pseudonymised
