"""Benchmark: scoring a population and exporting every practice's list (prints figures).

Usage: python benchmarks/score_export_benchmark.py WORKDIR AS_OF VAULT_KEY
WORKDIR must hold pseudonymised tables and a registered champion (for example the work
directory left by benchmarks/train_benchmark.py --keep DIR). Each step runs in this process;
peak memory is the process's.
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
    if not features_path(work, as_of).exists():
        build_features(work, as_of)
    t = time.perf_counter()
    s = score(work, as_of)
    t_score = time.perf_counter() - t
    t = time.perf_counter()
    e = export(work, as_of, key)
    t_export = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"score {s.manifest['people_scored']:,} people: {t_score:.1f} s; export {e.practices} practice lists "
        f"({e.patients_listed:,} patients, CSV + HTML) and commissioner outputs: {t_export:.1f} s; "
        f"total {t_score + t_export:.1f} s; peak RSS {peak:,.0f} MB"
    )


if __name__ == "__main__":
    main()
