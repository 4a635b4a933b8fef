"""Benchmark: feature build time and peak memory (prints figures; not a test).

Usage: python benchmarks/features_benchmark.py 100000 1000000 [--spark 100000] [--keep DIR]
Each size: a synthetic population with 5 years of history is generated and pseudonymised
(not timed), then features at the last full year are built in a fresh process per engine.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

AS_OF = "2025-10-01"


def prepare(n: int, base: Path) -> Path:
    from riskstrat.workdir import WorkDir

    work = base / "W"
    if WorkDir(work).table("sus_apc").exists():
        return work
    from riskstrat.config import Config
    from riskstrat.stages.pseudonymise import pseudonymise
    from riskstrat.synth import SynthOptions, generate

    generate(base / "x", SynthOptions(patients=n, years=5))
    pseudonymise(base / "x", work, Config(), secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    shutil.rmtree(base / "x")
    return work


def measure(n: int, work: Path, engine: str) -> None:
    code = f"""
import datetime as dt, resource, time
from pathlib import Path
from riskstrat.stages.features import build_features
t = time.perf_counter()
r = build_features(Path(r'{work}'), dt.date.fromisoformat('{AS_OF}'), '{engine}')
el = time.perf_counter() - t
me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ch = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"features {{'{engine}':6s}} {n:>9,} people (5 years): {{el:6.1f}} s for {{r.people:,}} x {{r.features}}; "
      f"peak RSS python {{me:,.0f}} MB, JVM/children {{ch:,.0f}} MB")
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    ap.add_argument("--spark", type=int, nargs="*", default=[100_000])
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="feat-bench-"))
    for n in sorted(set(args.sizes) | set(args.spark)):
        base = root / str(n)
        base.mkdir(parents=True, exist_ok=True)
        work = prepare(n, base)
        from riskstrat.workdir import WorkDir

        rows = sum(1 for _ in WorkDir(work).linked.glob("*.parquet"))
        print(f"population {n:,}: {rows} pseudonymised tables ready")
        if n in args.sizes:
            measure(n, work, "duckdb")
        if n in args.spark:
            measure(n, work, "spark")
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
