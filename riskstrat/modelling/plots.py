"""Evaluation plots (PNG through matplotlib's Agg backend): aggregates only."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

__all__ = [
    "bar_plot",
    "calibration_plot",
    "decile_plot",
    "fairness_calibration_plot",
    "fairness_rates_plot",
    "roc_plot",
]


def calibration_plot(y: np.ndarray, scores: dict[str, np.ndarray], bins: int = 10):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in scores.items():
        q = pd.qcut(pd.Series(p).rank(method="first"), bins, labels=False)
        t = pd.DataFrame({"q": q, "y": y, "p": p}).groupby("q").mean()
        ax.plot(t["p"], t["y"], marker="o", label=name)
    top = max(float(np.max(next(iter(scores.values())))), 0.05)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.set_xlabel("predicted risk (mean in tenth)")
    ax.set_ylabel("observed rate")
    ax.set_title("Calibration by tenth of predicted risk")
    ax.legend()
    fig.tight_layout()
    return fig


def roc_plot(y: np.ndarray, scores: dict[str, np.ndarray], aucs: dict[str, float]):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUROC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC, out-of-time validation")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def decile_plot(deciles: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 4))
    x = deciles["decile"].to_numpy()
    ax.bar(x - 0.2, deciles["observed"] / deciles["people"], width=0.4, label="observed")
    ax.bar(x + 0.2, deciles["expected"] / deciles["people"], width=0.4, label="expected")
    ax.set_xlabel("risk decile (10 = highest)")
    ax.set_ylabel("rate")
    ax.set_title("Observed and expected by risk decile")
    ax.legend()
    fig.tight_layout()
    return fig


def bar_plot(values: pd.Series, title: str, xlabel: str, top: int = 20):
    v = values.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(v) + 1.2))
    ax.barh(v.index.astype(str), v.to_numpy())
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def fairness_rates_plot(
    curves: pd.DataFrame, variable: str, bands: dict[str, float] | None = None, everyone: str = "all"
):
    """False-positive and false-negative rates against the share of the population flagged,
    one line per group of ``variable`` with its pointwise 95% interval, the whole population
    dashed, the risk bands' thresholds dotted (``curves``: :attr:`FairnessAudit.curves`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True)
    lines = [(everyone, curves[curves["variable"] == everyone])]
    lines += list(curves[curves["variable"] == variable].groupby("group", sort=True))
    for ax, rate, label in zip(axes, ("fpr", "fnr"), ("false-positive rate", "false-negative rate"), strict=True):
        for group, t in lines:
            x = t["top_share"] * 100
            if group == everyone:
                ax.plot(x, t[rate], color="black", linestyle="--", linewidth=1.2, label="everyone")
                continue
            (line,) = ax.plot(x, t[rate], linewidth=1.4, label=str(group))
            ax.fill_between(x, t[f"{rate}_lo"], t[f"{rate}_hi"], color=line.get_color(), alpha=0.15, linewidth=0)
        for name, share in (bands or {}).items():
            ax.axvline(share * 100, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                name,
                (share * 100, 1),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="grey",
            )
        ax.set_xscale("log")
        ax.set_xlabel("share of the population flagged (%, highest risk first)")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
    axes[0].set_title(f"False positives among people without the event, by {variable}", fontsize=10)
    axes[1].set_title(f"Events missed, by {variable}", fontsize=10)
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def fairness_calibration_plot(calibration: pd.DataFrame, everyone: str = "all"):
    """Observed rate (with its 95% interval) against mean predicted risk in bins of predicted
    risk within each group, one panel per grouping variable (``calibration``:
    :attr:`FairnessAudit.calibration`); on the dashed diagonal the model is calibrated."""
    variables = [v for v in calibration["variable"].unique() if v != everyone]
    cols = 2 if len(variables) > 1 else 1
    rows = max(1, -(-len(variables) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.8 * rows), squeeze=False)
    top = max(float(calibration[["mean_predicted", "observed_hi"]].max().max()), 0.05) if len(calibration) else 1.0
    for ax, var in zip(axes.flat, variables, strict=False):
        for group, t in calibration[calibration["variable"] == var].groupby("group", sort=True):
            ax.errorbar(
                t["mean_predicted"],
                t["observed_rate"],
                yerr=[t["observed_rate"] - t["observed_lo"], t["observed_hi"] - t["observed_rate"]],
                marker="o",
                markersize=3,
                linewidth=1,
                capsize=2,
                label=str(group),
            )
        ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("predicted risk (mean in bin)")
        ax.set_ylabel("observed rate")
        ax.set_title(f"Calibration by {var}", fontsize=10)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(variables) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig
