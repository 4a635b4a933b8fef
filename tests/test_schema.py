"""The contract as code matches the written contract v1, table by table, column by column."""

from __future__ import annotations

import re

from riskstrat.schema import TABLES, ColumnType, contract_markdown

from .conftest import REPO

SPEC = REPO / "docs" / "spec" / "data-contract.md"
TYPE_WORDS = {
    "string": ColumnType.STRING,
    "date": ColumnType.DATE,
    "integer": ColumnType.INTEGER,
    "float": ColumnType.FLOAT,
    "boolean": ColumnType.BOOLEAN,
}


def _written_contract(spec=SPEC) -> dict[str, tuple[bool, dict[str, tuple[str, bool]]]]:
    tables: dict[str, tuple[bool, dict[str, tuple[str, bool]]]] = {}
    current = None
    for line in spec.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^### (\w+) \((required|optional)\)", line)
        if head:
            current = head.group(1)
            tables[current] = (head.group(2) == "required", {})
            continue
        row = re.match(r"^\| (\w+) \| ([^|]+) \|", line)
        if current and row and row.group(1) != "column":
            typ = row.group(2).strip()
            optional = "optional" in typ
            tables[current][1][row.group(1)] = (typ.split(",")[0].strip(), not optional)
    return tables


def test_every_written_table_and_column_has_a_declaration():
    written = _written_contract()
    assert set(written) == set(TABLES), "tables differ between docs/spec/data-contract.md and schema.py"
    for name, (required, columns) in written.items():
        decl = TABLES[name]
        assert decl.required is required, name
        assert decl.column_names == list(columns), name
        for col, (typ, col_required) in columns.items():
            c = decl.column(col)
            assert c.type is TYPE_WORDS[typ], f"{name}.{col}"
            assert c.required is col_required, f"{name}.{col}"


def _version_1(text: str) -> str:
    """The written contract without the tables later versions added (a ``###`` heading naming
    the version, e.g. ``### ref_providers (optional) — v1.1: ...``, up to the next heading)."""
    out, later = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            later = line.startswith("### ") and re.search(r"— v1\.\d+:", line) is not None
        if not later:
            out.append(line)
    return "".join(out)


def test_written_spec_is_the_shared_contract_when_available():
    """The project's written contract is the shared contract v1 plus the optional tables of
    later versions, each under a heading that names its version."""
    shared = REPO.parent / "shared" / "spec" / "data-contract.md"
    if shared.exists():
        assert shared.read_text(encoding="utf-8") == _version_1(SPEC.read_text(encoding="utf-8"))


def test_tables_of_later_versions_are_optional_and_say_their_version():
    written = SPEC.read_text(encoding="utf-8")
    for name, tbl in TABLES.items():
        if tbl.since != "1":
            assert not tbl.required, name
            assert f"### {name} (optional) — v{tbl.since}:" in written, name


def test_enumerations_match_the_written_contract():
    text = SPEC.read_text(encoding="utf-8")
    for code in ("21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"):
        assert f"`{code}`" in text
    assert TABLES["sus_apc"].column("admission_method").allowed == (
        "11",
        "12",
        "13",
        "21",
        "22",
        "23",
        "24",
        "25",
        "2A",
        "2B",
        "2C",
        "2D",
        "28",
        "31",
        "32",
        "81",
        "82",
        "83",
    )
    assert TABLES["opt_outs"].column("opt_out_type").allowed == ("type1", "ndoo")
    assert TABLES["gp_registrations"].column("sex").allowed == ("1", "2", "9", "0")


def test_generated_contract_document_is_current():
    assert (REPO / "docs" / "contract-v1-tables.md").read_text(encoding="utf-8") == contract_markdown(), (
        "regenerate docs/contract-v1-tables.md from riskstrat.schema.contract_markdown()"
    )
