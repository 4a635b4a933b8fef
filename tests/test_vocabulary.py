"""Concepts declared once (docs/design.md, "One declaration per concept"): their rules."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.atomic import partial_path, replacing, write_private
from riskstrat.groups import (
    COMMISSIONER_AGE_BANDS,
    EFI_CATEGORIES,
    FAIRNESS_AGE_BANDS,
    efi_category,
    imd_quintile,
    is_frail,
    sex_letter,
)
from riskstrat.privacy.optout import Use
from riskstrat.stages.objections import objectors, without_objectors
from riskstrat.stages.pseudonymise import OPT_OUT_USES_TABLE
from riskstrat.workdir import WorkDir


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "scores.parquet"
    path.write_text("old")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("stopped")
    assert path.read_text() == "old"
    assert not partial_path(path).exists()
    with replacing(path) as tmp:
        assert tmp.name == ".scores.parquet.partial"
        tmp.write_text("new")
    assert path.read_text() == "new" and not tmp.exists()


def test_a_directory_table_replaces_a_directory(tmp_path):
    path = tmp_path / "features.parquet"
    (path / "old").mkdir(parents=True)
    with replacing(path) as tmp:
        tmp.mkdir()
        (tmp / "part-0").write_text("x")
    assert sorted(p.name for p in path.iterdir()) == ["part-0"]


def test_private_files_are_owner_only_even_over_a_wider_partial(tmp_path):
    path = tmp_path / "list.csv"
    stale = partial_path(path)
    stale.write_text("left by a stopped run")
    os.chmod(stale, 0o644)
    write_private(path, "nhs_number\n9990000018\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "nhs_number\n9990000018\n" and not stale.exists()


def test_the_two_age_band_schemes_split_older_people_differently():
    ages = pd.Series([0, 17, 18, 64, 65, 74, 75, 79, 80, 84, 85, 104])
    assert FAIRNESS_AGE_BANDS.of(ages).tolist() == [
        "0-17", "0-17", "18-39", "40-64", "65-79", "65-79", "65-79", "65-79", "80+", "80+", "80+", "80+",
    ]  # fmt: skip
    assert COMMISSIONER_AGE_BANDS.of(ages).tolist() == [
        "0-17", "0-17", "18-39", "40-64", "65-74", "65-74", "75-84", "75-84", "75-84", "75-84", "85+", "85+",
    ]  # fmt: skip


def test_imd_quintiles_and_sex_as_one_letter():
    assert imd_quintile(pd.Series([0, 1, 2, 3, 9, 10])).tolist() == ["unknown", "1", "1", "2", "5", "5"]
    assert sex_letter(pd.Series(["1", "2", "9", "0", None, "X"])).tolist() == ["M", "F", "I", "U", "U", "U"]


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0.0, "fit"),
        (0.12, "fit"),
        (0.13, "mild"),
        (0.24, "mild"),
        (0.25, "moderate"),
        (0.36, "moderate"),
        (0.37, "severe"),
        (4 / 36, "fit"),  # 0.111: 4 deficits
        (5 / 36, "mild"),  # 0.139
        (8 / 36, "mild"),  # 0.222
        (9 / 36, "moderate"),  # 0.25
        (12 / 36, "moderate"),  # 0.333
        (13 / 36, "severe"),  # 0.361: above 0.36
        (1.0, "severe"),
    ],
)
def test_efi_categories_are_the_published_ones(score, category):
    """Clegg et al. 2016: fit 0-0.12, mild >0.12-0.24, moderate >0.24-0.36, severe >0.36."""
    assert efi_category(score).name == category


def test_frail_means_moderate_or_severe_and_a_fit_person_is_never_called_frail():
    scores = pd.Series([0.0, 0.111, 0.12, 0.139, 0.24, 0.25, 0.361])
    assert is_frail(scores).tolist() == [False, False, False, False, False, True, True]
    assert [c.words for c in EFI_CATEGORIES] == ["fit", "mild frailty", "moderate frailty", "severe frailty"]
    assert "frail" not in EFI_CATEGORIES[0].words


def test_the_opt_out_filter_removes_only_the_people_excluded_from_that_use(tmp_path):
    wd = WorkDir(tmp_path)
    rows = pd.DataFrame({"pseudonym": ["a", "b", "c"], "risk_score": [0.1, 0.2, 0.3]})
    assert without_objectors(rows, wd, Use.SCORING) is rows  # no flags: no one objected
    wd.table(OPT_OUT_USES_TABLE).parent.mkdir(parents=True)
    flags = {"pseudonym": ["a", "b"], "training": [True, False], "scoring": [False, True]}
    flags |= {"direct_care": [True, True], "commissioner": [False, False]}
    pq.write_table(pa.table(flags), wd.table(OPT_OUT_USES_TABLE))
    assert objectors(wd, Use.TRAINING) == {"a"}
    assert without_objectors(rows, wd, Use.SCORING)["pseudonym"].tolist() == ["a", "c"]
    assert without_objectors(rows, wd, Use.DIRECT_CARE)["pseudonym"].tolist() == ["c"]
    assert len(without_objectors(rows, wd, Use.COMMISSIONER)) == 3
