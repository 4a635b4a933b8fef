"""Shared fixtures: small synthetic populations generated once per test session."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from riskstrat.synth import SynthOptions, generate

REPO = Path(__file__).resolve().parent.parent


def benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def clean_population(tmp_path_factory) -> tuple[Path, Path]:
    """3,000 people in 5 practices, no faults: (extracts, truth)."""
    base = tmp_path_factory.mktemp("clean")
    opts = SynthOptions(patients=3000, seed=11, chunk_size=1500, practices=5)
    generate(base / "extracts", opts, base / "truth", workers=1)
    return base / "extracts", base / "truth"


@pytest.fixture(scope="session")
def faulty_population(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The same 6,000 people twice, without and with faults: (clean, faulty, faulty truth)."""
    base = tmp_path_factory.mktemp("faulty")
    opts = SynthOptions(patients=6000, seed=5, chunk_size=3000)
    generate(base / "clean", opts, base / "clean_truth", workers=1)
    faulty = SynthOptions(patients=6000, seed=5, chunk_size=3000, fault_rate=0.003)
    generate(base / "faulty", faulty, base / "faulty_truth", workers=1)
    return base / "clean", base / "faulty", base / "faulty_truth"


REGION_KEY = "feature-test-region-key-0123-4567-89abcdefgh"
VAULT_KEY = "feature-test-vault-key-0123-4567-89abcdefghi"


@pytest.fixture(scope="session")
def pseudonymised(clean_population, tmp_path_factory) -> Path:
    """The clean population pseudonymised: the work directory W."""
    from riskstrat.config import Config
    from riskstrat.stages.pseudonymise import pseudonymise

    extracts, _ = clean_population
    work = tmp_path_factory.mktemp("feat") / "W"
    pseudonymise(extracts, work, Config(), REGION_KEY, VAULT_KEY)
    return work


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 with its own SQLite store: (URI, base folder)."""
    base = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = (base / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{base / 'mlflow.db'}",
            "--artifacts-destination",
            str(base / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(base / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield uri, base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
