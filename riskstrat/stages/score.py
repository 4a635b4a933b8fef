"""``riskstrat score``: score the population at D with the registered model.

Everyone in the population at D (registered, not dead before D) is scored unless the
opt-out policy excludes them from scoring. Each person gets a calibrated probability, the
model's log-odds before calibration (``model_score``, which orders people the calibrated
probability ties), a risk band from the model specification and up to three reasons in
plain words (their largest positive SHAP contributions). Output: ``W/pseudonymised/scores_<D>.parquet`` and a
run manifest ``W/reports/score_<D>.json`` (model, version, counts, checksums). The same
inputs and model give the same outputs.
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
from riskstrat.errors import RiskstratError
from riskstrat.privacy.audit import AuditLog, file_checksum
from riskstrat.scoring import assign_bands, top_reasons
from riskstrat.stages.features import build_features, features_path
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.workdir import WorkDir

__all__ = ["DEFAULT_MODEL_URI", "ScoreResult", "score", "scores_path"]

DEFAULT_MODEL_URI = "models:/emergency_admission_12m@champion"


@dataclass
class ScoreResult:
    path: Path
    manifest: dict
    seconds: float


def scores_path(workdir: Path, as_of: dt.date) -> Path:
    return WorkDir(workdir).pseudonymised / f"scores_{as_of.isoformat()}.parquet"


def score(workdir: Path, as_of: dt.date, model_uri: str | None = None, tracking_uri: str | None = None) -> ScoreResult:
    started = time.perf_counter()
    wd = WorkDir(workdir)
    model_uri = model_uri or DEFAULT_MODEL_URI
    if not features_path(workdir, as_of).exists():
        if not wd.table("gp_registrations").exists():
            raise RiskstratError(f"{workdir}: no pseudonymised tables: run 'riskstrat pseudonymise' first")
        build_features(workdir, as_of)
    feats = pq.read_table(features_path(workdir, as_of)).to_pandas()
    uses = wd.table(OPT_OUT_USES_TABLE)
    excluded = 0
    if uses.exists():
        flags = pq.read_table(uses).to_pandas()
        out = set(flags.loc[flags["scoring"], "pseudonym"])
        excluded = int(feats["pseudonym"].isin(out).sum())
        feats = feats[~feats["pseudonym"].isin(out)]
    feats = feats.sort_values("pseudonym").reset_index(drop=True)
    loaded = tracking.load_registered(workdir, tracking_uri, model_uri)
    inputs = loaded.input_names
    risk = np.asarray(loaded.model.predict(feats[inputs]), dtype=float)
    bands = [(b["name"], float(b["top_share"])) for b in loaded.risk_bands]
    contrib = loaded.estimator.contributions(feats[inputs])
    # The contributions add up to the model's log-odds before calibration: it orders people
    # whom the (step-wise) calibrated probability ties.
    model_score = np.round(contrib.to_numpy().sum(axis=1), 6)
    index = feats["pseudonym"]
    band = assign_bands(pd.Series(risk, index=index), bands, pd.Series(model_score, index=index)).to_numpy()
    reasons = top_reasons(contrib, feats[inputs])
    table = pa.table(
        {
            "pseudonym": feats["pseudonym"].to_numpy(),
            "risk_score": np.round(risk, 6),
            "model_score": model_score,
            "risk_band": band.astype(str),
            "reason_1": [r[0] if len(r) > 0 else None for r in reasons],
            "reason_2": [r[1] if len(r) > 1 else None for r in reasons],
            "reason_3": [r[2] if len(r) > 2 else None for r in reasons],
        }
    )
    out = scores_path(workdir, as_of)
    tmp = out.with_name(f".{out.name}.partial")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out)
    counts = pd.Series(band).value_counts()
    manifest = {
        "as_of": str(as_of),
        "model_uri": model_uri,
        "model_name": loaded.name,
        "model_version": loaded.version,
        "run_id": loaded.run_id,
        "people_scored": len(feats),
        "excluded_by_opt_out_policy": excluded,
        "people_by_band": {name: int(counts.get(name, 0)) for name, _ in bands},
        "mean_risk": round(float(risk.mean()), 6),
        "checksums": {"features": file_checksum(features_path(workdir, as_of)), "scores": file_checksum(out)},
    }
    wd.reports.mkdir(parents=True, exist_ok=True)
    (wd.reports / f"score_{as_of}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    AuditLog(wd.audit).record_stage(
        f"riskstrat score --as-of {as_of} --model {model_uri}",
        {"features": manifest["checksums"]["features"]},
        {"people_scored": manifest["people_scored"], "excluded": excluded},
        "succeeded",
        model=loaded.name,
        version=loaded.version,
    )
    return ScoreResult(out, manifest, time.perf_counter() - started)
