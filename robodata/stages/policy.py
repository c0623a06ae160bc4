"""policy_checkpoint as a stage: fine-tune on a release, evaluate, and promote only what is not worse.

The trainer (lerobot-train, or GR00T's ``gr00t_finetune.py``: ``tiers.policy.engine``) runs out of process
through a :class:`~robodata.stages.engines.Launcher` and writes its checkpoints under ``policy/runs/<run>/``
(where a crashed run resumes). The stage's output is the run's **candidate record** (checkpoint, metrics,
eval), staged at ``policy/runs/<run>.candidate.json``; the blocking check compares it with the promoted
checkpoint on the same eval. A passing candidate is published and then promoted (``policy/latest.json`` and
a registered model version in MLflow); a worse one is quarantined, leaving the promoted checkpoint and the
registry as they were. Every run is tracked in MLflow either way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robodata import store_layout as layout
from robodata.errors import RobodataError
from robodata.secrets import redact
from robodata.stages.base import Finding, OutputValidator, Stage, StageOutcome
from robodata.stages.engines import Launcher, require_engine
from robodata.stages.tiers import GxReport
from robodata.storage import DataStore
from robodata.train.config import PolicyConfig
from robodata.train.evaluate import EvalReport
from robodata.train.finetune import ReleaseRef, RunPlan, TrainError
from robodata.train.runner import TrainResult

CHECK_NOT_WORSE = "checkpoint_not_worse_than_promoted"


class TrainingFailed(TrainError):
    """The trainer ran but did not finish; ``log_tail`` is the end of its log."""

    def __init__(self, message: str, log_tail: list[str]):
        super().__init__(message)
        self.log_tail = log_tail


class GxRunMetrics(GxReport):
    """GX on the candidate's metrics: each a finite number, losses and errors >= 0, rates in [0, 1] (a run
    that diverged to NaN is never promoted)."""

    name = "gx_metrics_valid"
    description = "GX: every training/eval metric a finite number; losses >= 0, rates in [0, 1]"

    def suite(self, path: Path) -> Any:
        from robodata.quality import validate_metrics

        return validate_metrics(dict(json.loads(path.read_text()).get("metrics") or {}), self.name)


class NotWorseThanPromoted(OutputValidator):
    """The staged candidate scores at least as well as the promoted checkpoint on this run's eval."""

    name = CHECK_NOT_WORSE
    description = ("offline eval (held-out action MSE, sim rollouts) not worse than the promoted checkpoint on "
                   "the same eval")

    def __init__(self, config: PolicyConfig, store: DataStore, release: ReleaseRef, plan: RunPlan):
        self.config, self.store, self.release, self.plan = config, store, release, plan
        self.last_metadata: dict[str, Any] = {}

    def validate(self, path: Path) -> list[Finding]:
        from robodata.train.finetune import compare_with_promoted, read_promoted

        candidate = json.loads(path.read_text())
        report = EvalReport(**candidate["eval"]) if candidate.get("eval") else None
        promoted = read_promoted(self.store)
        if promoted and promoted.get("run") == candidate["run"]:
            ok, reason, prev = True, "this checkpoint is the promoted one", None
        else:
            ok, reason, prev = compare_with_promoted(self.config, self.plan, self.release, report, promoted)
        self.last_metadata = {"reason": reason, "candidate": report.metrics() if report else {},
                              "promoted_on_this_eval": prev or {}}
        return [] if ok else [Finding(self.name, reason, "error", str(candidate.get("checkpoint", "")))]


@dataclass
class TrainingRun:
    """What the stage's work did: the trainer's result (reused when this release and config already trained)."""

    result: TrainResult
    eval: EvalReport | None
    reused: bool
    wall_s: float


def plan_training(store: DataStore, config: PolicyConfig) -> tuple[ReleaseRef, RunPlan]:
    """The release to train on (checked), GPUs there when asked, and the run's plan (resuming when it can)."""
    from robodata.train import finetune as ft

    ref = ft.resolve_release(store, config.release)
    ft.check_release(ref)
    ft.check_gpus(config)
    return ref, ft.plan_run(config, ref, store.local_path(layout.POLICY_RUNS))


class PolicyStage(Stage[PolicyConfig]):
    """A lerobot_dataset release -> a fine-tuned, evaluated checkpoint whose candidate record passed its check."""

    name = "policy_checkpoint"
    inputs = ("lerobot_dataset",)
    checks = (GxRunMetrics, NotWorseThanPromoted)

    def __init__(self, config: PolicyConfig, *, store: DataStore, release: ReleaseRef, plan: RunPlan,
                 launch: Launcher):
        super().__init__(config)
        require_engine("tiers.policy.launcher", config.launcher, launch.kind)
        self.store, self.release, self.plan, self.launch = store, release, plan, launch

    def output_path(self, key: str) -> str:
        return layout.policy_candidate_path(key)

    def work(self, staged: Path, key: str) -> TrainingRun:
        from robodata.train import finetune as ft

        t0 = time.perf_counter()
        res = self.plan.completed or self._train()
        if not res.ok:
            raise TrainingFailed(f"training on release {self.release.release} failed: {res.error} (the promoted "
                                 "checkpoint and the registry are unchanged; run again to resume from the last "
                                 "checkpoint)", res.log_tail)
        if not res.checkpoint:
            raise TrainError(f"training on release {self.release.release} finished without a checkpoint in "
                             f"{self.plan.output_dir}")
        try:
            report = ft.evaluate(self.config, self.plan, self.release, res.checkpoint)
        except RobodataError as err:
            raise TrainError(f"evaluating {res.checkpoint}: {err}") from err
        eval_metrics = report.metrics() if report else {}
        staged.write_text(json.dumps({
            "run": self.plan.name, "engine": self.config.engine, "checkpoint": res.checkpoint,
            "release": self.release.release, "recordings": self.release.recordings,
            "metrics": {**eval_metrics, "final_loss": res.final_loss}, "eval": report.to_dict() if report else {},
        }, indent=1))
        return TrainingRun(res, report, self.plan.completed is not None, time.perf_counter() - t0)

    def _train(self) -> TrainResult:
        from robodata.train.launchers import trainer_launch

        result = self.launch(trainer_launch(self.config, self.plan.command, self.release.root.parents[2]))
        for msg in result.messages:
            if isinstance(msg, dict) and "train_result" in msg:
                return TrainResult.from_dict(msg["train_result"])
        raise TrainError(f"the trainer process reported no result (launcher {self.launch.kind}); see the run's logs")

    def validators(self) -> list[OutputValidator]:
        return [GxRunMetrics(), NotWorseThanPromoted(self.config, self.store, self.release, self.plan)]


def train_policy(store: DataStore, config: PolicyConfig, launch: Launcher, *, home_dir: str | Path,
                 tags: dict[str, str] | None = None) -> tuple[StageOutcome, dict[str, Any]]:
    """Train (or reuse), evaluate and check a checkpoint; track the run in MLflow; promote it when it passed.

    Returns the outcome and the summary a runner shows; ``tags`` go on the MLflow run (e.g. the runner's id)."""
    from robodata.train import finetune as ft
    from robodata.train.tracking import PolicyTracker, resolve_tracking_uri

    require_engine("tiers.policy.launcher", config.launcher, launch.kind)  # before anything is planned
    ref, plan = plan_training(store, config)
    outcome = PolicyStage(config, store=store, release=ref, plan=plan, launch=launch).run(store, plan.name)
    run: TrainingRun = outcome.report
    res = run.result
    check = next(c for c in outcome.checks if c.name == CHECK_NOT_WORSE)
    promote = outcome.published
    reason = check.metadata.get("reason") or (str(check.findings[0]) if check.findings else "")
    promoted = ft.read_promoted(store)
    already = promote and promoted is not None and promoted.get("run") == plan.name
    eval_metrics = run.eval.metrics() if run.eval else {}
    tc = config.tracking
    tracker = PolicyTracker(resolve_tracking_uri(tc.tracking_uri, home_dir), tc.experiment,
                            str(store.local_path("mlflow/artifacts")) if store.local else None)
    rid = tracker.start_run(plan.name, plan.params, {**ft.lineage_tags(ref), "robodata.engine": config.engine,
                                                     "robodata.run": plan.name, **(tags or {}),
                                                     "robodata.promoted": str(promote)})
    tracker.log_curve(rid, res.curve)
    tracker.log_metrics(rid, {"final_loss": res.final_loss, "best_loss": res.best_loss,
                              "samples_per_s": res.samples_per_s, "wall_s": res.wall_s, **eval_metrics}, step=res.steps)
    artifact_uri = tracker.log_artifacts(rid, str(res.checkpoint), "checkpoint")
    version = None
    if promote and not already:
        version = tracker.register(tc.registered_model, rid, artifact_uri,
                                   {"release": ref.release, "run": plan.name, **eval_metrics})
    tracker.end_run(rid, True)
    if promote and not already:
        ft.write_promoted(store, {"run": plan.name, "engine": config.engine, "checkpoint": res.checkpoint,
                                  "release": ref.release, "recordings": ref.recordings,
                                  "metrics": {**eval_metrics, "final_loss": res.final_loss},
                                  "eval": run.eval.to_dict() if run.eval else {}, "mlflow_run_id": rid,
                                  "model_version": version})
    elif already and promoted is not None:
        version = promoted.get("model_version")
    return outcome, {
        "release": ref.release,
        "dataset_format": ref.format,
        "recordings": ref.recordings,
        "upstream_data_versions": ref.upstream_versions,
        "engine": config.engine,
        "policy_type": config.policy_type,
        "run": plan.name,
        "reused_existing": run.reused,
        "resumed_from_step": res.start_step if res.resumed else 0,
        "steps": res.steps,
        "final_loss": res.final_loss,
        "best_loss": res.best_loss,
        "wall_time_s": res.wall_s if run.reused else round(run.wall_s, 2),
        "samples_per_s": round(res.samples_per_s, 2) if res.samples_per_s else None,
        "checkpoint": res.checkpoint,
        "checkpoint_bytes": res.checkpoint_bytes,
        "train_episodes": plan.train_episodes,
        "heldout_episodes": plan.heldout_episodes,
        **{k: round(v, 5) for k, v in eval_metrics.items()},
        "promoted": promote,
        "promotion": reason,
        "candidate": outcome.url or outcome.quarantined,
        "mlflow_run_id": rid,
        "mlflow_tracking_uri": redact(tracker.uri),
        "model_version": version or "not registered",
        "trainer_command": plan.command.shell(),
        "loss_curve": _loss_curve(res, plan.name),
    }


def _loss_curve(res: TrainResult, title: str) -> bytes | None:
    from robodata.train.launchers import loss_curve_png

    return loss_curve_png(res.curve, title) if res.curve else None
