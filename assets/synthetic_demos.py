"""synthetic_demos: MimicGen-style demos generated from a recording's source demos, validated in simulation."""

import sys

import dagster as dg
from dagster_ray import RayResource

from robodata.errors import RobodataError
from robodata.stages.synthetic import SyntheticDemosStage, generate_recording
from robodata_dagster.assets.checks import check_result, check_specs, metadata_values
from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.resources.engines import SyntheticDemosEngine
from robodata_dagster.resources.project import ProjectResource

# The production engine's stand-in for Isaac Lab (tests, and `engine: isaaclab` on a machine without Isaac Sim).
STANDIN_COMMAND = [sys.executable, "-m", "robodata.mimicgen.isaaclab_standin"]


@dg.asset(
    name="synthetic_demos",
    partitions_def=recordings_partitions,
    deps=[dg.AssetDep("raw_teleop")],
    group_name="recording_tiers",
    kinds={"ray", "hdf5", "mujoco"},
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    op_tags={"dagster/concurrency_key": "mimicgen"},
    check_specs=check_specs("synthetic_demos", SyntheticDemosStage.checks),
    description=(
        "MimicGen-style synthetic demos of one recording: source demos cut into object-centric subtasks, "
        "replayed in new scenes (T_obj_new · T_obj_src^-1 · T_eef_src), executed and kept only when they "
        "succeed (local Fetch simulator on Ray, or Isaac Lab Mimic through Dagster Pipes)."
    ),
)
def synthetic_demos(context: dg.AssetExecutionContext, project: ProjectResource,
                    synthetic_demos_engine: SyntheticDemosEngine, ray_cluster: RayResource):
    key = context.partition_key
    try:
        outcome, summary = generate_recording(project.store(), key, project.config.tiers.synthetic_demos,
                                              synthetic_demos_engine.generator(context))
    except RobodataError as err:
        raise dg.Failure(description=f"recording {key}: {err}", allow_retries=False) from err
    version = summary.pop("data_version")
    context.log.info(f"{key}: {summary.get('successes', summary.get('demos'))} demos, "
                     f"{'published' if outcome.published else 'quarantined'} at {summary['path']}")
    return dg.MaterializeResult(
        metadata=metadata_values(summary, paths=("path", "failed_path"),
                                 images={"overview": "source vs generated scenes and paths"}),
        check_results=[check_result(c) for c in outcome.checks],
        data_version=dg.DataVersion(version),
    )
