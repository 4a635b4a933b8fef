"""``riskstrat monitor``: the monthly monitoring report of the model that scored the population at D.

For the scores at D (:mod:`riskstrat.modelling.monitoring` has the arithmetic):

* the **population stability** (PSI) of every input feature and of the calibrated score against
  the training population, whose bins and shares the training run logged with the model
  (``monitoring/reference_profile.json`` in MLflow; a model trained before that is profiled
  from the feature table of its training date in W, when it is still there);
* the **performance expected without labels** at D (AUROC, event rate, Brier score, PPV and
  sensitivity at each band threshold) beside the same figures on the model's validation people;
* once outcomes have matured, the **realised performance** of the scores of the latest earlier
  run whose outcome window has closed by D and is covered by the data (12 months earlier for
  the default model), against what those scores expected; with a randomised hold-out, the
  observed/expected events in the at-risk bands of the people shown on the lists and of the
  people held out (a lower ratio among those shown is the lists' effect on the outcome);
* **warnings** where a figure passes its threshold (``monitoring`` settings).

Outputs: ``W/pseudonymised/monitoring/<D>.json`` (figures only), the page
``W/reports/monitoring_<D>.html``, and an MLflow run "monitoring at D" in the model's
experiment (figures as metrics, warnings as a tag). No row of any person leaves the
pseudonymised zone: only bins, shares and population-level figures are written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from riskstrat import tracking
from riskstrat.atomic import replacing
from riskstrat.config import Config, MonitoringSettings
from riskstrat.errors import RiskstratError
from riskstrat.features.engine import connect, load_sources
from riskstrat.labels import data_end, labels
from riskstrat.modelling.monitoring import (
    anticipated,
    as_stored,
    expected_performance,
    finite,
    flagged_at,
    list_order,
    ppv_se,
    psi,
    realised_performance,
    reference_profile,
)
from riskstrat.outputs.commissioner import at_risk_bands
from riskstrat.outputs.html import monitoring_html
from riskstrat.privacy.audit import AuditLog
from riskstrat.stages.exposure import read_exposure
from riskstrat.stages.features import features_path
from riskstrat.stages.resources import named_stage
from riskstrat.workdir import WorkDir

__all__ = ["MonitorResult", "monitor"]

#: how many shifted features a warning names (the page lists them all)
_NAMED = 5


@dataclass
class MonitorResult:
    as_of: dt.date
    model: str  # "name version N"
    psi_score: float
    psi_features: dict[str, float]
    expected: dict[str, float]
    reference_expected: dict[str, float]
    realised: dict | None  # the earlier run's as-of date, model, expected and realised figures
    warnings: list[str] = field(default_factory=list)
    record: Path | None = None
    page: Path | None = None
    run_id: str | None = None
    seconds: float = 0.0


def _bands(manifest: dict) -> list[tuple[str, float]]:
    return [(b["name"], float(b["top_share"])) for b in manifest["risk_bands"]]


def _scores(wd: WorkDir, as_of: dt.date) -> pd.DataFrame:
    return pq.read_table(wd.scores(as_of), columns=["pseudonym", "risk_score", "model_score", "risk_band"]).to_pandas()


def _profile(wd: WorkDir, uri: str | None, info: tracking.ModelInfo, bands) -> dict:
    """The model's monitoring reference: as its training run logged it, else made from the
    feature table of its training date in W (every person there, scored by the model)."""
    logged = tracking.reference_profile_of(wd.root, uri, info.run_id)
    if logged is not None:
        return logged
    train_as_of = info.metadata.get("train_as_of")
    if train_as_of is None or not features_path(wd.root, dt.date.fromisoformat(train_as_of)).exists():
        raise RiskstratError(
            f"{info.name} version {info.version} has no monitoring reference and the feature table of its "
            f"training date ({train_as_of}) is not in {wd.root}: retrain it, or build the features there"
        )
    feats = pq.read_table(features_path(wd.root, dt.date.fromisoformat(train_as_of))).to_pandas()
    loaded = tracking.load_registered(wd.root, uri, f"models:/{info.name}/{info.version}")
    risk = np.asarray(loaded.model.predict(feats[info.input_names]), dtype=float)
    expected = expected_performance(risk, list_order(risk), bands)
    categorical = [c for c in info.input_names if feats[c].dtype == object or str(feats[c].dtype) == "category"]
    return reference_profile(
        feats[info.input_names],
        categorical,
        risk,
        expected,
        f"population at {train_as_of} in the work directory (no reference logged with the model); "
        "expected figures on the same people",
    )


def _anticipated(expected: dict, profile: dict | None, bands) -> dict[str, float | None]:
    """The AUROC and the PPV at each band threshold a population should show given the label-free
    change since validation (:func:`riskstrat.modelling.monitoring.anticipated`):
    ``anticipated_auroc``, ``anticipated_ppv_<band>``."""
    reference = (profile or {}).get("expected") or {}
    validation = (profile or {}).get("validation") or {}
    keys = [("auroc", "expected_auroc", "auroc")]
    keys += [(f"ppv_{k}", f"expected_ppv_{k}", f"ppv_{k}") for k in ("_".join(n.split()) for n, s in bands if s < 1)]
    return {
        f"anticipated_{name}": anticipated(validation.get(v), expected.get(e), reference.get(e)) for name, e, v in keys
    }


def _matured(wd: WorkDir, as_of: dt.date, horizon_days: int, end: dt.date | None) -> dt.date | None:
    """The latest earlier run whose outcome window ``[E, E + horizon)`` has closed by ``as_of``
    and is covered by the data (``end``: their last day), with its scores still in W."""
    if end is None or not wd.scores_dir.is_dir():
        return None
    dated = []
    for path in wd.scores_dir.glob("*.parquet"):
        try:
            dated.append(dt.date.fromisoformat(path.stem))
        except ValueError:
            continue
    closed = [
        e
        for e in dated
        if e + dt.timedelta(days=horizon_days) <= min(as_of, end + dt.timedelta(days=1)) and wd.score_report(e).exists()
    ]
    return max(closed) if closed else None


def _realised(wd: WorkDir, as_of: dt.date, info: tracking.ModelInfo, uri: str | None) -> dict | None:
    """The realised figures of the latest matured earlier run (:func:`_matured`) against what its
    scores expected, or None when there is none yet."""
    horizon = int(info.metadata.get("horizon_days", 365))
    con = connect("duckdb")
    src = load_sources(con, wd.linked)
    earlier = _matured(wd, as_of, horizon, data_end(src))
    if earlier is None:
        return None
    manifest = json.loads(wd.score_report(earlier).read_text())
    then = tracking.model_info(wd.root, uri, manifest["model_name"], str(manifest["model_version"]))
    outcome = then.metadata.get("outcome", "emergency_admission")
    horizon = int(then.metadata.get("horizon_days", horizon))
    then_profile = tracking.reference_profile_of(wd.root, uri, then.run_id)
    scores = _scores(wd, earlier)
    lab = con.to_pyarrow(labels(src, earlier, outcome, horizon)).to_pandas()[["pseudonym", "label"]]
    people = scores.merge(lab, on="pseudonym", how="inner", validate="one_to_one")
    bands = _bands(manifest)
    p = people["risk_score"].to_numpy(dtype=float)
    rank = list_order(p, people["model_score"].to_numpy(dtype=float))
    expected = finite(expected_performance(p, rank, bands))
    validation = (then_profile or {}).get("validation") or {}
    out = {
        "as_of": earlier.isoformat(),
        "model": f"{manifest['model_name']} version {manifest['model_version']}",
        "outcome": str(outcome),
        "horizon_days": horizon,
        "expected": {**expected, **_anticipated(expected, then_profile, bands)},
        "validation": validation,
        "realised": finite(realised_performance(people["label"].to_numpy(), p, rank, bands)),
    }
    exposure = read_exposure(wd, earlier)
    if exposure is not None and exposure["held_out"].any():
        joined = people.merge(exposure[["pseudonym", "shown", "held_out", "at_risk"]], on="pseudonym", how="inner")
        groups = {}
        for name, rows in (("shown", joined["shown"]), ("held_out", joined["held_out"])):
            sel = (rows & joined["at_risk"]).to_numpy()
            expected = float(joined.loc[sel, "risk_score"].sum())
            groups[name] = {
                "people": int(sel.sum()),
                "events": int(joined.loc[sel, "label"].sum()),
                "observed_over_expected": float(joined.loc[sel, "label"].sum() / expected) if expected > 0 else None,
            }
        out["at_risk_by_exposure"] = groups
    return out


def _warnings(
    settings: MonitoringSettings,
    psi_score: float,
    psi_features: dict[str, float],
    expected: dict[str, float],
    reference: dict[str, float | None],
    realised: dict | None,
    bands: list[tuple[str, float]],
    at_d: dt.date,
) -> list[str]:
    """The month's warnings in words (thresholds: ``settings``)."""
    out = []
    shifted = sorted(((v, k) for k, v in psi_features.items() if v > settings.psi_warning), reverse=True)
    if shifted:
        named = ", ".join(f"{k} {v:.2f}" for v, k in shifted[:_NAMED])
        more = f" and {len(shifted) - _NAMED} more" if len(shifted) > _NAMED else ""
        out.append(
            f"population shift at {at_d}: {len(shifted)} feature{'s' if len(shifted) != 1 else ''} with a PSI above "
            f"{settings.psi_warning:g} against the training population ({named}{more})"
        )
    if psi_score > settings.psi_warning:
        out.append(
            f"score shift at {at_d}: PSI of the risk score {psi_score:.2f} against the training population "
            f"(above {settings.psi_warning:g})"
        )
    ref_auroc, auroc = reference.get("expected_auroc"), expected.get("expected_auroc")
    if ref_auroc is not None and auroc is not None and ref_auroc - auroc > settings.auroc_drop_warning:
        out.append(
            f"expected AUROC at {at_d} {auroc:.3f} (estimated without labels) is {ref_auroc - auroc:.3f} below the "
            f"{ref_auroc:.3f} expected on the validation people (more than {settings.auroc_drop_warning:g})"
        )
    for name, share in bands:
        key = f"expected_ppv_{'_'.join(name.split())}"
        ref, now = reference.get(key), expected.get(key)
        if (
            share < 1
            and ref
            and now is not None
            and math.isfinite(now)
            and (ref - now) / ref > settings.ppv_drop_warning
        ):
            out.append(
                f"expected PPV of the top {share:.1%} ({name} and above) at {at_d} {now:.3f} is "
                f"{(ref - now) / ref:.0%} below the validation people's {ref:.3f} "
                f"(more than {settings.ppv_drop_warning:.0%})"
            )
    if realised is not None:
        r, e, then = realised["realised"], realised["expected"], realised["as_of"]
        if r.get("auroc") is not None and e.get("anticipated_auroc") is not None:
            gap = e["anticipated_auroc"] - r["auroc"]
            se = math.hypot(r.get("auroc_se") or 0, (realised.get("validation") or {}).get("auroc_se") or 0)
            if gap > settings.auroc_drop_warning and gap > 1.96 * se:
                out.append(
                    f"realised AUROC of the scores at {then} ({realised['model']}) {r['auroc']:.3f} is {gap:.3f} below "
                    f"the {e['anticipated_auroc']:.3f} they expected (more than {settings.auroc_drop_warning:g} and "
                    "beyond two standard errors)"
                )
        validation = realised.get("validation") or {}
        for name, share in bands:
            key = "_".join(name.split())
            now, then_ppv = r.get(f"ppv_{key}"), e.get(f"anticipated_ppv_{key}")
            if share >= 1 or now is None or not then_ppv:
                continue
            se = math.hypot(
                ppv_se(now, r.get(f"flagged_{key}")),
                ppv_se(validation.get(f"ppv_{key}"), validation.get(f"flagged_{key}")),
            )
            gap = then_ppv - now
            if gap / then_ppv > settings.ppv_drop_warning and gap > 1.96 * se:
                out.append(
                    f"realised PPV of the top {share:.1%} ({name} and above) of the scores at {then} {now:.3f} is "
                    f"{gap / then_ppv:.0%} below the {then_ppv:.3f} they expected (more than "
                    f"{settings.ppv_drop_warning:.0%} and beyond two standard errors)"
                )
        oe, z = r.get("observed_over_expected"), r.get("oe_z")
        if oe is not None and z is not None and abs(oe - 1) > settings.oe_warning and abs(z) > 1.96:
            out.append(
                f"calibration of the scores at {then} ({realised['model']}): observed/expected events {oe:.2f} "
                f"(further from 1 than {settings.oe_warning:g} and beyond two standard errors)"
            )
    return out


@named_stage("monitor")
def monitor(
    workdir: Path, as_of: dt.date, tracking_uri: str | None = None, config: Config | None = None
) -> MonitorResult:
    """The monitoring report of the scores at ``as_of`` (see the module docstring)."""
    started = time.perf_counter()
    config = config or Config()
    wd = WorkDir(workdir)
    if not wd.score_report(as_of).exists():
        raise RiskstratError(f"{workdir}: no scores at {as_of}: run 'riskstrat score --as-of {as_of}' first")
    manifest = json.loads(wd.score_report(as_of).read_text())
    name, version = manifest["model_name"], str(manifest["model_version"])
    tracking.configure(workdir, tracking_uri, name)
    info = tracking.model_info(workdir, tracking_uri, name, version)
    bands = _bands(manifest)
    profile = _profile(wd, tracking_uri, info, bands)
    scores = _scores(wd, as_of)
    inputs = [c for c in info.input_names if c in profile["features"]]
    feats = pq.read_table(features_path(workdir, as_of), columns=["pseudonym", *inputs]).to_pandas()
    feats = scores[["pseudonym"]].merge(feats, on="pseudonym", how="left", validate="one_to_one")
    psi_features = {c: round(psi(profile["features"][c], feats[c]), 6) for c in inputs}
    psi_score = round(psi(as_stored(profile["score"]), scores["risk_score"]), 6)
    p = scores["risk_score"].to_numpy(dtype=float)
    rank = list_order(p, scores["model_score"].to_numpy(dtype=float))
    expected = finite(expected_performance(p, rank, bands))
    expected.update(_anticipated(expected, profile, bands))
    reference = dict(profile.get("expected", {}))
    realised = _realised(wd, as_of, info, tracking_uri)
    warnings = _warnings(config.monitoring, psi_score, psi_features, expected, reference, realised, bands, as_of)
    settings = config.monitoring.model_dump(mode="json")
    record = {
        "as_of": as_of.isoformat(),
        "model": f"{name} version {version}",
        "people": len(scores),
        "reference": profile["population"],
        "psi_score": psi_score,
        "psi_features": dict(sorted(psi_features.items(), key=lambda kv: -kv[1])),
        "expected": expected,
        "reference_expected": reference,
        "validation": profile.get("validation"),
        "realised": realised,
        "at_risk_bands": at_risk_bands_of(bands),
        "flagged": {n: int(flagged_at(rank, s).sum()) for n, s in bands if s < 1},
        "thresholds": settings,
        "warnings": warnings,
    }
    _write(wd.monitoring_record(as_of), json.dumps(record, indent=1) + "\n")
    _write(wd.monitoring_page(as_of), monitoring_html(record))
    metrics = {"psi_score": psi_score, "psi_max_feature": max(psi_features.values(), default=0.0)}
    metrics["features_over_psi_warning"] = float(sum(v > config.monitoring.psi_warning for v in psi_features.values()))
    metrics.update({k: v for k, v in expected.items() if v is not None})
    metrics.update({f"reference_{k}": v for k, v in reference.items() if v is not None})
    if realised is not None:
        metrics.update({f"realised_{k}": v for k, v in realised["realised"].items() if v is not None})
        metrics.update({f"realised_{k}": v for k, v in realised["expected"].items() if v is not None})
    metrics["warnings"] = float(len(warnings))
    run_id = tracking.log_monitoring(
        workdir,
        name,
        as_of.isoformat(),
        metrics,
        {"model_name": name, "model_version": version, "warnings": "\n".join(warnings) or "none"},
        record,
    )
    AuditLog(wd.audit).record_stage(
        f"riskstrat monitor --as-of {as_of}",
        {},
        {"people": len(scores), "warnings": len(warnings)},
        "succeeded",
        model=name,
        version=version,
    )
    return MonitorResult(
        as_of,
        record["model"],
        psi_score,
        psi_features,
        expected,
        reference,
        realised,
        warnings,
        wd.monitoring_record(as_of),
        wd.monitoring_page(as_of),
        run_id,
        time.perf_counter() - started,
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def at_risk_bands_of(bands: list[tuple[str, float]]) -> list[str]:
    """The at-risk bands (:func:`riskstrat.outputs.commissioner.at_risk_bands`) of ``(name, share)`` bands."""
    from riskstrat.modelling.spec import RiskBand

    return at_risk_bands([RiskBand(name=n, top_share=s) for n, s in bands])
