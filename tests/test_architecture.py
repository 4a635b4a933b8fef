"""The architecture in pyproject.toml's import-linter contracts holds (layers, MLflow only in
tracking, the vault only behind the direct-care export)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_code_is_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([str(ruff), *args], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:]


def test_importing_riskstrat_gives_arrow_jemalloc_unless_the_user_chose():
    """Arrow's default (mimalloc) made reading and converting the feature table 10 times slower
    on the benchmark machine (``riskstrat/__init__.py``); a user's own choice is kept."""
    show = "import riskstrat, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    chosen = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, env=env, timeout=120)
    assert chosen.stdout.strip() == "jemalloc", chosen.stderr  # pyarrow's Linux wheels have it
    kept = subprocess.run(
        [sys.executable, "-c", show],
        capture_output=True,
        text=True,
        env={**env, "ARROW_DEFAULT_MEMORY_POOL": "system"},
        timeout=120,
    )
    assert kept.stdout.strip() == "system", kept.stderr
