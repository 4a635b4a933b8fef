"""Fairness audit of a risk score: discrimination, calibration and the errors of the risk bands, by group.

For each grouping variable (sex, age band, IMD quintile, ethnicity group) and each of its
groups, on the same validation people:

* **by group**: people, events, AUROC (from the ranking score), observed over expected
  (O/E) and calibration slope (from the calibrated probability), each with a bootstrap 95%
  interval;
* **by threshold**: at each risk band's threshold (flagged = within the band's top share of
  the whole validation population, ranked by the ranking score), the false-positive rate,
  false-negative rate and positive predictive value (PPV) in the group, with intervals;
* **curves**: the false-positive and false-negative rates against the share flagged, from
  0.5% to 50% of the population, with pointwise intervals;
* **calibration**: mean predicted risk against the observed rate in tenths of predicted
  risk within each group.

This follows the audit of Scotland's SPARRA score (Liley et al., *SPARRAfairness*: calibration
and FPR/FNR over thresholds per group, with uncertainty). A person's flag depends on their
rank in the whole population, never on their group: the bands are the same lists for
everyone, and the audit asks how their errors fall on each group.

Uncertainty: ``n_boot`` resamples of the validation people with replacement (the whole
population at once, so a group's size varies between resamples as it would in another
population); flags stay as set on the validation population (the uncertainty of the
threshold itself is not included). Intervals are the 2.5th and 97.5th percentiles. The
bootstrap calibration slope is fitted to each group's people in at most
:data:`SLOPE_BINS` bins of predicted risk (exact when the probabilities take fewer values,
as after isotonic calibration), and its interval is moved by the binning's difference at
the point estimate; the point estimate itself is fitted to every person.

Small groups: a group with fewer than ``min_people`` people, fewer than ``min_events`` events
or fewer than ``min_events`` people without the event has every metric withheld (NaN, its
counts too) and the reason in ``withheld``; a PPV on fewer than ``min_events`` flagged people
of a group is withheld the same way. Every table holds aggregates, never a person's values.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit, logit

from riskstrat.modelling.spec import RiskBand
from riskstrat.privacy.disclosure import DEFAULT_RULES, SUPPRESSED, round_count

__all__ = [
    "CURVE_SHARES",
    "EVERYONE",
    "MIN_EVENTS",
    "MIN_PEOPLE",
    "SLOPE_BINS",
    "FairnessAudit",
    "audit",
    "commissioner_summary",
]

MIN_PEOPLE = 50  # a group of fewer people has its metrics withheld
MIN_EVENTS = 10  # ... and of fewer events, or fewer people without the event, or (PPV) fewer flagged
#: the shares of the population flagged at which the curves are drawn (0.5% to 50%, log-spaced)
CURVE_SHARES = tuple(float(s) for s in np.round(np.geomspace(0.005, 0.5, 21), 5))
SLOPE_BINS = 200  # bins of predicted risk per group for the bootstrap calibration slope
EVERYONE = "all"  # the variable (and group) of the whole validation population, for reference
_EPS = 1e-6  # probabilities are clipped to [_EPS, 1 - _EPS] before the logit, as in evaluation
_CHUNK = 20  # bootstrap resamples held in memory at once (each a float32 weight per person)
_LEVELS = (0.025, 0.975)


@dataclass(frozen=True)
class FairnessAudit:
    """The audit's tables (aggregates only) and how its intervals were made.

    Attributes
    ----------
    by_group : one row per (variable, group): ``people``, ``events``, ``auroc``, ``o_e``,
        ``calibration_slope``, each metric with ``_lo`` and ``_hi`` (bootstrap 95%), and
        ``withheld`` (the reason, empty when reported). The first row is everyone
        (variable and group :data:`EVERYONE`).
    by_threshold : one row per (variable, group, band): ``top_share``, ``flagged_share`` (of
        the group), ``fpr``, ``fnr``, ``ppv`` with ``_lo`` and ``_hi``, and ``withheld``.
    curves : one row per (variable, group, top share of :data:`CURVE_SHARES`): ``fpr``,
        ``fnr`` with ``_lo`` and ``_hi``; reported groups only.
    calibration : one row per (variable, group, tenth of predicted risk within the group):
        ``people``, ``mean_predicted``, ``observed_rate`` with a Wilson 95% interval; groups
        of fewer than ten times ``min_people`` get fewer bins, so that every bin holds at
        least ``min_people`` people; reported groups only.
    n_boot : bootstrap resamples behind the intervals.
    """

    by_group: pd.DataFrame
    by_threshold: pd.DataFrame
    curves: pd.DataFrame
    calibration: pd.DataFrame
    n_boot: int

    @property
    def variables(self) -> list[str]:
        """The grouping variables audited (without :data:`EVERYONE`)."""
        return [v for v in self.by_group["variable"].unique() if v != EVERYONE]

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables logged with a training run, by artifact name (to 6 decimals: no run of ten
        digits that a scan for NHS numbers would have to look at)."""
        return {"fairness_by_group": self.by_group.round(6), "fairness_by_threshold": self.by_threshold.round(6)}

    def headline_metrics(self) -> dict[str, float]:
        """A few numbers to follow from run to run, per variable and worst over variables:
        ``fairness_auroc_gap_<variable>`` (highest minus lowest AUROC of its reported groups)
        and ``fairness_oe_deviation_<variable>`` (the largest ``|O/E - 1|`` of its groups)."""
        out: dict[str, float] = {}
        for var in self.variables:
            t = self.by_group[(self.by_group["variable"] == var) & (self.by_group["withheld"] == "")]
            out[f"fairness_auroc_gap_{var}"] = float(t["auroc"].max() - t["auroc"].min()) if len(t) > 1 else np.nan
            out[f"fairness_oe_deviation_{var}"] = float((t["o_e"] - 1).abs().max()) if len(t) else np.nan
        for kind in ("auroc_gap", "oe_deviation"):
            values = [v for k, v in out.items() if k.startswith(f"fairness_{kind}_") and np.isfinite(v)]
            out[f"fairness_{kind}_max"] = float(max(values)) if values else np.nan
        return out


@dataclass
class _Group:
    """One group's people in ascending order of the ranking score, and what its metrics need.

    Every metric is read from cumulative sums of weights at a few positions of that order
    (``at``): where each event's run of tied scores starts and ends (AUROC) and where each
    threshold's flagged people begin (the group's last ``flagged`` people).
    """

    variable: str
    value: str
    members: np.ndarray  # indices into the validation arrays, ascending ranking score
    y: np.ndarray  # float32 outcomes in that order
    p: np.ndarray  # calibrated probabilities in that order
    flagged: np.ndarray  # people of the group flagged at each threshold share
    withheld: str
    events_at: np.ndarray = None  # positions of the people with the event
    at: np.ndarray = None  # the positions where cumulative sums are read, 0 and the size included
    run_start: np.ndarray = None  # per event: index into ``at`` of the start of its run of ties
    run_end: np.ndarray = None  # ... of the end of its run
    cut: np.ndarray = None  # per threshold: index into ``at`` of the first flagged person
    bins: sparse.csr_array = None  # person -> bin of predicted risk (for the bootstrap slope)
    event_bins: sparse.csr_array = None  # the rows of ``bins`` of the people with the event
    bin_logit: np.ndarray = None  # the logit of predicted risk of each bin (its members' mean)

    def prepare(self, rank_score: np.ndarray) -> None:
        """Fill the positions and bins from the group's ranking scores (in its order)."""
        size = self.members.size
        self.events_at = np.flatnonzero(self.y)
        starts = np.flatnonzero(np.r_[True, rank_score[1:] != rank_score[:-1]])
        run = np.searchsorted(starts, self.events_at, side="right") - 1
        start, end = starts[run], np.append(starts[1:], size)[run]
        cut = size - self.flagged
        self.at = np.unique(np.concatenate([[0, size], start, end, cut]))
        self.run_start, self.run_end = np.searchsorted(self.at, start), np.searchsorted(self.at, end)
        self.cut = np.searchsorted(self.at, cut)
        self.bins, self.bin_logit = _slope_bins(logit(np.clip(self.p, _EPS, 1 - _EPS)))
        self.event_bins = self.bins[self.events_at]


def _flag_count(position: np.ndarray, n: int, shares: np.ndarray) -> np.ndarray:
    """How many of the people at ``position`` (0 = highest risk) are within each top share of ``n``."""
    k = np.maximum(1, np.round(shares * n)).astype(np.int64)  # as top_share_table counts them
    return np.searchsorted(np.sort(position), k, side="left")


def _slope_bins(lp: np.ndarray) -> tuple[sparse.csr_array, np.ndarray]:
    levels, codes = np.unique(lp, return_inverse=True)
    if levels.size > SLOPE_BINS:
        rank = np.argsort(np.argsort(lp, kind="stable"), kind="stable")
        codes = rank * SLOPE_BINS // lp.size
        levels = np.bincount(codes, lp, SLOPE_BINS) / np.bincount(codes, minlength=SLOPE_BINS)
    onehot = sparse.csr_array((np.ones(lp.size, np.float32), (np.arange(lp.size), codes)), (lp.size, levels.size))
    return onehot, levels


def _logistic_slope(x: np.ndarray, n: np.ndarray, e: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Slope of the logistic regression (with intercept) of events on ``x``, one per row.

    ``x`` (K,): the covariate of each cell; ``n``, ``e`` (B, K): people (weights) and events
    in each cell for each of B data sets. Newton-Raphson from (intercept 0, slope 1), steps
    capped at 1; NaN where it does not converge.
    """
    n, e = np.asarray(n, dtype=float), np.asarray(e, dtype=float)
    a, b = np.zeros(n.shape[0]), np.ones(n.shape[0])
    converged = np.zeros(n.shape[0], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):  # singular fits end as NaN
        for _ in range(iterations):
            mu = expit(a[:, None] + b[:, None] * x)
            r, v = e - n * mu, n * mu * (1 - mu)
            g0, g1 = r.sum(axis=1), r @ x
            h00, h01, h11 = v.sum(axis=1), v @ x, v @ (x * x)
            det = h00 * h11 - h01 * h01
            da, db = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
            step = np.maximum(np.abs(da), np.abs(db))
            scale = np.where(step > 1, 1 / np.where(step > 1, step, 1), 1)
            a, b = a + scale * da, b + scale * db
            converged = step < 1e-8
            if converged.all() or not np.isfinite(step).any():
                break
    return np.where(converged & np.isfinite(b), b, np.nan)


def _metrics(g: _Group, w: np.ndarray, exact_slope: bool = False) -> dict[str, np.ndarray]:
    """The group's metrics under person weights ``w`` (B, people of the group, in ``g``'s order).

    Returns arrays of shape (B,) (``auroc``, ``o_e``, ``slope``) and (B, thresholds)
    (``fpr``, ``fnr``, ``ppv``), from cumulative weights of everyone and of the people with
    the event at the positions ``g.at`` (one pass over ``w``).
    """
    everyone = np.zeros((w.shape[0], g.at.size))
    everyone[:, 1:] = np.cumsum(np.add.reduceat(w, g.at[:-1], axis=1), axis=1)
    w_events = w[:, g.events_at]
    cum_events = np.zeros((w.shape[0], g.events_at.size + 1))
    cum_events[:, 1:] = np.cumsum(w_events, axis=1)
    with_event = cum_events[:, np.searchsorted(g.events_at, g.at)]  # events before each position
    without = everyone - with_event
    events, non_events = with_event[:, -1], without[:, -1]
    # each event outranks the non-events below its run of ties and ties with half of those in it
    below = without[:, g.run_start]
    concordant = (w_events * (below + 0.5 * (without[:, g.run_end] - below))).sum(axis=1)
    fn = with_event[:, g.cut]
    fp = non_events[:, None] - without[:, g.cut]
    tp = events[:, None] - fn
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "auroc": concordant / (events * non_events),
            "o_e": events / (w @ g.p.astype(w.dtype)),
            "fpr": fp / non_events[:, None],
            "fnr": fn / events[:, None],
            "ppv": tp / (tp + fp),
        }
    if exact_slope:
        out["slope"] = _logistic_slope(logit(np.clip(g.p, _EPS, 1 - _EPS)), w, w * g.y)
    else:
        out["slope"] = _logistic_slope(g.bin_logit, (g.bins.T @ w.T).T, (g.event_bins.T @ w_events.T).T)
    return out


def _resample_weights(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` bootstrap resamples of ``n`` people as weights: how often each person is drawn."""
    w = np.empty((size, n), dtype=np.float32)
    for i in range(size):
        w[i] = np.bincount(rng.integers(0, n, n), minlength=n)
    return w


def _groups_of(
    groups: pd.DataFrame,
    ascending: np.ndarray,
    position: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    rank_score: np.ndarray,
    shares: np.ndarray,
    min_people: int,
    min_events: int,
) -> list[_Group]:
    n = y.size
    cols = {EVERYONE: np.zeros(n, dtype=np.int64)}
    labels = {EVERYONE: np.array([EVERYONE], dtype=object)}
    for col in groups.columns:
        codes, uniques = pd.factorize(groups[col].astype(str), sort=True)
        cols[col], labels[col] = codes, np.asarray(uniques, dtype=object)
    out = []
    for var, codes in cols.items():
        in_order = codes[ascending]
        for code, value in enumerate(labels[var]):
            members = ascending[in_order == code]
            yy = y[members]
            events = int(yy.sum())
            if members.size < min_people:
                withheld = f"fewer than {min_people} people"
            elif events < min_events:
                withheld = f"fewer than {min_events} events"
            elif members.size - events < min_events:
                withheld = f"fewer than {min_events} people without the event"
            else:
                withheld = ""
            group = _Group(
                variable=var,
                value=str(value),
                members=members,
                y=yy.astype(np.float32),
                p=p[members],
                flagged=_flag_count(position[members], n, shares),
                withheld=withheld,
            )
            if not withheld:
                group.prepare(rank_score[members])
            out.append(group)
    return out


def _interval(draws: np.ndarray, shift: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5th and 97.5th percentiles over the resamples (axis 0), NaN-aware."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: no resample had the metric
        lo, hi = np.nanquantile(draws, _LEVELS, axis=0)
    return lo + shift, hi + shift


def audit(
    y,
    p,
    rank_score,
    groups: pd.DataFrame,
    bands: Sequence[RiskBand],
    seed: int = 0,
    n_boot: int = 200,
    min_people: int = MIN_PEOPLE,
    min_events: int = MIN_EVENTS,
    curve_shares: Sequence[float] = CURVE_SHARES,
) -> FairnessAudit:
    """Audit a risk score by group on one validation population.

    Parameters
    ----------
    y : (n,) outcomes, 0/1.
    p : (n,) calibrated probabilities: O/E, calibration slope and the calibration table.
    rank_score : (n,) the score the lists rank people by (the model's uncalibrated score):
        AUROC and who is flagged at each threshold.
    groups : (n, variables) one column per grouping variable (e.g. sex, age_band,
        imd_quintile, ethnicity_group), in the order of ``y``; values are read as strings.
    bands : the specification's risk bands; a person is flagged at band ``b`` when their
        rank by ``rank_score`` is within the top ``b.top_share`` of all ``n`` people (the
        highest ``round(top_share * n)``, ties broken by order). Bands of top share 1 (the
        rest) are left out.
    seed, n_boot : the bootstrap (``n_boot`` resamples of the n people; 0 for no intervals).
    min_people, min_events : below these a group's metrics are withheld (see the module).
    curve_shares : the shares flagged at which the curves are drawn.

    Returns
    -------
    :class:`FairnessAudit`
    """
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    rank_score = np.asarray(rank_score, dtype=float)
    groups = groups.reset_index(drop=True)
    n = y.size
    if not (p.size == rank_score.size == len(groups) == n):
        raise ValueError(
            f"y, p, rank_score and groups must be of one length, not {n}, {p.size}, {rank_score.size} and {len(groups)}"
        )
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must be 0 or 1")
    kept = [b for b in bands if b.top_share < 1]
    band_shares = np.array([b.top_share for b in kept], dtype=float)
    curve = np.array(sorted(set(curve_shares)), dtype=float)
    shares = np.r_[band_shares, curve]
    descending = np.argsort(-rank_score, kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[descending] = np.arange(n)
    ascending = descending[::-1]
    parts = _groups_of(groups, ascending, position, y, p, rank_score, shares, min_people, min_events)
    reported = [g for g in parts if not g.withheld]
    point = {id(g): _metrics(g, np.ones((1, g.members.size), np.float32), exact_slope=True) for g in reported}
    binned_slope = {id(g): _metrics(g, np.ones((1, g.members.size), np.float32))["slope"] for g in reported}
    draws: dict[int, dict[str, list[np.ndarray]]] = {id(g): {} for g in reported}
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _CHUNK):
        w = _resample_weights(rng, n, min(_CHUNK, n_boot - start))
        for g in reported:
            for key, value in _metrics(g, w[:, g.members]).items():
                draws[id(g)].setdefault(key, []).append(value)
    empty = np.full(shares.size, np.nan)
    by_group, by_threshold, curves, calibration = [], [], [], []
    for g in parts:
        if g.withheld:
            m = {"auroc": np.nan, "o_e": np.nan, "slope": np.nan, "fpr": empty, "fnr": empty, "ppv": empty}
            lo = hi = m
        else:
            m = {k: v[0] for k, v in point[id(g)].items()}
            d = {k: np.concatenate(v) for k, v in draws[id(g)].items()} if n_boot else {}
            lo, hi = {}, {}
            for k in m:
                shift = m["slope"] - binned_slope[id(g)][0] if k == "slope" else 0.0
                lo[k], hi[k] = _interval(d[k], shift) if n_boot else (np.nan * m[k], np.nan * m[k])
        size = g.members.size
        by_group.append(
            {
                "variable": g.variable,
                "group": g.value,
                "people": np.nan if g.withheld else size,
                "events": np.nan if g.withheld else int(g.y.sum()),
                **{
                    f"{name}{end}": float(src[k])
                    for name, k in (("auroc", "auroc"), ("o_e", "o_e"), ("calibration_slope", "slope"))
                    for end, src in (("", m), ("_lo", lo), ("_hi", hi))
                },
                "withheld": g.withheld,
            }
        )
        for j, band in enumerate(kept):
            few_flagged = not g.withheld and g.flagged[j] < min_events
            row = {
                "variable": g.variable,
                "group": g.value,
                "band": band.name,
                "top_share": band.top_share,
                "flagged_share": np.nan if g.withheld else g.flagged[j] / size,
            }
            for k in ("fpr", "fnr", "ppv"):
                hide = k == "ppv" and few_flagged
                for end, src in (("", m), ("_lo", lo), ("_hi", hi)):
                    row[f"{k}{end}"] = np.nan if hide else float(src[k][j])
            row["withheld"] = g.withheld or (f"ppv: fewer than {min_events} flagged" if few_flagged else "")
            by_threshold.append(row)
        if g.withheld:
            continue
        for j, share in enumerate(curve, start=band_shares.size):
            curves.append(
                {
                    "variable": g.variable,
                    "group": g.value,
                    "top_share": share,
                    **{
                        f"{k}{end}": float(src[k][j])
                        for k in ("fpr", "fnr")
                        for end, src in (("", m), ("_lo", lo), ("_hi", hi))
                    },
                }
            )
        calibration.extend(_calibration_rows(g, min_people))
    return FairnessAudit(
        by_group=pd.DataFrame(by_group),
        by_threshold=pd.DataFrame(by_threshold),
        curves=pd.DataFrame(curves),
        calibration=pd.DataFrame(calibration),
        n_boot=n_boot,
    )


def _calibration_rows(g: _Group, min_people: int) -> list[dict]:
    """Observed against predicted in bins of predicted risk within the group (up to ten, each
    of at least ``min_people`` people), with Wilson 95% intervals for the observed rate."""
    bins = int(min(10, max(1, g.members.size // min_people)))
    order = np.argsort(g.p, kind="stable")
    rows = []
    for k, idx in enumerate(np.array_split(order, bins), start=1):
        people, rate = idx.size, float(g.y[idx].mean())
        z = 1.959964
        centre = (rate + z * z / (2 * people)) / (1 + z * z / people)
        half = z * np.sqrt(rate * (1 - rate) / people + z * z / (4 * people * people)) / (1 + z * z / people)
        rows.append(
            {
                "variable": g.variable,
                "group": g.value,
                "bin": k,
                "people": people,
                "mean_predicted": float(g.p[idx].mean()),
                "observed_rate": rate,
                # the Wilson interval holds the rate; min/max keep rounding (a rate of 0 or 1) from
                # putting it a hair outside
                "observed_lo": max(0.0, min(centre - half, rate)),
                "observed_hi": min(1.0, max(centre + half, rate)),
            }
        )
    return rows


def commissioner_summary(result: FairnessAudit) -> pd.DataFrame:
    """Per-group AUROC and O/E with their intervals, for the commissioner report.

    Counts follow disclosure control (:mod:`riskstrat.privacy.disclosure`): people and events
    rounded to the nearest 5, ``"*"`` for 1 to 7, ``"*"`` too for a withheld group (whose
    metrics are blank and whose reason is in ``note``). AUROC to 3 decimals, O/E to 2.
    """

    def count(value) -> object:
        if pd.isna(value):
            return SUPPRESSED
        return SUPPRESSED if DEFAULT_RULES.is_small(int(value)) else int(round_count(int(value)))

    t = result.by_group
    out = pd.DataFrame(
        {
            "variable": t["variable"],
            "group": t["group"],
            "people": [count(v) for v in t["people"]],
            "events": [count(v) for v in t["events"]],
            **{c: t[c].round(3) for c in ("auroc", "auroc_lo", "auroc_hi")},
            **{c: t[c].round(2) for c in ("o_e", "o_e_lo", "o_e_hi")},
            "note": t["withheld"].map(lambda r: f"withheld: {r}" if r else ""),
        }
    )
    return out.reset_index(drop=True)
