"""The re-identification vault: pseudonym -> NHS number and registered practice.

Held in the identifiable zone (``W/identifiable/vault.bin``), encrypted at rest with
AES-256-GCM (``cryptography``) under a key derived (HKDF-SHA256, random salt) from
``RISKSTRAT_VAULT_KEY`` — a key held apart from the pseudonymisation key. The file is
written with mode 0600 and appears atomically. GCM authenticates the whole file, so a wrong
key or any change to the file is detected and refused.

:func:`reidentify_practice` is the only way to re-identify: it takes one practice code and
returns only that practice's patients (registered there on the given date), and every call
is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from riskstrat.atomic import write_private
from riskstrat.errors import KeyMissingError
from riskstrat.privacy.audit import AuditLog

__all__ = ["MAGIC", "VAULT_COLUMNS", "VaultError", "reidentify_practice", "write_vault"]

MAGIC = b"RSVAULT1"
VAULT_COLUMNS = ("pseudonym", "nhs_number", "practice_code", "registration_start", "registration_end")


class VaultError(KeyMissingError):
    """The vault is missing, was made with another key, or was altered."""


def _aead(key: str, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"riskstrat vault v1")
    return AESGCM(hkdf.derive(key.encode("utf-8")))


def write_vault(path: Path, registrations: pa.Table, key: str) -> int:
    """Encrypt ``registrations`` (columns :data:`VAULT_COLUMNS`) to ``path``; returns rows."""
    table = registrations.select(list(VAULT_COLUMNS))
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = MAGIC + salt + nonce
    sealed = _aead(key, salt).encrypt(nonce, buf.getvalue(), header)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, header + sealed)
    return table.num_rows


def _open(path: Path, key: str) -> pa.Table:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VaultError(
            f"{path}: no re-identification vault (were the registrations pseudonymised at source? "
            "then no re-identification is possible and direct-care lists cannot be produced)"
        ) from None
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 28 + 16:
        raise VaultError(f"{path}: not a riskstrat vault")
    salt, nonce = data[8:24], data[24:36]
    try:
        plain = _aead(key, salt).decrypt(nonce, data[36:], data[:36])
    except InvalidTag:
        raise VaultError(
            f"{path}: the vault cannot be opened: RISKSTRAT_VAULT_KEY is not the key it was made with, "
            "or the file has been altered"
        ) from None
    return pq.read_table(io.BytesIO(plain))


class OpenVault:
    """A decrypted vault held in memory for a batch of practice exports (see :func:`open_vault`).

    Its one method, :meth:`practice`, takes a practice code and returns only that practice's
    patients, and records the re-identification in the audit log.
    """

    def __init__(self, table: pa.Table, audit: AuditLog):
        self._table = table
        self._audit = audit

    def practice(self, practice_code: str, as_of: dt.date | None = None, purpose: str = "") -> pa.Table:
        table = self._table
        mask = pc.equal(table["practice_code"], practice_code)
        if as_of is None:
            mask = pc.and_(mask, pc.is_null(table["registration_end"]))
        else:
            d = pa.scalar(as_of, pa.date32())
            started = pc.less_equal(table["registration_start"], d)
            not_ended = pc.or_kleene(
                pc.is_null(table["registration_end"]), pc.greater_equal(table["registration_end"], d)
            )
            mask = pc.and_(mask, pc.and_(started, not_ended))
        out = table.filter(mask).select(["pseudonym", "nhs_number"])
        out = out.group_by(["pseudonym", "nhs_number"]).aggregate([]).sort_by("pseudonym")
        self._audit.record_reidentification(practice_code, out.num_rows, as_of, purpose)
        return out


def open_vault(path: Path, key: str, audit: AuditLog) -> OpenVault:
    """Decrypt the vault once (wrong key or altered file: VaultError)."""
    return OpenVault(_open(path, key), audit)


def reidentify_practice(
    path: Path, practice_code: str, key: str, audit: AuditLog, as_of: dt.date | None = None, purpose: str = ""
) -> pa.Table:
    """NHS numbers of the patients registered at ``practice_code`` on ``as_of``.

    Parameters
    ----------
    path : the vault file.
    practice_code : the one practice whose patients are returned.
    key : ``RISKSTRAT_VAULT_KEY``.
    audit : the audit log; the call is recorded (practice, count, user, purpose).
    as_of : registration date (inclusive at both ends); ``None``: currently registered
        (registration not ended).

    Returns
    -------
    pyarrow.Table with columns ``pseudonym``, ``nhs_number``, one row per patient.
    """
    return open_vault(path, key, audit).practice(practice_code, as_of, purpose)
