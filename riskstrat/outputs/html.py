"""Self-contained HTML: the printable practice list and the commissioner report.

No scripts from elsewhere, no external fonts or images: each file opens offline in any
browser and prints. Every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io

import numpy as np
import pandas as pd

__all__ = ["activity_details", "format_nhs_number", "practice_html", "report_html"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Arial,sans-serif;margin:1.5rem;color:#1d1d1d}
h1{font-size:1.4rem;margin:0 0 .2rem} .meta{color:#555;margin-bottom:1rem}
table{border-collapse:collapse;width:100%;font-size:.9rem} th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;
text-align:left;vertical-align:top} th{background:#f2f4f7;position:sticky;top:0}
.band-very-high{background:#fde2e1}.band-high{background:#fff1d6}.band-moderate{background:#fffbe6}
details summary{cursor:pointer;color:#005eb8}
.activity td,.activity th{font-size:.82rem;border:none;padding:.15rem .4rem}
.num{text-align:right} .nhs,.activity td:first-child{white-space:nowrap} button{margin:.5rem 0}
@media print{button{display:none} details{display:block} details>summary{list-style:none}
details:not([open]) .activity{display:block} th{position:static}}
"""


def format_nhs_number(n: str) -> str:
    """The NHS number as shown to clinicians: 3 3 4 digits."""
    return f"{n[:3]} {n[3:6]} {n[6:]}" if len(n) == 10 else n


def _e(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return html.escape(str(value))


def _escaped(values: pd.Series) -> np.ndarray:
    """Each value as escaped text ("" for missing), escaping each distinct value once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    escaped = np.array([_e(u) for u in uniques] + [""], dtype=object)
    return escaped[codes]  # the sentinel -1 picks the trailing ""


_NO_ACTIVITY = "<p>No hospital activity in the last 12 months.</p>"
_ACTIVITY_HEAD = '<table class="activity"><tr><th>date</th><th>setting</th><th>details</th><th>provider</th></tr>'


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
    dates = activity["date"].astype(str).str.slice(0, 10)
    cells = [_escaped(col) for col in (dates, activity["setting"], activity["detail"], activity["provider"])]
    rows = [f"<tr><td>{d}</td><td>{s}</td><td>{x}</td><td>{p}</td></tr>" for d, s, x, p in zip(*cells, strict=True)]
    people = activity["pseudonym"].to_numpy()
    starts = np.flatnonzero(np.r_[True, people[1:] != people[:-1]]) if len(people) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(people)]
    tables = [f"{_ACTIVITY_HEAD}{''.join(rows[a:b])}</table>" for a, b in zip(starts, ends, strict=True)]
    return pd.DataFrame({"events": ends - starts, "table": tables}, index=pd.Index(people[starts], name="pseudonym"))


def practice_html(
    practice: pd.Series,
    as_of: dt.date,
    lst: pd.DataFrame,
    activity: pd.DataFrame,
    model: str,
    notes: tuple[str, ...] = (),
) -> str:
    """The printable list of one practice.

    Parameters
    ----------
    practice : Series
        The practice's row of ``ref_practices`` (code, name, PCN code and name).
    lst : DataFrame
        The practice list (:data:`riskstrat.outputs.direct_care.LIST_COLUMNS`), highest risk first.
    activity : DataFrame
        ``events`` and ``table`` for each row of ``lst``, in the same order
        (:func:`activity_details`); people with no activity have missing values.
    notes : the practice's registered people who are not on the list, and why, in words.
    """
    reasons = [_escaped(lst[c]) for c in ("reason_1", "reason_2", "reason_3")]
    joined = ["; ".join(x for x in r if x) for r in zip(*reasons, strict=True)]
    sex = lst["sex"].astype(str).map({"1": "M", "2": "F"}).fillna("-")
    events = activity["events"].fillna(0).astype(int).to_numpy()
    tables = activity["table"].fillna(_NO_ACTIVITY).to_numpy()
    rows = [
        f'<tr class="band-{band.replace(" ", "-")}" data-nhs="{nhs}"><td class="num">{rank}</td>'
        f'<td class="nhs">{format_nhs_number(nhs)}</td><td class="num">{risk * 100:.1f}%</td>'
        f"<td>{band}</td><td>{age}</td>"
        f"<td>{sx}</td><td>{why}</td><td><details><summary>{n} event{'s' if n != 1 else ''}</summary>"
        f"{table}</details></td></tr>"
        for rank, nhs, risk, band, age, sx, why, n, table in zip(
            lst["rank_in_practice"].astype(int),
            _escaped(lst["nhs_number"]),
            lst["risk_score"].to_numpy(dtype=float),
            _escaped(lst["risk_band"]),
            lst["age"].astype(int),
            sex,
            joined,
            events,
            tables,
            strict=True,
        )
    ]
    code, name = _e(practice["practice_code"]), _e(practice["practice_name"])
    pcn = f"{_e(practice['pcn_name'])} ({_e(practice['pcn_code'])})"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Risk list {code} at {as_of}</title><style>{_CSS}</style></head><body>
<h1>Patients at risk of emergency admission: {name} ({code})</h1>
<div class="meta">Primary care network: {pcn}. As of {as_of}. Model {_e(model)}. For direct care by clinicians with a
legitimate relationship with the patient. Risk = probability of an emergency admission in the next 12 months.
{len(lst):,} registered patients, highest risk first.</div>
{"".join(f'<p class="note">{_e(n)}</p>' for n in notes)}
<button onclick="document.querySelectorAll('details').forEach(d=>d.open=true)">Show all activity</button>
<table id="risk-list"><thead><tr><th>#</th><th>NHS number</th><th>risk</th><th>band</th><th>age</th><th>sex</th>
<th>main reasons</th><th>hospital activity, last 12 months</th></tr></thead><tbody>
{"".join(rows)}</tbody></table></body></html>"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def report_html(as_of: dt.date, aggregates: pd.DataFrame, cohort_sizes: pd.DataFrame, model: str) -> str:
    """The commissioner report from *published* (suppressed) aggregates only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def published(dim: str, measure: str) -> pd.Series:
        rows = aggregates[(aggregates["dimension"] == dim) & (aggregates["measure"] == measure)]
        return pd.Series(rows["published"].to_numpy(), index=rows["value"].to_numpy())

    charts = []
    bands = ["very high", "high", "moderate", "low"]
    totals = aggregates[(aggregates["dimension"] == "age_band") & (aggregates["value"] == "Total")]
    pyramid = {b: totals.loc[totals["measure"] == f"people_{b.replace(' ', '_')}", "published"].iloc[0] for b in bands}
    fig, ax = plt.subplots(figsize=(6, 2.8))
    vals = [0 if v == "*" else float(v) for v in pyramid.values()]
    ax.barh(list(pyramid)[::-1], vals[::-1], color=["#9ecae1", "#fdd49e", "#fc8d59", "#d7301f"])
    ax.set_title("The risk pyramid: people by risk band")
    ax.set_xlabel("people (rounded to 5)")
    charts.append(("Risk pyramid", _png(fig)))
    plt.close(fig)
    for dim, title in (
        ("practice_code", "practice"),
        ("pcn_code", "PCN"),
        ("age_band", "age band"),
        ("sex", "sex"),
        ("imd_quintile", "IMD quintile (1 = most deprived)"),
    ):
        pct = published(dim, "percent_at_risk").drop("Total", errors="ignore")
        fig, ax = plt.subplots(figsize=(6, 0.28 * len(pct) + 1.2))
        ax.barh(pct.index.astype(str)[::-1], [0 if v == "*" else float(v) for v in pct.to_numpy()[::-1]])
        ax.set_title(f"Percentage at high or very high risk by {title}")
        ax.set_xlabel("% (suppressed cells shown as 0)")
        charts.append((f"At risk by {title}", _png(fig)))
        plt.close(fig)
    tables = []
    for dim in ("practice_code", "pcn_code", "age_band", "sex", "imd_quintile"):
        sub = aggregates[aggregates["dimension"] == dim].pivot(index="value", columns="measure", values="published")
        cols = [
            c
            for c in [
                "people_very_high",
                "people_high",
                "people_moderate",
                "people_low",
                "people_Total",
                "people_at_risk",
                "percent_at_risk",
            ]
            if c in sub.columns
        ]
        tables.append(f"<h2>By {_e(dim)}</h2>" + sub[cols].to_html(escape=True, border=0))
    imgs = "".join(
        f'<figure><img alt="{_e(t)}" src="data:image/png;base64,{p}"><figcaption>{_e(t)}</figcaption></figure>'
        for t, p in charts
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Risk stratification report {as_of}</title>
<style>{_CSS} figure{{display:inline-block;margin:.5rem}} img{{max-width:560px}}</style></head><body>
<h1>Population risk stratification: commissioner report</h1>
<div class="meta">As of {as_of}. Model {_e(model)}. Aggregates only, with small-number suppression: counts of 1-7
are shown as *, other counts are rounded to the nearest 5 and percentages use the rounded counts.</div>
{imgs}<h2>Cohort sizes</h2>{cohort_sizes.to_html(index=False, escape=True, border=0)}{"".join(tables)}
</body></html>"""
