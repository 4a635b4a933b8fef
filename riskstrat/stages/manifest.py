"""Stage records: what a stage read and wrote, so that a rerun can skip what is unchanged.

Each stage that ``riskstrat run`` may skip writes ``W/reports/stages/<stage>.json`` when it
succeeds: its *inputs* (fingerprints of the files it read and the settings that shape its
output) and its *outputs* (fingerprints of the files it wrote). A rerun skips the stage when
the record exists, its inputs are the same and every output is still there, unchanged.

A file's fingerprint is its size and modification time (nanoseconds): any rewrite changes
it, and it costs nothing to read, where hashing the pseudonymised tables of a large region
would cost seconds per stage. The extracts, which riskstrat does not write, are identified by
their SHA-256 (computed for the audit log anyway).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from riskstrat.atomic import replacing
from riskstrat.workdir import WorkDir

__all__ = ["canonical", "fingerprint", "is_current", "record", "record_path"]


def canonical(value: Any) -> Any:
    """A settings object as plain, ordered JSON values (sets sorted, enums by value, dataclasses
    and pydantic models as dicts of their fields), so the same settings give the same record in
    every process."""
    if isinstance(value, BaseModel):
        return {name: canonical(getattr(value, name)) for name in type(value).model_fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if isinstance(value, dict):
        return {str(canonical(k)): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(canonical(kv[0])))}
    if isinstance(value, set | frozenset):
        return sorted((canonical(v) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def fingerprint(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def record_path(wd: WorkDir, stage: str) -> Path:
    return wd.stage_record(stage)


def record(wd: WorkDir, stage: str, inputs: dict[str, Any], outputs: list[Path]) -> None:
    """Write the stage's record (after its outputs are in place)."""
    path = record_path(wd, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"inputs": inputs, "outputs": {str(p): fingerprint(p) for p in outputs}}
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")


def is_current(wd: WorkDir, stage: str, inputs: dict[str, Any]) -> bool:
    """True when the stage last ran on these inputs and its outputs are untouched since."""
    path = record_path(wd, stage)
    try:
        held = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if held.get("inputs") != json.loads(json.dumps(inputs, sort_keys=True, default=str)):
        return False
    try:
        return all(fingerprint(Path(p)) == f for p, f in held.get("outputs", {}).items()) and bool(held.get("outputs"))
    except OSError:
        return False
