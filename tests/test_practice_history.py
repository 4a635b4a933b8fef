"""Two monthly runs end to end: what changed since the practice's previous list, its care
register, the recently discharged and the import files (issue 16).

September's lists are exported from real scores. Then the previous month is *constructed*:
September's scores are rewritten so that, at practice A, one person rises through the bands,
one rises by points within a band, one falls, one arrives (absent from September), and one
moves from practice B to A (on B's September list, so they leave B and arrive at A). October
is exported against it, with a care register holding entries of A and one entry of B for a
patient of A, and every flag is checked against its definition computed here, independently.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from markupsafe import escape

from riskstrat.config import Config, PracticeListSettings
from riskstrat.outputs.worklist import IMPORT_HEADER, import_texts
from riskstrat.privacy.audit import AuditLog
from riskstrat.privacy.vault import open_vault, write_register
from riskstrat.schema import EMERGENCY_ADMISSION_METHODS
from riskstrat.workdir import WorkDir

from .conftest import VAULT_KEY
from .test_fail_closed import _fast_spec
from .test_pages import ARTIFACTS, browser  # noqa: F401 - the module fixture

pytestmark = pytest.mark.slow

SEPTEMBER, OCTOBER = dt.date(2026, 9, 1), dt.date(2026, 10, 1)
BANDS = ["very high", "high", "moderate", "low"]  # the default specification's, highest first
TOP = {"very high", "high"}
BATCH = 7  # a small import batch, so that October's files split


def _vault_people(wd: WorkDir, code: str, as_of: dt.date) -> pd.DataFrame:
    vault = open_vault(wd.vault, VAULT_KEY, AuditLog(wd.root / "test-audit.jsonl"))
    return vault.practice(code, as_of, purpose="test").to_pandas()


@pytest.fixture(scope="module")
def months(pseudonymised, clean_population, tmp_path_factory):
    from riskstrat.stages.export import export
    from riskstrat.stages.score import score
    from riskstrat.stages.train import train

    work = tmp_path_factory.mktemp("history") / "W"
    shutil.copytree(pseudonymised, work)
    wd = WorkDir(work)
    train(work, dt.date(2024, 10, 1), _fast_spec(tmp_path_factory.mktemp("spec")))
    for d in (SEPTEMBER, OCTOBER):
        score(work, d)
    export(work, SEPTEMBER, VAULT_KEY)

    october = pq.read_table(wd.scores(OCTOBER)).to_pandas().set_index("pseudonym")
    places = pq.read_table(wd.features(SEPTEMBER), columns=["pseudonym", "practice_code"]).to_pandas()
    codes = sorted(places["practice_code"].unique())
    a, b = codes[0], codes[1]
    at_a = _vault_people(wd, a, OCTOBER).merge(
        october[["risk_score", "risk_band"]], left_on="pseudonym", right_index=True
    )
    at_a = at_a.sort_values("risk_score", ascending=False)
    sept_place = places.set_index("pseudonym")["practice_code"]
    was_at_a = at_a[at_a["pseudonym"].map(sept_place) == a]

    def first(mask) -> pd.Series:
        return was_at_a[mask].iloc[0]

    people = {
        "riser": first(was_at_a["risk_band"] == "high"),  # from low to high: a band up, new to the top bands
        "points": first((was_at_a["risk_band"] == "moderate") & (was_at_a["risk_score"] > 0.065)),
        "faller": first(was_at_a["risk_band"] == "very high"),
    }
    used = {p["pseudonym"] for p in people.values()}
    people["arriver"] = was_at_a[(was_at_a["risk_band"] == "high") & ~was_at_a["pseudonym"].isin(used)].iloc[0]
    used.add(people["arriver"]["pseudonym"])
    people["mover"] = was_at_a[(was_at_a["risk_band"] == "low") & ~was_at_a["pseudonym"].isin(used)].iloc[0]
    used.add(people["mover"]["pseudonym"])
    # September as constructed
    sept = pq.read_table(wd.scores(SEPTEMBER))
    frame = sept.to_pandas().set_index("pseudonym")
    changes = {
        "riser": (people["riser"]["risk_score"] - 0.10, "low"),
        "points": (people["points"]["risk_score"] - 0.06, "moderate"),
        "faller": (people["faller"]["risk_score"] + 0.10, "very high"),
        "mover": (people["mover"]["risk_score"], "low"),
    }
    for role, (risk, band) in changes.items():
        frame.loc[people[role]["pseudonym"], ["risk_score", "risk_band"]] = [risk, band]
    frame = frame.drop(index=people["arriver"]["pseudonym"]).reset_index()
    pq.write_table(pa.Table.from_pandas(frame, schema=sept.schema, preserve_index=False), wd.scores(SEPTEMBER))
    feats = pq.read_table(wd.features(SEPTEMBER))
    moved = feats.to_pandas()
    moved.loc[moved["pseudonym"] == people["mover"]["pseudonym"], "practice_code"] = b
    pq.write_table(pa.Table.from_pandas(moved, schema=feats.schema, preserve_index=False), wd.features(SEPTEMBER))

    # the care register, sealed beside the vault as pseudonymisation seals an extract's
    # (validation and sealing: tests/test_validate.py, tests/test_privacy_units.py)
    top_of_a = at_a[at_a["risk_band"].isin(TOP) & ~at_a["pseudonym"].isin(used)]
    managed, declined, too_late, elsewhere = (top_of_a.iloc[i]["nhs_number"] for i in range(4))
    register = pa.table(
        {
            "practice_code": [a, a, a, b],
            "nhs_number": [managed, declined, too_late, elsewhere],
            "status": ["case_managed", "declined", "not_appropriate", "case_managed"],
            "recorded_date": pa.array(
                [dt.date(2026, 6, 1), dt.date(2026, 9, 30), OCTOBER, dt.date(2026, 5, 1)], pa.date32()
            ),
        }
    )
    write_register(wd.care_register, register, VAULT_KEY)
    config = Config(practice_list=PracticeListSettings(import_batch_size=BATCH))
    export(work, OCTOBER, VAULT_KEY, config)
    extracts, _ = clean_population
    return {
        "work": work,
        "a": a,
        "b": b,
        "people": {k: v["nhs_number"] for k, v in people.items()},
        "register": {"managed": managed, "declined": declined, "too_late": too_late, "elsewhere": elsewhere},
        "extracts": extracts,
    }


def _list(work, as_of: dt.date, code: str) -> pd.DataFrame:
    path = WorkDir(work).practice_files(WorkDir(work).month(WorkDir(work).direct_care, as_of), code).list_csv
    return pd.read_csv(path, dtype={"nhs_number": str, "previous_as_of": str, "register_status": str})


def test_the_first_month_says_there_is_no_earlier_list(months):
    work, a = months["work"], months["a"]
    sept = _list(work, SEPTEMBER, a)
    assert sept["previous_as_of"].isna().all() and sept["previous_risk_score"].isna().all()
    assert not sept["new_to_top_bands"].any() and not sept["rising"].any()
    page = (WorkDir(work).month(WorkDir(work).direct_care, SEPTEMBER) / f"{a}.html").read_text()
    assert 'id="first-list"' in page and "No earlier list" in page


def test_constructed_histories_get_their_flags(months):
    work, a, b, who = months["work"], months["a"], months["b"], months["people"]
    octo = _list(work, OCTOBER, a).set_index("nhs_number")
    assert set(octo["previous_as_of"]) == {"2026-09-01"}
    riser, points, faller = octo.loc[who["riser"]], octo.loc[who["points"]], octo.loc[who["faller"]]
    assert riser["previous_risk_band"] == "low" and riser["risk_band"] == "high"
    assert riser["change_points"] == pytest.approx(10.0, abs=0.01)
    assert riser["rising"] and riser["new_to_top_bands"]
    assert points["risk_band"] == points["previous_risk_band"] == "moderate"
    assert points["change_points"] == pytest.approx(6.0, abs=0.01) and points["rising"]  # >= 5 points
    assert not points["new_to_top_bands"]
    assert faller["change_points"] == pytest.approx(-10.0, abs=0.01)
    assert not faller["rising"] and not faller["new_to_top_bands"]  # was very high already
    for arrived in (who["arriver"], who["mover"]):  # not on A's previous list
        row = octo.loc[arrived]
        assert pd.isna(row["previous_risk_score"]) and pd.isna(row["change_points"]) and not row["rising"]
    assert octo.loc[who["arriver"], "new_to_top_bands"]  # high now, not on the list before
    assert not octo.loc[who["mover"], "new_to_top_bands"]  # low: not a top band
    # the mover left B: on B's constructed previous list, not on its list now
    assert who["mover"] not in set(_list(work, OCTOBER, b)["nhs_number"])


def test_every_flag_follows_its_definition_at_every_practice(months):
    """Recomputed here from the scores and feature tables, not from riskstrat's worklist code."""
    work = months["work"]
    wd = WorkDir(work)
    sept = pq.read_table(wd.scores(SEPTEMBER), columns=["pseudonym", "risk_score", "risk_band"]).to_pandas()
    place = pq.read_table(wd.features(SEPTEMBER), columns=["pseudonym", "practice_code"]).to_pandas()
    before = sept.merge(place, on="pseudonym")
    rank = {band: i for i, band in enumerate(BANDS)}
    totals = {"new": 0, "rising": 0, "discharged": 0}
    for code in sorted(place["practice_code"].unique()):
        octo = _list(work, OCTOBER, code)
        names = _vault_people(wd, code, OCTOBER).set_index("nhs_number")["pseudonym"]
        mine = before[before["practice_code"] == code].set_index("pseudonym")
        then = mine.reindex(octo["nhs_number"].map(names))
        change = (octo["risk_score"].to_numpy() - then["risk_score"].to_numpy()) * 100
        on_before = then["risk_score"].notna().to_numpy()
        up = on_before & (octo["risk_band"].map(rank).to_numpy() < then["risk_band"].map(rank).to_numpy())
        rising = on_before & ((np.nan_to_num(change, nan=-1e9) >= 5.0) | up)
        new = octo["risk_band"].isin(TOP).to_numpy() & ~then["risk_band"].isin(TOP).to_numpy()
        np.testing.assert_allclose(octo["previous_risk_score"], then["risk_score"].to_numpy(), atol=1e-9)
        np.testing.assert_allclose(octo["change_points"], np.round(change, 2), atol=0.006)
        assert (octo["rising"].to_numpy() == rising).all(), code
        assert (octo["new_to_top_bands"].to_numpy() == new).all(), code
        totals["new"] += int(new.sum())
        totals["rising"] += int(rising.sum())
        totals["discharged"] += int(octo["recently_discharged"].sum())
    assert totals["new"] > 0 and totals["rising"] > 0 and totals["discharged"] > 0, totals
    print(f"\nOctober across practices: {totals}")


def test_the_register_marks_only_its_own_practice_s_patients(months):
    work, a, b, reg = months["work"], months["a"], months["b"], months["register"]
    octo = _list(work, OCTOBER, a).set_index("nhs_number")
    assert octo.loc[reg["managed"], "register_status"] == "case_managed"
    assert octo.loc[reg["declined"], "register_status"] == "declined"
    assert pd.isna(octo.loc[reg["too_late"], "register_status"])  # recorded on D: not yet known
    assert pd.isna(octo.loc[reg["elsewhere"], "register_status"])  # B's entry never marks A's list
    assert reg["elsewhere"] not in set(_list(work, OCTOBER, b)["nhs_number"])  # nor shows on B's
    marked = octo["register_status"].notna().sum()
    assert marked == 2
    page = (WorkDir(work).month(WorkDir(work).direct_care, OCTOBER) / f"{a}.html").read_text()
    assert '<b id="count-register">2</b>' in page
    # the pseudonymised zone never holds the register
    for path in WorkDir(work).pseudonymised.rglob("*.parquet"):
        assert "status" not in pq.read_schema(path).names or "register" not in path.name


def test_recently_discharged_are_the_emergency_spells_of_the_last_30_days(months):
    work, a, extracts = months["work"], months["a"], months["extracts"]
    wd = WorkDir(work)
    files = wd.practice_files(wd.month(wd.direct_care, OCTOBER), a)
    got = pd.read_csv(files.discharged, dtype={"nhs_number": str})
    apc = pq.read_table(extracts / "sus_apc.parquet").to_pandas()
    apc = apc[apc["admission_method"].isin(EMERGENCY_ADMISSION_METHODS)]
    apc = apc.sort_values(["spell_id", "episode_number"])
    spells = apc.groupby("spell_id").agg(
        nhs_number=("nhs_number", "first"),
        admitted=("admission_date", "min"),
        discharged=("discharge_date", "max"),
        provider=("provider_code", "first"),
    )
    names = pq.read_table(extracts / "ref_providers.parquet").to_pandas()
    spells["provider_name"] = spells["provider"].map(names.set_index("provider_code")["provider_name"])
    window = (spells["discharged"] >= OCTOBER - dt.timedelta(days=30)) & (spells["discharged"] < OCTOBER)
    listed = set(_list(work, OCTOBER, a)["nhs_number"])
    expected = spells[window & spells["nhs_number"].isin(listed)]
    assert len(expected) > 0
    assert sorted(zip(got["nhs_number"], got["discharge_date"], got["provider_name"], strict=True)) == sorted(
        zip(expected["nhs_number"], expected["discharged"].astype(str), expected["provider_name"], strict=True)
    )
    assert expected["provider_name"].notna().all()  # every provider named: the page shows names, not codes
    page = (wd.month(wd.direct_care, OCTOBER) / f"{a}.html").read_text()
    assert f"<td>{escape(got['provider_name'].iloc[0])}</td>" in page.split('id="recently-discharged"')[1]
    los = (pd.to_datetime(got["discharge_date"]) - pd.to_datetime(got["admission_date"])).dt.days
    assert (got["length_of_stay_days"] == los).all()
    assert list(got["discharge_date"]) == sorted(got["discharge_date"], reverse=True)
    octo = _list(work, OCTOBER, a)
    assert set(octo.loc[octo["recently_discharged"], "nhs_number"]) == set(got["nhs_number"])


def test_import_files_split_carry_the_right_dates_of_birth_and_leave_out_the_register(months):
    work, a, extracts, reg = months["work"], months["a"], months["extracts"], months["register"]
    wd = WorkDir(work)
    files = wd.practice_files(wd.month(wd.direct_care, OCTOBER), a)
    octo = _list(work, OCTOBER, a)
    births = pq.read_table(extracts / "gp_registrations.parquet", columns=["nhs_number", "date_of_birth"]).to_pandas()
    birth = births.drop_duplicates("nhs_number").set_index("nhs_number")["date_of_birth"]
    to_review = octo["register_status"].isna()
    groups = {
        "top_bands": octo[octo["risk_band"].isin(TOP) & to_review],
        "recently_discharged": octo[octo["recently_discharged"] & to_review],
    }
    for group, people in groups.items():
        parts = sorted(files.folder.glob(f"{a}_{group}_import_*.csv"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
        assert len(parts) == -(-len(people) // BATCH), group
        read = [pd.read_csv(p, dtype=str) for p in parts]
        assert all(list(r.columns) == list(IMPORT_HEADER) and 0 < len(r) <= BATCH for r in read)
        both = pd.concat(read, ignore_index=True)
        assert list(both["NHS number"]) == list(people["nhs_number"])  # highest risk first
        expected = [birth[n].strftime("%d/%m/%Y") for n in both["NHS number"]]
        assert list(both["Date of Birth"]) == expected
        plain = files.nhs_numbers(group).read_text().split()
        assert plain == list(people["nhs_number"])
        for path in [*parts, files.nhs_numbers(group)]:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(files.folder).st_mode) == 0o700
    assert len(groups["top_bands"]) > BATCH  # the split was exercised
    top_numbers = set(groups["top_bands"]["nhs_number"])
    assert reg["managed"] not in top_numbers and reg["declined"] not in top_numbers


def test_import_texts_split_at_250():
    numbers = [f"999{i:07d}" for i in range(600)]
    births = [dt.date(1950, 1, 1) + dt.timedelta(days=i) for i in range(600)]
    parts, plain = import_texts(numbers, births, 250)
    assert [p.count("\n") - 1 for p in parts] == [250, 250, 100]
    assert all(p.startswith("NHS number,Date of Birth\n") for p in parts)
    assert parts[1].splitlines()[1] == "9990000250,08/09/1950"
    assert plain.split() == numbers
    assert import_texts([], [], 250) == ([], "")


#: each rendered row of the practice list (not the rows of the activity tables inside it): its NHS
#: number, reasons and risk (the third cell's sort value)
_SHOWN_ROWS = """return Array.from(document.querySelectorAll('#risk-list > tbody > tr'))
    .filter(r => r.getClientRects().length > 0)
    .map(r => ({nhs: r.dataset.nhs, reasons: r.dataset.reasons, risk: r.querySelectorAll('td')[2].dataset.sort}));"""


def test_the_page_filters_searches_and_sorts_in_a_browser(months, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    work, a, who = months["work"], months["a"], months["people"]
    wd = WorkDir(work)
    octo = _list(work, OCTOBER, a)
    browser.get((wd.month(wd.direct_care, OCTOBER) / f"{a}.html").as_uri())

    def visible() -> list[dict]:
        """The rows the browser renders (a row the filters hide has no layout box), in the order
        shown: one script call, not a WebDriver round trip per row and attribute."""
        return browser.execute_script(_SHOWN_ROWS)

    def shown_nhs() -> list[str]:
        return [r["nhs"] for r in visible()]

    assert len(visible()) == len(octo)
    flag = Select(browser.find_element(By.ID, "filter-flag"))
    flag.select_by_value("new")
    assert sorted(shown_nhs()) == sorted(octo.loc[octo["new_to_top_bands"], "nhs_number"])
    assert browser.find_element(By.ID, "shown").text.startswith(f"{int(octo['new_to_top_bands'].sum())} of ")
    flag.select_by_value("rising")
    assert sorted(shown_nhs()) == sorted(octo.loc[octo["rising"], "nhs_number"])
    flag.select_by_value("")
    band = Select(browser.find_element(By.ID, "filter-band"))
    band.select_by_value("very high")
    assert sorted(shown_nhs()) == sorted(octo.loc[octo["risk_band"] == "very high", "nhs_number"])
    band.select_by_value("")
    reason = Select(browser.find_element(By.ID, "filter-reason"))
    chosen = reason.options[1].get_attribute("value")
    reason.select_by_value(chosen)
    rows = visible()
    assert rows and all(chosen in r["reasons"].split("|") for r in rows)
    assert int(reason.options[1].text.rsplit("(", 1)[1].rstrip(")").replace(",", "")) == len(rows)
    browser.find_element(By.ID, "clear-filters").click()
    search = browser.find_element(By.ID, "filter-nhs")
    riser = who["riser"]
    search.send_keys(f"{riser[:3]} {riser[3:6]} {riser[6:]}")  # as clinicians write it
    assert shown_nhs() == [riser]
    # what a printout of this view says above the table (shown only in print)
    assert "(1 of" in browser.find_element(By.ID, "print-note").get_attribute("textContent")
    browser.find_element(By.ID, "clear-filters").click()
    header = next(th for th in browser.find_elements(By.CSS_SELECTOR, "#risk-list th") if th.text.startswith("risk"))
    header.click()  # ascending
    risks = [float(r["risk"]) for r in visible()]
    assert risks == sorted(risks) and risks[0] == pytest.approx(octo["risk_score"].min())
    header.click()  # descending
    risks = [float(r["risk"]) for r in visible()]
    assert risks == sorted(risks, reverse=True)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "practice_list_october.png"))
