"""The work directory W (``spec/interface.md``): where each zone's files live.

``W/identifiable/`` holds everything that carries NHS numbers (vault, quarantine, audit
log, transient staging); ``W/pseudonymised/`` never does. Keeping the paths in one place
keeps the zones apart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CURRENT", "WorkDir", "private_files"]

CURRENT = "current"


@dataclass(frozen=True)
class WorkDir:
    root: Path

    @property
    def identifiable(self) -> Path:
        return self.root / "identifiable"

    @property
    def pseudonymised(self) -> Path:
        return self.root / "pseudonymised"

    @property
    def quarantine(self) -> Path:
        return self.identifiable / "quarantine"

    @property
    def staging(self) -> Path:
        return self.identifiable / "staging"

    @property
    def vault(self) -> Path:
        return self.identifiable / "vault.bin"

    @property
    def audit(self) -> Path:
        return self.identifiable / "audit.jsonl"

    @property
    def region_file(self) -> Path:
        return self.pseudonymised / "region.json"

    @property
    def direct_care(self) -> Path:
        return self.root / "direct_care"

    @property
    def commissioner(self) -> Path:
        return self.root / "commissioner"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def month(self, kind: Path, as_of: dt.date) -> Path:
        """One month's folder of an output kind (``direct_care`` or ``commissioner``): ``<kind>/<D>``."""
        return kind / as_of.isoformat()

    def current(self, kind: Path) -> Path:
        """``<kind>/current``: points at the latest complete month's folder (``spec/interface.md`` v1.1)."""
        return kind / CURRENT

    def table(self, name: str) -> Path:
        """A linked pseudonymised table."""
        return self.pseudonymised / f"{name}.parquet"

    def make(self) -> None:
        for d in (self.identifiable, self.pseudonymised, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        self.identifiable.chmod(0o700)


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created inside the block are the owner's alone (0600 and 0700): for
    everything that carries NHS numbers (staged copies, quarantine), wherever it is written."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
