"""Benchmark: time and peak memory of ``riskstrat synth`` (prints figures; not a test).

Usage: python benchmarks/synth_benchmark.py 100000 [2000000 ...] [--out DIR] [--realism]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me, kids


def run_one(n: int, out: Path, realism: bool) -> None:
    # Each size runs in a fresh process so peak memory is its own.
    code = (
        "import time, resource, sys;"
        "from pathlib import Path;"
        "from riskstrat.synth import generate, SynthOptions;"
        "t=time.perf_counter();"
        f"s=generate(Path(r'{out}/x'), SynthOptions(patients={n}), Path(r'{out}/truth'));"
        "el=time.perf_counter()-t;"
        "me=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024;"
        "ch=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024;"
        "rows=sum(s.rows.values());"
        f"print(f'synth {n:>9,} people: {{el:7.1f}} s, {{rows:>12,}} rows, {{rows/el:>12,.0f}} rows/s, '"
        "f'peak RSS parent {me:,.0f} MB, largest worker {ch:,.0f} MB')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    size = sum(f.stat().st_size for f in (out / "x").iterdir()) / 1e6
    print(f"   extracts on disk: {size:,.0f} MB")
    if realism:
        from riskstrat.synth.realism import TARGETS, measure

        figures = measure(out / "x", dt.date(2025, 10, 1))
        for k, v in figures.items():
            target = TARGETS.get(k)
            mark = "" if target is None else f"target {target[0]:g} ±{target[1]:.0%}"
            print(f"   {k:45s} {v:10.4f}  {mark}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="+", type=int)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--realism", action="store_true")
    args = ap.parse_args()
    for n in args.sizes:
        out = args.out or Path(tempfile.mkdtemp(prefix=f"synth{n}-"))
        started = time.perf_counter()
        run_one(n, out, args.realism)
        if args.out is None:
            shutil.rmtree(out)
        print(f"   (total {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
