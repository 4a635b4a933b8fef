"""Keys come from the environment, never from code, configuration, logs or outputs.

``RISKSTRAT_PSEUDONYM_KEY`` (the region's pseudonymisation key) and ``RISKSTRAT_VAULT_KEY``
(the key of the re-identification vault), or ``*_FILE`` variables naming a file that holds
one. Only ``riskstrat demo`` makes throwaway keys, and says so. A key is at least 32
characters; make one with ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from enum import StrEnum
from pathlib import Path

from riskstrat.errors import KeyMissingError

__all__ = ["MIN_KEY_LENGTH", "KeyError_", "KeyName", "derived_key", "fingerprint", "load_key", "throwaway_keys"]

MIN_KEY_LENGTH = 32


class KeyName(StrEnum):
    PSEUDONYM = "RISKSTRAT_PSEUDONYM_KEY"
    VAULT = "RISKSTRAT_VAULT_KEY"


class KeyError_(KeyMissingError):
    """A key is missing, unreadable or too short (the message never contains the key)."""


def load_key(name: KeyName) -> str:
    """The key named ``name`` from the environment (or the file its ``_FILE`` variable names)."""
    value = os.environ.get(name.value)
    file_var = f"{name.value}_FILE"
    if value is None and os.environ.get(file_var):
        path = Path(os.environ[file_var])
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KeyError_(f"{file_var} names {path}, which cannot be read ({exc.strerror})") from None
    if value is None:
        raise KeyError_(f"no key: set {name.value} (or {file_var} to a file holding it)")
    if len(value) < MIN_KEY_LENGTH:
        raise KeyError_(f"{name.value} is too short: a key has at least {MIN_KEY_LENGTH} characters")
    return value


def fingerprint(key: str) -> str:
    """A short, non-reversible tag of a key, to tell two regions' work apart (not the key)."""
    return hmac.new(key.encode("utf-8"), b"riskstrat region fingerprint v1", hashlib.sha256).hexdigest()[:16]


def derived_key(key: str, purpose: str) -> bytes:
    """A 32-byte key for one ``purpose`` (e.g. ``"hold-out v1"``) derived from ``key`` by HMAC-SHA256:
    knowing it reveals neither ``key`` nor any other purpose's key. Never logged or written."""
    return hmac.new(key.encode("utf-8"), f"riskstrat {purpose}".encode(), hashlib.sha256).digest()


def throwaway_keys() -> dict[str, str]:
    """Fresh random keys for a demonstration run (never written anywhere by riskstrat)."""
    return {KeyName.PSEUDONYM.value: secrets.token_urlsafe(32), KeyName.VAULT.value: secrets.token_urlsafe(32)}
