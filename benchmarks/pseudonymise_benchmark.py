"""Benchmark: throughput and peak memory of ``riskstrat pseudonymise`` (prints figures).

Usage: python benchmarks/pseudonymise_benchmark.py 100000 [--faults 0.001] [--keep DIR]
Generates a synthetic population first (not timed), then runs the stage in a fresh process.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("patients", type=int)
    ap.add_argument("--faults", type=float, default=0.001)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="pseudo-bench-"))
    extracts = base / "extracts"
    if not extracts.exists():
        from riskstrat.synth import SynthOptions, generate

        generate(extracts, SynthOptions(patients=args.patients, fault_rate=args.faults), base / "truth")
    shutil.rmtree(base / "W", ignore_errors=True)
    code = f"""
import resource, time
from pathlib import Path
from riskstrat.config import Config
from riskstrat.stages.pseudonymise import pseudonymise
from riskstrat.privacy.scan import scan_directory
keys = ({secrets.token_urlsafe(32)!r}, {secrets.token_urlsafe(32)!r})
r = pseudonymise(Path(r'{extracts}'), Path(r'{base}/W'), Config(), *keys)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"pseudonymise {args.patients:,} people (faults {args.faults}): {{r.rows_read:,}} rows in {{r.seconds:.1f}} s "
      f"= {{r.rows_per_second:,.0f}} rows/s; peak RSS {{peak:,.0f}} MB; reconciles: {{r.reconciles}}")
print(f"   quarantined {{r.validation.quarantined_rows:,}}; opted out: {{r.opted_out}}; vault rows {{r.vault_rows:,}}")
t = time.perf_counter()
found = scan_directory(Path(r'{base}/W/pseudonymised')) + scan_directory(Path(r'{base}/W/reports'))
print(f"   NHS numbers found outside W/identifiable: {{len(found)}} (scan took {{time.perf_counter() - t:.1f}} s)")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    if args.keep is None:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
