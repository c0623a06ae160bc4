"""Experiment tracking and the model registry in MLflow: embedded SQLite by default, any tracking URI in production."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from robodata.errors import RobodataError

TRACKING_ENV = "MLFLOW_TRACKING_URI"
PROMOTED_TAG = "robodata.promoted"


class TrackingError(RobodataError):
    """MLflow cannot be reached or refused a write."""


def default_tracking_uri(home: str | Path) -> str:
    """``sqlite:///<home>/mlflow/mlflow.db``: no server, one file next to the Dagster instance."""
    db = Path(home) / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def resolve_tracking_uri(configured: str | None, home: str | Path) -> str:
    return configured or os.environ.get(TRACKING_ENV) or default_tracking_uri(home)


class PolicyTracker:
    """One MLflow experiment for the policy tier, and its registered model.

    Uses ``MlflowClient`` (no global active run), so several trainings in one process never mix.
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: str | None = None):
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            exp = self.client.get_experiment_by_name(experiment)
            self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(
                experiment, artifact_location=artifact_root)
        except Exception as err:
            raise TrackingError(f"MLflow at {tracking_uri}: cannot open experiment {experiment!r} ({err})") from err

    def start_run(self, name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        rid = run.info.run_id
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(rid, params=items[i:i + 100])
        return rid

    def log_curve(self, run_id: str, curve: list[dict]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        ms = []
        for p in curve:
            ms.append(Metric("train_loss", float(p["loss"]), now, int(p["step"])))
            for k, v in p.get("values", {}).items():
                ms.append(Metric(f"train_{k.replace('/', '_')}", float(v), now, int(p["step"])))
        for i in range(0, len(ms), 500):
            self.client.log_batch(run_id, metrics=ms[i:i + 500])

    def log_metrics(self, run_id: str, metrics: dict[str, float | None], step: int = 0) -> None:
        for k, v in metrics.items():
            if v is not None:
                self.client.log_metric(run_id, k, float(v), step=step)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(run_id, k, str(v))

    def log_artifacts(self, run_id: str, local_dir: str | Path, artifact_path: str) -> str:
        self.client.log_artifacts(run_id, str(local_dir), artifact_path)
        return f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_path}"

    def end_run(self, run_id: str, ok: bool) -> None:
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    # ---- registry ----------------------------------------------------------------------------------
    def latest_version(self, model: str):
        """The newest registered version of ``model`` (the promoted checkpoint), or None."""
        try:
            versions = self.client.search_model_versions(f"name='{model}'")
        except Exception:  # noqa: BLE001 - no such model yet
            return None
        return max(versions, key=lambda v: int(v.version)) if versions else None

    def register(self, model: str, run_id: str, source: str, tags: dict[str, Any]) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(model, description="Policies promoted by robodata's policy_checkpoint")
        except MlflowException:
            pass  # already there
        mv = self.client.create_model_version(model, source=source, run_id=run_id,
                                              tags={k: str(v) for k, v in tags.items()})
        return str(mv.version)
