"""The robodata Dagster code location: the asset graph, its checks, jobs, sensors, schedules and resources."""

from __future__ import annotations

import os
import warnings

import dagster as dg

from robodata.config import ProjectConfig
from robodata_dagster.assets.automation import build_automation_sensor
from robodata_dagster.assets.raw_teleop import build_raw_teleop
from robodata_dagster.resources.engines import engine_resources
from robodata_dagster.resources.project import default_project
from robodata_dagster.resources.ray import make_ray_resource
from robodata_dagster.sensors.new_recordings import build_new_recordings_sensor
from robodata_dagster.sensors.schedules import build_release_schedule

# Dagster 1.13.27 itself reads the deprecated ScheduleDefinition.environment_vars when it serialises any
# schedule for the UI; that warning is about Dagster's own code, not ours.
warnings.filterwarnings("ignore", message=r"Property `ScheduleDefinition.environment_vars` is deprecated")

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def build_definitions(cfg: ProjectConfig | None = None) -> dg.Definitions:
    """The code location for ``cfg`` (default: the project config the environment names). Engines, the
    pipeline stages and the graph's shape follow the config; the CLI builds it from its ``--set`` overrides."""
    project = default_project()
    cfg = cfg or project.config
    if cfg.quality.robot_model is not None:  # a model that does not load: one configuration error, here
        from robodata.robot.model import load_configured

        load_configured(cfg.quality.robot_model, cfg._local(cfg.quality.robot_model.path))
    with warnings.catch_warnings():
        # BackfillPolicy is marked beta in Dagster 1.13; we use it deliberately (multi-run backfills).
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
        from robodata_dagster.assets.augmented_videos import build_augmented_videos
        from robodata_dagster.assets.custom_stages import build_custom_stage_assets, stage_tier
        from robodata_dagster.assets.lerobot import build_lerobot_dataset, build_lerobot_episodes
        from robodata_dagster.assets.policy_checkpoint import (
            build_policy_checkpoint,
            policy_weekly_schedule,
            train_policy_job,
        )
        from robodata_dagster.assets.synthetic_demos import build_synthetic_demos

        # The graph's shape follows the config: a disabled tier is not in it, and each tier depends on (and
        # reads exactly) the one before it that is there.
        spec = cfg.pipeline_spec()
        raw_teleop = build_raw_teleop(cfg, spec)
        recording_tiers = [raw_teleop]
        upstream = "raw_teleop"
        synthetic_demos = augmented_videos = None
        if cfg.tiers.synthetic_demos.enabled:
            synthetic_demos = build_synthetic_demos(cfg)
            recording_tiers.append(synthetic_demos)
            upstream = "synthetic_demos"
        if cfg.tiers.augmented_videos.enabled:
            augmented_videos = build_augmented_videos(cfg, upstream)
            recording_tiers.append(augmented_videos)
            upstream = "augmented_videos"
        # A configured pipeline YAML's stages (a plugin's or robodata's): one asset each, before lerobot_episodes.
        custom = build_custom_stage_assets(spec, upstream, cfg)
        if custom:
            upstream = custom[-1].key.path[-1]
            source_tier = stage_tier(upstream)
        else:
            source_tier = upstream
        lerobot_episodes = build_lerobot_episodes(cfg, upstream, source_tier)
        lerobot_dataset = build_lerobot_dataset(cfg)
        policy_checkpoint = build_policy_checkpoint(cfg)
        # The video source tier and the mixed release, only when video sources are configured.
        video_assets: list[dg.AssetsDefinition] = []
        video_jobs: list[dg.UnresolvedAssetJobDefinition] = []
        if cfg.video.sources:
            from robodata_dagster.assets.video import build_mixed_release, build_video_clips

            video_clips = build_video_clips(cfg)
            video_assets.append(video_clips)
            video_jobs.append(dg.define_asset_job(
                "scan_videos", selection=dg.AssetSelection.assets(video_clips),
                description="Scan the selected video sources: shots, quality filters, dedup across every source.",
            ))
            if cfg.mix.active(cfg.video):
                mixed_release = build_mixed_release(cfg)
                video_assets.append(mixed_release)
                video_jobs.append(dg.define_asset_job(
                    "cut_mixed_release", selection=dg.AssetSelection.assets(mixed_release),
                    description="Mix the latest robot release and every video source's shots into one release.",
                ))
    ingest_job = dg.define_asset_job(
        "ingest_recordings",
        selection=dg.AssetSelection.assets(raw_teleop),
        description="Ingest landed recordings (a partition is one robot's day of recordings); the sensor's target.",
    )
    recording_job = dg.define_asset_job(
        "process_recordings",
        selection=dg.AssetSelection.assets(*recording_tiers, *custom, lerobot_episodes),
        description="Every per-recording tier for the selected recordings (what automation does tier by tier).",
    )
    tier_jobs = []
    if synthetic_demos is not None:
        tier_jobs.append(dg.define_asset_job(
            "generate_synthetic_demos", selection=dg.AssetSelection.assets(synthetic_demos),
            description="MimicGen-style demos from the selected recordings' source demos (Ray trials).",
        ))
    if augmented_videos is not None:
        tier_jobs.append(dg.define_asset_job(
            "augment_videos", selection=dg.AssetSelection.assets(augmented_videos),
            description="Visual augmentation of the selected recordings' camera clips (local engine or Cosmos).",
        ))
    episodes_job = dg.define_asset_job(
        "write_lerobot_episodes", selection=dg.AssetSelection.assets(lerobot_episodes),
        description="LeRobot shards for the selected recordings (normally started by automation).",
    )
    stage_jobs = [dg.define_asset_job(
        "pipeline_stages", selection=dg.AssetSelection.assets(*custom),
        description="The pipeline YAML's own stages for the selected recordings (normally started by automation).",
    )] if custom else []
    release_job = dg.define_asset_job(
        "cut_release", selection=dg.AssetSelection.assets(lerobot_dataset),
        description="Assemble the LeRobot release from every recording's episodes.",
    )
    return dg.Definitions(
        assets=[*recording_tiers, *custom, lerobot_episodes, lerobot_dataset, policy_checkpoint, *video_assets],
        jobs=[ingest_job, *tier_jobs, *stage_jobs, episodes_job, recording_job, release_job, train_policy_job,
              *video_jobs],
        # Declarative automation is on by default: each tier follows its upstream's new data, a release is cut
        # when a shard changed, the policy retrains on a new release.
        sensors=[build_new_recordings_sensor(ingest_job), build_automation_sensor()],
        schedules=[build_release_schedule(release_job), policy_weekly_schedule],
        # Engines and launchers (local / Isaac Lab Mimic / Cosmos; subprocess / Kubernetes / Ray) as resources.
        resources={"project": project, "ray_cluster": make_ray_resource(cfg), **engine_resources(cfg)},
    )

defs = build_definitions()
