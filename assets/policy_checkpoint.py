"""policy_checkpoint (release): fine-tune a policy on a lerobot_dataset release, evaluate, track, register.

The trainer runs out of process through Dagster Pipes (``tiers.policy.launcher``: ``subprocess`` here,
``k8s`` as a GPU pod through ``PipesK8sClient``, ``ray`` as a Ray job through ``PipesRayJobClient``);
its metrics come back as Pipes logs and its result as a Pipes message. Evaluation, MLflow tracking and
promotion run here. A failed or worse run leaves ``policy/latest.json`` and the registry as they were.
"""


import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg

from robodata_dagster.resources.project import ProjectResource

CHECK_NOT_WORSE = "checkpoint_not_worse_than_promoted"
ASSET = "policy_checkpoint"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Retrain when lerobot_dataset cuts a release with a new data version (a re-run that reuses the same release
# does not count), once its blocking checks passed; the weekly schedule below covers "retrain anyway".
NEW_RELEASE = (
    dg.AutomationCondition.any_deps_match(dg.AutomationCondition.data_version_changed()).since_last_handled()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("new lerobot_dataset release")


class PolicyRunConfig(dg.Config):
    """Launchpad overrides of ``tiers.policy`` for one run (empty = the project config)."""

    release: str = ""
    engine: str = ""
    policy_type: str = ""
    max_steps: int = 0
    batch_size: int = 0
    trainer_args: list[str] = []
    overrides: list[str] = []  # KEY=VALUE under tiers.policy, e.g. "rollouts=0", "groot.data_config=so100"

    def apply(self, base):
        from robodata.config import _deep_merge, parse_overrides
        from robodata.train.config import PolicyConfig

        data = base.model_dump()
        over: dict[str, Any] = parse_overrides(self.overrides)
        for k in ("release", "engine", "policy_type", "max_steps", "batch_size"):
            if getattr(self, k):
                over[k] = getattr(self, k)
        if self.trainer_args:
            over["trainer_args"] = list(base.trainer_args) + list(self.trainer_args)
        return PolicyConfig.model_validate(_deep_merge(data, over))


def _launch(context: dg.AssetExecutionContext, pcfg, plan, ref) -> dict:
    """Start the trainer through Pipes; returns the TrainResult dict it reported."""
    from robodata.train.launchers import k8s_pod_spec, ray_job_params, remap_for_volume
    from robodata.train.pipes_entry import spec_env

    cmd = plan.command
    entry = [sys.executable, "-m", "robodata.train.pipes_entry"]
    if pcfg.launcher == "subprocess":
        env = spec_env(cmd, log_steps=pcfg.log_steps, batch_size=pcfg.batch_size)
        inv = dg.PipesSubprocessClient(cwd=str(REPO_ROOT)).run(context=context, command=entry, env=env)
    elif pcfg.launcher == "k8s":
        from dagster_k8s import PipesK8sClient

        cmd = remap_for_volume(cmd, pcfg.k8s, ref.root.parents[2])
        env = spec_env(cmd, log_steps=pcfg.log_steps, batch_size=pcfg.batch_size)
        inv = PipesK8sClient().run(context=context, image=pcfg.k8s.image, namespace=pcfg.k8s.namespace,
                                   command=["python", "-m", "robodata.train.pipes_entry"], env=env,
                                   base_pod_spec=k8s_pod_spec(pcfg))
    else:
        from dagster_ray.core.pipes import PipesRayJobClient
        from ray.job_submission import JobSubmissionClient

        env = spec_env(cmd, log_steps=pcfg.log_steps, batch_size=pcfg.batch_size)
        client = PipesRayJobClient(client=JobSubmissionClient(pcfg.ray.address))
        inv = client.run(context=context, submit_job_params=ray_job_params(pcfg, env))
    for msg in inv.get_custom_messages():
        if isinstance(msg, dict) and "train_result" in msg:
            return msg["train_result"]
    raise dg.Failure(f"the trainer process reported no result (launcher {pcfg.launcher}); see the run's logs",
                     allow_retries=False)


@dg.asset(
    name=ASSET,
    deps=["lerobot_dataset"],
    group_name="release",
    kinds={"lerobot", "mlflow", "pytorch"},
    automation_condition=NEW_RELEASE,
    op_tags={"dagster/concurrency_key": "policy_training"},
    check_specs=[dg.AssetCheckSpec(CHECK_NOT_WORSE, asset=ASSET, blocking=True,
                                   description="offline eval (held-out action MSE, sim rollouts) not worse than "
                                               "the promoted checkpoint on the same eval")],
    description="A policy fine-tuned on a lerobot_dataset release (lerobot-train locally; GR00T N1.5 on a GPU "
                "cluster), evaluated offline, tracked in MLflow and registered when promoted.",
)
def policy_checkpoint(context: dg.AssetExecutionContext, config: PolicyRunConfig, project: ProjectResource):
    from robodata.errors import RobodataError
    from robodata.plots import markdown_image
    from robodata.train import finetune as ft
    from robodata.train.launchers import loss_curve_png
    from robodata.train.runner import TrainResult
    from robodata.train.tracking import PolicyTracker, resolve_tracking_uri

    from pydantic import ValidationError

    from robodata.topicmap import format_validation_error

    cfg = project.config
    try:
        pcfg = config.apply(cfg.tiers.policy)
    except ValidationError as err:
        raise dg.Failure(format_validation_error(err, "policy_checkpoint run config (tiers.policy)"),
                         allow_retries=False) from err
    store = project.store()
    try:
        ref = ft.resolve_release(store, pcfg.release)
        ft.check_release(ref)
        ft.check_gpus(pcfg)
        plan = ft.plan_run(pcfg, ref, store.local_path(ft.POLICY_RUNS))
    except RobodataError as err:
        raise dg.Failure(str(err), allow_retries=False) from err
    context.log.info(f"trainer: {plan.command.shell()}")
    t0 = time.perf_counter()
    res = plan.completed or TrainResult.from_dict(_launch(context, pcfg, plan, ref))
    reused = plan.completed is not None
    if not res.ok:
        raise dg.Failure(f"training on release {ref.release} failed: {res.error} (the promoted checkpoint and the "
                         "registry are unchanged; run again to resume from the last checkpoint)",
                         metadata={"log_tail": dg.MetadataValue.md("```\n" + "\n".join(res.log_tail) + "\n```")},
                         allow_retries=False)
    try:
        report = ft.evaluate(pcfg, plan, ref, res.checkpoint)
        promoted = ft.read_promoted(store)
        if promoted and promoted.get("run") == plan.name:  # re-run of the promoted checkpoint: nothing to register
            promote, reason, prev_metrics, already = True, "this checkpoint is the promoted one", None, True
        else:
            promote, reason, prev_metrics = ft.compare_with_promoted(pcfg, plan, ref, report, promoted)
            already = False
    except RobodataError as err:
        raise dg.Failure(f"evaluating {res.checkpoint}: {err}", allow_retries=False) from err
    eval_metrics = report.metrics() if report else {}
    # ---- MLflow: params, curve, eval, lineage tags, the checkpoint; a registered version when promoted
    tracker = PolicyTracker(resolve_tracking_uri(pcfg.tracking.tracking_uri, cfg.home_dir), pcfg.tracking.experiment,
                            str(store.local_path("mlflow/artifacts")) if store.local else None)
    tags = {**ft.lineage_tags(ref), "robodata.engine": pcfg.engine, "robodata.run": plan.name,
            "dagster.run_id": context.run.run_id, "robodata.promoted": str(promote)}
    rid = tracker.start_run(plan.name, plan.params, tags)
    tracker.log_curve(rid, res.curve)
    tracker.log_metrics(rid, {"final_loss": res.final_loss, "best_loss": res.best_loss,
                              "samples_per_s": res.samples_per_s, "wall_s": res.wall_s, **eval_metrics},
                        step=res.steps)
    artifact_uri = tracker.log_artifacts(rid, res.checkpoint, "checkpoint")
    version = None
    if promote and not already:
        version = tracker.register(pcfg.tracking.registered_model, rid, artifact_uri,
                                   {"release": ref.release, "run": plan.name, **eval_metrics})
    tracker.end_run(rid, True)
    entry = {"run": plan.name, "engine": pcfg.engine, "checkpoint": res.checkpoint, "release": ref.release,
             "recordings": ref.recordings, "metrics": {**eval_metrics, "final_loss": res.final_loss},
             "eval": report.to_dict() if report else {}, "mlflow_run_id": rid, "model_version": version}
    if promote and not already:
        ft.write_promoted(store, entry)
    elif already:
        version = promoted.get("model_version")
    meta: dict[str, Any] = {
        "release": ref.release,
        "dataset_format": ref.format,
        "recordings": dg.MetadataValue.json(ref.recordings),
        "upstream_data_versions": dg.MetadataValue.json(ref.upstream_versions),
        "engine": pcfg.engine,
        "policy_type": pcfg.policy_type,
        "run": plan.name,
        "reused_existing": reused,
        "resumed_from_step": res.start_step if res.resumed else 0,
        "steps": res.steps,
        "final_loss": res.final_loss,
        "best_loss": res.best_loss,
        "wall_time_s": round(time.perf_counter() - t0, 2) if not reused else res.wall_s,
        "samples_per_s": round(res.samples_per_s, 2) if res.samples_per_s else None,
        "checkpoint": dg.MetadataValue.path(res.checkpoint),
        "checkpoint_bytes": res.checkpoint_bytes,
        "train_episodes": dg.MetadataValue.json(plan.train_episodes),
        "heldout_episodes": dg.MetadataValue.json(plan.heldout_episodes),
        **{k: round(v, 5) for k, v in eval_metrics.items()},
        "promoted": promote,
        "promotion": reason,
        "mlflow_run_id": rid,
        "mlflow_tracking_uri": tracker.uri,
        "model_version": version or "not registered",
        "trainer_command": dg.MetadataValue.md(f"```\n{plan.command.shell()}\n```"),
    }
    if res.curve:
        meta["loss_curve"] = dg.MetadataValue.md(markdown_image(loss_curve_png(res.curve, plan.name), "loss curve"))
    meta = {k: v for k, v in meta.items() if v is not None}
    return dg.MaterializeResult(
        metadata=meta,
        check_results=[dg.AssetCheckResult(
            check_name=CHECK_NOT_WORSE, passed=promote, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"reason": reason, "candidate": dg.MetadataValue.json(eval_metrics),
                      "promoted_on_this_eval": dg.MetadataValue.json(prev_metrics or {})})],
        data_version=dg.DataVersion(plan.name),
    )


train_policy_job = dg.define_asset_job("train_policy", selection=[ASSET],
                                       description="Fine-tune, evaluate and (maybe) promote the policy")
policy_weekly_schedule = dg.ScheduleDefinition(name="policy_weekly", job=train_policy_job,
                                               cron_schedule="0 4 * * 1", execution_timezone="UTC",
                                               default_status=dg.DefaultScheduleStatus.STOPPED)
