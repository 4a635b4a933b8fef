"""Wall time and peak memory of each stage of a run, for the run's report and the benchmark.

The peak is the highest resident set size of this process seen while the stage ran, sampled
every 50 ms from ``/proc/self/statm`` (Linux; elsewhere the process's lifetime peak from
``getrusage``, which can only grow), plus that of any process :func:`attached` to it (a stage run
in a process of its own: :mod:`riskstrat.stages.isolated`). Stages run one after another, so
each stage's peak is its own: the process's memory returns to its base when a stage's tables
are released.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["RunClock", "StageTiming", "attached", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_ATTACHED: set[int] = set()  # processes working for this one: their memory is counted with its own


@contextlib.contextmanager
def attached(pid: int | None) -> Iterator[None]:
    """Count process ``pid``'s memory in :func:`rss_bytes` while the block runs."""
    if pid is None:
        yield
        return
    _ATTACHED.add(pid)
    try:
        yield
    finally:
        _ATTACHED.discard(pid)


def _statm(pid: int | str) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


def rss_bytes() -> int:
    """This process's resident set size now, with that of the processes :func:`attached` to it
    (its lifetime peak where /proc is absent)."""
    try:
        own = _statm("self")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    for pid in tuple(_ATTACHED):
        with contextlib.suppress(OSError, ValueError, IndexError):  # ended meanwhile
            own += _statm(pid)
    return own


@dataclass
class StageTiming:
    stage: str
    seconds: float
    peak_rss_mb: float
    skipped: bool = False


@dataclass
class RunClock:
    """Times stages: ``with clock.stage("features at 2026-10-01"): ...``."""

    stages: list[StageTiming] = field(default_factory=list)
    interval: float = 0.05

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[StageTiming]:
        timing = StageTiming(name, 0.0, 0.0)
        peak = [rss_bytes()]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(self.interval):
                peak[0] = max(peak[0], rss_bytes())

        sampler = threading.Thread(target=sample, name="riskstrat-rss", daemon=True)
        sampler.start()
        started = time.perf_counter()
        try:
            yield timing
        finally:
            done.set()
            sampler.join()
            timing.seconds = round(time.perf_counter() - started, 2)
            timing.peak_rss_mb = round(max(peak[0], rss_bytes()) / 2**20, 1)
            self.stages.append(timing)

    @property
    def peak_rss_mb(self) -> float:
        return max((s.peak_rss_mb for s in self.stages), default=0.0)

    def write(self, path: Path, **extra) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {**extra, "peak_rss_mb": self.peak_rss_mb, "stages": [asdict(s) for s in self.stages]}
        path.write_text(json.dumps(record, indent=2) + "\n")
