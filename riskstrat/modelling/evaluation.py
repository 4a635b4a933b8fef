"""Evaluation of risk scores: discrimination, calibration, targeting, fairness.

All functions take outcomes ``y`` (0/1) and predicted probabilities ``p`` for the same
people and return plain numbers and small pandas tables (aggregates, never rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

__all__ = [
    "TOP_SHARES",
    "Evaluation",
    "calibration_slope_intercept",
    "decile_table",
    "evaluate",
    "share_of_ceiling",
    "subgroup_table",
    "top_share_table",
]

TOP_SHARES = (0.005, 0.01, 0.05, 0.10)
_EPS = 1e-6


@dataclass
class Evaluation:
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _bootstrap(y: np.ndarray, p: np.ndarray, fn, n: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, y.size, y.size)
        if y[idx].min() == y[idx].max():
            continue
        vals.append(fn(y[idx], p[idx]))
    if not vals:
        return float("nan"), float("nan")
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration slope (logistic regression of y on logit p) and calibration-in-the-large
    (intercept with logit p as an offset); perfect calibration gives (1, 0)."""
    lp = logit(np.clip(p, _EPS, 1 - _EPS))
    slope = float(LogisticRegression(C=np.inf, max_iter=1000).fit(lp[:, None], y).coef_[0, 0])
    intercept = brentq(lambda a: float((y - expit(a + lp)).sum()), -10, 10)
    return slope, float(intercept)


def top_share_table(y: np.ndarray, p: np.ndarray, shares=TOP_SHARES) -> pd.DataFrame:
    """PPV, sensitivity and number needed to review among the highest-risk shares
    (people ordered by ``p``, highest first)."""
    order = np.argsort(-p, kind="stable")
    rows = []
    for s in shares:
        k = max(1, round(s * y.size))
        hit = y[order[:k]].sum()
        ppv = hit / k
        rows.append(
            {
                "top_share": s,
                "people": k,
                "ppv": ppv,
                "sensitivity": hit / max(y.sum(), 1),
                "number_needed_to_review": (1 / ppv) if ppv > 0 else np.inf,
            }
        )
    return pd.DataFrame(rows)


def decile_table(y: np.ndarray, p: np.ndarray, rank_by: np.ndarray | None = None) -> pd.DataFrame:
    """Observed and expected events by risk decile (1 = lowest risk), people ordered by
    ``rank_by`` (default ``p``)."""
    ranks = pd.Series(p if rank_by is None else rank_by).rank(method="first")
    decile = pd.qcut(ranks, 10, labels=False) + 1
    t = pd.DataFrame({"decile": decile, "observed": y, "expected": p})
    out = t.groupby("decile").agg(
        people=("observed", "size"),
        observed=("observed", "sum"),
        expected=("expected", "sum"),
        mean_risk=("expected", "mean"),
    )
    out["observed_rate"] = out["observed"] / out["people"]
    out["o_e"] = out["observed"] / out["expected"]
    return out.reset_index()


def subgroup_table(
    y: np.ndarray, p: np.ndarray, groups: pd.DataFrame, rank_by: np.ndarray | None = None
) -> pd.DataFrame:
    """Metrics by each grouping column (sex, age band, IMD quintile, ethnicity group);
    AUROC from ``rank_by`` (default ``p``)."""
    rank_by = p if rank_by is None else rank_by
    rows = []
    for col in groups.columns:
        for value, idx in groups.groupby(col, observed=True).indices.items():
            yy, pp = y[idx], p[idx]
            auc = roc_auc_score(yy, rank_by[idx]) if 0 < yy.sum() < yy.size else np.nan
            rows.append(
                {
                    "group": col,
                    "value": str(value),
                    "people": idx.size,
                    "events": int(yy.sum()),
                    "auroc": auc,
                    "o_e": yy.sum() / max(pp.sum(), _EPS),
                    "mean_risk": pp.mean(),
                    "observed_rate": yy.mean(),
                    "brier": brier_score_loss(yy, pp),
                }
            )
    return pd.DataFrame(rows)


def share_of_ceiling(auroc: float, ceiling: float) -> float:
    """(AUROC - 0.5) / (ceiling - 0.5): the share of achievable discrimination above chance."""
    return (auroc - 0.5) / (ceiling - 0.5)


def evaluate(
    y,
    p,
    groups: pd.DataFrame | None = None,
    truth=None,
    n_boot: int = 200,
    seed: int = 0,
    rank_by=None,
) -> Evaluation:
    """Every figure of the evaluation report for scores ``p`` against outcomes ``y``.

    ``truth`` (optional): the true probabilities of a synthetic population, for the ceiling.
    ``rank_by`` (optional): the score that orders people, when it is finer than ``p``. A
    calibrated model passes its uncalibrated score: isotonic calibration ties whole blocks
    of people, and the lists order them by the model's own score. Discrimination and
    targeting (AUROC, AUPRC, top shares, deciles) use ``rank_by``; calibration uses ``p``.
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    ranking = p if rank_by is None else np.asarray(rank_by, dtype=float)
    ev = Evaluation()
    m = ev.metrics
    m["people"] = float(y.size)
    m["events"] = float(y.sum())
    m["auroc"] = float(roc_auc_score(y, ranking))
    m["auroc_lo"], m["auroc_hi"] = _bootstrap(y, ranking, roc_auc_score, n_boot, seed)
    m["auprc"] = float(average_precision_score(y, ranking))
    m["auprc_lo"], m["auprc_hi"] = _bootstrap(y, ranking, average_precision_score, n_boot, seed + 1)
    m["brier"] = float(brier_score_loss(y, p))
    m["calibration_slope"], m["calibration_intercept"] = calibration_slope_intercept(y, p)
    m["observed_over_expected"] = float(y.sum() / max(p.sum(), _EPS))
    top = top_share_table(y, ranking)
    for _, r in top.iterrows():
        tag = f"top{r['top_share'] * 100:g}pct".replace(".", "_")
        m[f"ppv_{tag}"] = float(r["ppv"])
        m[f"sensitivity_{tag}"] = float(r["sensitivity"])
        m[f"nnr_{tag}"] = float(r["number_needed_to_review"])
    ev.tables["top_shares"] = top
    ev.tables["deciles"] = decile_table(y, p, ranking)
    if groups is not None:
        ev.tables["subgroups"] = subgroup_table(y, p, groups.reset_index(drop=True), ranking)
    if truth is not None:
        truth = np.asarray(truth, dtype=float)
        m["ceiling_auroc"] = float(roc_auc_score(y, truth))
        m["share_of_ceiling"] = float(share_of_ceiling(m["auroc"], m["ceiling_auroc"]))
        for _, r in top_share_table(y, truth).iterrows():  # the true risks' own targeting
            m[f"ceiling_ppv_top{r['top_share'] * 100:g}pct".replace(".", "_")] = float(r["ppv"])
    return ev
