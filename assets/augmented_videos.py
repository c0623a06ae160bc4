"""augmented_videos: a recording's demos as MP4 clips (+ control videos), K augmented variants each, merged back."""

import dagster as dg
from dagster_ray import RayResource

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.errors import RobodataError
from robodata.stages.augment import AugmentedVideosStage, augment_recording
from robodata_dagster.assets.automation import FOLLOW_UPSTREAM
from robodata_dagster.assets.checks import check_result, check_specs, metadata_values
from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.assets.versions import augmented_videos_version, derived_data_version
from robodata_dagster.resources.engines import AugmentationEngine
from robodata_dagster.resources.project import ProjectResource


def build_augmented_videos(cfg: ProjectConfig | None = None, upstream: str | None = None) -> dg.AssetsDefinition:
    """augmented_videos for ``cfg``, reading exactly ``upstream``: by default the tier before it in the config
    (synthetic_demos, or raw_teleop when ``tiers.synthetic_demos.enabled`` is false)."""
    cfg = cfg or ProjectConfig()
    if upstream is None:
        upstream = layout.SYNTHETIC_DEMOS if cfg.tiers.synthetic_demos.enabled else layout.RAW_TELEOP
    code_version = augmented_videos_version(cfg)

    @dg.asset(
        name="augmented_videos",
        partitions_def=recordings_partitions,
        deps=[dg.AssetDep(upstream)],  # reads <upstream>/<key>.hdf5
        group_name="recording_tiers",
        kinds={"ray", "hdf5", "mp4", "torch"},
        code_version=code_version,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        automation_condition=FOLLOW_UPSTREAM,
        check_specs=check_specs("augmented_videos", AugmentedVideosStage.checks),
        description="Each demo's cameras as MP4 (+ depth/seg/edge control videos), K visual variants per demo "
        "(local torch domain randomisation or Cosmos Transfer 2.5), merged back as new demos beside the originals.",
    )
    def augmented_videos(context: dg.AssetExecutionContext, project: ProjectResource,
                         augmented_videos_engine: AugmentationEngine, ray_cluster: RayResource):
        key = context.partition_key
        try:
            outcome, summary = augment_recording(project.store(), key, project.config.tiers.augmented_videos,
                                                 augmented_videos_engine.augmenter(context), source_tier=upstream)
        except RobodataError as err:
            raise dg.Failure(f"recording {key}: {err}", allow_retries=False) from err
        for name, err in {**summary["failed_clips"], **summary["variants_failed"]}.items():
            context.log.warning(f"augmented_videos {key}: {name} failed: {err}")
        return dg.MaterializeResult(
            metadata=metadata_values(summary, paths=("path", "videos"),
                                     images={"before_after": "source (above) and augmented (below)"}),
            check_results=[check_result(c) for c in outcome.checks],
            data_version=derived_data_version(context, code_version, upstream, summary["demos_out"],
                                              summary["frames_out"], summary["hdf5_bytes"], outcome.published),
        )

    return augmented_videos


# The asset for the default config (tests materialize it directly; definitions.py builds it from the config).
augmented_videos = build_augmented_videos()
