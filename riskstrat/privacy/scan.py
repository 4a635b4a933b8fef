"""Find valid NHS numbers anywhere under a directory (a privacy check, reused by tests).

A candidate is ten digits, written together or as ``3 3 4`` with single spaces, standing
alone: not part of a longer run of letters or digits (so the 64-character hex pseudonyms,
which contain digit runs, are not mistaken for NHS numbers). A candidate is a finding when
its Modulus 11 check digit is valid — unless it is also a valid SNOMED CT concept id
(Verhoeff check digit and concept partition): one in eleven ten-digit SNOMED CT codes
passes Modulus 11 by chance, while only about one NHS number in 500 passes the SNOMED CT
checks, so a leak of NHS numbers is still found. Parquet files are read column by column (their pages
are compressed, so their bytes would hide values); every other file is scanned as bytes;
file names are scanned too. Findings say where, never the number itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskstrat.codes import CodeType, is_known
from riskstrat.privacy.nhs_number import is_valid

__all__ = ["CANDIDATE", "Finding", "scan_directory", "scan_text"]

CANDIDATE = re.compile(r"(?<![0-9A-Za-z])(\d{3}) ?(\d{3}) ?(\d{4})(?![0-9A-Za-z])")
_BYTES = re.compile(rb"(?<![0-9A-Za-z])(\d{3}) ?(\d{3}) ?(\d{4})(?![0-9A-Za-z])")


@dataclass(frozen=True)
class Finding:
    path: str
    where: str  # "name", "bytes", "column <name>", "metadata"
    count: int


def _count_valid(candidates: list[str]) -> int:
    if not candidates:
        return 0
    arr = pa.array(candidates, pa.string())
    return int((is_valid(arr) & ~is_known(arr, CodeType.SNOMED)).sum())


def scan_text(text: str) -> int:
    """Number of valid NHS numbers in ``text``."""
    return _count_valid(["".join(m.groups()) for m in CANDIDATE.finditer(text)])


def _scan_parquet(path: Path) -> list[Finding]:
    out = []
    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow
    text = " ".join(meta.names) + " " + " ".join(f"{k!r} {v!r}" for k, v in (meta.metadata or {}).items())
    if n := scan_text(text):
        out.append(Finding(str(path), "metadata", n))
    for name in meta.names:
        found = 0
        for batch in pf.iter_batches(columns=[name], batch_size=1_000_000):
            col = batch.column(0)
            if pa.types.is_nested(col.type):
                continue
            try:
                text_col = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
            except pa.ArrowException:
                continue
            distinct = pc.unique(text_col.drop_null())
            hits = pc.match_substring_regex(distinct, r"(^|[^0-9A-Za-z])\d{3} ?\d{3} ?\d{4}([^0-9A-Za-z]|$)")
            candidates = pc.filter(distinct, pc.fill_null(hits, False)).to_pylist()
            found += sum(scan_text(v) for v in candidates)
        if found:
            out.append(Finding(str(path), f"column {name}", found))
    return out


def scan_directory(root: Path) -> list[Finding]:
    """Every valid NHS number under ``root`` (file names, file contents, Parquet columns)."""
    findings: list[Finding] = []
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
    for path in paths:
        if n := scan_text(path.name):
            findings.append(Finding(str(path), "name", n))
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            try:
                findings += _scan_parquet(path)
                continue
            except (OSError, pa.ArrowException):
                pass  # not readable as Parquet: scan its bytes
        data = path.read_bytes()
        candidates = [b"".join(m.groups()).decode() for m in _BYTES.finditer(data)]
        if n := _count_valid(candidates):
            findings.append(Finding(str(path), "bytes", n))
    return findings
