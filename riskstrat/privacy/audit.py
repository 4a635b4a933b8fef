"""The audit log: ``W/identifiable/audit.jsonl``, append-only JSON lines.

One line per stage run (time, command, user, input checksums, row counts, outcome) and per
re-identification (practice, number of patients, user, purpose). Never row values, never
keys. Each line carries the SHA-256 of the line before it, so a deleted or edited line
breaks the chain (:func:`verify_chain`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["AuditLog", "current_user", "file_checksum", "verify_chain"]

_GENESIS = "0" * 64


def _user() -> str:
    for var in ("RISKSTRAT_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def current_user() -> str:
    """Who runs riskstrat, as the audit log records it (``RISKSTRAT_USER``, else the login name)."""
    return _user()


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class AuditLog:
    """Appends records to one audit file (created with mode 0600)."""

    def __init__(self, path: Path):
        self.path = path

    def _last_hash(self) -> str:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return _GENESIS
        with self.path.open("rb") as fh:
            fh.seek(max(0, self.path.stat().st_size - 65536))
            last = fh.read().rstrip(b"\n").split(b"\n")[-1]
        return hashlib.sha256(last).hexdigest()

    def append(self, event: str, **fields: Any) -> dict:
        record = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "event": event,
            "user": _user(),
            **fields,
            "prev": self._last_hash(),
        }
        line = json.dumps(record, sort_keys=True, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        return record

    def record_stage(self, command: str, inputs: dict[str, str], counts: dict, outcome: str, **extra: Any) -> dict:
        return self.append("stage", command=command, inputs=inputs, counts=counts, outcome=outcome, **extra)

    def record_reidentification(self, practice_code: str, patients: int, as_of, purpose: str) -> dict:
        return self.append(
            "reidentification",
            practice_code=practice_code,
            patients=patients,
            as_of=None if as_of is None else str(as_of),
            purpose=purpose,
        )

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(x) for x in self.path.read_text(encoding="utf-8").splitlines() if x.strip()]


def verify_chain(path: Path) -> bool:
    """True when every line carries the hash of the line before it."""
    prev = _GENESIS
    for line in path.read_text(encoding="utf-8").splitlines():
        if json.loads(line).get("prev") != prev:
            return False
        prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
    return True
