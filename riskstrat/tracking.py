"""MLflow tracking and registry: the only module that imports mlflow.

Default tracking is embedded: a SQLite store ``W/mlflow.db`` and artefacts in
``W/mlartifacts/``; a tracking URI in configuration (or ``--tracking-uri``) points at a
server instead. Runs carry parameters, the model specification, metrics, plots and tables,
and data summaries as counts: never patient rows, never input examples, never keys.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from riskstrat.privacy.audit import AuditLog, current_user
from riskstrat.workdir import WorkDir

__all__ = [
    "CHAMPION",
    "ChampionMove",
    "ModelInfo",
    "RiskModelPyfunc",
    "champion_history",
    "champion_version",
    "configure",
    "load_model",
    "log_metric_history",
    "log_model",
    "log_monitoring",
    "log_run",
    "model_info",
    "model_versions",
    "move_champion",
    "point_at",
    "reference_profile_of",
    "set_champion",
    "show_mlflow_prints",
    "tracking_uri",
]

CHAMPION = "champion"


def show_mlflow_prints(shown: bool) -> None:
    """Turn on or off what MLflow prints past :mod:`logging` ("Successfully registered model",
    "Created version"). The command line turns them off unless ``--verbose``; importing this
    module changes nothing (MLflow's loggers are the application's to set)."""
    from mlflow.utils import logging_utils

    (logging_utils.enable_logging if shown else logging_utils.disable_logging)()


def tracking_uri(workdir: Path, configured: str | None = None) -> str:
    if configured:
        return configured
    return f"sqlite:///{WorkDir(workdir).mlflow_db.resolve()}"


def point_at(workdir: Path, uri: str | None = None) -> str:
    """Point MLflow's tracking and registry at the store (``uri``, else W's embedded one)."""
    store = tracking_uri(workdir, uri)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    return store


WORKDIR_TAG = "riskstrat.workdir"
DECISION_TAG = "riskstrat.champion_decision"
PENDING = "pending"


def configure(workdir: Path, uri: str | None, experiment: str, end_abandoned: bool = False) -> str:
    """Point mlflow at the store and the experiment (created with artefacts in W/mlartifacts).

    With ``end_abandoned`` (the caller holds the work directory's lock, so no other process
    can be running them), runs of this work directory left RUNNING by a killed process are
    ended as FAILED."""
    uri = tracking_uri(workdir, uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:"):
            location = WorkDir(workdir).mlartifacts.resolve().as_uri()
        mlflow.create_experiment(experiment, artifact_location=location)
    exp = mlflow.set_experiment(experiment)
    if found is not None and end_abandoned:
        client = MlflowClient()
        query = f"attributes.status = 'RUNNING' and tags.`{WORKDIR_TAG}` = '{_workdir_id(workdir)}'"
        for run in client.search_runs([exp.experiment_id], query):
            client.set_terminated(run.info.run_id, status="FAILED")
    return uri


def _workdir_id(workdir: Path) -> str:
    return str(workdir.resolve()).replace("'", "")


class RiskModelPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc: a feature table in, calibrated probabilities out."""

    def load_context(self, context) -> None:
        self.estimator = joblib.load(context.artifacts["estimator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        return self.estimator.predict_proba(model_input)[:, 1]


def start_run(name: str, workdir: Path):
    """A tracked run of work directory ``workdir`` (context manager yielding the run;
    ``run.info.run_id``); an exception inside ends it as FAILED."""
    return mlflow.start_run(run_name=name, tags={WORKDIR_TAG: _workdir_id(workdir)})


def set_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)


def log_run(
    params: dict[str, Any],
    metrics: dict[str, float],
    spec_path: Path | None,
    tables: dict[str, pd.DataFrame],
    figures: dict[str, Any],
    summary: dict[str, Any],
    tags: dict[str, str],
) -> None:
    """Log one training run's record into the active run."""
    mlflow.log_params({k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
    mlflow.set_tags(tags)
    if spec_path is not None:
        mlflow.log_artifact(str(spec_path), artifact_path="spec")
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in tables.items():
            path = Path(tmp) / f"{name}.csv"
            table.to_csv(path, index=False)
            mlflow.log_artifact(str(path), artifact_path="tables")
        (Path(tmp) / "data_summary.json").write_text(json.dumps(summary, indent=2, default=str))
        mlflow.log_artifact(str(Path(tmp) / "data_summary.json"))
    for name, fig in figures.items():
        mlflow.log_figure(fig, f"plots/{name}.png")


def log_metric_history(name: str, values: list[float]) -> None:
    """One metric with a value per step (e.g. each search trial's score) in the active run."""
    for step, v in enumerate(values):
        mlflow.log_metric(name, float(v), step=step)


#: what the logged model needs to be loaded and served in a fresh environment: the libraries
#: its estimators and wrapper import, pinned to the versions it was trained with
_SERVING_LIBRARIES = ("mlflow", "lightgbm", "scikit-learn", "scipy", "pandas", "numpy", "joblib", "cloudpickle")


def serving_requirements() -> list[str]:
    """Pinned pip requirements of a logged model (the installed versions)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in _SERVING_LIBRARIES]


def log_model(
    estimator, feature_frame: pd.DataFrame, registered_name: str, metadata: dict[str, Any] | None = None
) -> str:
    """Log the estimator as a pyfunc with a signature (no input example); register it.

    The model carries what serving needs (``mlflow models serve``): pinned requirements
    (:func:`serving_requirements`), riskstrat's own code (``code_paths``: the package, so the
    estimator classes unpickle anywhere) and ``metadata`` (risk bands, features, outcome).
    Returns the new registered version.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "estimator.joblib"
        joblib.dump(estimator, path)
        # The signature comes from an empty frame: no patient row is ever logged. Feature
        # tables carry no missing values (declared defaults), so integer columns stay integers.
        sample = feature_frame.iloc[:0]
        pyfunc_log = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_log.level
        with warnings.catch_warnings():
            # Deliberate: no input example, integer columns (features have no missing values),
            # and our own small wrapper class serialised with cloudpickle.
            warnings.simplefilter("ignore", UserWarning)
            pyfunc_log.setLevel(logging.ERROR)
            signature = infer_signature(sample, np.zeros(0, dtype=float))
            try:
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=RiskModelPyfunc(),
                    artifacts={"estimator": str(path)},
                    signature=signature,
                    registered_model_name=registered_name,
                    pip_requirements=serving_requirements(),
                    code_paths=[str(Path(__file__).resolve().parent)],
                    metadata=metadata,
                )
            finally:
                pyfunc_log.setLevel(level)
    version = str(info.registered_model_version)
    # Until the champion decision is recorded, the version is pending: a rerun after a kill
    # completes the decision (complete_pending) instead of training and registering again.
    MlflowClient().set_model_version_tag(registered_name, version, DECISION_TAG, PENDING)
    return version


def describe_registered(name: str, version: str, description: str, tags: dict[str, str], summary: str) -> None:
    """The registered model's description and tags, and the version's one-line summary."""
    client = MlflowClient()
    client.update_registered_model(name, description=description)
    for k, v in tags.items():
        client.set_registered_model_tag(name, k, v)
    client.update_model_version(name, version, description=summary)


def run_table(workdir: Path, uri: str | None, run_id: str, name: str) -> pd.DataFrame | None:
    """A table a run logged (``tables/<name>.csv``), or None when the run has none (a model
    trained before the table existed) or the store cannot be reached."""
    import os

    store = tracking_uri(workdir, uri or os.environ.get("MLFLOW_TRACKING_URI"))
    mlflow.set_tracking_uri(store)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = MlflowClient().download_artifacts(run_id, f"tables/{name}.csv", tmp)
            return pd.read_csv(path, dtype={"group": str})
    except (MlflowException, OSError):
        return None


def champion_version(name: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


#: each move of the champion alias is a registered-model tag ``<prefix><UTC time>``
HISTORY_TAG_PREFIX = "riskstrat.champion_move."
#: the metrics of a version shown with it (``models list``, the champion history)
KEY_METRICS = ("auroc", "auprc", "brier", "calibration_slope", "observed_over_expected", "ppv_top1pct")


@dataclass(frozen=True)
class ChampionMove:
    """One move of the ``champion`` alias: when, from which version to which, why, by whom, and
    the key validation metrics of the version made champion."""

    time: str
    model: str
    from_version: str | None
    to_version: str
    reason: str
    how: str  # "training" (the champion gate), "manual" (riskstrat models promote), "completed"
    user: str
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reason": self.reason,
            "how": self.how,
            "user": self.user,
            "metrics": self.metrics,
        }


def _version_metrics(client: MlflowClient, name: str, version: str) -> dict[str, float]:
    mv = client.get_model_version(name, version)
    try:
        found = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    except MlflowException:
        found = {}
    return {k: round(float(found[k]), 6) for k in KEY_METRICS if k in found}


def move_champion(name: str, version: str, reason: str, how: str, audit: AuditLog | None = None) -> ChampionMove:
    """Move the ``champion`` alias of ``name`` to ``version`` and record the move: a tag of the
    registered model (``riskstrat.champion_move.<time>``, JSON), a tag of the version
    (``riskstrat.champion_since``) and, with ``audit``, a ``champion_move`` line of the audit log.

    Raises RiskstratError when the version does not exist."""
    from riskstrat.errors import RiskstratError

    client = MlflowClient()
    try:
        metrics = _version_metrics(client, name, version)
    except MlflowException:
        raise RiskstratError(f"no version {version} of the registered model {name}") from None
    now = dt.datetime.now(dt.UTC)
    move = ChampionMove(
        time=now.isoformat(timespec="seconds"),
        model=name,
        from_version=champion_version(name),
        to_version=str(version),
        reason=" ".join(reason.split())[:1000],
        how=how,
        user=current_user(),
        metrics=metrics,
    )
    client.set_registered_model_alias(name, CHAMPION, str(version))
    client.set_registered_model_tag(
        name, HISTORY_TAG_PREFIX + now.strftime("%Y%m%dT%H%M%S%fZ"), json.dumps(move.to_dict())
    )
    client.set_model_version_tag(name, str(version), "riskstrat.champion_since", move.time)
    if audit is not None:
        record = move.to_dict()
        audit.append("champion_move", **{k: v for k, v in record.items() if k != "user"})
    return move


def set_champion(
    name: str, version: str, reason: str = "", how: str = "training", audit: AuditLog | None = None
) -> None:
    """Make ``version`` the champion, recording the move (:func:`move_champion`)."""
    move_champion(name, version, reason or f"version {version} made champion", how, audit)


def champion_history(name: str) -> list[ChampionMove]:
    """Every recorded move of the champion alias of ``name``, oldest first."""
    from riskstrat.errors import RiskstratError

    try:
        tags = MlflowClient().get_registered_model(name).tags
    except MlflowException:
        raise RiskstratError(f"no registered model {name}") from None
    moves = [json.loads(v) for k, v in sorted(tags.items()) if k.startswith(HISTORY_TAG_PREFIX)]
    return [ChampionMove(**m) for m in moves]


def model_versions(name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first: version, when registered, aliases, champion
    decision, training date, learner and key metrics (:data:`KEY_METRICS`)."""
    from riskstrat.errors import RiskstratError

    client = MlflowClient()
    try:
        client.get_registered_model(name)
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        raise RiskstratError(f"no registered model {name}") from None
    champion = champion_version(name)
    out = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        params: dict[str, str] = {}
        tags: dict[str, str] = {}
        if v.run_id:
            with_run = client.get_run(v.run_id)
            params, tags = with_run.data.params, with_run.data.tags
        out.append(
            {
                "version": str(v.version),
                "registered": dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC).isoformat(
                    timespec="seconds"
                ),
                "champion": str(v.version) == champion,
                "decision": v.tags.get(DECISION_TAG, ""),
                "train_as_of": params.get("train_as_of", ""),
                "learner": tags.get("learner", ""),
                "metrics": _version_metrics(client, name, str(v.version)),
            }
        )
    return out


#: the training run's artefact holding the monitoring reference (bins and shares, no rows)
REFERENCE_PROFILE = "monitoring/reference_profile.json"


def log_json(artifact: str, content: dict[str, Any]) -> None:
    """A JSON artefact of the active run (``artifact``: its path in the run)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact).name
        path.write_text(json.dumps(content, indent=1, default=str))
        parent = str(Path(artifact).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)


def reference_profile_of(workdir: Path, uri: str | None, run_id: str) -> dict[str, Any] | None:
    """The monitoring reference a training run logged, or None (a run from before monitoring)."""
    import os

    store = tracking_uri(workdir, uri or os.environ.get("MLFLOW_TRACKING_URI"))
    mlflow.set_tracking_uri(store)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return json.loads(Path(MlflowClient().download_artifacts(run_id, REFERENCE_PROFILE, tmp)).read_text())
    except (MlflowException, OSError):
        return None


def log_monitoring(
    workdir: Path, name: str, as_of: str, metrics: dict[str, float], tags: dict[str, str], record: dict[str, Any]
) -> str:
    """One monitoring run of the experiment ``name`` ("monitoring at D"): the month's figures as
    metrics, the warnings and the scoring model as tags, the record as ``monitoring.json``
    (aggregate figures only). Returns the run id."""
    with start_run(f"monitoring at {as_of}", workdir) as run:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        mlflow.set_tags({"riskstrat.stage": "monitor", "as_of": as_of, **{k: v[:5000] for k, v in tags.items()}})
        log_json("monitoring.json", record)
    return run.info.run_id


def record_decision(name: str, version: str, decision: str) -> None:
    """The champion decision on a version is made ("promoted" or "kept"): no longer pending."""
    MlflowClient().set_model_version_tag(name, version, DECISION_TAG, decision)


def complete_pending(name: str, audit: AuditLog | None = None) -> str | None:
    """A version registered by a run killed before its champion decision: with no champion,
    the newest such version becomes champion (it passed every check before registration).
    Returns the version promoted, if any."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    pending = sorted(
        (v for v in versions if v.tags.get(DECISION_TAG) == PENDING), key=lambda v: int(v.version), reverse=True
    )
    if not pending:
        return None
    promoted = None
    if champion_version(name) is None:
        promoted = str(pending[0].version)
        reason = f"version {promoted} was registered by a run stopped before its champion decision, with no champion"
        set_champion(name, promoted, reason, "completed", audit)
    for v in pending:
        record_decision(name, str(v.version), "promoted" if str(v.version) == promoted else "kept")
    return promoted


def load_model(uri: str):
    """A registered model (e.g. ``models:/emergency_admission_12m@champion``) as a pyfunc."""
    return mlflow.pyfunc.load_model(uri)


@dataclass
class LoadedModel:
    name: str
    version: str
    run_id: str
    model: Any  # the pyfunc
    estimator: Any  # the fitted riskstrat estimator inside it
    input_names: list[str]
    risk_bands: list[dict]


def load_registered(workdir: Path, uri: str | None, model_uri: str) -> LoadedModel:
    """Load a registered model with its version, run and the risk bands of its specification.

    Raises RiskstratError when the model or alias does not exist.
    """
    from riskstrat.errors import RiskstratError

    store = tracking_uri(workdir, uri)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    client = MlflowClient()
    try:
        name, _, ref = model_uri.removeprefix("models:/").partition("@")
        if ref:
            mv = client.get_model_version_by_alias(name, ref)
        else:
            name, _, number = model_uri.removeprefix("models:/").partition("/")
            mv = client.get_model_version(name, number)
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        raise RiskstratError(
            f"no model {model_uri} in {store.split('?')[0]}: train one first ({str(exc).splitlines()[0][:160]})"
        ) from None
    bands = (model.metadata.metadata or {}).get("risk_bands")
    if bands is None:  # a model logged before the bands travelled with it
        bands = json.loads(client.get_run(mv.run_id).data.params["risk_bands"])
    return LoadedModel(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        model=model,
        estimator=model.unwrap_python_model().estimator,
        input_names=model.metadata.get_input_schema().input_names(),
        risk_bands=bands,
    )


@dataclass(frozen=True)
class ModelInfo:
    """What a registered version says about itself, without loading it: its run, input features
    and the metadata it was logged with (risk bands, outcome, horizon, training date)."""

    name: str
    version: str
    run_id: str
    input_names: list[str]
    metadata: dict[str, Any]


def model_info(workdir: Path, uri: str | None, name: str, version: str) -> ModelInfo:
    """The :class:`ModelInfo` of version ``version`` of ``name`` (reads its MLmodel file only).

    Raises RiskstratError when the version does not exist."""
    from riskstrat.errors import RiskstratError

    store = tracking_uri(workdir, uri)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    try:
        mv = MlflowClient().get_model_version(name, version)
        info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    except MlflowException as exc:
        raise RiskstratError(f"no model {name} version {version}: {str(exc).splitlines()[0][:160]}") from None
    schema = info.signature.inputs.input_names() if info.signature is not None else []
    return ModelInfo(name, str(version), mv.run_id, list(schema), dict(info.metadata or {}))
