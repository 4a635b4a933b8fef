"""``riskstrat score``: score the population at D with the registered model.

Everyone in the population at D (registered, not dead before D) is scored unless the
opt-out policy excludes them from scoring. Each person gets a calibrated probability, the
model's log-odds before calibration (``model_score``, which orders people the calibrated
probability ties), a risk band from the model specification and up to three reasons in
plain words (their largest positive SHAP contributions), and beside them up to three
reasons of each kind, what could be acted on and the background (``actionable_reasons``,
``background_reasons``: :func:`riskstrat.scoring.reasons`, joined by ``"; "``). Output:
``W/pseudonymised/scores/<D>.parquet`` and a run manifest ``W/reports/score_<D>.json`` (model,
version, counts, checksums). The same inputs and model give the same outputs.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat import tracking
from riskstrat.atomic import replacing
from riskstrat.errors import RiskstratError
from riskstrat.features.registry import ReasonKind
from riskstrat.modelling.monitoring import SCORE_DECIMALS
from riskstrat.privacy.audit import AuditLog, file_checksum
from riskstrat.privacy.optout import Use
from riskstrat.scoring import assign_bands, reason_inputs, reasons
from riskstrat.stages import manifest as stage_manifest
from riskstrat.stages.features import build_features, features_path
from riskstrat.stages.objections import objectors
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir

__all__ = ["DEFAULT_MODEL_URI", "ScoreResult", "score", "score_people", "scores_path"]

DEFAULT_MODEL_URI = "models:/emergency_admission_12m@champion"
#: people scored at a time (features, SHAP values and reasons of one batch in memory)
SCORE_BATCH_ROWS = 250_000
_SCORE_SCHEMA = pa.schema(
    [
        ("pseudonym", pa.string()),
        ("risk_score", pa.float64()),
        ("model_score", pa.float64()),
        ("risk_band", pa.string()),
        ("reason_1", pa.string()),
        ("reason_2", pa.string()),
        ("reason_3", pa.string()),
        ("actionable_reasons", pa.string()),
        ("background_reasons", pa.string()),
    ]
)
#: the reasons of each kind as one text cell (scores, practice lists)
REASON_SEPARATOR = "; "


@dataclass(frozen=True)
class ScoreResult:
    """What scoring at D did (either engine); ``manifest`` is the score report as written to
    ``reports/score_<D>.json``."""

    path: Path
    model_name: str
    model_version: str
    people_scored: int
    excluded_by_opt_out_policy: int
    people_by_band: dict[str, int]  # in the order of the model's bands, highest risk first
    seconds: float
    manifest: dict

    @classmethod
    def of(cls, path: Path, manifest: dict, seconds: float) -> ScoreResult:
        """The result of scores written to ``path`` with their report ``manifest``."""
        return cls(
            path=path,
            model_name=manifest["model_name"],
            model_version=manifest["model_version"],
            people_scored=manifest["people_scored"],
            excluded_by_opt_out_policy=manifest["excluded_by_opt_out_policy"],
            people_by_band=dict(manifest["people_by_band"]),
            seconds=seconds,
            manifest=manifest,
        )


def scores_path(workdir: Path, as_of: dt.date) -> Path:
    """:meth:`riskstrat.workdir.WorkDir.scores` of the work directory ``workdir``."""
    return WorkDir(workdir).scores(as_of)


def score_people(model, estimator, inputs: list[str], feats: pd.DataFrame) -> pd.DataFrame:
    """Risk, model score and reasons of the people of ``feats`` (``pseudonym``, the model's
    ``inputs`` and the columns their reasons name, :func:`riskstrat.scoring.reason_inputs`): the
    pyfunc ``model``'s probability and ``estimator``'s SHAP contributions; no bands (they are
    shares of the whole population)."""
    risk = np.asarray(model.predict(feats[inputs]), dtype=float)
    contrib = estimator.contributions(feats[inputs])
    groups = reasons(contrib, feats[[*inputs, *reason_inputs(inputs)]])
    top = groups["top"]
    return pd.DataFrame(
        {
            "pseudonym": feats["pseudonym"].to_numpy(),
            "risk_score": np.round(risk, SCORE_DECIMALS),
            # The contributions add up to the model's log-odds before calibration:
            # it orders people whom the (step-wise) calibrated probability ties.
            "model_score": np.round(contrib.to_numpy().sum(axis=1), SCORE_DECIMALS),
            "reason_1": [r[0] if len(r) > 0 else None for r in top],
            "reason_2": [r[1] if len(r) > 1 else None for r in top],
            "reason_3": [r[2] if len(r) > 2 else None for r in top],
            **{
                f"{kind}_reasons": [REASON_SEPARATOR.join(r) if r else None for r in groups[kind]]
                for kind in ReasonKind
            },
        }
    )


def stage_name(as_of: dt.date) -> str:
    return f"score_{as_of.isoformat()}"


def stage_inputs(workdir: Path, as_of: dt.date, model: str) -> dict:
    """What the scores at ``as_of`` depend on: the feature table, the opt-out flags and the
    model (``name version N``)."""
    wd = WorkDir(workdir)
    uses = wd.table(OPT_OUT_USES_TABLE)
    return {
        "features": stage_manifest.fingerprint(features_path(workdir, as_of)),
        "opt_out_uses": stage_manifest.fingerprint(uses) if uses.exists() else None,
        "model": model,
    }


@named_stage("score")
def score(workdir: Path, as_of: dt.date, model_uri: str | None = None, tracking_uri: str | None = None) -> ScoreResult:
    started = time.perf_counter()
    wd = WorkDir(workdir)
    model_uri = model_uri or DEFAULT_MODEL_URI
    if not features_path(workdir, as_of).exists():
        if not wd.table("gp_registrations").exists():
            raise RiskstratError(f"{workdir}: no pseudonymised tables: run 'riskstrat pseudonymise' first")
        build_features(workdir, as_of)
    excluded_people = objectors(wd, Use.SCORING)
    loaded = tracking.load_registered(workdir, tracking_uri, model_uri)
    inputs = loaded.input_names
    # People are scored in batches, so memory follows the batch, not the population.
    parts, excluded = [], 0
    source = pq.ParquetFile(features_path(workdir, as_of))
    columns = ["pseudonym", *inputs, *reason_inputs(inputs)]
    for batch in source.iter_batches(batch_size=SCORE_BATCH_ROWS, columns=columns):
        feats = batch.to_pandas()
        kept = ~feats["pseudonym"].isin(excluded_people)
        excluded += int((~kept).sum())
        feats = feats[kept].reset_index(drop=True)
        if feats.empty:
            continue
        parts.append(score_people(loaded.model, loaded.estimator, inputs, feats))
    if not parts:
        raise RiskstratError(f"{workdir}: no one to score at {as_of} (the population is empty or has opted out)")
    scored = pd.concat(parts, ignore_index=True).sort_values("pseudonym").reset_index(drop=True)
    bands = [(b["name"], float(b["top_share"])) for b in loaded.risk_bands]
    index = scored["pseudonym"]
    band = assign_bands(
        pd.Series(scored["risk_score"].to_numpy(dtype=float), index=index),
        bands,
        pd.Series(scored["model_score"].to_numpy(dtype=float), index=index),
    ).to_numpy()
    scored.insert(3, "risk_band", band.astype(str))
    table = pa.Table.from_pandas(scored, schema=_SCORE_SCHEMA, preserve_index=False)
    out = wd.scores(as_of)
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    counts = pd.Series(band).value_counts()
    manifest = {
        "as_of": str(as_of),
        "model_uri": model_uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "run_id": loaded.run_id,
        "people_scored": len(scored),
        "excluded_by_opt_out_policy": excluded,
        "people_by_band": {name: int(counts.get(name, 0)) for name, _ in bands},
        "risk_bands": [{"name": name, "top_share": share} for name, share in bands],
        "mean_risk": round(float(scored["risk_score"].mean()), 6),
        "checksums": {"features": file_checksum(features_path(workdir, as_of)), "scores": file_checksum(out)},
    }
    wd.reports.mkdir(parents=True, exist_ok=True)
    wd.score_report(as_of).write_text(json.dumps(manifest, indent=2) + "\n")
    AuditLog(wd.audit).record_stage(
        f"riskstrat score --as-of {as_of} --model {model_uri}",
        {"features": manifest["checksums"]["features"]},
        {"people_scored": manifest["people_scored"], "excluded": excluded},
        "succeeded",
        model=loaded.name,
        version=loaded.version,
    )
    model = f"{loaded.name} version {loaded.version}"
    stage_manifest.record(wd, stage_name(as_of), stage_inputs(workdir, as_of, model), [out])
    return ScoreResult.of(out, manifest, time.perf_counter() - started)
