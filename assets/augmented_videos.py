"""augmented_videos: a recording's demos as MP4 clips (+ control videos), K augmented variants each, merged back."""

import dagster as dg
from dagster_ray import RayResource

from robodata.errors import RobodataError
from robodata.stages.augment import AugmentedVideosStage, augment_recording
from robodata_dagster.assets.checks import check_result, check_specs, metadata_values
from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.resources.engines import AugmentationEngine
from robodata_dagster.resources.project import ProjectResource


@dg.asset(
    name="augmented_videos",
    partitions_def=recordings_partitions,
    deps=["synthetic_demos"],  # reads synthetic_demos/<key>.hdf5, else raw_teleop/<key>.hdf5
    group_name="recording_tiers",
    kinds={"ray", "hdf5", "mp4", "torch"},
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    check_specs=check_specs("augmented_videos", AugmentedVideosStage.checks),
    description="Each demo's cameras as MP4 (+ depth/seg/edge control videos), K visual variants per demo "
    "(local torch domain randomisation or Cosmos Transfer 2.5), merged back as new demos beside the originals.",
)
def augmented_videos(context: dg.AssetExecutionContext, project: ProjectResource,
                     augmented_videos_engine: AugmentationEngine, ray_cluster: RayResource):
    key = context.partition_key
    try:
        outcome, summary = augment_recording(project.store(), key, project.config.tiers.augmented_videos,
                                             augmented_videos_engine.augmenter(context))
    except RobodataError as err:
        raise dg.Failure(f"recording {key}: {err}", allow_retries=False) from err
    for name, err in {**summary["failed_clips"], **summary["variants_failed"]}.items():
        context.log.warning(f"augmented_videos {key}: {name} failed: {err}")
    return dg.MaterializeResult(
        metadata=metadata_values(summary, paths=("path", "videos"),
                                 images={"before_after": "source (above) and augmented (below)"}),
        check_results=[check_result(c) for c in outcome.checks],
    )
