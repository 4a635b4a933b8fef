"""GP coded record: QOF-style long-term condition registers, BMI, smoking, care home, falls.

A register flag follows the QOF rule: the latest diagnosis code (the cluster) is later than
the latest resolved code (for CKD 3-5, resolved or downgraded to stage 1-2). Code lists are
NHS England Primary Care Domain clusters from ``riskstrat/codelists``.
"""

from __future__ import annotations

import ibis

from riskstrat import codelists
from riskstrat.features.asof import Sources
from riskstrat.features.builders._common import codes_table, count_if, in_last, present
from riskstrat.features.builders._prescriptions import HALF_YEAR_DAYS, by_substance
from riskstrat.features.registry import Dtype, Feature, RowReason, count_reason, listed, register
from riskstrat.groups import efi_category

_PCD = "snomed/nhsd-primary-care-domain-refsets-{}_cod.csv"

#: register name -> (diagnosis code lists, resolved code lists)
REGISTERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hypertension": (("hyp",), ("hypres",)),
    "diabetes": (("dm",), ("dmres",)),
    "asthma": (("ast",), ("astres",)),
    "depression": (("depr",), ("depres",)),
    "ckd": (("ckd",), ("ckdres", "ckd1and2")),
    "chd": (("chd",), ()),
    "cancer": (("solid-cancer-diagnosis-codes",), ()),
    "af": (("afib",), ()),
    "copd": (("copd",), ("copdres",)),
    "stroke": (("strk",), ()),
    "heart_failure": (("hf",), ("hfres",)),
    "dementia": (("dem",), ()),
    "smi": (("mh",), ()),
    "epilepsy": (("epil",), ("epilres",)),
    "learning_disability": (("ld",), ()),
    "osteoporosis": (("osteo",), ()),
    "pad": (("pad",), ()),
    "rheumatoid_arthritis": (("rarth",), ()),
}
OTHER_FLAGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "palliative_care": (("palcare",), ("palcareni",)),
    "housebound": (("snomed/opensafely-housebound.csv",), ("snomed/opensafely-no-longer-housebound.csv",)),
}
#: each register and flag above in plain words (its reason when set)
CONDITION_WORDS: dict[str, str] = {
    "heart_failure": "heart failure",
    "copd": "COPD",
    "ckd": "chronic kidney disease (stage 3-5)",
    "dementia": "dementia",
    "diabetes": "diabetes",
    "chd": "coronary heart disease",
    "af": "atrial fibrillation",
    "stroke": "stroke or TIA",
    "cancer": "cancer",
    "smi": "severe mental illness",
    "asthma": "asthma",
    "depression": "depression",
    "hypertension": "hypertension",
    "epilepsy": "epilepsy",
    "learning_disability": "learning disability",
    "osteoporosis": "osteoporosis",
    "pad": "peripheral arterial disease",
    "rheumatoid_arthritis": "rheumatoid arthritis",
    "palliative_care": "on the palliative care register",
    "housebound": "housebound",
}
#: BMI bands of the latest recorded BMI: (band, lower limit in kg/m2, words); 0 = not recorded
BMI_BANDS: tuple[tuple[int, float, str], ...] = (
    (1, 0.0, "underweight (BMI under 18.5)"),
    (2, 18.5, "healthy weight (BMI 18.5 to under 25)"),
    (3, 25.0, "overweight (BMI 25 to under 30)"),
    (4, 30.0, "obese (BMI 30 to under 40)"),
    (5, 40.0, "severely obese (BMI 40 or more)"),
)
_BMI_WORDS = {band: words for band, _, words in BMI_BANDS}
CURRENT_SMOKER = 2  # smoking_status of a current smoker (1 ex, 0 not recorded)


def _named_conditions(v: float, row) -> str:
    """The registers behind a register count, named (most telling first, the order of
    :data:`CONDITION_WORDS`): "long-term conditions: heart failure, COPD and diabetes"."""
    names = [CONDITION_WORDS[r] for r in CONDITION_WORDS if r in REGISTERS and row[r] >= 1]
    if not names:
        n = round(v)
        return f"{n} long-term condition{'' if n == 1 else 's'}"
    return f"long-term condition{'' if len(names) == 1 else 's'}: {listed(names)}"


def _bmi_band_reason(v: float) -> str:
    return _BMI_WORDS.get(round(v), "BMI not recorded")


def _smoking_reason(v: float) -> str:
    return "current smoker" if round(v) == CURRENT_SMOKER else "ex-smoker"


CARE_HOME = (
    _PCD.format("carehome"),
    "snomed/primis-covid19-vacc-uptake-longres.csv",
    "snomed/opensafely-nhs-england-care-homes-residential-status.csv",
    _PCD.format("tempcarhome"),
)


def _path(name: str) -> str:
    if name.startswith("snomed/"):
        return name
    if name == "solid-cancer-diagnosis-codes":
        return "snomed/nhsd-primary-care-domain-refsets-solid-cancer-diagnosis-codes.csv"
    return _PCD.format(name)


def code_rows(flags: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]) -> ibis.Table:
    codes, flag, kind = [], [], []
    for name, (dx, res) in flags.items():
        for lists, k in ((dx, "dx"), (res, "res")):
            for cl in lists:
                for c in sorted(set(codelists.codes(_path(cl)))):
                    codes.append(c)
                    flag.append(name)
                    kind.append(k)
    return codes_table(codes, flag=flag, kind=kind)


def register_flags(events: ibis.Table, flags: dict) -> ibis.Table:
    """One row per person with a coded record: ``<name>`` = 1 when on the register (QOF rule above)."""
    table = code_rows(flags)
    j = events.join(table, events.snomed_code == table.code)
    aggs = {}
    for name in flags:
        aggs[f"_dx_{name}"] = ((j.flag == name) & (j.kind == "dx")).ifelse(j.event_date, ibis.null("date")).max()
        aggs[f"_res_{name}"] = ((j.flag == name) & (j.kind == "res")).ifelse(j.event_date, ibis.null("date")).max()
    wide = j.group_by("pseudonym").aggregate(**aggs)
    out = {}
    for name in flags:
        dx, res = wide[f"_dx_{name}"], wide[f"_res_{name}"]
        out[name] = (dx.notnull() & (res.isnull() | (res < dx))).cast("int64")
    return wide.select("pseudonym", **out)


@register(
    "gp_conditions",
    ("gp_events",),
    [
        Feature(
            n,
            f"on the QOF-style {n.replace('_', ' ')} register (latest diagnosis later than latest resolved)",
            "all history before D",
            0,
            reason=CONDITION_WORDS[n],
        )
        for n in REGISTERS
    ]
    + [
        Feature(
            "ltc_count",
            "number of the long-term condition registers above",
            "all history before D",
            0,
            reason=RowReason(tuple(REGISTERS), _named_conditions, "{n} long-term condition{s}"),
        )
    ]
    + [
        Feature(
            n,
            f"{n.replace('_', ' ')} recorded and not later ended",
            "all history before D",
            0,
            reason=CONDITION_WORDS[n],
        )
        for n in OTHER_FLAGS
    ],
)
def gp_conditions(src: Sources, as_of) -> ibis.Table:
    flags = register_flags(src.gp_events, {**REGISTERS, **OTHER_FLAGS})
    total = sum((flags[n] for n in REGISTERS), ibis.literal(0)).cast("int64")
    return flags.mutate(ltc_count=total)


@register(
    "gp_observations",
    ("gp_events",),
    [
        Feature(
            "bmi_latest",
            "latest recorded BMI value (BMIVAL_COD); 0 when none",
            "all history before D",
            0.0,
            Dtype.FLOAT,
            reason="BMI {v:.1f}",
        ),
        Feature(
            "bmi_band",
            "band of the latest recorded BMI (rounded to 1 decimal): 0 not recorded, 1 underweight <18.5, "
            "2 healthy 18.5-<25, 3 overweight 25-<30, 4 obese 30-<40, 5 severely obese 40+",
            "all history before D",
            0,
            reason=_bmi_band_reason,
        ),
        Feature(
            "smoking_status",
            "latest smoking code: 2 current (LSMOK_COD), 1 ex (EXSMOK_COD), 0 not recorded (never-smoked "
            "codes are not in the shipped lists, so never smokers read 0); current wins a same-day tie",
            "all history before D",
            0,
            reason=_smoking_reason,
        ),
        Feature(
            "care_home",
            "1 when a care home residence code was ever recorded",
            "all history before D",
            0,
            reason="lives in a care home",
        ),
        Feature(
            "falls_365d",
            "falls codes recorded (FALLS_COD and the eFI falls deficit)",
            "365 days before D",
            0,
            reason=count_reason("fall{s} recorded", 365),
        ),
    ],
)
def gp_observations(src: Sources, as_of) -> ibis.Table:
    ev = src.gp_events
    bmi_codes = codes_table(codelists.snomed_cluster("bmival"))
    bmi = ev.filter(present(ev.value)).semi_join(bmi_codes, ev.snomed_code == bmi_codes.code)
    w = ibis.window(group_by="pseudonym", order_by=[ibis.desc("event_date"), ibis.desc("value")])
    bmi = bmi.mutate(_r=ibis.row_number().over(w))
    latest = bmi.value.round(1).cast("float64")
    band = ibis.cases(*[(latest >= low, b) for b, low, _ in reversed(BMI_BANDS)], else_=0).cast("int64")
    bmi = bmi.filter(bmi._r == 0).select("pseudonym", bmi_latest=latest, bmi_band=band)
    smoke_codes = codes_table(
        codelists.snomed_cluster("lsmok") + codelists.snomed_cluster("exsmok"),
        status=[2] * len(codelists.snomed_cluster("lsmok")) + [1] * len(codelists.snomed_cluster("exsmok")),
    )
    sm = ev.join(smoke_codes, ev.snomed_code == smoke_codes.code)
    w2 = ibis.window(group_by="pseudonym", order_by=[ibis.desc("event_date"), ibis.desc("status")])
    sm = sm.mutate(_r=ibis.row_number().over(w2))
    sm = sm.filter(sm._r == 0).select("pseudonym", smoking_status=sm.status.cast("int64"))
    care_codes = codes_table(sorted({c for p in CARE_HOME for c in codelists.codes(p)}))
    care = ev.semi_join(care_codes, ev.snomed_code == care_codes.code).select("pseudonym").distinct()
    care = care.mutate(care_home=ibis.literal(1, "int64"))
    efi_falls = codelists.codes(EFI_FILE, deficit_id="falls", terminology="snomed")
    fall_codes = codes_table(sorted(set(codelists.snomed_cluster("falls")) | set(efi_falls)))
    falls = ev.filter(in_last(ev.event_date, as_of, 365)).semi_join(fall_codes, ev.snomed_code == fall_codes.code)
    falls = falls.group_by("pseudonym").aggregate(falls_365d=count_if(falls.event_date.notnull()))
    people = ev.select("pseudonym").distinct()
    return (
        people.left_join(bmi, "pseudonym")
        .left_join(sm, "pseudonym")
        .left_join(care, "pseudonym")
        .left_join(falls, "pseudonym")
        .select("pseudonym", "bmi_latest", "bmi_band", "smoking_status", "care_home", "falls_365d")
    )


EFI_FILE = "efi/efi_deficits_gm_sde.csv"


def _efi_reason(v: float) -> str:
    """The eFI named by its published category (Clegg et al. 2016, :data:`riskstrat.groups.EFI_CATEGORIES`):
    "moderate frailty (eFI 0.306)"; a fit person is never called frail: "eFI 0.111 (fit)". The
    score is shown as the feature holds it (3 decimals), so that 13 deficits (0.361, severe)
    never read as 0.36 (moderate)."""
    category = efi_category(v)
    score = f"{round(v, 3):g}"
    if category.name == "fit":
        return f"eFI {score} (fit)"
    return f"{category.words} (eFI {score})"


EFI_DEFICITS = 36  # 35 coded deficits + polypharmacy (Clegg et al. 2016)
POLYPHARMACY_DEFICIT = 5  # distinct medicines (substances) in the last 6 months (HALF_YEAR_DAYS)


@register(
    "efi",
    ("gp_events", "gp_medications"),
    [
        Feature(
            "efi_deficits",
            "distinct eFI deficits coded (of 35; SNOMED CT sets)",
            "all history before D",
            0,
            reason="{n} eFI deficit{s} recorded",
        ),
        Feature(
            "efi_score",
            f"electronic Frailty Index: (coded deficits + polypharmacy, i.e. "
            f"{POLYPHARMACY_DEFICIT}+ distinct medicines in {HALF_YEAR_DAYS} days) / {EFI_DEFICITS}, 3 decimals",
            f"all history / {HALF_YEAR_DAYS} days before D",
            0.0,
            Dtype.FLOAT,
            reason=_efi_reason,
        ),
    ],
)
def efi(src: Sources, as_of) -> ibis.Table:
    rows = [r for r in codelists.codelist(EFI_FILE) if r["terminology"] == "snomed"]
    table = codes_table([r["code"] for r in rows], deficit=[r["deficit_id"] for r in rows])
    ev = src.gp_events
    coded = (
        ev.join(table, ev.snomed_code == table.code)
        .group_by("pseudonym")
        .aggregate(efi_deficits=table.deficit.nunique().cast("int64"))
    )
    per = by_substance(src, as_of)
    poly = per.group_by("pseudonym").aggregate(_n=count_if(per.last <= HALF_YEAR_DAYS))
    poly = poly.select("pseudonym", _poly=(poly._n >= POLYPHARMACY_DEFICIT).cast("int64"))
    # people with a coded deficit or the polypharmacy deficit; everyone else has the defaults (0)
    t = coded.outer_join(poly, "pseudonym")
    t = t.select(pseudonym=t.pseudonym.fill_null(t.pseudonym_right), efi_deficits=t.efi_deficits, _poly=t._poly)
    deficits = t.efi_deficits.fill_null(0)
    score = ((deficits + t._poly.fill_null(0)) / EFI_DEFICITS).round(3).cast("float64")
    return t.select("pseudonym", efi_deficits=deficits.cast("int64"), efi_score=score)
