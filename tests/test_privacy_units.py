"""Pseudonyms, keys, the vault, the audit log and the NHS number scanner, one by one."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import stat

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.errors import RiskstratError
from riskstrat.privacy.audit import AuditLog, verify_chain
from riskstrat.privacy.keys import KeyName, fingerprint, load_key
from riskstrat.privacy.pseudonym import PseudonymMap, pseudonym, pseudonymise
from riskstrat.privacy.scan import scan_directory, scan_text
from riskstrat.privacy.vault import VaultError, open_vault, reidentify_practice, write_register, write_vault

KEY_A = "region-A-key-0123-4567-89abcdefghijklmnop"
KEY_B = "region-B-key-0123-4567-89abcdefghijklmnop"
VAULT_KEY = "vault-key-0123-4567-89abcdefghijklmnopqrstu"


def test_pseudonym_is_the_documented_hmac():
    expected = hmac.new(KEY_A.encode("utf-8"), b"9990000018", hashlib.sha256).hexdigest()
    assert pseudonym("9990000018", KEY_A) == expected
    assert len(expected) == 64 and expected == expected.lower()
    # not an unkeyed hash, which anyone could reverse by hashing every NHS number
    assert pseudonym("9990000018", KEY_A) != hashlib.sha256(b"9990000018").hexdigest()


def test_same_key_same_pseudonyms_other_key_unlinkable():
    numbers = [f"99900{i:04d}" for i in range(0, 2000)]
    a1, a2, b = pseudonymise(numbers, KEY_A), pseudonymise(numbers, KEY_A), pseudonymise(numbers, KEY_B)
    assert a1 == a2
    assert not set(a1) & set(b)
    assert len(set(a1)) == len(numbers)


def test_pseudonym_map_applies_to_columns():
    pmap = PseudonymMap(pa.array(["9990000018", "9990000026", "9990000018"]), KEY_A)
    assert len(pmap) == 2
    out = pmap.apply(pa.array(["9990000026", "9990000018"])).to_pylist()
    assert out == [pseudonym("9990000026", KEY_A), pseudonym("9990000018", KEY_A)]


def test_pseudonym_map_looks_up_dictionary_columns_as_plain_ones(tmp_path):
    numbers = [f"999{i:07d}" for i in range(50)]
    pmap = PseudonymMap(pa.array(numbers), KEY_A)
    rows = [numbers[(i * 7) % 50] for i in range(400)]  # each number many times, out of order
    plain = pmap.indices(pa.array(rows))
    assert [pmap.numbers[int(i)].as_py() for i in plain] == rows
    # as Parquet hands them back with read_dictionary: one dictionary per row group, chunked
    pq.write_table(pa.table({"nhs_number": rows}), tmp_path / "t.parquet", row_group_size=64)
    column = pq.read_table(tmp_path / "t.parquet", read_dictionary=["nhs_number"])["nhs_number"]
    assert pa.types.is_dictionary(column.type) and column.num_chunks > 1
    assert np.array_equal(pmap.indices(column), plain)
    with pytest.raises(AssertionError):  # a number outside the map is an internal error, never a wrong pseudonym
        pmap.indices(pa.array(["9991234567"]).dictionary_encode())


def test_person_keys_rank_the_pseudonyms_not_the_nhs_numbers():
    numbers = [f"999{i:06d}" for i in range(200)]  # check digits do not matter to the map
    pmap = PseudonymMap(pa.array(numbers), KEY_A)
    keys = pmap.person_keys
    assert sorted(keys.tolist()) == list(range(200))  # dense: 0 .. n-1, each once
    pseudonyms = pmap.pseudonyms.to_pylist()
    by_key = [p for _, p in sorted(zip(keys.tolist(), pseudonyms, strict=True))]
    assert by_key == sorted(pseudonyms)  # the key sorts as the pseudonym does...
    ranks_by_number = [int(keys[i]) for i in sorted(range(200), key=lambda i: pmap.numbers[i].as_py())]
    assert ranks_by_number != list(range(200))  # ...and not as the NHS number does


def test_keys_come_from_the_environment_or_a_file(monkeypatch, tmp_path):
    monkeypatch.delenv("RISKSTRAT_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("RISKSTRAT_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(RiskstratError, match="set RISKSTRAT_PSEUDONYM_KEY"):
        load_key(KeyName.PSEUDONYM)
    key_file = tmp_path / "k"
    key_file.write_text(KEY_A + "\n")
    monkeypatch.setenv("RISKSTRAT_PSEUDONYM_KEY_FILE", str(key_file))
    assert load_key(KeyName.PSEUDONYM) == KEY_A
    monkeypatch.setenv("RISKSTRAT_PSEUDONYM_KEY", "short")
    with pytest.raises(RiskstratError) as exc:
        load_key(KeyName.PSEUDONYM)
    assert "too short" in str(exc.value) and "short" not in str(exc.value).replace("too short", "")
    assert fingerprint(KEY_A) != fingerprint(KEY_B) and KEY_A not in fingerprint(KEY_A)


def _registrations() -> pa.Table:
    rows = [
        # nhs, practice, start, end
        ("9990000018", "Y90001", dt.date(2010, 1, 1), None),
        ("9990000026", "Y90001", dt.date(2010, 1, 1), dt.date(2024, 6, 30)),  # left before D
        ("9990000026", "Y90002", dt.date(2024, 7, 1), None),  # ... to another practice
        ("9990000034", "Y90002", dt.date(2015, 1, 1), None),
        ("9990000042", "Y90001", dt.date(2025, 3, 1), None),  # joined after D
    ]
    return pa.table(
        {
            "pseudonym": [pseudonym(r[0], KEY_A) for r in rows],
            "nhs_number": [r[0] for r in rows],
            "practice_code": [r[1] for r in rows],
            "registration_start": pa.array([r[2] for r in rows], pa.date32()),
            "registration_end": pa.array([r[3] for r in rows], pa.date32()),
            "date_of_birth": pa.array([dt.date(1940 + i, 2, 1 + i) for i, _ in enumerate(rows)], pa.date32()),
        }
    )


def test_vault_round_trip_returns_one_practice_only(tmp_path):
    path = tmp_path / "identifiable" / "vault.bin"
    assert write_vault(path, _registrations(), VAULT_KEY) == 5
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert b"9990000018" not in path.read_bytes()  # encrypted at rest
    audit = AuditLog(tmp_path / "identifiable" / "audit.jsonl")
    got = reidentify_practice(path, "Y90001", VAULT_KEY, audit, as_of=dt.date(2025, 1, 1), purpose="test")
    assert got["nhs_number"].to_pylist() == ["9990000018"]
    assert got["pseudonym"].to_pylist() == [pseudonym("9990000018", KEY_A)]
    assert got["date_of_birth"].to_pylist() == [dt.date(1940, 2, 1)]  # the full date, for import files
    y2 = reidentify_practice(path, "Y90002", VAULT_KEY, audit, as_of=dt.date(2025, 1, 1))
    assert sorted(y2["nhs_number"].to_pylist()) == ["9990000026", "9990000034"]
    now = reidentify_practice(path, "Y90001", VAULT_KEY, audit)  # currently registered
    assert sorted(now["nhs_number"].to_pylist()) == ["9990000018", "9990000042"]
    records = audit.records()
    assert [(r["event"], r["practice_code"], r["patients"]) for r in records] == [
        ("reidentification", "Y90001", 1),
        ("reidentification", "Y90002", 2),
        ("reidentification", "Y90001", 2),
    ]
    assert all(r["user"] for r in records)
    text = (tmp_path / "identifiable" / "audit.jsonl").read_text()
    assert scan_text(text) == 0 and VAULT_KEY not in text


def test_care_register_gives_a_practice_its_own_latest_entries_known_before_d(tmp_path):
    rows = [
        # practice, nhs, status, recorded
        ("Y90001", "9990000018", "declined", dt.date(2023, 5, 1)),
        ("Y90001", "9990000018", "case_managed", dt.date(2024, 11, 2)),  # later: applies
        ("Y90001", "9990000042", "not_appropriate", dt.date(2025, 1, 1)),  # recorded on D: not yet known
        ("Y90002", "9990000026", "case_managed", dt.date(2024, 8, 1)),
        ("Y90002", "9990000018", "declined", dt.date(2024, 12, 1)),  # another practice's entry for 0018
    ]
    register = pa.table(
        {
            "practice_code": [r[0] for r in rows],
            "nhs_number": [r[1] for r in rows],
            "status": [r[2] for r in rows],
            "recorded_date": pa.array([r[3] for r in rows], pa.date32()),
        }
    )
    vault, reg = tmp_path / "vault.bin", tmp_path / "care_register.bin"
    write_vault(vault, _registrations(), VAULT_KEY)
    assert write_register(reg, register, VAULT_KEY) == 5
    assert stat.S_IMODE(os.stat(reg).st_mode) == 0o600 and b"9990000018" not in reg.read_bytes()
    opened = open_vault(vault, VAULT_KEY, AuditLog(tmp_path / "audit.jsonl"), reg)
    d = dt.date(2025, 1, 1)
    assert opened.register("Y90001", d).to_pylist() == [
        {"nhs_number": "9990000018", "status": "case_managed", "recorded_date": dt.date(2024, 11, 2)}
    ]
    assert [r["nhs_number"] for r in opened.register("Y90002", d).to_pylist()] == ["9990000018", "9990000026"]
    assert opened.register("Y90003", d).num_rows == 0
    # without a register file every practice has an empty register
    assert open_vault(vault, VAULT_KEY, AuditLog(tmp_path / "a2.jsonl")).register("Y90001", d).num_rows == 0
    with pytest.raises(VaultError, match="not a riskstrat vault"):
        open_vault(vault, VAULT_KEY, AuditLog(tmp_path / "a3.jsonl"), vault)  # a vault is not a register


def test_vault_refuses_a_wrong_key_and_a_tampered_file(tmp_path):
    path = tmp_path / "vault.bin"
    write_vault(path, _registrations(), VAULT_KEY)
    audit = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(VaultError, match="not the key it was made with, or the file has been altered"):
        reidentify_practice(path, "Y90001", "another-key-0123-4567-89abcdefghijklmnop", audit)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(VaultError, match="altered"):
        reidentify_practice(path, "Y90001", VAULT_KEY, audit)
    path.write_bytes(b"hello")
    with pytest.raises(VaultError, match="not a riskstrat vault"):
        reidentify_practice(path, "Y90001", VAULT_KEY, audit)
    with pytest.raises(VaultError, match="no re-identification vault"):
        reidentify_practice(tmp_path / "none.bin", "Y90001", VAULT_KEY, audit)
    assert audit.records() == []  # refused attempts re-identify nobody


def test_audit_log_is_a_hash_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record_stage("riskstrat pseudonymise", {"a.csv": "00"}, {"t": 1}, "succeeded")
    log.record_reidentification("Y90001", 3, None, "direct care")
    log.record_stage("riskstrat pseudonymise", {}, {}, "failed")
    assert verify_chain(log.path)
    lines = log.path.read_text().splitlines()
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600
    log.path.write_text("\n".join([lines[0], lines[2]]) + "\n")  # a line removed
    assert not verify_chain(log.path)
    edited = json.loads(lines[1])
    edited["patients"] = 0
    log.path.write_text("\n".join([lines[0], json.dumps(edited, sort_keys=True), lines[2]]) + "\n")
    assert not verify_chain(log.path)


def test_scanner_finds_numbers_in_every_form_and_place(tmp_path):
    (tmp_path / "plain.txt").write_text("patient 999 000 0018 seen; other 9990000026.\n")
    (tmp_path / "fine.txt").write_text(
        "invalid 9990000017; longer 99900000180; in hex " + pseudonym("9990000018", KEY_A) + "\n"
    )
    (tmp_path / "9990000034.csv").write_text("x\n")
    pq.write_table(pa.table({"id": ["a", "9990000042"], "n": [1, 9990000018]}), tmp_path / "t.parquet")
    pq.write_table(pa.table({"code": ["1049301000000100", "29857009"]}), tmp_path / "codes.parquet")
    found = {(os.path.basename(f.path), f.where): f.count for f in scan_directory(tmp_path)}
    assert found == {
        ("plain.txt", "bytes"): 2,
        ("9990000034.csv", "name"): 1,
        ("t.parquet", "column id"): 1,
        ("t.parquet", "column n"): 1,
    }


def test_scanner_ignores_snomed_codes_that_pass_modulus_11():
    # 10-digit SNOMED CT concept ids can pass Modulus 11 by chance; they are codes, not people.
    from riskstrat import codelists
    from riskstrat.codes import verhoeff_valid
    from riskstrat.privacy.nhs_number import is_valid

    codes = [c for c in codelists.snomed_cluster("dem") + codelists.snomed_cluster("dm") if len(c) == 10]
    lookalikes = [c for c, ok in zip(codes, is_valid(codes), strict=True) if ok]
    assert lookalikes and verhoeff_valid(lookalikes).all()
    assert scan_text(" ".join(lookalikes)) == 0
