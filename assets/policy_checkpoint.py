"""policy_checkpoint (release): fine-tune a policy on a lerobot_dataset release, evaluate, track, register.

The trainer runs out of process through Dagster Pipes (the ``policy_launcher`` resource, from
``tiers.policy.launcher``: a subprocess here, a GPU pod through ``PipesK8sClient``, a Ray job through
``PipesRayJobClient``); its metrics come back as Pipes logs and its result as a Pipes message. The library's
stage (``robodata.stages.policy``) evaluates, checks, tracks and promotes: a failed or worse run leaves
``policy/latest.json`` and the registry as they were.
"""

from typing import Any

import dagster as dg
from pydantic import ValidationError

from robodata.config import ProjectConfig
from robodata.errors import RobodataError, is_transient
from robodata.stages.policy import PolicyStage, TrainingFailed, train_policy
from robodata_dagster.assets.checks import check_result, check_specs, metadata_values
from robodata_dagster.assets.partitions import failures_classified, retry_policy
from robodata_dagster.assets.versions import policy_checkpoint_version
from robodata_dagster.resources.engines import PipesLauncher
from robodata_dagster.resources.project import ProjectResource

ASSET = "policy_checkpoint"

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


def build_policy_checkpoint(cfg: ProjectConfig | None = None) -> dg.AssetsDefinition:
    """policy_checkpoint for ``cfg`` (its code version from what ``tiers.policy`` trains and how it evaluates)."""
    return dg.asset(
        name=ASSET,
        deps=["lerobot_dataset"],
        group_name="release",
        kinds={"lerobot", "mlflow", "pytorch"},
        code_version=policy_checkpoint_version(cfg or ProjectConfig()),
        automation_condition=NEW_RELEASE,
        op_tags={"dagster/concurrency_key": "policy_training"},
        check_specs=check_specs(ASSET, PolicyStage.checks),
        retry_policy=retry_policy(cfg),
        description="A policy fine-tuned on a lerobot_dataset release (lerobot-train locally; GR00T N1.5 on a GPU "
                    "cluster), evaluated offline, tracked in MLflow and registered when promoted.",
    )(_train)


def _train(context: dg.AssetExecutionContext, config: PolicyRunConfig, project: ProjectResource,
           policy_launcher: PipesLauncher) -> dg.MaterializeResult:
    # a trainer pod evicted or its node lost is retried (the trainer resumes from its last checkpoint)
    with failures_classified(context, ASSET):
        return _train_once(context, config, project, policy_launcher)


def _train_once(context: dg.AssetExecutionContext, config: PolicyRunConfig, project: ProjectResource,
                policy_launcher: PipesLauncher) -> dg.MaterializeResult:
    from robodata.topicmap import format_validation_error

    cfg = project.config
    try:
        pcfg = config.apply(cfg.tiers.policy)
    except ValidationError as err:
        raise dg.Failure(format_validation_error(err, "policy_checkpoint run config (tiers.policy)"),
                         allow_retries=False) from err
    try:
        outcome, summary = train_policy(project.store(), pcfg, policy_launcher.bind(context), home_dir=cfg.home_dir,
                                        tags={"dagster.run_id": context.run.run_id})
    except TrainingFailed as err:
        raise dg.Failure(str(err), metadata={"log_tail": dg.MetadataValue.md("```\n" + "\n".join(err.log_tail)
                                                                              + "\n```")}, allow_retries=False) from err
    except RobodataError as err:
        if is_transient(err):  # raised from a lost pod or node: failures_classified retries the step
            raise
        raise dg.Failure(str(err), allow_retries=False) from err
    return dg.MaterializeResult(
        metadata=metadata_values(summary, paths=("checkpoint", "candidate"), code=("trainer_command",),
                                 images={"loss_curve": "loss curve"}),
        check_results=[check_result(c) for c in outcome.checks],
        data_version=dg.DataVersion(summary["run"]),
    )


# The asset for the default config (tests materialize it directly; definitions.py builds it from the config).
policy_checkpoint = build_policy_checkpoint()

train_policy_job = dg.define_asset_job("train_policy", selection=[ASSET],
                                       description="Fine-tune, evaluate and (maybe) promote the policy")
policy_weekly_schedule = dg.ScheduleDefinition(name="policy_weekly", job=train_policy_job,
                                               cron_schedule="0 4 * * 1", execution_timezone="UTC",
                                               default_status=dg.DefaultScheduleStatus.STOPPED)
