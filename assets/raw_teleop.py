"""raw_teleop: one landed recording -> canonical, time-synced Isaac Lab HDF5 episodes, with GX checks."""


import hashlib
import json
import time
from dataclasses import asdict
from typing import Any

import dagster as dg
import numpy as np
from dagster_ray import RayResource

from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.resources.project import ProjectResource
from robodata.config import load_config
from robodata.errors import RobodataError
from robodata.landing import LandingZone, lookup
from robodata.parallel import run_tasks
from robodata.storage import DataStore

CHECK_FRAMES = "frames_in_sync_and_finite"
CHECK_EPISODES = "episode_rates_and_lengths"
CHECK_SYNC = "few_frames_out_of_sync"


def raw_teleop_path(key: str) -> str:
    return f"raw_teleop/{key}.hdf5"


def ingest_partition(key: str, config_path: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Ingest one registered recording into the store (runs as a Ray task; no Dagster inside)."""
    from robodata.ingest import ingest_recording
    from robodata.plots import trajectory_and_rates_png

    cfg = load_config(config_path or None, overrides)
    store = DataStore(cfg.storage_url)
    entry = lookup(store, key)
    landing = LandingZone(entry.landing)
    files = {f.name: f for f in landing.list()}
    landed = files.get(entry.name)
    if landed is None:
        raise RobodataError(f"{entry.url}: the landed recording is gone (registered as {key})")
    if landed.size != entry.size:
        raise RobodataError(
            f"{entry.url}: changed since it landed ({entry.size} -> {landed.size} bytes); "
            "the sensor will register the new content as a new recording"
        )
    topic_map = cfg.topic_map_for(entry.name)
    tier = cfg.tiers.raw_teleop
    rel = raw_teleop_path(key)
    with landing.local(entry.name) as src, store.write_path(rel) as tmp:
        report = ingest_recording(
            src, tmp, topic_map, min_frames=tier.min_episode_frames, max_frames=tier.max_episode_frames
        )
        from robodata.formats.isaaclab import EpisodeStore

        trajectories = {}
        with EpisodeStore(tmp) as es:
            pose_feats = [f.name for f in es.schema.of_role("pose")] or [f.name for f in es.schema.of_role("state")]
            for name in es.demo_names[:8]:
                ep = es.read(name, images=False)
                if pose_feats and pose_feats[0] in ep.obs:
                    trajectories[name] = ep.obs[pose_feats[0]][:, :2]
        png = trajectory_and_rates_png(trajectories, report.topic_gaps, title=entry.name)
    with store.write_path(f"raw_teleop/{key}.overview.png") as tmp_png:
        tmp_png.write_bytes(png)
    out = asdict(report)
    out.pop("topic_gaps", None)
    out["png"] = png
    out["path"] = store.url(rel)
    out["source_name"] = entry.name
    out["topic_map_hash"] = hashlib.sha1(
        json.dumps(topic_map.model_dump(mode="json") if topic_map else {}, sort_keys=True).encode()
    ).hexdigest()[:12]
    return out


def _checks(path: str, cfg: Any) -> list[dg.AssetCheckResult]:
    from robodata.quality import validate_raw_episodes

    tier = cfg.tiers.raw_teleop
    fps = _fps(path, cfg)
    frames, episodes = validate_raw_episodes(
        path, fps=fps, rate_tolerance=tier.rate_tolerance, min_frames=tier.min_episode_frames,
        max_frames=tier.max_episode_frames,
    )
    return [
        dg.AssetCheckResult(check_name=CHECK_FRAMES, passed=frames.success, severity=dg.AssetCheckSeverity.ERROR,
                            metadata=frames.as_metadata()),
        dg.AssetCheckResult(check_name=CHECK_EPISODES, passed=episodes.success,
                            severity=dg.AssetCheckSeverity.ERROR, metadata=episodes.as_metadata()),
    ]


def _fps(path: str, cfg: Any) -> float:
    from robodata.formats.isaaclab import EpisodeStore

    with EpisodeStore(path) as es:
        return es.schema.fps


def build_raw_teleop(max_partitions_per_run: int = 1) -> dg.AssetsDefinition:
    @dg.asset(
        name="raw_teleop",
        partitions_def=recordings_partitions,
        group_name="recording_tiers",
        kinds={"ray", "hdf5"},
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=max_partitions_per_run),
        op_tags={"dagster/concurrency_key": "ingest"},
        check_specs=[
            dg.AssetCheckSpec(CHECK_FRAMES, asset="raw_teleop", blocking=True,
                              description="GX: timestamps strictly increasing, no NaN/inf in state, action, obs"),
            dg.AssetCheckSpec(CHECK_EPISODES, asset="raw_teleop", blocking=True,
                              description="GX: each episode's median rate within tolerance of fps; length in bounds"),
            dg.AssetCheckSpec(CHECK_SYNC, asset="raw_teleop", blocking=False,
                              description="At most 5 % of reference frames dropped for being out of sync"),
        ],
        description=(
            "A landed recording (ROS 1/2 bag, MCAP, Isaac Lab HDF5) as canonical, time-synced episodes "
            "(Isaac Lab HDF5 layout) in the data store."
        ),
    )
    def raw_teleop(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
        cfg = project.config
        keys = context.partition_keys
        # Ray workers may outlive this run's environment: hand them the resolved locations explicitly.
        overrides = {**json.loads(project.overrides_json or "{}"), "storage_root": cfg.storage_url,
                     "landing_root": cfg.landing_url}
        t0 = time.perf_counter()
        results = run_tasks(ingest_partition, [(k, cfg.source_file or "", overrides) for k in keys], num_cpus=1)
        failed = [(k, r.error) for k, r in zip(keys, results) if not r.ok]
        if failed:
            msg = "; ".join(str(e) for _, e in failed)
            raise dg.Failure(description=msg, metadata={"failed_partitions": [k for k, _ in failed]},
                             allow_retries=False)
        reports = [r.value for r in results]
        from robodata.plots import markdown_image

        rep = reports[0]
        frames = sum(sum(e["frames"] for e in r["episodes"]) for r in reports)
        duration = sum(sum(e["duration_s"] for e in r["episodes"]) for r in reports)
        topic_rows = {
            t: f"{s['rate_hz']} Hz, jitter {s['jitter_ms']} ms, {s['count']} msgs" for t, s in rep["topics"].items()
        }
        misaligned = {k: v for k, v in rep["misaligned"].items()}
        dropped = sum(sum(e["dropped_frames"] for e in r["episodes"]) for r in reports)
        total_ref = frames + dropped
        check_results = []
        for r in reports:
            check_results += _checks(r["path"], cfg) if len(reports) == 1 else []
        if len(reports) > 1:  # a ranged backfill run: checks over every recording in the range
            all_checks = [c for r in reports for c in _checks(r["path"], cfg)]
            for name in (CHECK_FRAMES, CHECK_EPISODES):
                subset = [c for c in all_checks if c.check_name == name]
                check_results.append(dg.AssetCheckResult(check_name=name, passed=all(c.passed for c in subset),
                                                         severity=dg.AssetCheckSeverity.ERROR))
        frac = dropped / total_ref if total_ref else 0.0
        check_results.append(dg.AssetCheckResult(
            check_name=CHECK_SYNC, passed=frac <= 0.05, severity=dg.AssetCheckSeverity.WARN,
            metadata={"dropped_fraction": round(frac, 4), "dropped_frames": dropped},
        ))
        elapsed = time.perf_counter() - t0
        mb = sum(r["bytes_read"] for r in reports) / 1e6
        metadata = {
            "recordings": dg.MetadataValue.json([r["source_name"] for r in reports]),
            "episodes": sum(len(r["episodes"]) for r in reports),
            "frames": frames,
            "duration_s": round(duration, 2),
            "successes": sum(1 for r in reports for e in r["episodes"] if e["success"]),
            "dropped_frames": dropped,
            "frames_outside_episodes": sum(r["frames_outside_episodes"] for r in reports),
            "short_episodes_skipped": sum(r["short_episodes_skipped"] for r in reports),
            "misaligned_by_feature": dg.MetadataValue.json(misaligned),
            "topics": dg.MetadataValue.json(topic_rows),
            "reference_rate_hz": round(rep["reference_rate_hz"], 3),
            "bytes_read": sum(r["bytes_read"] for r in reports),
            "bytes_written": sum(r["bytes_written"] for r in reports),
            "ingest_MB_per_s": round(mb / elapsed, 2) if elapsed else 0.0,
            "path": dg.MetadataValue.path(rep["path"]),
            "overview": dg.MetadataValue.md(markdown_image(rep["png"], "trajectories and topic timing")),
        }
        version = hashlib.sha1(
            ("|".join(f"{k}:{r['topic_map_hash']}" for k, r in zip(keys, reports))).encode()
        ).hexdigest()[:16]
        return dg.MaterializeResult(metadata=metadata, check_results=check_results,
                                    data_version=dg.DataVersion(version))

    return raw_teleop
