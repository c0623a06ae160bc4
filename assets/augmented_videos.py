"""augmented_videos: a recording's demos as MP4 clips (+ control videos), K augmented variants each, merged back."""

import dagster as dg
from dagster_ray import RayResource

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.registry import PUBLISHED, QUARANTINED
from robodata.stages.augment import AugmentedVideosStage, augment_recording
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
from robodata_dagster.assets.versions import augmented_videos_version, digest
from robodata_dagster.resources.engines import AugmentationEngine
from robodata_dagster.resources.project import ProjectResource

# the counts summed over a partition's recordings in its metadata (the rest is the last recording's)
SUMMED = ("clips", "clips_failed", "variants", "demos_out", "frames_out", "mp4_bytes", "hdf5_bytes", "seconds")


def build_augmented_videos(cfg: ProjectConfig | None = None, upstream: str | None = None) -> dg.AssetsDefinition:
    """augmented_videos for ``cfg``, reading exactly ``upstream``: by default the tier before it in the config
    (synthetic_demos, or raw_teleop when ``tiers.synthetic_demos.enabled`` is false)."""
    cfg = cfg or ProjectConfig()
    if upstream is None:
        upstream = layout.SYNTHETIC_DEMOS if cfg.tiers.synthetic_demos.enabled else layout.RAW_TELEOP
    code_version = augmented_videos_version(cfg)

    specs = [*check_specs("augmented_videos", AugmentedVideosStage.checks), every_recording_spec("augmented_videos")]

    @dg.asset(
        name="augmented_videos",
        partitions_def=fleet_partitions(cfg),
        deps=[dg.AssetDep(upstream)],  # reads <upstream>/<key>.hdf5 of each recording
        group_name="recording_tiers",
        kinds={"ray", "hdf5", "mp4", "torch"},
        code_version=code_version,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        automation_condition=FOLLOW_UPSTREAM,
        check_specs=specs,
        retry_policy=retry_policy(cfg),
        description="Each demo's cameras as MP4 (+ depth/seg/edge control videos), K visual variants per demo "
        "(local torch domain randomisation or Cosmos Transfer 2.5), merged back as new demos beside the originals.",
    )
    def augmented_videos(context: dg.AssetExecutionContext, project: ProjectResource,
                         augmented_videos_engine: AugmentationEngine, ray_cluster: RayResource):
        with failures_classified(context, f"augmented_videos partition {context.partition_key}"):
            store = project.store()
            augmenter = augmented_videos_engine.augmenter(context)
        made: list[dict] = []

        def make(t: Todo) -> Result:
            key = t.rec.key
            outcome, summary = augment_recording(store, key, project.config.tiers.augmented_videos, augmenter,
                                                 source_tier=upstream)
            for name, err in {**summary["failed_clips"], **summary["variants_failed"]}.items():
                context.log.warning(f"augmented_videos {key}: {name} failed: {err}")
            made.append(summary)
            return Result(key, PUBLISHED if outcome.published else QUARANTINED,
                          version=digest(t.input_version, summary["demos_out"], summary["frames_out"],
                                         summary["hdf5_bytes"], outcome.published),
                          checks=outcome.checks, path=summary["path"],
                          summary={k: summary.get(k) for k in ("demos_out", "frames_out")})

        return downstream_tier(
            context, project, "augmented_videos", upstream, code_version, specs, make,
            lambda _: metadata_values({k: v for k, v in combined(made, SUMMED).items() if k != "path"},
                                      paths=("videos",),
                                         images={"before_after": "source (above) and augmented (below)"}))

    return augmented_videos


# The asset for the default config (tests materialize it directly; definitions.py builds it from the config).
augmented_videos = build_augmented_videos()
