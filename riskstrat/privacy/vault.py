"""The re-identification vault: pseudonym -> NHS number, registered practice and date of birth.

Held in the identifiable zone (``W/identifiable/vault.bin``), encrypted at rest with
AES-256-GCM (``cryptography``) under a key derived (HKDF-SHA256, random salt) from
``RISKSTRAT_VAULT_KEY`` — a key held apart from the pseudonymisation key. The file is
written with mode 0600 and appears atomically. GCM authenticates the whole file, so a wrong
key or any change to the file is detected and refused.

:func:`reidentify_practice` is the only way to re-identify: it takes one practice code and
returns only that practice's patients (registered there on the given date), and every call
is written to the audit log.

The vault keeps the date of birth of each registration: the files a practice's clinical system
imports (``NHS number``, ``Date of Birth``) take it from here, never from the pseudonymised
zone (which holds the month of birth only). Beside the vault, ``W/identifiable/care_register.bin``
holds the practices' care registers (data contract v1.1), encrypted the same way under the same
key; :meth:`OpenVault.register` gives one practice its own entries only.
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

__all__ = [
    "MAGIC",
    "REGISTER_COLUMNS",
    "REGISTER_MAGIC",
    "VAULT_COLUMNS",
    "OpenVault",
    "VaultError",
    "open_vault",
    "reidentify_practice",
    "write_register",
    "write_vault",
]

MAGIC = b"RSVAULT1"
VAULT_COLUMNS = (
    "pseudonym",
    "nhs_number",
    "practice_code",
    "registration_start",
    "registration_end",
    "date_of_birth",
)
REGISTER_MAGIC = b"RSREGST1"
#: the care register as held: the contract's columns (v1.1)
REGISTER_COLUMNS = ("practice_code", "nhs_number", "status", "recorded_date")


class VaultError(KeyMissingError):
    """The vault is missing, was made with another key, or was altered."""


def _aead(key: str, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"riskstrat vault v1")
    return AESGCM(hkdf.derive(key.encode("utf-8")))


def _seal(path: Path, table: pa.Table, key: str, magic: bytes) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = magic + salt + nonce
    sealed = _aead(key, salt).encrypt(nonce, buf.getvalue(), header)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, header + sealed)


def write_vault(path: Path, registrations: pa.Table, key: str) -> int:
    """Encrypt ``registrations`` (columns :data:`VAULT_COLUMNS`) to ``path``; returns rows."""
    table = registrations.select(list(VAULT_COLUMNS))
    _seal(path, table, key, MAGIC)
    return table.num_rows


def write_register(path: Path, register: pa.Table, key: str) -> int:
    """Encrypt the care register (columns :data:`REGISTER_COLUMNS`) to ``path`` with the vault
    key; returns rows."""
    table = register.select(list(REGISTER_COLUMNS))
    _seal(path, table, key, REGISTER_MAGIC)
    return table.num_rows


def _open(path: Path, key: str, magic: bytes = MAGIC) -> pa.Table:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VaultError(
            f"{path}: no re-identification vault (were the registrations pseudonymised at source? "
            "then no re-identification is possible and direct-care lists cannot be produced)"
        ) from None
    if not data.startswith(magic) or len(data) < len(magic) + 28 + 16:
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

    :meth:`practice` takes a practice code and returns only that practice's patients, and
    records the re-identification in the audit log; :meth:`register` gives that practice's own
    care-register entries.
    """

    def __init__(self, table: pa.Table, audit: AuditLog, register: pa.Table | None = None):
        self._table = table
        self._audit = audit
        self._register = register

    @property
    def has_dates_of_birth(self) -> bool:
        """False for a vault made before dates of birth were kept (riskstrat before issue 16)."""
        return "date_of_birth" in self._table.column_names

    def practice(self, practice_code: str, as_of: dt.date | None = None, purpose: str = "") -> pa.Table:
        """``pseudonym``, ``nhs_number`` and (when the vault keeps it) ``date_of_birth`` of the
        patients registered at ``practice_code`` on ``as_of``, one row per patient."""
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
        keys = ["pseudonym", "nhs_number"]
        births = [("date_of_birth", "max")] if self.has_dates_of_birth else []
        out = table.filter(mask).group_by(keys).aggregate(births)
        if births:
            out = out.rename_columns([*keys, "date_of_birth"])
        out = out.select([*keys, *(["date_of_birth"] if births else [])]).sort_by("pseudonym")
        self._audit.record_reidentification(practice_code, out.num_rows, as_of, purpose)
        return out

    def register(self, practice_code: str, as_of: dt.date) -> pa.Table:
        """The care-register entries of ``practice_code`` (only), the latest recorded before
        ``as_of`` for each NHS number: ``nhs_number``, ``status``, ``recorded_date``. Empty when no
        register was supplied. An entry dated on or after ``as_of`` is not yet known at ``as_of``
        (the time rules of the data contract)."""
        empty = pa.table(
            {
                "nhs_number": pa.array([], pa.string()),
                "status": pa.array([], pa.string()),
                "recorded_date": pa.array([], pa.date32()),
            }
        )
        if self._register is None or self._register.num_rows == 0:
            return empty
        reg = self._register
        mask = pc.and_(
            pc.equal(reg["practice_code"], practice_code),
            pc.less(reg["recorded_date"], pa.scalar(as_of, pa.date32())),
        )
        rows = reg.filter(mask).select(["nhs_number", "status", "recorded_date"])
        if rows.num_rows == 0:
            return empty
        # the latest entry per patient; two on one day: the later status by name, never by row order
        rows = rows.sort_by([("nhs_number", "ascending"), ("recorded_date", "descending"), ("status", "descending")])
        numbers = rows["nhs_number"].to_numpy(zero_copy_only=False)
        first = [0, *(i for i in range(1, len(numbers)) if numbers[i] != numbers[i - 1])]
        return rows.take(pa.array(first, pa.int64())).cast(empty.schema)


def open_vault(path: Path, key: str, audit: AuditLog, register: Path | None = None) -> OpenVault:
    """Decrypt the vault once (wrong key or altered file: VaultError), and the care register
    at ``register`` when that file exists."""
    reg = _open(register, key, REGISTER_MAGIC) if register is not None and register.exists() else None
    return OpenVault(_open(path, key), audit, reg)


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
