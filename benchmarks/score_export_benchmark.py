"""Benchmark: the monthly batch from pseudonymised tables to every output (prints figures).

Usage: python benchmarks/score_export_benchmark.py WORKDIR AS_OF VAULT_KEY

WORKDIR must hold pseudonymised tables and a registered champion (for example the work
directory left by ``benchmarks/train_benchmark.py --keep DIR``). The features at AS_OF are
rebuilt, so the time covers what a monthly run does after pseudonymisation: features,
scoring (with SHAP reasons for everyone) and the export of every practice's CSV and HTML
list and the commissioner outputs. Each step runs in this process; peak memory is the
process's. Target for 1,000,000 people: under 3 minutes, under 8 GB, on 2 cores.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import time
from pathlib import Path

from riskstrat.stages.export import export
from riskstrat.stages.features import build_features, features_path
from riskstrat.stages.score import score


def main() -> None:
    work, as_of, key = Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), sys.argv[3]
    features_path(work, as_of).unlink(missing_ok=True)
    t = time.perf_counter()
    build_features(work, as_of)
    t_features = time.perf_counter() - t
    t = time.perf_counter()
    s = score(work, as_of)
    t_score = time.perf_counter() - t
    t = time.perf_counter()
    e = export(work, as_of, key)
    t_export = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total = t_features + t_score + t_export
    print(
        f"features at {as_of}: {t_features:.1f} s; score {s.manifest['people_scored']:,} people: {t_score:.1f} s; "
        f"export {e.practices} practice lists ({e.patients_listed:,} patients, CSV + HTML) and commissioner "
        f"outputs: {t_export:.1f} s; total {total:.1f} s; peak RSS {peak:,.0f} MB"
    )


if __name__ == "__main__":
    main()
