"""Self-contained HTML: the printable practice list and the commissioner report.

No scripts from elsewhere, no external fonts or images: each file opens offline in any
browser and prints. The markup is in jinja2 templates (``riskstrat/outputs/templates``:
``base.html.j2``, ``practice_list.html.j2``, ``activity.html.j2``,
``commissioner_report.html.j2``, ``monitoring.html.j2``) rendered with autoescaping on, so every value from the data
is HTML-escaped; the only HTML passed into a template is what another template rendered.
"""

from __future__ import annotations

import base64
import datetime as dt
import io

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from riskstrat.outputs.worklist import reason_key

__all__ = [
    "BAND_SHADES",
    "FLAGS",
    "activity_details",
    "band_shades",
    "format_nhs_number",
    "monitoring_html",
    "practice_html",
    "report_html",
]


def format_nhs_number(n: str) -> str:
    """The NHS number as shown to clinicians: 3 3 4 digits."""
    return f"{n[:3]} {n[3:6]} {n[6:]}" if len(n) == 10 else n


_TEMPLATES = Environment(
    loader=PackageLoader("riskstrat.outputs", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _percent(p: float) -> str:
    """A probability as a page shows it: 12.3%."""
    return f"{p * 100:.1f}%"


_TEMPLATES.filters["nhs_number"] = format_nhs_number
_TEMPLATES.filters["percent"] = _percent
_TEMPLATES.filters["thousands"] = lambda n: f"{n:,}"

#: joins a column's texts for :func:`_escaped`: a control character that no value holds (checked)
#: and that escaping leaves as it is
_SEPARATOR = "\x1f"


def _escaped(values: list) -> list[str]:
    """Each value as text, HTML-escaped exactly as jinja2's autoescaping escapes it (markupsafe's
    ``escape``), in one call over the whole column joined: a practice list has a row of about
    twenty values per patient, and escaping them one by one was most of the time spent writing
    a region's pages (a page took 118 µs a patient, 40 µs now, the same bytes;
    ``docs/performance.md``)."""
    texts = [v if isinstance(v, str) else str(v) for v in values]
    joined = _SEPARATOR.join(texts)
    if joined.count(_SEPARATOR) != max(len(texts) - 1, 0):  # a value holds the separator: one by one
        return [str(escape(t)) for t in texts]
    return str(escape(joined)).split(_SEPARATOR) if texts else []


#: the shading of a list's rows by band, highest band first (red, amber, yellow); the lowest band
#: is left plain, and bands beyond these take the last shade. The bands themselves, names and
#: order, are the model's (its specification's ``risk_bands``).
BAND_SHADES = ("#fde2e1", "#fff1d6", "#fffbe6")


def band_shades(bands: list[str]) -> list[str]:
    """The background of each band but the lowest, by rank (``BAND_SHADES``)."""
    return [BAND_SHADES[min(i, len(BAND_SHADES) - 1)] for i in range(len(bands) - 1)]


def _cells(values: pd.Series) -> list:
    """The values as a page shows them, before escaping: a missing value as ""."""
    return np.where(values.isna().to_numpy(), "", values.to_numpy(dtype=object)).tolist()


def _shown(value):
    """One value as a page shows it, before escaping: a missing value as ""."""
    return "" if pd.isna(value) else value


def activity_details(activity: pd.DataFrame) -> pd.DataFrame:
    """Each person's SUS+ events as an HTML table, for the expandable cell of a practice list.

    Parameters
    ----------
    activity : DataFrame
        One row per event: ``pseudonym``, ``date``, ``setting``, ``detail``, ``provider``
        (:func:`riskstrat.outputs.direct_care.recent_activity`), most recent first per person.

    Returns
    -------
    DataFrame indexed by pseudonym: ``events`` (count) and ``table`` (HTML).
    """
    activity = activity.sort_values("pseudonym", kind="stable")  # keeps each person's order
    dates = activity["date"].astype(str).str.slice(0, 10).tolist()
    events = list(zip(dates, *(_cells(activity[c]) for c in ("setting", "detail", "provider")), strict=True))
    people = activity["pseudonym"].to_numpy()
    starts = np.flatnonzero(np.r_[True, people[1:] != people[:-1]]) if len(people) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(people)]
    table = _TEMPLATES.get_template("activity.html.j2").module.activity_table
    tables = [table(events[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    return pd.DataFrame({"events": ends - starts, "table": tables}, index=pd.Index(people[starts], name="pseudonym"))


def _change(points: float, before_risk: float, before_band: str, first_list: bool) -> tuple[str, str, float]:
    """A row's change cell: (the change, what it was, the value it sorts by)."""
    if first_list:
        return "", "", 0.0
    if pd.isna(before_risk):
        return "new to list", "not on the previous list", -1e9
    return f"{points:+.1f} pts", f"was {before_risk * 100:.1f}% {before_band}", float(points)


#: the flags a row can carry, as the page's filter names them (data-flags) and shows them
FLAGS = {
    "new": "new to top bands",
    "rising": "rising",
    "discharged": "recently discharged",
    "register": "on register",
}
_REGISTER_WORDS = {"case_managed": "case managed", "declined": "declined", "not_appropriate": "not appropriate"}


def practice_html(
    practice: pd.Series,
    as_of: dt.date,
    lst: pd.DataFrame,
    activity: pd.DataFrame,
    model: str,
    notes: tuple[str, ...] = (),
    *,
    bands: list[str] | None = None,
    top_bands: list[str] | None = None,
    summary=None,
    discharged: pd.DataFrame | None = None,
    files: list[tuple[str, str]] = (),
    rising_points: float | None = None,
    discharged_days: int = 30,
) -> str:
    """The printable list of one practice, with its summary, filters, and recently discharged.

    Parameters
    ----------
    practice : Series
        The practice's row of ``ref_practices`` (code, name, PCN code and name).
    lst : DataFrame
        The practice list (:data:`riskstrat.outputs.direct_care.LIST_COLUMNS`), highest risk first,
        with the changes since the previous list when known
        (:data:`riskstrat.outputs.worklist.CHANGE_COLUMNS`; without them: no flags, no summary).
        Its reasons are shown in two groups, what could be acted on and the background.
    activity : DataFrame
        ``events`` and ``table`` for each row of ``lst``, in the same order
        (:func:`activity_details`: ``table`` is HTML and is inserted as it is); people with
        no activity have missing values.
    notes : the practice's registered people who are not on the list, and why, in words.
    bands : the band names, highest risk first (the band filter's choices and sort order);
        ``top_bands`` those a patient is "new to" (very high and high by default).
    summary : :class:`riskstrat.outputs.worklist.FlagCounts` of the list.
    discharged : the recently discharged section: one row per spell (``nhs_number``,
        ``discharge_date``, ``admission_date``, ``length_of_stay_days``, ``provider_code``,
        ``provider_name`` (shown; the code when absent),
        ``risk_score``, ``risk_band``, ``register_status``).
    files : (file name, what it is for) of the practice's other files this month.
    """
    n = len(lst)
    marked = "previous_as_of" in lst.columns
    blank = pd.Series([""] * n, index=lst.index, dtype=object)
    false = pd.Series([False] * n, index=lst.index)
    first_list = (not marked) or summary is None or summary.first_list
    bands = bands or list(dict.fromkeys(lst["risk_band"].astype(str)))
    band_rank = {b: i for i, b in enumerate(bands)}
    reasons = list(zip(_cells(lst["actionable_reasons"]), _cells(lst["background_reasons"]), strict=True))
    keys = [[reason_key(x) for x in "; ".join(r for r in pair if r).split("; ") if x] for pair in reasons]
    changes = [
        _change(p, r, b, first_list)
        for p, r, b in zip(
            lst["change_points"].tolist() if marked else [np.nan] * n,
            lst["previous_risk_score"].tolist() if marked else [np.nan] * n,
            _cells(lst["previous_risk_band"]) if marked else [""] * n,
            strict=True,
        )
    ]
    status = lst["register_status"].fillna("") if marked else blank
    flag_columns = {
        "new": (lst["new_to_top_bands"] if marked else false).to_numpy(dtype=bool),
        "rising": (lst["rising"] if marked else false).to_numpy(dtype=bool),
        "discharged": (lst["recently_discharged"] if marked else false).to_numpy(dtype=bool),
        "register": (status != "").to_numpy(dtype=bool),
    }
    statuses = status.astype(str).tolist()
    flags = [[f for f, col in flag_columns.items() if col[i]] for i in range(n)]
    labels = [
        [_REGISTER_WORDS.get(statuses[i], FLAGS[f]) if f == "register" else FLAGS[f] for f in fl]
        for i, fl in enumerate(flags)
    ]
    tables = activity["table"]
    risks = lst["risk_score"].to_numpy(dtype=float).tolist()
    numbers = _cells(lst["nhs_number"])
    changed = list(zip(*changes, strict=True)) if n else [[], [], []]
    shown = {pair for fl, la in zip(flags, labels, strict=True) for pair in zip(fl, la, strict=True)}
    pairs = {(f, lab): (_escaped([f])[0], _escaped([lab])[0]) for f, lab in shown}  # a few distinct pairs
    # one flat tuple per row (the template unpacks it in its for statement: no item look-ups and
    # no loop variables per row, which jinja2 would otherwise make for each of a region's people).
    # The rows are written without autoescaping (template comment): every text below is escaped
    # here, a column at a time (:func:`_escaped`); numbers are numbers; the activity is HTML that
    # its own template escaped.
    rows = zip(
        lst["rank_in_practice"].astype(int).tolist(),
        _escaped(numbers),
        _escaped([format_nhs_number(x) for x in numbers]),
        risks,
        _escaped([_percent(r) for r in risks]),
        _escaped(list(changed[0])),
        _escaped(list(changed[1])),
        list(changed[2]),
        _escaped(_cells(lst["risk_band"])),
        [band_rank.get(str(b), len(bands)) for b in lst["risk_band"]],
        _escaped([" ".join(fl) for fl in flags]),
        [[pairs[p] for p in zip(fl, la, strict=True)] for fl, la in zip(flags, labels, strict=True)],
        lst["age"].astype(int).tolist(),
        _escaped(_cells(lst["sex"])),
        *(_escaped(list(col)) for col in (zip(*reasons, strict=True) if n else ([], []))),
        _escaped(["|".join(k) for k in keys]),
        activity["events"].fillna(0).astype(int).tolist(),
        [None if none else Markup(t) for t, none in zip(tables.tolist(), tables.isna().tolist(), strict=True)],
        strict=True,
    )
    reason_counts = pd.Series([k for ks in keys for k in dict.fromkeys(ks)], dtype=object).value_counts()
    reason_choices = sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    spells = []
    if discharged is not None:
        for r in discharged.itertuples(index=False):
            spells.append(
                (
                    r.nhs_number,
                    str(r.discharge_date),
                    str(r.admission_date),
                    int(r.length_of_stay_days),
                    _shown(getattr(r, "provider_name", r.provider_code)),
                    float(r.risk_score),
                    r.risk_band,
                    _REGISTER_WORDS.get(r.register_status, ""),
                )
            )
    return _TEMPLATES.get_template("practice_list.html.j2").render(
        practice={k: _shown(practice[k]) for k in ("practice_code", "practice_name", "pcn_code", "pcn_name")},
        as_of=as_of,
        model=model,
        patients=n,
        notes=notes,
        rows=rows,
        bands=bands,
        band_shades=band_shades(bands),
        top_bands=top_bands or bands[:1],
        flags=FLAGS,
        reason_choices=reason_choices,
        summary=summary,
        previous_as_of=lst["previous_as_of"].iloc[0] if marked and n else "",
        rising_points=rising_points,
        discharged_days=discharged_days,
        spells=spells if discharged is not None else None,
        files=list(files),
    )


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _bar_chart(labels: list[str], values: list, title: str, xlabel: str, colors=None) -> tuple[str | None, list[str]]:
    """A horizontal bar chart of published values, top to bottom in the order given.

    A redacted value (``*``) is drawn as a hatched gap labelled "suppressed" across the plot,
    never as a zero-length bar. Returns the PNG (None when no value is publishable: the
    report then says so in words) and the labels that were suppressed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from riskstrat.privacy.disclosure import SUPPRESSED

    hidden = [label for label, v in zip(labels, values, strict=True) if v == SUPPRESSED]
    shown = [float(v) for v in values if v != SUPPRESSED]
    if not shown:
        return None, hidden
    top = max(max(shown), 1.0)
    fig, ax = plt.subplots(figsize=(6, 0.32 * len(labels) + 1.2))
    ys = np.arange(len(labels))[::-1]
    for y, v, c in zip(ys, values, colors or [None] * len(labels), strict=True):
        if v == SUPPRESSED:
            ax.barh(y, top, color="none", edgecolor="#9a9a9a", hatch="///", linewidth=0.6)
            ax.text(
                top / 2,
                y,
                "suppressed",
                ha="center",
                va="center",
                fontsize=8,
                color="#444",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
            )
        else:
            ax.barh(y, float(v), color=c or "#4a78b5")
            ax.text(float(v), y, f" {float(v):g}", va="center", fontsize=8)  # a true 0 says 0
    ax.set_yticks(ys, labels)
    ax.set_xlim(0, top * 1.12)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    png = _png(fig)
    plt.close(fig)
    return png, hidden


def rules_sentence(rules) -> str:
    """The disclosure rules of the report in one sentence."""
    if rules.rates == "midpoint6":
        rate = "percentages are computed from counts rounded to midpoint 6 (1-6 shown as 3, 7-12 as 9, and so on)"
    else:
        rate = "percentages are computed from the rounded counts and withheld (*) when either count is redacted"
    return (
        f"Counts of {rules.suppress_min} to {rules.suppress_max} people are redacted (*), every other count, totals "
        f"included, is rounded to the nearest {rules.round_to}, {rate}, and a further cell is redacted only where a "
        "redacted one could otherwise be worked out exactly (the file disclosure_log.csv records the rule applied "
        "to every cell)."
    )


def report_html(
    as_of: dt.date,
    aggregates: pd.DataFrame,
    cohort_sizes: pd.DataFrame,
    model: str,
    bands,
    rules,
    fairness: pd.DataFrame | None = None,
) -> str:
    """The commissioner report from *published* (protected) aggregates only; ``bands`` are the
    model's :class:`~riskstrat.modelling.spec.RiskBand` list, highest risk first, and
    ``rules`` the :class:`~riskstrat.privacy.disclosure.DisclosureRules` applied; ``fairness``
    the scoring model's fairness summary from its validation
    (:func:`riskstrat.modelling.fairness.commissioner_summary`: counts already protected)."""
    from riskstrat.outputs.commissioner import AT_RISK_SHARE, DIMENSIONS, at_risk_bands, measure_name

    risky = at_risk_bands(bands)
    bands = [b.name for b in bands]

    def published(dim: str, measure: str) -> pd.Series:
        rows = aggregates[(aggregates["dimension"] == dim) & (aggregates["measure"] == measure)]
        return pd.Series(rows["published"].to_numpy(), index=rows["value"].to_numpy())

    charts = []

    def add(title: str, chart: tuple[str | None, list[str]]) -> None:
        png, hidden = chart
        charts.append({"title": title, "png": png, "suppressed": hidden})

    pyramid = [published("age_band", measure_name(b)).get("Total") for b in bands]
    palette = ["#d7301f", "#fc8d59", "#fdd49e", "#9ecae1", "#c6dbef", "#deebf7"]
    add(
        "Risk pyramid: people by risk band",
        _bar_chart(bands, pyramid, "The risk pyramid: people by risk band", "people (rounded)", palette[: len(bands)]),
    )
    titles = {
        "practice_code": "practice",
        "pcn_code": "PCN",
        "age_band": "age band",
        "sex": "sex",
        "imd_quintile": "IMD quintile (1 = most deprived)",
    }
    pct_measure = "percent_at_risk_midpoint6" if rules.rates == "midpoint6" else "percent_at_risk"
    for dim in DIMENSIONS:
        pct = published(dim, pct_measure).drop("Total", errors="ignore")
        title = f"Percentage at risk by {titles[dim]}"
        add(title, _bar_chart([str(x) for x in pct.index], list(pct.to_numpy()), title, "% of registered people"))
    tables = []
    columns = [*(measure_name(b) for b in [*bands, "Total"]), "people_at_risk", pct_measure]
    for dim in DIMENSIONS:
        sub = aggregates[aggregates["dimension"] == dim].pivot(index="value", columns="measure", values="published")
        sub = sub[[c for c in columns if c in sub.columns]]
        rows = zip(sub.index.tolist(), *(_cells(sub[c]) for c in sub.columns), strict=True)
        tables.append({"title": titles[dim], "header": ["value", *sub.columns], "rows": list(rows)})
    sizes = [_cells(cohort_sizes[c]) for c in cohort_sizes.columns]
    return _TEMPLATES.get_template("commissioner_report.html.j2").render(
        as_of=as_of,
        model=model,
        at_risk_bands=risky,
        at_risk_share=f"{AT_RISK_SHARE:.0%}",
        rules=rules_sentence(rules),
        charts=charts,
        cohort_sizes={"header": list(cohort_sizes.columns), "rows": list(zip(*sizes, strict=True))},
        tables=tables,
        fairness=None
        if fairness is None
        else {
            "header": list(fairness.columns),
            "rows": [[_blank(v) for v in r] for r in fairness.itertuples(index=False)],
        },
    )


def _blank(value) -> object:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else value


def _figure(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.{digits}f}" if isinstance(value, float) else f"{value:,}"


def _monitoring_rows(bands: list[str]) -> list[tuple[str, str, str, str | None]]:
    """The figures of the monitoring page, in order: label, the label-free key, the realised key
    and the anticipated key (validation's figure moved by the label-free change)."""
    rows = [
        ("people", "people", "people", None),
        ("events", "expected_events", "events", None),
        ("event rate", "expected_prevalence", "", None),
        ("Brier score", "expected_brier", "", None),
        ("AUROC", "expected_auroc", "auroc", "anticipated_auroc"),
        ("observed / expected events", "", "observed_over_expected", None),
        ("calibration slope", "", "calibration_slope", None),
    ]
    for band in bands:
        key = "_".join(band.split())
        rows.append((f"PPV, {band} and above", f"expected_ppv_{key}", f"ppv_{key}", f"anticipated_ppv_{key}"))
        rows.append((f"share of events flagged, {band} and above", f"expected_sensitivity_{key}", "", None))
    return rows


def monitoring_html(record: dict) -> str:
    """The monitoring page of one month from its record (:func:`riskstrat.stages.monitor.monitor`:
    figures only, no person's row)."""
    rows = _monitoring_rows(list(record["flagged"]))
    reference, validation, now = record["reference_expected"], record.get("validation") or {}, record["expected"]

    def get(figures: dict, key: str | None) -> str:
        return _figure(figures.get(key)) if key else ""

    expected = [[label, get(reference, e), get(validation, r), get(now, e), get(now, a)] for label, e, r, a in rows]
    realised = None
    if record["realised"] is not None:
        r = record["realised"]
        table = [
            [label, get(r["expected"], e), get(r["expected"], a), get(r["realised"], k)] for label, e, k, a in rows
        ]
        exposure = None
        if r.get("at_risk_by_exposure"):
            groups = r["at_risk_by_exposure"]
            exposure = [
                [label, _figure(g["people"]), _figure(g["events"]), _figure(g["observed_over_expected"])]
                for label, g in (("shown on the lists", groups["shown"]), ("held out", groups["held_out"]))
            ]
        realised = {
            "as_of": r["as_of"],
            "model": r["model"],
            "horizon_days": r["horizon_days"],
            "rows": table,
            "exposure": exposure,
        }
    warn = record["thresholds"]["psi_warning"]
    measures = [("risk score", record["psi_score"]), *record["psi_features"].items()]
    top = max([warn, *(v for _, v in measures)])
    psi_rows = [
        (name, f"{v:.3f}", "major" if v > warn else "moderate" if v > 0.1 else "ok", round(300 * v / top))
        for name, v in measures
    ]
    thresholds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in record["thresholds"].items())
    return _TEMPLATES.get_template("monitoring.html.j2").render(
        as_of=record["as_of"],
        model=record["model"],
        people=record["people"],
        reference=record["reference"],
        warnings=record["warnings"],
        expected=expected,
        realised=realised,
        psi=psi_rows,
        psi_warning=warn,
        thresholds=thresholds,
    )
