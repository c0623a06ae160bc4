"""lerobot_episodes (per recording) and lerobot_dataset (the release): training-ready LeRobot datasets."""

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_ray import RayResource

from robodata_dagster.assets.partitions import RECORDINGS, recordings_partitions
from robodata_dagster.resources.project import ProjectResource
from robodata.errors import RobodataError
from robodata.parallel import run_tasks
from robodata.storage import DataStore

# The per-recording tiers, most processed first: lerobot_episodes reads the latest one that exists.
SOURCE_TIERS = ("augmented_videos", "synthetic_demos", "raw_teleop")
RELEASES = "lerobot/releases"
LATEST = f"{RELEASES}/latest.json"
CHECK_SHARD = "shard_is_valid_lerobot"
CHECK_RELEASE_FRAMES = "release_frames_contiguous_and_in_sync"
CHECK_RELEASE_LAYOUT = "release_layout_videos_and_stats"


def shard_path(key: str) -> str:
    return f"lerobot/episodes/{key}"


def source_for(store: DataStore, key: str) -> tuple[str, str]:
    for tier in SOURCE_TIERS:
        rel = f"{tier}/{key}.hdf5"
        if store.exists(rel):
            return tier, rel
    raise RobodataError(f"recording {key}: no upstream episodes in {store.root} (tiers tried: {', '.join(SOURCE_TIERS)})")


def write_episode_part(key: str, store_url: str, src_rel: str, episode: str, index: int, opts: dict[str, Any]):
    """One episode -> a one-episode LeRobot v3.0 part (a Ray task)."""
    from robodata.lerobot import write_shard

    store = DataStore(store_url)
    rel = f"{shard_path(key)}.parts/{index:06d}"
    with store.read_path(src_rel) as src, store.write_path(rel) as tmp:
        rep = write_shard(src, tmp, episodes=[episode], **opts)
    return {"rel": rel, "frames": rep.frames, "seconds": rep.seconds, "bytes": rep.bytes, "codec": rep.codec}


def _codec_options(cfg) -> dict[str, Any]:
    lr = cfg.tiers.lerobot
    codec = lr.codec
    if codec == "auto":
        from robodata.parallel import gpus_available

        codec = "h264_nvenc" if gpus_available() else "libsvtav1"
    return {"video_codec": codec, "crf": lr.crf, "gop": lr.gop}


@dg.asset(
    name="lerobot_episodes",
    partitions_def=recordings_partitions,
    deps=[dg.AssetDep("augmented_videos")],  # reads the most processed tier present
    group_name="recording_tiers",
    kinds={"ray", "lerobot", "parquet"},
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    check_specs=[dg.AssetCheckSpec(CHECK_SHARD, asset="lerobot_episodes", blocking=True,
                                   description="robodata validate: layout, timestamps, video frames, stats")],
    description="The episodes of one recording as a LeRobot v3.0 shard (video per camera, parquet, stats).",
)
def lerobot_episodes(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
    from robodata.formats.isaaclab import EpisodeStore
    from robodata.lerobot import aggregate, validate_dataset

    cfg = project.config
    store = project.store()
    key = context.partition_key
    tier, src_rel = source_for(store, key)
    with store.read_path(src_rel) as src, EpisodeStore(src) as es:
        demos = list(es.demo_names)
    if not demos:
        raise dg.Failure(f"{store.url(src_rel)}: no episodes to convert", allow_retries=False)
    opts = _codec_options(cfg)
    t0 = time.perf_counter()
    store.remove(f"{shard_path(key)}.parts")
    results = run_tasks(write_episode_part, [(key, store.root, src_rel, d, i, opts) for i, d in enumerate(demos)],
                        num_cpus=1, num_gpus=cfg.num_gpus if opts["video_codec"].endswith("nvenc") else 0)
    bad = [(d, r.error) for d, r in zip(demos, results) if not r.ok]
    if bad:
        store.remove(f"{shard_path(key)}.parts")
        raise dg.Failure("; ".join(f"{d}: {e}" for d, e in bad), allow_retries=False)
    parts = [r.value for r in results]
    with tempfile.TemporaryDirectory(prefix="robodata-parts-") as tmp:
        local_parts = []
        for i, p in enumerate(parts):
            if store.local:
                local_parts.append(store.local_path(p["rel"]))
                continue
            with store.read_path(p["rel"]) as part:  # remote store: bring the part here to join it
                shutil.copytree(part, Path(tmp) / f"{i:06d}")
            local_parts.append(Path(tmp) / f"{i:06d}")
        with store.write_path(shard_path(key)) as out:
            rep = aggregate(local_parts, out, version="v3.0", repo_id=f"{cfg.tiers.lerobot.repo_id}-{key}")
            findings = validate_dataset(out)
    store.remove(f"{shard_path(key)}.parts")
    elapsed = time.perf_counter() - t0
    errors = [str(f) for f in findings if f.severity == "error"]
    frames = sum(p["frames"] for p in parts)
    return dg.MaterializeResult(
        metadata={
            "source_tier": tier,
            "episodes": rep.episodes,
            "frames": frames,
            "tasks": dg.MetadataValue.json(rep.tasks),
            "video_keys": dg.MetadataValue.json(rep.video_keys),
            "codec": parts[0]["codec"],
            "frames_per_s": round(frames / elapsed, 1) if elapsed else 0.0,
            "bytes": rep.bytes,
            "path": dg.MetadataValue.path(store.url(shard_path(key))),
        },
        check_results=[dg.AssetCheckResult(
            check_name=CHECK_SHARD, passed=not errors, severity=dg.AssetCheckSeverity.ERROR,
            metadata={"findings": dg.MetadataValue.json([str(f) for f in findings][:50]), "errors": len(errors)},
        )],
        data_version=dg.DataVersion(_tree_digest(store, shard_path(key))),
    )


def _tree_digest(store: DataStore, rel: str) -> str:
    """A digest of a dataset's metadata files (info, episodes, stats): changes whenever its content does."""
    h = hashlib.sha1()
    with store.read_path(rel) as root:
        for p in sorted(root.rglob("*")):
            if p.is_file() and (p.parts[-2] == "meta" or "meta" in p.relative_to(root).parts):
                h.update(str(p.relative_to(root)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _upstream_versions(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, str]:
    out = {}
    for k in keys:
        recs = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("lerobot_episodes"), asset_partitions=[k]), limit=1
        ).records
        if recs:
            mat = recs[0].asset_materialization
            out[k] = (mat.tags or {}).get("dagster/data_version", "")
    return out


@dg.asset(
    name="lerobot_dataset",
    deps=[dg.AssetDep("lerobot_episodes", partition_mapping=dg.AllPartitionMapping())],
    group_name="release",
    kinds={"lerobot", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(CHECK_RELEASE_FRAMES, asset="lerobot_dataset", blocking=True,
                          description="GX: indices contiguous, timestamps = frame_index/fps, no NaN"),
        dg.AssetCheckSpec(CHECK_RELEASE_LAYOUT, asset="lerobot_dataset", blocking=True,
                          description="robodata validate: info.json, episode lengths = video frames, stats"),
    ],
    description="One versioned LeRobot release (v3.0, or v2.1 + meta/modality.json for GR00T) of the recordings.",
)
def lerobot_dataset(context: dg.AssetExecutionContext, project: ProjectResource):
    from robodata.lerobot import aggregate, validate_dataset
    from robodata.quality import validate_lerobot_frames

    cfg = project.config
    lr = cfg.tiers.lerobot
    store = project.store()
    keys = sorted(context.instance.get_dynamic_partitions(RECORDINGS))
    if lr.recordings != "all":
        missing = sorted(set(lr.recordings) - set(keys))
        if missing:
            raise dg.Failure(f"tiers.lerobot.recordings names unknown recordings: {missing}", allow_retries=False)
        keys = list(lr.recordings)
    keys = [k for k in keys if store.exists(f"{shard_path(k)}/meta/info.json")]
    if not keys:
        raise dg.Failure("no recording has a lerobot_episodes shard yet: nothing to release", allow_retries=False)
    versions = _upstream_versions(context.instance, keys)
    for k in keys:  # shards written outside Dagster still count, by their content
        if not versions.get(k):
            versions[k] = _tree_digest(store, shard_path(k))
    release = hashlib.sha1(json.dumps({"v": lr.version, "shards": versions}, sort_keys=True).encode()).hexdigest()[:12]
    rel = f"{RELEASES}/{release}"
    reused = store.exists(f"{rel}/meta/info.json")
    t0 = time.perf_counter()
    if not reused:  # the same inputs give the same release: nothing to rewrite
        with tempfile.TemporaryDirectory(prefix="robodata-release-") as tmp:
            shards = []
            for k in keys:
                with store.read_path(shard_path(k)) as p:
                    if store.local:
                        shards.append(p)
                    else:
                        shutil.copytree(p, Path(tmp) / k)
                        shards.append(Path(tmp) / k)
            with store.write_path(rel) as out:
                rep = aggregate(shards, out, version=lr.version, repo_id=lr.repo_id)
                (out / "meta" / "robodata_release.json").write_text(json.dumps(
                    {"release": release, "recordings": keys, "upstream_versions": versions, "format": lr.version},
                    indent=1))
    with store.read_path(rel) as root:
        findings = validate_dataset(root)
        frames_report = validate_lerobot_frames(root)
        info = json.loads((root / "meta" / "info.json").read_text())
    errors = [str(f) for f in findings if f.severity == "error"]
    passed = frames_report.success and not errors
    previous = None
    if store.exists(LATEST):
        with store.read_path(LATEST) as p:
            previous = json.loads(p.read_text()).get("release")
    if passed:  # only a release that passes its checks becomes "latest"; a failed one leaves the old in place
        with store.write_path(LATEST) as p:
            p.write_text(json.dumps({"release": release, "path": store.url(rel), "format": lr.version,
                                     "recordings": keys}, indent=1))
    return dg.MaterializeResult(
        metadata={
            "release": release,
            "format": lr.version,
            "reused_existing": reused,
            "recordings": dg.MetadataValue.json(keys),
            "upstream_data_versions": dg.MetadataValue.json(versions),
            "episodes": info.get("total_episodes"),
            "frames": info.get("total_frames"),
            "tasks": info.get("total_tasks"),
            "fps": info.get("fps"),
            "seconds": round(time.perf_counter() - t0, 2),
            "path": dg.MetadataValue.path(store.url(rel)),
            "previous_release": previous or "none",
            "promoted_to_latest": passed,
        },
        check_results=[
            dg.AssetCheckResult(check_name=CHECK_RELEASE_FRAMES, passed=frames_report.success,
                                severity=dg.AssetCheckSeverity.ERROR, metadata=frames_report.as_metadata()),
            dg.AssetCheckResult(check_name=CHECK_RELEASE_LAYOUT, passed=not errors,
                                severity=dg.AssetCheckSeverity.ERROR,
                                metadata={"findings": dg.MetadataValue.json([str(f) for f in findings][:50]),
                                          "errors": len(errors)}),
        ],
        data_version=dg.DataVersion(release),
    )

