"""Evaluation plots (PNG through matplotlib's Agg backend): aggregates only."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

__all__ = ["bar_plot", "calibration_plot", "decile_plot", "roc_plot"]


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
