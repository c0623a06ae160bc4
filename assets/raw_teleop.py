"""raw_teleop: one landed recording -> canonical, time-synced Isaac Lab HDF5 episodes, with GX checks."""


import json
import time
from typing import Any

import dagster as dg
from dagster_ray import RayResource

from robodata.config import ProjectConfig, load_config
from robodata.parallel import run_tasks
from robodata.plots import markdown_image
from robodata.stages.base import CheckResult
from robodata.stages.recordings import MAX_DROPPED_FRACTION, ingest_registered, summarize_ingests
from robodata.stages.tiers import IngestStage
from robodata_dagster.assets.checks import check_specs, merged_results
from robodata_dagster.assets.partitions import RECORDINGS, recordings_partitions
from robodata_dagster.assets.versions import CODE_REVISIONS, digest, raw_teleop_content_settings, raw_teleop_version
from robodata_dagster.resources.project import ProjectResource

CHECK_SYNC = "few_frames_out_of_sync"
_SPECS = check_specs("raw_teleop", IngestStage.checks)


def ingest_partition(key: str, config_path: str, overrides: dict[str, Any]) -> tuple[list[CheckResult], dict]:
    """Ingest one registered recording (a Ray task; no Dagster inside). A duplicate has no checks of its own."""
    outcome, summary = ingest_registered(load_config(config_path or None, overrides), key)
    return (outcome.checks if outcome is not None else []), summary


def build_raw_teleop(cfg: ProjectConfig, spec: Any = None) -> dg.AssetsDefinition:
    """raw_teleop for ``cfg`` (``spec``: the configured pipeline YAML, whose datasources ingest too)."""
    # The stored output's settings (every topic map, the tier's bounds, compression): changing one marks the
    # materialized partitions stale. The data version keeps only what shapes the episodes read downstream.
    content = digest(CODE_REVISIONS["raw_teleop"], raw_teleop_content_settings(cfg))
    per_run = cfg.tiers.raw_teleop.max_partitions_per_run

    # A multi_asset only so that a run may materialize nothing: a recording whose bytes another one owns
    # yields no output, its checks and downstream steps are skipped, and eager automation sees no update.
    @dg.multi_asset(
        name="raw_teleop",
        specs=[dg.AssetSpec(
            "raw_teleop", partitions_def=recordings_partitions, group_name="recording_tiers", kinds={"ray", "hdf5"},
            code_version=raw_teleop_version(cfg, spec), skippable=True,
            description=("A landed recording (ROS 1/2 bag, MCAP, Isaac Lab HDF5) as canonical, time-synced "
                         "episodes (Isaac Lab HDF5 layout) in the data store."),
        )],
        partitions_def=recordings_partitions,
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=per_run),
        op_tags={"dagster/concurrency_key": "ingest"},
        check_specs=[*_SPECS, dg.AssetCheckSpec(CHECK_SYNC, asset="raw_teleop", blocking=False,
                                                 description="At most 5 % of reference frames dropped for being out of sync")],
    )
    def raw_teleop(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
        cfg = project.config
        keys = context.partition_keys
        # Ray workers may outlive this run's environment: hand them the resolved locations explicitly.
        overrides = {**json.loads(project.overrides_json or "{}"), "storage_root": cfg.storage_url,
                     "landing_root": cfg.landing_url, "landing": {"registry": cfg.registry_url}}
        t0 = time.perf_counter()
        results = run_tasks(ingest_partition, [(k, cfg.source_file or "", overrides) for k in keys], num_cpus=1)
        failed = [(k, r.error) for k, r in zip(keys, results, strict=True) if not r.ok]
        if failed:
            msg = "; ".join(str(e) for _, e in failed)
            raise dg.Failure(description=msg, metadata={"failed_partitions": [k for k, _ in failed]},
                             allow_retries=False)
        dups = {k: r.value[1]["duplicate_of"] for k, r in zip(keys, results, strict=True)
                if r.value[1].get("duplicate_of")}
        kept = [(k, r) for k, r in zip(keys, results, strict=True) if k not in dups]
        for k, twin in dups.items():
            context.log.info(f"{k}: the same bytes as recording {twin}; not ingested again (registry: duplicate)")
        if not kept:
            # Nothing to materialize: the partitions leave the recordings set (no ghost partitions; the registry
            # and `robodata landing status` say whose copy each was).
            for k in dups:
                context.instance.delete_dynamic_partition(RECORDINGS, k)
            return
        keys = [k for k, _ in kept]
        checks = [r.value[0] for _, r in kept]
        reports = [r.value[1] for _, r in kept]
        summary = summarize_ingests(keys, reports, time.perf_counter() - t0)
        if dups:
            summary["duplicate_of"] = dups
        frac = summary["dropped_fraction"]
        check_results = [*merged_results(checks), dg.AssetCheckResult(
            check_name=CHECK_SYNC, passed=frac <= MAX_DROPPED_FRACTION, severity=dg.AssetCheckSeverity.WARN,
            metadata={"dropped_fraction": frac, "dropped_frames": summary["dropped_frames"]},
        )]
        # the recordings' keys (content hashes) and their topic maps (the library's), and the tier's settings
        version = digest(summary.pop("version"), content)
        metadata = {k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v for k, v in summary.items()}
        metadata["path"] = dg.MetadataValue.path(summary["path"])
        metadata["overview"] = dg.MetadataValue.md(markdown_image(reports[0]["png"], "trajectories and topic timing"))
        yield dg.MaterializeResult(asset_key="raw_teleop", metadata=metadata, check_results=check_results,
                                   data_version=dg.DataVersion(version))

    return raw_teleop
