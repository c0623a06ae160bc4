"""lerobot_episodes (a shard per recording) and lerobot_dataset (the release): training-ready LeRobot datasets."""

import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_ray import RayResource

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.errors import RobodataError
from robodata.parallel import gpus_available, run_tasks
from robodata.registry import PUBLISHED, QUARANTINED, Registry
from robodata.stages.tiers import (
    LeRobotShardStage,
    ReleaseStage,
    codec_options,
    dedup_index_url,
    write_episode_part,
)
from robodata.storage import DataStore
from robodata_dagster.assets.automation import FOLLOW_UPSTREAM, NEW_SHARDS
from robodata_dagster.assets.checks import check_result, check_specs
from robodata_dagster.assets.partitions import (
    Result,
    Todo,
    downstream_tier,
    every_recording_spec,
    failures_classified,
    fleet_partitions,
    retry_policy,
)
from robodata_dagster.assets.versions import lerobot_dataset_version, lerobot_episodes_version
from robodata_dagster.resources.project import ProjectResource


def source_for(store: DataStore, key: str, upstream: str, source_tier: str) -> str:
    """The store path of ``key``'s episodes in the one tier lerobot_episodes follows; a clear error if absent."""
    rel = layout.tier_episodes_path(source_tier, key)
    if not store.exists(rel):
        raise RobodataError(f"no {upstream} episodes at {store.url(rel)} (materialize {upstream} first)")
    return rel


def _write_part(store_url: str, src_rel: str, episode: str, part_rel: str, opts: dict):
    return write_episode_part(DataStore(store_url), src_rel, episode, part_rel, opts)


def write_shard(cfg: ProjectConfig, store: DataStore, key: str, src_rel: str) -> tuple[Any, dict[str, Any]]:
    """One recording's LeRobot shard: its episodes written as parts in parallel (Ray tasks), then assembled,
    checked and published (or quarantined) as a new content-addressed version ``<key>@<digest>``; the stage
    outcome and its numbers (``version`` is the digest)."""
    from robodata.formats.isaaclab import EpisodeStore

    with store.read_path(src_rel) as src, EpisodeStore(src) as es:
        demos = list(es.demo_names)
    if not demos:
        raise RobodataError(f"{store.url(src_rel)}: no episodes to convert")
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
        raise RobodataError("; ".join(f"{d}: {e}" for d, e in bad))
    parts = [r.value for r in results]
    with tempfile.TemporaryDirectory(prefix="robodata-parts-") as tmp:
        local = store.local_copies([p.rel for p in parts], Path(tmp))
        # the shard's version is its content's digest (follows its source's episodes and the codec), and so
        # is its path: a release reads exactly the version the registry recorded, whatever is rewritten later
        outcome, version = LeRobotShardStage(cfg.tiers.lerobot).run_versioned(store, key, parts=local)
    store.remove(parts_rel)
    rep = outcome.report
    frames = sum(p.frames for p in parts)
    elapsed = time.perf_counter() - t0
    return outcome, {"episodes": rep.episodes, "frames": frames, "tasks": rep.tasks, "video_keys": rep.video_keys,
                     "codec": parts[0].codec, "seconds": elapsed, "bytes": rep.bytes, "version": version}


def build_lerobot_episodes(cfg: ProjectConfig | None = None, upstream: str = layout.AUGMENTED_VIDEOS,
                           source_tier: str | None = None) -> dg.AssetsDefinition:
    """The per-recording LeRobot shards of a partition, after ``upstream`` (the last enabled recording tier or
    the last pipeline stage), read from its store tier ``source_tier`` (default: the tier named like the asset)."""
    tier = source_tier or upstream
    cfg = cfg or ProjectConfig()
    code_version = lerobot_episodes_version(cfg)
    specs = [*check_specs("lerobot_episodes", LeRobotShardStage.checks), every_recording_spec("lerobot_episodes")]

    @dg.asset(
        name="lerobot_episodes",
        partitions_def=fleet_partitions(cfg),
        deps=[dg.AssetDep(upstream)],  # reads exactly <tier>/<key>.hdf5 of each recording
        group_name="recording_tiers",
        kinds={"ray", "lerobot", "parquet"},
        code_version=code_version,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        automation_condition=FOLLOW_UPSTREAM,
        check_specs=specs,
        retry_policy=retry_policy(cfg),
        description="Each recording's episodes as a LeRobot v3.0 shard (video per camera, parquet, stats).",
    )
    def lerobot_episodes(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
        with failures_classified(context, f"lerobot_episodes partition {context.partition_key}"):
            store = project.store()
            registry = Registry(project.config.registry_url)
        totals: dict[str, Any] = {"episodes": 0, "frames": 0, "bytes": 0, "seconds": 0.0, "tasks": [],
                                  "video_keys": [], "codec": ""}

        def make(t: Todo) -> Result:
            key = t.rec.key
            before = registry.outputs("lerobot_episodes", [key]).get(key)
            outcome, rep = write_shard(project.config, store, key, source_for(store, key, upstream, tier))
            kept = {outcome.output}
            if before is not None and before.status == PUBLISHED and before.path:
                # two versions are kept: this one and the one before, which a release being cut may still read
                kept.add(store.rel(before.path))
                older = before.summary.get("previous_path")
                if older and store.rel(older) not in kept:
                    store.remove(store.rel(older))
            for k in ("episodes", "frames", "bytes", "seconds"):
                totals[k] += rep[k]
            totals["tasks"] = sorted({*totals["tasks"], *rep["tasks"]})
            totals["video_keys"] = sorted({*totals["video_keys"], *rep["video_keys"]})
            totals["codec"] = rep["codec"]
            previous = before.path if before is not None and before.path != outcome.url else ""
            return Result(key, PUBLISHED if outcome.published else QUARANTINED, version=rep["version"],
                          checks=outcome.checks, path=outcome.url or outcome.quarantined or "",
                          summary={"episodes": rep["episodes"], "frames": rep["frames"],
                                   "previous_path": previous})

        def metadata(made: list[Result]) -> dict[str, Any]:
            secs = totals.pop("seconds")
            return {"source_tier": tier, **{k: dg.MetadataValue.json(v) if isinstance(v, list) else v
                                            for k, v in totals.items()},
                    "frames_per_s": round(totals["frames"] / secs, 1) if secs else 0.0,
                    "published": all(r.status == PUBLISHED for r in made)}

        return downstream_tier(context, project, "lerobot_episodes", upstream, code_version, specs, make, metadata)

    return lerobot_episodes


# The assets for the default config (definitions.py builds them from the project config).
lerobot_episodes = build_lerobot_episodes()


def release_inputs(project: ProjectResource, store: DataStore) -> dict[str, tuple[str, str]]:
    """The recordings a release may hold, with their shard versions and the (immutable) store paths of those
    versions: ingested (not superseded, not a duplicate, as the registry records them) and with a published
    lerobot_episodes shard."""
    from robodata.registry import INGESTED

    registry = Registry(project.config.registry_url)
    keys = [r.key for r in registry.recordings(status=[INGESTED])]
    shards = registry.outputs("lerobot_episodes", keys)
    return {k: (o.version, store.rel(o.path) if o.path.startswith(store.root + "/") else layout.shard_path(k))
            for k, o in shards.items() if o.status == PUBLISHED}


def build_lerobot_dataset(cfg: ProjectConfig | None = None) -> dg.AssetsDefinition:
    """The release for ``cfg``: cut on its own when a shard has new data (and nightly by schedule)."""
    return dg.asset(
        name="lerobot_dataset",
        deps=[dg.AssetDep("lerobot_episodes", partition_mapping=dg.AllPartitionMapping())],
        group_name="release",
        kinds={"lerobot", "parquet"},
        code_version=lerobot_dataset_version(cfg or ProjectConfig()),
        automation_condition=NEW_SHARDS,
        check_specs=check_specs("lerobot_dataset", ReleaseStage.check_types((cfg or ProjectConfig()).quality)),
        retry_policy=retry_policy(cfg),
        description="One versioned LeRobot release (v3.0, or v2.1 + meta/modality.json for GR00T) of the "
                    "recordings.",
    )(_cut_release)


def _cut_release(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    with failures_classified(context, "lerobot_dataset"):
        return _release(context, project)


def _release(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    lr = project.config.tiers.lerobot
    store = project.store()
    stage = ReleaseStage(lr)
    stage.quality = project.config.quality
    # signatures persist across cuts (one per shard version), where the config or the store keeps them
    stage.index_url = dedup_index_url(project.config, Path(store.root) if store.local else None)
    inputs = release_inputs(project, store)
    paths = {k: p for k, (_, p) in inputs.items()}
    try:
        keys = stage.select(store, list(inputs), paths)
    except RobodataError as err:
        raise dg.Failure(str(err), allow_retries=False) from err
    rel = stage.cut(store, keys, {k: inputs[k][0] for k in keys}, paths)
    from robodata import metrics_hooks

    metrics_hooks.release_finished("lerobot_dataset", rel.checks, rel.seconds,
                                   frames=0 if rel.reused else int(rel.info.get("total_frames") or 0),
                                   cfg=project.config, run_id=context.run_id)
    quality: dict[str, Any] = {}
    if stage.dedup_report is not None:  # what dedup found among the release's episodes, each with its twin
        quality.update({k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v
                        for k, v in stage.dedup_report.as_metadata().items()})
        quality["dedup"] = dg.MetadataValue.md(stage.dedup_report.to_markdown())
    if project.config.quality.profiles and not rel.reused:
        from robodata.stages.recordings import write_profile

        prof = write_profile(store, store.rel(rel.url), layout.profile_path(layout.RELEASES, rel.release))
        quality["profile"] = dg.MetadataValue.json({k: v for k, v in prof.items() if k != "profile_path"})
        if "profile_path" in prof:
            quality["profile_path"] = dg.MetadataValue.path(prof["profile_path"])
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
            **quality,
        },
        check_results=[check_result(c) for c in rel.checks],
        data_version=dg.DataVersion(rel.release),
    )


lerobot_dataset = build_lerobot_dataset()
