"""The registered model is one MLflow can serve: requirements, code, metadata, and a real
``mlflow models serve`` answering over HTTP with the same probabilities as riskstrat."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from riskstrat import tracking
from riskstrat.modelling.spec import DEFAULT_SPEC
from riskstrat.stages.features import build_features, features_path
from riskstrat.stages.train import train

D = dt.date(2024, 10, 1)


@pytest.fixture(scope="module")
def registered(pseudonymised, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve") / "W"
    shutil.copytree(pseudonymised, work)
    (work / "mlflow.db").unlink(missing_ok=True)
    shutil.rmtree(work / "mlartifacts", ignore_errors=True)
    text = DEFAULT_SPEC.read_text().replace("candidates: [lightgbm, logistic]", "candidates: [lightgbm]")
    text = text.replace("max_trials: 20", "max_trials: 1").replace("n_estimators: 3000", "n_estimators: 80")
    spec = tmp_path_factory.mktemp("spec") / "spec.yaml"
    spec.write_text(text)
    result = train(work, D, spec)
    return work, result


def test_the_registered_model_carries_what_serving_needs(registered):
    from mlflow import MlflowClient

    work, result = registered
    tracking.configure(work, None, result.model_name)
    client = MlflowClient()
    model = client.get_registered_model(result.model_name)
    assert "emergency" in model.description.lower() and model.tags["horizon_days"] == "365"
    version = client.get_model_version(result.model_name, result.version)
    assert version.description.startswith("lightgbm trained at 2024-10-01")
    local = Path(client.download_artifacts(version.run_id, "model"))
    requirements = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("lightgbm==") for r in requirements)
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert not any(r.startswith("riskstrat") for r in requirements)  # on no index: shipped as code instead
    assert (local / "code" / "riskstrat" / "modelling" / "estimators.py").exists()
    meta = yaml.safe_load((local / "MLmodel").read_text())["metadata"]
    assert [b["name"] for b in meta["risk_bands"]] == ["very high", "high", "moderate", "low"]
    assert "emergency_admissions_365d" in meta["features"] and meta["horizon_days"] == 365


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_with_riskstrat_s_probabilities(registered):
    """``--env-manager local``: building a virtualenv from the model's requirements would
    download and install MLflow, LightGBM and scikit-learn (several minutes and about 1 GB)
    on every CI run; the requirements themselves are checked above."""
    work, result = registered
    port = _free_port()
    uri = f"sqlite:///{(work / 'mlflow.db').resolve()}"
    # the server's own processes (uvicorn) come from the same environment as MLflow
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "PATH": path}
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [
            str(mlflow_cli),
            "models",
            "serve",
            "-m",
            f"models:/{result.model_name}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the model server did not start: {server.stderr.read()[-2000:]}") from None
                time.sleep(1)
        if not features_path(work, D).exists():
            build_features(work, D)
        loaded = tracking.load_registered(work, None, f"models:/{result.model_name}@champion")
        rows = pq.read_table(features_path(work, D)).to_pandas()[loaded.input_names].head(3)
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            served = json.loads(r.read())["predictions"]
        expected = loaded.model.predict(rows)
        assert len(served) == 3 and all(0 < p < 1 for p in served)
        assert pd.Series(served).round(10).tolist() == pd.Series(expected).round(10).tolist()
    finally:
        server.terminate()
        server.wait(timeout=30)
