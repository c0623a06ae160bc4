"""synthetic_demos: MimicGen-style demos generated from a recording's source demos, validated in simulation."""

import sys

import dagster as dg
from dagster_ray import RayResource

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.registry import PUBLISHED, QUARANTINED
from robodata.stages.synthetic import SyntheticDemosStage, generate_recording
from robodata_dagster.assets.automation import FOLLOW_UPSTREAM
from robodata_dagster.assets.checks import check_specs, metadata_values
from robodata_dagster.assets.partitions import (
    Result,
    Todo,
    combined,
    downstream_tier,
    every_recording_spec,
    failures_classified,
    fleet_partitions,
    retry_policy,
)
from robodata_dagster.assets.versions import digest, synthetic_demos_version
from robodata_dagster.resources.engines import SyntheticDemosEngine
from robodata_dagster.resources.project import ProjectResource

# The production engine's stand-in for Isaac Lab (tests, and `engine: isaaclab` on a machine without Isaac Sim).
# the counts summed over a partition's recordings in its metadata (the rest is the last recording's)
SUMMED = ("sources", "trials", "successes", "failures", "demos", "frames", "hdf5_bytes", "seconds")
STANDIN_COMMAND = [sys.executable, "-m", "robodata.mimicgen.isaaclab_standin"]


def build_synthetic_demos(cfg: ProjectConfig | None = None) -> dg.AssetsDefinition:
    """synthetic_demos for ``cfg`` (its code version from ``tiers.synthetic_demos``); it always reads raw_teleop."""
    cfg = cfg or ProjectConfig()
    code_version = synthetic_demos_version(cfg)

    specs = [*check_specs("synthetic_demos", SyntheticDemosStage.checks), every_recording_spec("synthetic_demos")]

    @dg.asset(
        name="synthetic_demos",
        partitions_def=fleet_partitions(cfg),
        deps=[dg.AssetDep(layout.RAW_TELEOP)],
        group_name="recording_tiers",
        kinds={"ray", "hdf5", "mujoco"},
        code_version=code_version,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        automation_condition=FOLLOW_UPSTREAM,
        op_tags={"dagster/concurrency_key": "mimicgen"},
        check_specs=specs,
        retry_policy=retry_policy(cfg),
        description=(
            "MimicGen-style synthetic demos of each recording: source demos cut into object-centric subtasks, "
            "replayed in new scenes (T_obj_new · T_obj_src^-1 · T_eef_src), executed and kept only when they "
            "succeed (local Fetch simulator on Ray, or Isaac Lab Mimic through Dagster Pipes)."
        ),
    )
    def synthetic_demos(context: dg.AssetExecutionContext, project: ProjectResource,
                        synthetic_demos_engine: SyntheticDemosEngine, ray_cluster: RayResource):
        with failures_classified(context, f"synthetic_demos partition {context.partition_key}"):
            store = project.store()
            generator = synthetic_demos_engine.generator(context)
        made: list[dict] = []

        def make(t: Todo) -> Result:
            key = t.rec.key
            outcome, summary = generate_recording(store, key, project.config.tiers.synthetic_demos, generator)
            summary.pop("data_version")  # the library's digest of the whole tier config; ours keeps what shapes it
            written = store.size(store.rel(summary["path"]))
            context.log.info(f"{key}: {summary.get('successes', summary.get('demos'))} demos, "
                             f"{'published' if outcome.published else 'quarantined'} at {summary['path']}")
            made.append(summary)
            return Result(key, PUBLISHED if outcome.published else QUARANTINED,
                          version=digest(t.input_version, written, outcome.published), checks=outcome.checks,
                          path=summary["path"], summary={k: summary.get(k) for k in ("demos", "successes")})

        return downstream_tier(
            context, project, "synthetic_demos", layout.RAW_TELEOP, code_version, specs, make,
            lambda _: metadata_values({k: v for k, v in combined(made, SUMMED).items() if k != "path"},
                                         paths=("failed_path",),
                                         images={"overview": "source vs generated scenes and paths"}))

    return synthetic_demos


# The asset for the default config (tests materialize it directly; definitions.py builds it from the config).
synthetic_demos = build_synthetic_demos()
