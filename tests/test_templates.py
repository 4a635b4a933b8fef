"""The pages are rendered from templates with autoescaping: a value from the data reaches the
reader as text, never as markup, and the page still says what it said before."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pandas as pd
from markupsafe import escape

from riskstrat.modelling.spec import RiskBand
from riskstrat.outputs.commissioner import DIMENSIONS
from riskstrat.outputs.direct_care import KEY_COUNTS, LIST_COLUMNS
from riskstrat.outputs.html import _escaped, activity_details, band_shades, practice_html, report_html
from riskstrat.privacy.disclosure import DEFAULT_RULES, SUPPRESSED

D = dt.date(2026, 10, 1)
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class _Page(HTMLParser):
    """What a browser makes of a page: the tags it opens, the text of the cells of each table
    row (inner tables' rows first), of each summary and of each figure caption."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self.texts: dict[str, list[str]] = {"summary": [], "figcaption": [], "h1": []}
        self._rows: list[list[str]] = []
        self._open: list[tuple[str, list[str]]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self._rows.append([])
        if tag in ("td", "th", *self.texts):
            self._open.append((tag, []))

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows.append(self._rows.pop())
        elif tag in ("td", "th", *self.texts):
            name, text = self._open.pop()
            assert name == tag, (name, tag)
            if tag in ("td", "th"):
                self._rows[-1].append("".join(text).strip())
            else:
                self.texts[tag].append(" ".join("".join(text).split()))

    def handle_data(self, data):
        for _, text in self._open:
            text.append(data)


def _events() -> pd.DataFrame:
    """SUS+ events of two people, most recent first per person, with markup in a provider's
    name and in a diagnosis, and a closing table tag in another person's details."""
    rows = [
        ("p3", "2026-08-02", "A&E", "admitted, by ambulance", "RXX"),
        ("p1", "2026-09-20", "emergency admission", f"diagnosis {SCRIPT}; discharged 2026-09-25", SCRIPT),
        ("p3", "2026-05-11", "outpatients", "treatment function </table><b>110</b>", None),
        ("p1", "2026-03-01", "outpatients", "treatment function 320", "RYY"),
    ]
    frame = pd.DataFrame(rows, columns=["pseudonym", "date", "setting", "detail", "provider"])
    return frame.assign(date=pd.to_datetime(frame["date"]))


def _list() -> pd.DataFrame:
    """A practice list of three people, highest risk first (p1, p2, p3)."""
    lst = pd.DataFrame(
        {
            "nhs_number": ["9990000018", "9990000026", "9990000034"],
            "risk_score": [0.3456, 0.12, 0.0049],
            "risk_band": ["very high", "high", "low"],
            "rank_in_practice": [1, 2, 3],
            "reason_1": ["heart failure", "COPD", None],
            "reason_2": [None, "10+ regular medicines", None],
            "reason_3": ["3 emergency admissions", None, None],
            "actionable_reasons": ["NSAID prescribed with heart failure", "10+ regular medicines", None],
            "background_reasons": [f"long-term conditions: heart failure and COPD; {SCRIPT}", "COPD", None],
            "age": [81, 67, 34],
            "sex": ["F", "M", "I"],
            **{c: [3, 0, 1] for c in KEY_COUNTS.values()},
            "as_of": D.isoformat(),
            "model_version": "emergency_admission_12m version 3",
        }
    )
    return lst[LIST_COLUMNS]


def _practice(name: str = f"{SCRIPT} Surgery") -> pd.Series:
    return pd.Series({"practice_code": "Y90001", "practice_name": name, "pcn_code": "U00001", "pcn_name": "North PCN"})


def test_each_person_s_activity_is_one_table_of_their_own_events_with_every_value_escaped():
    details = activity_details(_events())
    assert list(details.index) == ["p1", "p3"]
    assert list(details["events"]) == [2, 2]
    p1, p3 = (_Page(details.at[p, "table"]) for p in ("p1", "p3"))
    assert p1.rows == [
        ["date", "setting", "details", "provider"],
        ["2026-09-20", "emergency admission", f"diagnosis {SCRIPT}; discharged 2026-09-25", SCRIPT],
        ["2026-03-01", "outpatients", "treatment function 320", "RYY"],
    ]
    assert "script" not in p1.tags and details.at["p1", "table"].count(ESCAPED) == 2
    # a closing tag in the data stays text inside its person's table; a missing provider is blank
    assert p3.rows[1:] == [
        ["2026-08-02", "A&E", "admitted, by ambulance", "RXX"],
        ["2026-05-11", "outpatients", "treatment function </table><b>110</b>", ""],
    ]
    assert p3.tags.count("table") == 1 and "b" not in p3.tags


def test_script_in_a_practice_name_a_provider_and_a_diagnosis_arrives_escaped_on_the_practice_list():
    lst = _list()
    details = activity_details(_events()).reindex(["p1", "p2", "p3"])
    note = f"1 registration could not be used: {SCRIPT}."
    page = practice_html(_practice(), D, lst, details, "emergency_admission_12m version 3", (note,))
    # the page's own script (filters, search, sort) is the only one: every value's markup is text
    assert page.lower().count("<script") == 1 and page.rstrip().endswith("</script>\n</body></html>".strip())
    assert page.count(ESCAPED) == 5  # practice name, note, a reason, diagnosis, provider
    read = _Page(page)
    assert read.tags.count("script") == 1 and "b" not in read.tags
    assert read.texts["h1"] == [f"Patients at risk of emergency admission: {SCRIPT} Surgery (Y90001)"]
    assert "<title>Risk list Y90001 at 2026-10-01</title>" in page
    assert f'<p class="note">1 registration could not be used: {ESCAPED}.</p>' in page
    assert "Primary care network: North PCN (U00001). As of 2026-10-01." in page
    assert "3 registered patients, highest risk first." in page
    # without an earlier list: no change, no flags
    people = [[r[i] for i in (0, 1, 2, 4, 6, 7, 8)] for r in read.rows if len(r) == 10]
    assert [r[3] + r[5] for r in read.rows if len(r) == 10][1:] == ["", "", ""]
    assert people == [
        ["#", "NHS number", "risk", "band", "age", "sex", "reasons: to act on, background"],
        [
            "1",
            "999 000 0018",
            "34.6%",
            "very high",
            "81",
            "F",
            "To act on: NSAID prescribed with heart failure"
            f"Background: long-term conditions: heart failure and COPD; {SCRIPT}",
        ],
        ["2", "999 000 0026", "12.0%", "high", "67", "M", "To act on: 10+ regular medicinesBackground: COPD"],
        ["3", "999 000 0034", "0.5%", "low", "34", "I", ""],
    ]
    # both groups in their own paragraph, the group named, the background set apart
    assert '<p class="actionable"><strong>To act on:</strong> 10+ regular medicines</p>' in page
    assert '<p class="background">Background: COPD</p>' in page
    assert read.texts["summary"] == ["2 events", "0 events", "2 events"]
    assert page.count("<p>No hospital activity in the last 12 months.</p>") == 1  # p2
    assert [r for r in read.rows if len(r) == 4][1][3] == SCRIPT  # p1's provider, as text
    assert '<tr class="band-0" data-nhs="9990000018" data-band="very high" data-flags=""' in page
    # rows shaded by their band's rank: the lowest band (here "low", third) plain
    assert ".band-0{background:#fde2e1}.band-1{background:#fff1d6}\n" in page and ".band-2{" not in page
    assert '<table id="risk-list">' in page and ">Show all activity</button>" in page
    assert page.count("<details>") == 3


def test_a_column_escaped_at_once_is_escaped_value_by_value_as_jinja2_would():
    values = [SCRIPT, "say \"hi\" & 'bye'", "", 0.1, -1e9, 7, "a\x1fb", "plain"]
    assert _escaped(values) == [str(escape(v)) for v in values]  # even a value holding the separator
    assert _escaped(values[:-2]) == [str(escape(v)) for v in values[:-2]]  # the one-call path
    assert _escaped([]) == []


def test_every_text_of_a_practice_list_row_arrives_escaped():
    lst = _list()
    lst["sex"] = SCRIPT
    lst["risk_band"] = [f"{SCRIPT} very high", "high", "low"]
    lst["actionable_reasons"] = [SCRIPT, None, f'"quoted" & {SCRIPT}']
    details = activity_details(_events()).reindex(["p1", "p2", "p3"])
    page = practice_html(_practice("Surgery"), D, lst, details, "m", ())
    assert page.lower().count("<script") == 1  # the page's own: every value's markup is text
    read = _Page(page)
    assert read.tags.count("script") == 1 and "b" not in read.tags
    rows = [r for r in read.rows if len(r) > 8 and r[1].replace(" ", "").isdigit()]
    assert [r[1] for r in rows] == ["999 000 0018", "999 000 0026", "999 000 0034"]
    assert [r[2] for r in rows] == ["34.6%", "12.0%", "0.5%"]
    assert [r[7] for r in rows] == [SCRIPT] * 3  # sex, shown as the text it is
    assert rows[0][4] == f"{SCRIPT} very high"
    assert f"To act on: {SCRIPT}" in rows[0][8] and f'To act on: "quoted" & {SCRIPT}' in rows[2][8]
    assert f'data-band="{ESCAPED} very high"' in page


def test_rows_are_shaded_by_the_rank_of_the_model_s_own_bands_whatever_their_names():
    lst = _list()
    lst["risk_band"] = ["red", "amber", "green"]
    details = activity_details(_events()).reindex(["p1", "p2", "p3"])
    page = practice_html(_practice(), D, lst, details, "m", (), bands=["red", "amber", "green"])
    assert ".band-0{background:#fde2e1}.band-1{background:#fff1d6}\n" in page and ".band-2{" not in page
    assert '<tr class="band-0" data-nhs="9990000018" data-band="red"' in page
    assert '<tr class="band-2" data-nhs="9990000034" data-band="green"' in page
    assert band_shades(["a", "b", "c", "d", "e", "f"]) == ["#fde2e1", "#fff1d6", "#fffbe6", "#fffbe6", "#fffbe6"]


def _aggregates() -> pd.DataFrame:
    """Published aggregates by every dimension, with markup in a practice code."""
    measures = ["people_very_high", "people_high", "people_low", "people_Total", "people_at_risk", "percent_at_risk"]
    total = [15, 30, 340, 385, 45, 11.7]
    cells = {dim: {"U00001" if dim == "pcn_code" else "1": total, "Total": total} for dim in DIMENSIONS}
    cells["practice_code"] = {
        "Y90001": [10, 20, 300, 330, 30, 9.1],
        SCRIPT: [SUPPRESSED, 10, 40, 55, SUPPRESSED, SUPPRESSED],
        "Total": total,
    }
    rows = [
        (dim, value, measure, shown)
        for dim, values in cells.items()
        for value, published in values.items()
        for measure, shown in zip(measures, published, strict=True)
    ]
    return pd.DataFrame(rows, columns=["dimension", "value", "measure", "published"])


def test_script_in_a_practice_code_arrives_escaped_on_the_commissioner_report():
    bands = [
        RiskBand(name="very high", top_share=0.005),
        RiskBand(name="high", top_share=0.05),
        RiskBand(name="low", top_share=1.0),
    ]
    sizes = pd.DataFrame({"cohort": ["high_cost", "recently_discharged"], "people": [55, SUPPRESSED]})
    page = report_html(D, _aggregates(), sizes, "emergency_admission_12m version 3", bands, DEFAULT_RULES)
    assert "<script" not in page.lower()
    assert page.count(ESCAPED) == 2  # named as suppressed under the practice chart, and in its table
    read = _Page(page)
    assert "script" not in read.tags
    assert "<title>Risk stratification report 2026-10-01</title>" in page
    assert "At risk: the very high and high band(s), the top 5% of the population." in " ".join(page.split())
    assert read.tags.count("figure") == 6 and read.tags.count("img") == 6
    assert read.texts["figcaption"][:2] == [
        "Risk pyramid: people by risk band.",
        f"Percentage at risk by practice. Suppressed: {SCRIPT}.",
    ]
    assert "Percentage at risk by sex." in read.texts["figcaption"]
    assert ["high_cost", "55"] in read.rows and ["recently_discharged", "*"] in read.rows
    by_practice = read.rows[read.rows.index(["cohort", "people"]) + 3 :][:4]
    assert by_practice == [
        ["value", "people_very_high", "people_high", "people_low", "people_Total", "people_at_risk", "percent_at_risk"],
        [SCRIPT, "*", "10", "40", "55", "*", "*"],
        ["Total", "15", "30", "340", "385", "45", "11.7"],
        ["Y90001", "10", "20", "300", "330", "30", "9.1"],
    ]


def test_a_chart_with_nothing_publishable_says_so_in_words():
    agg = _aggregates()
    agg.loc[(agg["dimension"] == "sex") & agg["measure"].eq("percent_at_risk"), "published"] = SUPPRESSED
    sizes = pd.DataFrame({"cohort": ["high_cost"], "people": [55]})
    page = report_html(
        D,
        agg,
        sizes,
        "m",
        [RiskBand(name="very high", top_share=0.05), RiskBand(name="low", top_share=1.0)],
        DEFAULT_RULES,
    )
    read = _Page(page)
    assert read.tags.count("figure") == 6 and read.tags.count("img") == 5
    assert page.count("Nothing publishable: every value of this chart is redacted.") == 1
    assert "Percentage at risk by sex. Suppressed: 1." in read.texts["figcaption"]
