"""Benchmark: what each family of features costs at D and what it buys the model, on two structures (prints figures).

Usage::

    python benchmarks/feature_families_benchmark.py [--cost-workdir W] [--patients 100000]
        [--structures default alt] [--search-seconds 30] [--keep DIR]

The feature stage misses its target of 3 times the scan floor, and the cost is the features'
own aggregations (``docs/performance.md``, "A fused stage, measured before building it"), so
meeting it means fewer features. This prints what the choice would weigh:

* **cost** (with ``--cost-workdir``, a pseudonymised work directory, the 2,000,000-person one of
  the monthly benchmark): on the feature stage's kind of connection, the people at D, each
  shared table, then each builder's query (its rows fetched, not placed or written), timed
  one after another as the stage runs them;
* **value**: for each structure (``riskstrat synth --structure S``, ``--patients`` people), the
  shipped model specification trained at the newest date a run can validate out of time, then
  once without each family of :data:`FAMILIES` (their features added to ``features.exclude``),
  each time from the same feature tables; the AUROC, its share of the true risks' (the ceiling)
  and the calibration, read back from MLflow. The learner's search gets ``--search-seconds``
  (the shipped 90 s makes twelve trainings take an hour); every training gets the same.

Nothing is chosen here: the table is for whoever owns the feature set and the target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
import generalisation_benchmark as gen  # the populations and the MLflow figures, as there

#: families of builders whose features could go, largest sources first; each row of the value table
FAMILIES: dict[str, tuple[str, ...]] = {
    "prescriptions (medications, medicine history, eFI)": ("medications", "medicine_history", "efi"),
    "hospital history (3- and 5-year use, trends)": ("hospital_history",),
    "condition history (first diagnoses, years since)": ("condition_history",),
    "admitted-care diagnoses (groups, comorbidity)": ("apc_diagnosis_groups", "apc_comorbidity"),
    "GP conditions and observations": ("gp_conditions", "gp_observations"),
}


def cost(work: Path, as_of: dt.date) -> list[tuple[str, float, int]]:
    """(part, seconds, features) at ``as_of`` on ``work``, as the feature stage runs them."""
    from riskstrat.features import BUILDERS, filled, part
    from riskstrat.features.asof import cut, population
    from riskstrat.features.engine import Engine, connect, load_sources
    from riskstrat.features.registry import SHARED
    from riskstrat.workdir import WorkDir

    wd = WorkDir(work)
    out = []
    con = connect(Engine.DUCKDB, spill_dir=wd.spill, keep_memory=True)
    with tempfile.TemporaryDirectory(dir=wd.pseudonymised) as tmp:
        src = cut(load_sources(con, wd.linked, person_key=True), as_of)
        started = time.perf_counter()
        con.to_pyarrow(population(src, as_of))
        out.append(("the people at D", time.perf_counter() - started, 0))
        built = {}
        for s in SHARED:
            started = time.perf_counter()
            path = Path(tmp) / f"{s.name}.parquet"
            con.to_parquet(s.build(src, as_of), path, compression="uncompressed")
            built[s.name] = con.read_parquet(str(path))
            out.append((f"shared: {s.name}", time.perf_counter() - started, 0))
        src = replace(src, shared=built)
        for b in BUILDERS:
            started = time.perf_counter()
            con.to_pyarrow(filled(part(src, as_of, b), b))
            out.append((b.name, time.perf_counter() - started, len(b.features)))
    con.disconnect()
    return out


def value(structure: str, n: int, base: Path, search_seconds: float) -> list[tuple[str, dict]]:
    """(family left out, figures) for ``structure``: the shipped specification first."""
    from riskstrat.features import BUILDERS
    from riskstrat.modelling.spec import DEFAULT_SPEC, load_spec
    from riskstrat.stages.train import latest_training_as_of

    x, truth, w = base / "extracts", base / "truth", base / "W"
    base.mkdir(parents=True, exist_ok=True)
    if not (truth / "true_risk.parquet").exists():
        synth = ["synth", "--out", str(x), "--truth", str(truth), "--patients", str(n), "--structure", structure]
        gen.timed(gen.riskstrat(*synth), base / "synth.log")
    from riskstrat.workdir import WorkDir

    if not WorkDir(w).table("sus_apc").exists():
        gen.timed(gen.riskstrat("pseudonymise", "--extracts", str(x), "--workdir", str(w)), base / "pseudonymise.log")
    train_as_of = latest_training_as_of(gen.EXTRACT_DATE, load_spec())
    shipped = yaml.safe_load(DEFAULT_SPEC.read_text())
    by_name = {b.name: b for b in BUILDERS}
    results = []
    for family, builders in {"none (the shipped features)": (), **FAMILIES}.items():
        spec = yaml.safe_load(yaml.safe_dump(shipped))
        spec["features"]["exclude"] = [
            *shipped["features"]["exclude"],
            *(f.name for b in builders for f in by_name[b].features),
        ]
        spec["learner"]["search"]["time_budget_seconds"] = search_seconds
        path = base / "specs" / f"{len(results)}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        train = ["train", "--workdir", str(w), "--as-of", str(train_as_of), "--truth", str(truth)]
        seconds, _ = gen.timed(gen.riskstrat(*train, "--model-spec", str(path)), base / f"train-{len(results)}.log")
        figures = gen.metrics(w)
        figures["seconds"] = seconds
        results.append((family, figures))
        m = figures["metrics"]
        print(f"{structure}: without {family}: AUROC {m['auroc']:.4f}, share {m['share_of_ceiling']:.3f}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cost-workdir", type=Path, default=None)
    ap.add_argument("--as-of", default="2026-10-01", help="the date at which the cost is measured")
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--structures", nargs="*", default=["default", "alt"])
    ap.add_argument("--search-seconds", type=float, default=30.0)
    ap.add_argument("--keep", type=Path, default=None, help="work under DIR and reuse what is there")
    args = ap.parse_args()
    if args.cost_workdir is not None:
        parts = cost(args.cost_workdir, dt.date.fromisoformat(args.as_of))
        print(f"\ncost at {args.as_of} on {args.cost_workdir}\n\n| part | seconds | features |\n|---|---|---|")
        for name, seconds, features in parts:
            print(f"| {name} | {seconds:.2f} | {features or ''} |")
        print(f"| **all** | **{sum(p[1] for p in parts):.1f}** | {sum(p[2] for p in parts)} |", flush=True)
    root = args.keep or Path(tempfile.mkdtemp(prefix="feature-families-"))
    tables = {s: value(s, args.patients, root / f"{s}-{args.patients}", args.search_seconds) for s in args.structures}
    if not tables:
        return
    print(f"\nvalue at {args.patients:,} people (search {args.search_seconds:g} s)\n")
    print("| left out | " + " | ".join(f"{s}: AUROC (share of ceiling)" for s in tables) + " |")
    print("|---|" + "---|" * len(tables))
    for i, (family, _) in enumerate(next(iter(tables.values()))):
        cells = []
        for rows in tables.values():
            m = rows[i][1]["metrics"]
            base = rows[0][1]["metrics"]["auroc"]
            delta = f" ({m['auroc'] - base:+.4f})" if i else ""
            cells.append(f"{m['auroc']:.4f}{delta} ({m['share_of_ceiling']:.3f})")
        print(f"| {family} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
