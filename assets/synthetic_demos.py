"""synthetic_demos: MimicGen-style demos generated from a recording's source demos, validated in simulation."""

import sys

import dagster as dg
from dagster_ray import RayResource

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.errors import RobodataError
from robodata.stages.synthetic import SyntheticDemosStage, generate_recording
from robodata_dagster.assets.automation import FOLLOW_UPSTREAM
from robodata_dagster.assets.checks import check_result, check_specs, metadata_values
from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.assets.versions import derived_data_version, synthetic_demos_version
from robodata_dagster.resources.engines import SyntheticDemosEngine
from robodata_dagster.resources.project import ProjectResource

# The production engine's stand-in for Isaac Lab (tests, and `engine: isaaclab` on a machine without Isaac Sim).
STANDIN_COMMAND = [sys.executable, "-m", "robodata.mimicgen.isaaclab_standin"]


def build_synthetic_demos(cfg: ProjectConfig | None = None) -> dg.AssetsDefinition:
    """synthetic_demos for ``cfg`` (its code version from ``tiers.synthetic_demos``); it always reads raw_teleop."""
    code_version = synthetic_demos_version(cfg or ProjectConfig())

    @dg.asset(
        name="synthetic_demos",
        partitions_def=recordings_partitions,
        deps=[dg.AssetDep(layout.RAW_TELEOP)],
        group_name="recording_tiers",
        kinds={"ray", "hdf5", "mujoco"},
        code_version=code_version,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        automation_condition=FOLLOW_UPSTREAM,
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
        store = project.store()
        try:
            outcome, summary = generate_recording(store, key, project.config.tiers.synthetic_demos,
                                                  synthetic_demos_engine.generator(context))
        except RobodataError as err:
            raise dg.Failure(description=f"recording {key}: {err}", allow_retries=False) from err
        summary.pop("data_version")  # the library's digest of the whole tier config; ours keeps what shapes it
        written = store.size(store.rel(summary["path"]))
        context.log.info(f"{key}: {summary.get('successes', summary.get('demos'))} demos, "
                         f"{'published' if outcome.published else 'quarantined'} at {summary['path']}")
        return dg.MaterializeResult(
            metadata=metadata_values(summary, paths=("path", "failed_path"),
                                     images={"overview": "source vs generated scenes and paths"}),
            check_results=[check_result(c) for c in outcome.checks],
            data_version=derived_data_version(context, code_version, layout.RAW_TELEOP, written,
                                              outcome.published),
        )

    return synthetic_demos


# The asset for the default config (tests materialize it directly; definitions.py builds it from the config).
synthetic_demos = build_synthetic_demos()
