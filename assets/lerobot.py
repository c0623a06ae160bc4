"""lerobot_episodes (per recording) and lerobot_dataset (the release): training-ready LeRobot datasets."""

import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster_ray import RayResource

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.errors import RobodataError
from robodata.parallel import gpus_available, run_tasks
from robodata.stages.tiers import (
    LeRobotShardStage,
    ReleaseStage,
    codec_options,
    dataset_digest,
    write_episode_part,
)
from robodata.storage import DataStore
from robodata_dagster.assets.automation import FOLLOW_UPSTREAM, NEW_SHARDS
from robodata_dagster.assets.checks import check_result, check_specs
from robodata_dagster.assets.partitions import RECORDINGS, recordings_partitions
from robodata_dagster.assets.versions import lerobot_dataset_version, lerobot_episodes_version
from robodata_dagster.resources.project import ProjectResource


def source_for(store: DataStore, key: str, upstream: str, source_tier: str) -> str:
    """The store path of ``key``'s episodes in the one tier lerobot_episodes follows; a clear error if absent."""
    rel = layout.tier_episodes_path(source_tier, key)
    if not store.exists(rel):
        raise dg.Failure(f"recording {key}: no {upstream} episodes at {store.url(rel)} (materialize {upstream} "
                         "first)", allow_retries=False)
    return rel


def _write_part(store_url: str, src_rel: str, episode: str, part_rel: str, opts: dict):
    return write_episode_part(DataStore(store_url), src_rel, episode, part_rel, opts)


def build_lerobot_episodes(cfg: ProjectConfig | None = None, upstream: str = layout.AUGMENTED_VIDEOS,
                           source_tier: str | None = None) -> dg.AssetsDefinition:
    """The per-recording LeRobot shard, after ``upstream`` (the last enabled recording tier or the last pipeline
    stage), read from its store tier ``source_tier`` (default: the tier named like the asset)."""
    tier = source_tier or upstream

    @dg.asset(
        name="lerobot_episodes",
        partitions_def=recordings_partitions,
        deps=[dg.AssetDep(upstream)],  # reads exactly <tier>/<key>.hdf5
        group_name="recording_tiers",
        kinds={"ray", "lerobot", "parquet"},
        code_version=lerobot_episodes_version(cfg or ProjectConfig()),
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        automation_condition=FOLLOW_UPSTREAM,
        check_specs=check_specs("lerobot_episodes", LeRobotShardStage.checks),
        description="The episodes of one recording as a LeRobot v3.0 shard (video per camera, parquet, stats).",
    )
    def lerobot_episodes(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
        from robodata.formats.isaaclab import EpisodeStore

        cfg = project.config
        store = project.store()
        key = context.partition_key
        src_rel = source_for(store, key, upstream, tier)
        with store.read_path(src_rel) as src, EpisodeStore(src) as es:
            demos = list(es.demo_names)
        if not demos:
            raise dg.Failure(f"{store.url(src_rel)}: no episodes to convert", allow_retries=False)
        opts = codec_options(cfg.tiers.lerobot, gpus_available())
        parts_rel = layout.shard_parts_path(key)
        t0 = time.perf_counter()
        store.remove(parts_rel)
        args = [(store.root, src_rel, d, f"{parts_rel}/{i:06d}", opts) for i, d in enumerate(demos)]
        results = run_tasks(_write_part, args, num_cpus=1,
                            num_gpus=cfg.num_gpus if opts["video_codec"].endswith("nvenc") else 0)
        bad = [(d, r.error) for d, r in zip(demos, results, strict=True) if not r.ok]
        if bad:
            store.remove(parts_rel)
            raise dg.Failure("; ".join(f"{d}: {e}" for d, e in bad), allow_retries=False)
        parts = [r.value for r in results]
        with tempfile.TemporaryDirectory(prefix="robodata-parts-") as tmp:
            local = store.local_copies([p.rel for p in parts], Path(tmp))
            outcome = LeRobotShardStage(cfg.tiers.lerobot).run(store, key, parts=local)
        store.remove(parts_rel)
        rep = outcome.report
        frames = sum(p.frames for p in parts)
        elapsed = time.perf_counter() - t0
        with store.read_path(store.rel(outcome.url or outcome.quarantined)) as root:
            version = dataset_digest(root)  # the shard's content: follows its source's episodes and the codec
        return dg.MaterializeResult(
            metadata={
                "source_tier": tier,
                "episodes": rep.episodes,
                "frames": frames,
                "tasks": dg.MetadataValue.json(rep.tasks),
                "video_keys": dg.MetadataValue.json(rep.video_keys),
                "codec": parts[0].codec,
                "frames_per_s": round(frames / elapsed, 1) if elapsed else 0.0,
                "bytes": rep.bytes,
                "published": outcome.published,
                "path": dg.MetadataValue.path(outcome.url or outcome.quarantined),
            },
            check_results=[check_result(c) for c in outcome.checks],
            data_version=dg.DataVersion(version),
        )

    return lerobot_episodes


# The assets for the default config (definitions.py builds them from the project config).
lerobot_episodes = build_lerobot_episodes()


def _releasable(project: ProjectResource, keys: list[str]) -> list[str]:
    """The recording partitions a release may hold: not those whose landed content was replaced (superseded)
    or whose bytes another recording owns (duplicates), as the registry records them."""
    from robodata.registry import DUPLICATE, SUPERSEDED, Registry

    out = {r.key for r in Registry(project.config.registry_url).recordings(status=[SUPERSEDED, DUPLICATE])}
    return [k for k in keys if k not in out]


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


def build_lerobot_dataset(cfg: ProjectConfig | None = None) -> dg.AssetsDefinition:
    """The release for ``cfg``: cut on its own when a shard has new data (and nightly by schedule)."""
    return dg.asset(
        name="lerobot_dataset",
        deps=[dg.AssetDep("lerobot_episodes", partition_mapping=dg.AllPartitionMapping())],
        group_name="release",
        kinds={"lerobot", "parquet"},
        code_version=lerobot_dataset_version(cfg or ProjectConfig()),
        automation_condition=NEW_SHARDS,
        check_specs=check_specs("lerobot_dataset", ReleaseStage.checks),
        description="One versioned LeRobot release (v3.0, or v2.1 + meta/modality.json for GR00T) of the "
                    "recordings.",
    )(_cut_release)


def _cut_release(context: dg.AssetExecutionContext, project: ProjectResource):
    lr = project.config.tiers.lerobot
    store = project.store()
    stage = ReleaseStage(lr)
    try:
        keys = stage.select(store, _releasable(project, context.instance.get_dynamic_partitions(RECORDINGS)))
    except RobodataError as err:
        raise dg.Failure(str(err), allow_retries=False) from err
    rel = stage.cut(store, keys, _upstream_versions(context.instance, keys))
    return dg.MaterializeResult(
        metadata={
            "release": rel.release,
            "format": lr.version,
            "reused_existing": rel.reused,
            "recordings": dg.MetadataValue.json(rel.recordings),
            "upstream_data_versions": dg.MetadataValue.json(rel.versions),
            "episodes": rel.info.get("total_episodes"),
            "frames": rel.info.get("total_frames"),
            "tasks": rel.info.get("total_tasks"),
            "fps": rel.info.get("fps"),
            "seconds": round(rel.seconds, 2),
            "path": dg.MetadataValue.path(rel.url),
            "previous_release": rel.previous or "none",
            "promoted_to_latest": rel.published,
            "pinned_to": rel.pinned_to or "none",  # a rollback's pin holds later cuts back from latest
        },
        check_results=[check_result(c) for c in rel.checks],
        data_version=dg.DataVersion(rel.release),
    )


lerobot_dataset = build_lerobot_dataset()
