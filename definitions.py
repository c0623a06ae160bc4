"""The robodata Dagster code location: the asset graph, its checks, jobs, sensors, schedules and resources."""

from __future__ import annotations

import os
import warnings

import dagster as dg

from assets.raw_teleop import build_raw_teleop
from resources.project import default_project
from resources.ray import make_ray_resource
from sensors.new_recordings import build_new_recordings_sensor

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def build_definitions() -> dg.Definitions:
    project = default_project()
    cfg = project.config
    with warnings.catch_warnings():
        # BackfillPolicy is marked beta in Dagster 1.13; we use it deliberately (multi-run backfills).
        warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
        raw_teleop = build_raw_teleop(cfg.tiers.raw_teleop.max_partitions_per_run)
    ingest_job = dg.define_asset_job(
        "ingest_recordings",
        selection=dg.AssetSelection.assets(raw_teleop),
        description="Ingest landed recordings (one partition per recording).",
    )
    return dg.Definitions(
        assets=[raw_teleop],
        jobs=[ingest_job],
        sensors=[build_new_recordings_sensor(ingest_job)],
        resources={"project": project, "ray_cluster": make_ray_resource(cfg)},
    )


defs = build_definitions()
