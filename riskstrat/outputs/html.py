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


def report_html(as_of: dt.date, aggregates: pd.DataFrame, cohort_sizes: pd.DataFrame, model: str, bands, rules) -> str:
    """The commissioner report from *published* (protected) aggregates only; ``bands`` are the
    model's :class:`~riskstrat.outputs.commissioner.Band` list, highest risk first, and
    ``rules`` the :class:`~riskstrat.privacy.disclosure.DisclosureRules` applied."""
    from riskstrat.outputs.commissioner import AT_RISK_SHARE, DIMENSIONS, at_risk_bands, measure_name

    at_risk = f"the {' and '.join(at_risk_bands(bands))} band(s), the top {AT_RISK_SHARE:.0%} of the population"
    bands = [b.name for b in bands]

    def published(dim: str, measure: str) -> pd.Series:
        rows = aggregates[(aggregates["dimension"] == dim) & (aggregates["measure"] == measure)]
        return pd.Series(rows["published"].to_numpy(), index=rows["value"].to_numpy())

    sections = []

    def add(title: str, chart: tuple[str | None, list[str]]) -> None:
        png, hidden = chart
        note = f"Suppressed: {', '.join(hidden)}." if hidden else ""
        if png is None:
            sections.append(
                f'<figure class="empty"><p>Nothing publishable: every value of this chart is redacted.</p>'
                f"<figcaption>{_e(title)}. {_e(note)}</figcaption></figure>"
            )
        else:
            sections.append(
                f'<figure><img alt="{_e(title)}" src="data:image/png;base64,{png}">'
                f'<figcaption>{_e(title)}. <span class="suppressed">{_e(note)}</span></figcaption></figure>'
            )

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
        tables.append(
            f"<h2>By {_e(titles[dim])}</h2>"
            + sub[[c for c in columns if c in sub.columns]].to_html(escape=True, border=0)
        )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Risk stratification report {as_of}</title>
<style>{_CSS} figure{{display:inline-block;margin:.5rem;vertical-align:top}} img{{max-width:560px}}
figure.empty p{{width:520px;padding:2rem 1rem;border:1px dashed #999;color:#444}}</style></head><body>
<h1>Population risk stratification: commissioner report</h1>
<div class="meta">As of {as_of}. Model {_e(model)}. At risk: {_e(at_risk)}.
Aggregates only. {_e(rules_sentence(rules))}</div>
{"".join(sections)}<h2>Cohort sizes</h2>{cohort_sizes.to_html(index=False, escape=True, border=0)}{"".join(tables)}
</body></html>"""
