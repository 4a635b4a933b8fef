"""Benchmark: training time and peak memory of ``riskstrat train`` (prints figures; not a test).

Usage: python benchmarks/train_benchmark.py 200000 1000000 [--keep DIR]
Each size: a synthetic population (7 years) is generated, pseudonymised and given features at
2024-10-01 and 2025-10-01 (not timed); then training at 2024-10-01 with out-of-time validation at
2025-10-01 runs in a fresh process, with the truth for the ceiling. Prints the validation figures
of the model and both baselines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

KEY = "benchmark-region-key-0123-4567-89abcdefghijkl"  # synthetic data only
VAULT = "benchmark-vault-key-0123-4567-89abcdefghijklm"


def prepare(n: int, base: Path) -> None:
    from riskstrat.workdir import WorkDir

    if WorkDir(base / "W").features(dt.date(2025, 10, 1)).exists():
        return
    from riskstrat.config import Config
    from riskstrat.stages.features import build_features
    from riskstrat.stages.pseudonymise import pseudonymise
    from riskstrat.synth import SynthOptions, generate

    generate(base / "x", SynthOptions(patients=n), base / "truth")
    pseudonymise(base / "x", base / "W", Config(), KEY, VAULT)
    shutil.rmtree(base / "x")
    for d in (dt.date(2024, 10, 1), dt.date(2025, 10, 1)):
        build_features(base / "W", d)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="+", type=int)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="train-bench-"))
    for n in args.sizes:
        base = root / str(n)
        base.mkdir(parents=True, exist_ok=True)
        prepare(n, base)
        code = f"""
import datetime as dt, resource
from pathlib import Path
from riskstrat.stages.train import train
r = train(Path(r'{base}/W'), dt.date(2024, 10, 1), truth_dir=Path(r'{base}/truth'), pseudonym_key={KEY!r})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"train {n:>9,} people: {{r.seconds:6.1f}} s, peak RSS {{peak:,.0f}} MB; {{r.validation}}")
for name, m in r.metrics.items():
    extra = ""
    if "share_of_ceiling" in m:
        extra = f", share of ceiling {{m['share_of_ceiling']:.3f}} (ceiling {{m['ceiling_auroc']:.3f}})"
    ci = f"[{{m['auroc_lo']:.4f}}, {{m['auroc_hi']:.4f}}]"
    print(f"   {{name:26s}} AUROC {{m['auroc']:.4f}} {{ci}}  AUPRC {{m['auprc']:.3f}}  Brier {{m['brier']:.4f}}  "
          f"slope {{m['calibration_slope']:.3f}}  O/E {{m['observed_over_expected']:.3f}}  "
          f"PPV top 1% {{m['ppv_top1pct']:.3f}}{{extra}}")
"""
        subprocess.run([sys.executable, "-c", code], check=True)
    if args.keep is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
