"""Byte-identity of a run's outputs: a refactor that should change nothing changes nothing.

``riskstrat run`` on the session's clean synthetic population (3,000 people, 5 practices,
seed 11; the fixed keys of ``conftest``) at 2026-10-01 with the default model specification,
then a manifest of every output, compared with the one recorded from the code before the
pipeline and work-directory refactor (``tests/data/outputs_manifest.json``).

The manifest names each output by its path relative to ``W`` and a SHA-256:

* Parquet (a file or Spark's folder): of the column names and types and the rows in a
  canonical order (sorted by every column), not of the file's bytes;
* the re-identification vault and the sealed care register: of their decrypted rows, the same
  way (each file is encrypted with a fresh nonce each time);
* CSV, HTML and the other JSON: of the bytes;
* JSON records that carry what legitimately varies per run, after normalising it (named in
  :data:`VOLATILE`): wall times and memory, the day the run happened, the MLflow run id,
  files' modification times (a stage record's fingerprint ``size:mtime_ns`` keeps the size),
  the audit log's time, user and hash chain, and the temporary folders' absolute paths;
* and, in those records, the SHA-256 of a file's bytes and the size in a file's fingerprint (a
  file named by its path, or a linked table by its name), replaced by the name of the file they
  are of (:func:`_files_named`) when they are that file's:
  the file itself is compared above (Parquet by its rows), and a Parquet file's bytes depend on
  the writer's version (the library's name and version are in the file), so that a fresh
  install of newer pyarrow or DuckDB changed every record that names a checksum while no row of
  any output changed. A record naming the wrong file, or a checksum of no file, still differs.

Left out: ``W/mlflow.db`` and ``W/mlartifacts/`` (MLflow's run ids, timestamps and artefact
locations; the model's effect is covered by the scores) and ``W/.lock`` (the holder's process
id). Outputs that moved are mapped explicitly by :data:`MOVED` (old path -> new path).

Record again (only when outputs are meant to change) with
``python -m tests.test_outputs_unchanged record``, and say why below.

Recorded history:

* issue 15 (pipeline and work-directory refactor): recorded before the refactor; the run after
  it matched, outputs moved as :data:`MOVED` says.
* issue 11 (features keyed by ``person_key``): the 7 linked tables gained a ``person_key``
  column (the rank of the pseudonym, an int32 that DuckDB groups faster than a 64-character
  string), so their hashes changed, and so did the 5 ``reports/stages/features_<D>.json``
  (fingerprints of the linked tables they read) and ``reports/stages/pseudonymise.json``
  (the configuration recorded by its pydantic sections, issue 14). Features, scores,
  practice lists and commissioner outputs were unchanged.
* issues 16.6, 17 and 16 (outputs meant to change, recorded together): clinicians' words
  (the scores' reason columns, sex as M/F/I/U, the ``ref_providers`` reference table);
  monitoring (the exposure log, ``pseudonymised/monitoring/<D>.json``, the monitoring page, the
  run record's monitor stage and the audit entries); the practice list (each practice's folder
  of recently discharged and import files, the new columns of ``<practice>.csv`` and its page,
  the sealed care register, dates of birth in the vault, the export and pseudonymise reports);
  and the practice pages' rows shaded by band rank (``band-0``...) rather than by band name
  (issue 15: the bands are declared once, in the model specification).
* issue 11 (2026-12-07): checksums and sizes of files in the records replaced by the files'
  names (above). On a new machine with a fresh install the test failed on exactly the three
  records that carry checksums of Parquet files (the audit log, the score report, the
  pseudonymise stage record) while every Parquet output's rows were unchanged and no code had
  changed since it passed; recorded again with the new normalisation, nothing else changed.
  The feature and score stages' records, which name the linked tables' sizes by table name,
  are normalised the same way (found when a trial encoding of the pseudonym column, since
  reverted, changed the linked tables' sizes and not their rows).
* issue 11 (the reasons' budget, ``learner.params.max_shap_work``, and the learning rate among
  the searched parameters): the model is a different one, so its scores, reasons and bands, and
  everything made from them (practice lists and pages, commissioner outputs, the exposure log,
  monitoring, the score report and the audit entries), changed. Features and the pseudonymised
  tables were unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import REGION_KEY, VAULT_KEY

RECORDED = Path(__file__).resolve().parent / "data" / "outputs_manifest.json"
AS_OF = "2026-10-01"
#: outputs moved since the manifest was recorded: recorded path relative to W -> where it is now,
#: applied to the manifest's keys and to paths inside the JSON records. Empty: the manifest was
#: last recorded at the current layout (issue 15's moves, the pseudonymised zone by kind, were
#: mapped here until the manifest was recorded again after them).
MOVED: dict[str, str] = {}
#: keys whose values vary from run to run in the JSON records (reports, stage records, audit log)
VOLATILE = frozenset({"seconds", "peak_rss_mb", "rows_per_second", "time", "prev", "user", "run_id", "today"})
#: significant digits of the numbers in the JSON records compared
FLOAT_DIGITS = 10
#: left out of the manifest (see the module docstring)
EXCLUDED = ("mlflow.db", "mlartifacts", ".lock")
_FINGERPRINT = re.compile(r"^(\d+):\d{10,}$")  # riskstrat.stages.manifest.fingerprint: size:mtime_ns
#: hex digits 0-9 written as g-p, so that no stored digest holds a run of ten digits that a
#: scan for NHS numbers would flag
_LETTERS = str.maketrans(string.digits, "ghijklmnop")


def _sha256(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest().translate(_LETTERS)


def _rows_digest(table: pa.Table) -> str:
    table = table.replace_schema_metadata(None)
    order = [(c, "ascending") for c in table.column_names]
    rows = table.sort_by(order).to_pylist()
    return _sha256(str(table.schema).encode(), *(json.dumps(r, default=str, sort_keys=True).encode() for r in rows))


@dataclass(frozen=True)
class _Files:
    """The files of a run and its extracts, to name them where the records give their checksum
    or size: absolute path -> size in bytes, and SHA-256 of the bytes -> the file's name."""

    sizes: dict[str, int]
    named: dict[str, str]


def _files_named(places: dict[str, str], linked: Path) -> _Files:
    """The files under ``places``' folders; the feature stage's records name the linked tables
    (``linked``, ``W/pseudonymised/linked``) by table name, so those names are keys too."""
    sizes, named = {}, {}
    for root, placeholder in places.items():
        for path in sorted(Path(root).rglob("*")):
            if path.is_file() and not path.is_symlink():
                sizes[str(path)] = path.stat().st_size
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                named[digest] = f"<sha256 of {placeholder}/{path.relative_to(root)}>"
    sizes |= {path.stem: path.stat().st_size for path in sorted(linked.glob("*.parquet"))}
    return _Files(sizes, named)


def _normalise(value: Any, places: dict[str, str], renamed: dict[str, str], files: _Files) -> Any:
    """``value`` with what varies per run replaced (``places``: absolute path -> placeholder;
    ``files``: the checksums and sizes of files, replaced by the files' names)."""
    if isinstance(value, dict):
        return {
            _normalise(k, places, renamed, files): (
                "<varies>" if k in VOLATILE else _normalise(_sized(k, v, files), places, renamed, files)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_normalise(v, places, renamed, files) for v in value]
    if isinstance(value, float):  # the last bits of exp and log differ between CPUs and numpy builds
        return float(f"{value:.{FLOAT_DIGITS}g}")
    if isinstance(value, str):
        if value in files.named:
            return files.named[value]
        value = _FINGERPRINT.sub(r"\1:<mtime>", value)
        for place, placeholder in places.items():
            value = value.replace(place, placeholder)
        for new, old in renamed.items():
            value = value.replace(f"<W>/{new}", f"<W>/{old}")
        return value
    return value


def _sized(key: Any, value: Any, files: _Files) -> Any:
    """A fingerprint ``size:mtime_ns`` recorded for the file ``key`` (a path, or a linked table's
    name) with the size that file has: the size replaced by a placeholder, the key naming the file."""
    if isinstance(value, str) and isinstance(key, str) and key in files.sizes:
        found = _FINGERPRINT.match(value)
        if found and int(found.group(1)) == files.sizes[key]:
            return "<size of the file>:<mtime>"
    return value


def _json_digest(path: Path, places: dict[str, str], renamed: dict[str, str], files: _Files) -> str:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines() if path.suffix == ".jsonl" else [text]
    body = [_normalise(json.loads(line), places, renamed, files) for line in lines if line.strip()]
    return _sha256(json.dumps(body, sort_keys=True).encode())


def _is_parquet_folder(path: Path) -> bool:
    return path.is_dir() and path.suffix == ".parquet"


def manifest(workdir: Path, extracts: Path, renamed: dict[str, str] | None = None) -> dict[str, str]:
    """Relative path -> SHA-256 of every output of ``workdir``, a run on ``extracts``
    (``renamed``: current path -> the recorded one, applied to paths inside the JSON records)."""
    import riskstrat
    from riskstrat.privacy.vault import REGISTER_MAGIC, _open
    from riskstrat.workdir import WorkDir

    renamed = renamed or {}
    places = {str(workdir): "<W>", str(extracts): "<extracts>", str(Path(riskstrat.__file__).parent): "<riskstrat>"}
    files = _files_named({str(workdir): "<W>", str(extracts): "<extracts>"}, WorkDir(workdir).linked)
    out: dict[str, str] = {}
    pending = sorted(workdir.iterdir())
    while pending:
        path = pending.pop(0)
        rel = path.relative_to(workdir).as_posix()
        if rel.split("/")[0] in EXCLUDED or path.is_symlink():
            continue
        if _is_parquet_folder(path) or (path.is_file() and path.suffix == ".parquet"):
            out[rel] = _rows_digest(pq.read_table(path))
        elif path.is_dir():
            pending = sorted([*pending, *path.iterdir()])
        elif rel == "identifiable/vault.bin":
            out[rel] = _rows_digest(_open(path, VAULT_KEY))
        elif rel == "identifiable/care_register.bin":
            out[rel] = _rows_digest(_open(path, VAULT_KEY, REGISTER_MAGIC))
        elif path.suffix in (".json", ".jsonl"):
            out[rel] = _json_digest(path, places, renamed, files)
        else:
            out[rel] = _sha256(path.read_bytes())
    return out


def run_once(extracts: Path, workdir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RISKSTRAT_"))}
    env.update(RISKSTRAT_PSEUDONYM_KEY=REGION_KEY, RISKSTRAT_VAULT_KEY=VAULT_KEY)
    command = ["run", "--extracts", str(extracts), "--workdir", str(workdir), "--as-of", AS_OF]
    return subprocess.run([sys.executable, "-m", "riskstrat", *command], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_a_run_writes_the_recorded_outputs(clean_population, tmp_path):
    extracts, _ = clean_population
    work = tmp_path / "W"
    result = run_once(extracts, work)
    assert result.returncode == 0, result.stderr[-2000:]
    recorded = json.loads(RECORDED.read_text())
    expected = {MOVED.get(rel, rel): digest for rel, digest in recorded.items()}
    now = manifest(work, extracts, {new: old for old, new in MOVED.items()})
    assert sorted(now) == sorted(expected), "outputs appeared or went missing"
    changed = sorted(rel for rel in expected if now[rel] != expected[rel])
    assert changed == [], f"outputs changed: {changed}"


def _record() -> None:  # pragma: no cover - a maintainer's tool
    """Run twice on one population in fresh folders; record the manifest only if both agree."""
    import tempfile

    from riskstrat.synth import SynthOptions, generate

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        generate(base / "extracts", SynthOptions(patients=3000, seed=11, chunk_size=1500, practices=5), None, workers=1)
        manifests = []
        for n in (1, 2):
            result = run_once(base / "extracts", base / f"W{n}")
            if result.returncode != 0:
                raise SystemExit(result.stderr[-2000:])
            manifests.append(manifest(base / f"W{n}", base / "extracts"))
        if manifests[0] != manifests[1]:
            differ = sorted(
                k for k in manifests[0].keys() | manifests[1].keys() if manifests[0].get(k) != manifests[1].get(k)
            )
            raise SystemExit(f"two runs differ, not recorded: {differ}")
        RECORDED.parent.mkdir(parents=True, exist_ok=True)
        RECORDED.write_text(json.dumps(manifests[0], indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["record"]:
        _record()
