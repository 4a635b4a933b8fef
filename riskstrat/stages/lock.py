"""One run per work directory: an exclusive lock on ``W/.lock`` for as long as a command runs.

Two runs on one work directory would delete each other's staging, interleave the audit log
and register two model versions. Every command that writes to ``W`` holds the lock; a second
one stops at once with one line naming the holder. The lock is an ``flock`` on an open file:
the operating system releases it when the holder exits in any way, killed included, so a lock
left by a dead process never blocks (its file is simply taken over, and the takeover is said).
The lock is re-entrant within a process (a notebook or ``run`` calling the stages). Holding it
first moves a work directory made by an earlier riskstrat to the current layout
(:func:`riskstrat.stages.migrate.migrate_layout`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from riskstrat.errors import BusyError

__all__ = ["LOCK_FILE", "WorkDirBusy", "held", "work_lock"]

LOCK_FILE = ".lock"

_held: dict[Path, int] = {}  # resolved W -> depth of nesting in this process


class WorkDirBusy(BusyError):
    """Another process holds the work directory."""


def held(workdir: Path) -> bool:
    """Whether this process holds the lock of ``workdir``."""
    return workdir.resolve() in _held


@contextlib.contextmanager
def work_lock(workdir: Path, command: str) -> Iterator[str | None]:
    """Hold ``W``'s lock while the block runs; yields a note when a dead run's lock was taken over.

    Raises
    ------
    WorkDirBusy
        Another live process holds it.
    riskstrat.errors.RiskstratError
        ``W`` cannot be created or is not a directory.
    """
    from riskstrat.stages.resources import usable_directory

    usable_directory(workdir, "--workdir")
    key = workdir.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield None
        finally:
            _held[key] -= 1
        return
    path = key / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkDirBusy(
                f"{workdir}: in use by another riskstrat run ({_describe(_read(fd))}); one run per work directory: "
                "wait for it to finish"
            ) from None
        previous = _read(fd)
        note = None
        if previous.get("pid"):  # the holder's record is cleared on a clean exit: this one died
            note = f"took over the lock of a run that stopped without finishing ({_describe(previous)})"
        _write(fd, {"pid": os.getpid(), "command": command, "since": dt.datetime.now().isoformat(timespec="seconds")})
        _held[key] = 1
        try:
            from riskstrat.stages.migrate import migrate_layout

            migrate_layout(workdir, command)  # a work directory of an earlier riskstrat: moved once
            yield note
        finally:
            del _held[key]
            _write(fd, {})
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        record = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _write(fd: int, record: dict) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(record).encode() if record else b"")
    os.fsync(fd)


def _describe(record: dict) -> str:
    if not record.get("pid"):
        return "process unknown"
    return f"process {record['pid']}, '{record.get('command', '?')}' since {record.get('since', '?')}"
