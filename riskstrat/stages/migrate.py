"""Moving a work directory made by an earlier riskstrat to the current layout, once.

Before the pseudonymised zone was laid out by kind, every table lived directly in
``W/pseudonymised/``: the linked tables (``<table>.parquet``), every feature table
(``features_<D>.parquet``) and every score table (``scores_<D>.parquet``). Now they live in
``linked/``, ``features/<D>.parquet`` and ``scores/<D>.parquet`` (:class:`riskstrat.workdir.WorkDir`).

:func:`migrate_layout` runs at the start of every command that holds the work directory's lock
(:func:`riskstrat.stages.lock.work_lock`). It renames each old-layout file or Spark folder to its
new place (a rename keeps the size and modification time, so the stage records of
:mod:`riskstrat.stages.manifest` are rewritten to the new paths and stay current: nothing is
rebuilt), records what moved in the audit log (counts, no row values), and does nothing on a
work directory already in the current layout. ``docs/cli.md`` describes it for users.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

from riskstrat.atomic import replacing
from riskstrat.errors import RiskstratError
from riskstrat.privacy.audit import AuditLog
from riskstrat.workdir import WorkDir

__all__ = ["LAYOUT_VERSION", "migrate_layout", "old_layout_moves"]

#: the pseudonymised zone's layout: 2 = by kind (linked/, features/, scores/)
LAYOUT_VERSION = 2
_DATED = re.compile(r"^(features|scores)_(\d{4}-\d{2}-\d{2})\.parquet$")
#: what an interrupted stage of the old layout could leave behind in ``W/pseudonymised/``
_OLD_TRANSIENT = (".features_*.parts", ".features_*.partial", ".scores_*.partial", ".scores_*.work", ".listed_*")


def old_layout_moves(wd: WorkDir) -> dict[Path, Path]:
    """Each old-layout table of ``wd``'s pseudonymised zone and where it belongs now (empty when
    the zone is in the current layout)."""
    if not wd.pseudonymised.is_dir():
        return {}
    moves = {}
    for path in sorted(wd.pseudonymised.glob("*.parquet")):
        if path.name.startswith("."):
            continue
        dated = _DATED.match(path.name)
        if dated is None:
            moves[path] = wd.table(path.name.removesuffix(".parquet"))
            continue
        as_of = dt.date.fromisoformat(dated.group(2))
        moves[path] = wd.features(as_of) if dated.group(1) == "features" else wd.scores(as_of)
    return moves


def migrate_layout(workdir: Path, command: str = "riskstrat") -> int:
    """Move ``workdir``'s old-layout tables to their places now; returns how many moved.

    Raises
    ------
    RiskstratError
        A table is in both places (an earlier riskstrat ran on the work directory after the move):
        the line names both, for the user to keep one.
    """
    wd = WorkDir(workdir)
    moves = old_layout_moves(wd)
    if not moves:
        return 0
    both = [(old, new) for old, new in moves.items() if new.exists()]
    if both:
        old, new = both[0]
        raise RiskstratError(
            f"{old}: an earlier riskstrat's copy of {new} ({len(both)} table(s) in both places): the work directory "
            "was used by an older version after it was moved to the current layout; delete the copies in "
            f"{wd.pseudonymised} (each is rebuilt by the stage that makes it) and run again"
        )
    for new in {n.parent for n in moves.values()}:
        new.mkdir(parents=True, exist_ok=True)
    for old, new in moves.items():
        old.rename(new)
    _rewrite_stage_records(wd, moves)
    for transient in _OLD_TRANSIENT:  # half-built files of an interrupted stage: rebuilt where they belong now
        for path in wd.pseudonymised.glob(transient):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    kinds = {"linked": wd.linked, "features": wd.features_dir, "scores": wd.scores_dir}
    counts = {kind: sum(new.parent == place for new in moves.values()) for kind, place in kinds.items()}
    AuditLog(wd.audit).append(
        "workdir_migrated",
        command=command,
        layout=LAYOUT_VERSION,
        moved=counts,
        to=[f"pseudonymised/{k}/" for k in kinds],
    )
    return len(moves)


def _rewrite_stage_records(wd: WorkDir, moves: dict[Path, Path]) -> None:
    """Name the moved files by their new paths in every stage record that wrote them."""
    renamed = {os.path.abspath(old): new for old, new in moves.items()}
    for record in sorted(wd.stage_records.glob("*.json")) if wd.stage_records.is_dir() else ():
        try:
            body = json.loads(record.read_text())
        except (OSError, ValueError):
            continue  # an unreadable record only means that stage runs again
        outputs = body.get("outputs", {})
        if not any(os.path.abspath(p) in renamed for p in outputs):
            continue
        body["outputs"] = {_renamed(p, renamed): f for p, f in outputs.items()}
        with replacing(record) as tmp:
            tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")


def _renamed(path: str, renamed: dict[str, Path]) -> str:
    """``path`` (as a stage record names it) after the move, absolute if it was."""
    new = renamed.get(os.path.abspath(path))
    if new is None:
        return path
    return os.path.abspath(new) if os.path.isabs(path) else str(new)
