"""Benchmark: does the model hold on synthetic structures it was not built around? (prints figures; not a test)

Usage::

    python benchmarks/generalisation_benchmark.py [--patients 200000] [--structures default alt]
        [--train-size 1000000] [--keep DIR]

For each structure, as a user retraining on their own ICB would: ``riskstrat synth
--structure S`` writes a population (7 years) and its true risks; then the monthly job's own
commands run in fresh processes — ``pseudonymise``, ``train`` at the newest date a run can
validate out of time (the population of the extract date minus two years, stacked with the
years before it, validated on the population a year later) — each timed with its peak RSS
(``os.wait4``). The figures are read back from the MLflow run: the model's AUROC against the
true risks' (the ceiling) and the share of it, calibration slope and O/E, PPV in the top 1% and
5% against the true risks', and both baselines. ``--train-size`` times training alone at a
larger population (default structure).

Nothing here is tuned per structure: both use the shipped model specification.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "benchmark-region-key-0123-4567-89abcdefghijkl"  # synthetic data only
VAULT = "benchmark-vault-key-0123-4567-89abcdefghijklm"
EXTRACT_DATE = dt.date(2026, 10, 1)
TARGETS = {"default": 0.95, "alt": 0.92}


def timed(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd``; wall seconds and the peak RSS of its process in MB."""
    env = {**os.environ, "RISKSTRAT_PSEUDONYM_KEY": KEY, "RISKSTRAT_VAULT_KEY": VAULT}
    env.pop("MLFLOW_TRACKING_URI", None)  # each work directory's own embedded store
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd[2:5])} failed: see {log}")
    return seconds, usage.ru_maxrss / 1024


def riskstrat(*args: str) -> list[str]:
    return [sys.executable, "-m", "riskstrat", *args]


def run_structure(structure: str, n: int, base: Path) -> dict:
    base.mkdir(parents=True, exist_ok=True)
    x, truth, w = base / "extracts", base / "truth", base / "W"
    stages = {}
    if not (truth / "true_risk.parquet").exists():
        stages["synth"] = timed(
            riskstrat("synth", "--out", str(x), "--truth", str(truth), "--patients", str(n), "--structure", structure),
            base / "synth.log",
        )
    from riskstrat.workdir import WorkDir

    if not WorkDir(w).table("sus_apc").exists():
        stages["pseudonymise"] = timed(
            riskstrat("pseudonymise", "--extracts", str(x), "--workdir", str(w)), base / "pseudonymise.log"
        )
    from riskstrat.modelling.spec import load_spec
    from riskstrat.stages.train import latest_training_as_of

    train_as_of = latest_training_as_of(EXTRACT_DATE, load_spec())
    (w / "mlflow.db").unlink(missing_ok=True)
    stages["train"] = timed(
        riskstrat("train", "--workdir", str(w), "--as-of", str(train_as_of), "--truth", str(truth)),
        base / "train.log",
    )
    return {"structure": structure, "patients": n, "stages": stages, **metrics(w)}


def metrics(w: Path) -> dict:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{w / 'mlflow.db'}")
    exp = client.get_experiment_by_name("emergency_admission_12m")
    run = client.search_runs([exp.experiment_id], order_by=["start_time DESC"], max_results=1)[0]
    m = run.data.metrics
    return {"metrics": m, "learner": run.data.tags.get("learner"), "validation": run.data.tags.get("validation")}


def report(results: list[dict], train_size: tuple[int, tuple[float, float]] | None) -> str:
    lines = [
        "| structure | people | AUROC | ceiling | share (target) | slope | O/E | PPV top 1% (ceiling) | "
        "PPV top 5% (ceiling) | QAdmissions-like AUROC | prior-admissions AUROC | learner | train s | train peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["metrics"]
        secs, peak = r["stages"]["train"]
        lines.append(
            f"| {r['structure']} | {r['patients']:,} | {m['auroc']:.3f} | {m['ceiling_auroc']:.3f} | "
            f"**{m['share_of_ceiling']:.3f}** (≥ {TARGETS.get(r['structure'], 0.9)}) | {m['calibration_slope']:.2f} | "
            f"{m['observed_over_expected']:.3f} | {m['ppv_top1pct']:.3f} ({m['ceiling_ppv_top1pct']:.3f}) | "
            f"{m['ppv_top5pct']:.3f} ({m['ceiling_ppv_top5pct']:.3f}) | {m['qadmissions_like_logistic_auroc']:.3f} | "
            f"{m['prior_admissions_rule_auroc']:.3f} | {r['learner']} | {secs:.0f} | {peak:,.0f} |"
        )
    if train_size is not None:
        n, (secs, peak) = train_size
        lines.append("")
        lines.append(f"Training at {n:,} people (default structure): {secs:.0f} s, peak RSS {peak:,.0f} MB.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200_000)
    ap.add_argument("--structures", nargs="+", default=["default", "alt"])
    ap.add_argument("--train-size", type=int, default=0, help="also time training alone at this many people")
    ap.add_argument("--keep", type=Path, default=None, help="work under DIR and reuse what is there")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="generalisation-"))
    results = []
    for s in args.structures:
        r = run_structure(s, args.patients, root / f"{s}-{args.patients}")
        results.append(r)
        print(f"{s}: {json.dumps({k: [round(v, 1) for v in t] for k, t in r['stages'].items()})}", flush=True)
    big = None
    if args.train_size:
        r = run_structure("default", args.train_size, root / f"default-{args.train_size}")
        big = (args.train_size, r["stages"]["train"])
    print(report(results, big))


if __name__ == "__main__":
    main()
