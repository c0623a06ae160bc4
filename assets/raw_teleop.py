"""raw_teleop: one landed recording -> canonical, time-synced Isaac Lab HDF5 episodes, with GX checks."""


import json
import time
from typing import Any

import dagster as dg
from dagster_ray import RayResource

from robodata.config import ProjectConfig, load_config
from robodata.parallel import run_tasks
from robodata.plots import markdown_image
from robodata.registry import FAILED, PUBLISHED, QUARANTINED, Registry
from robodata.stages.base import CheckResult
from robodata.stages.recordings import MAX_DROPPED_FRACTION, ingest_registered, summarize_ingests
from robodata.stages.tiers import IngestStage
from robodata_dagster.assets.checks import check_specs
from robodata_dagster.assets.partitions import (
    DUPLICATE_RESULT,
    Result,
    every_recording_spec,
    failures_classified,
    finish_partition,
    fleet_partitions,
    keep_made,
    plan_partition,
    retry_policy,
)
from robodata_dagster.assets.versions import CODE_REVISIONS, digest, raw_teleop_content_settings, raw_teleop_version
from robodata_dagster.resources.project import ProjectResource

CHECK_SYNC = "few_frames_out_of_sync"
TICK_TAG = "robodata/tick"


def ingest_partition(key: str, config_path: str, overrides: dict[str, Any]) -> tuple[list[CheckResult], dict]:
    """Ingest one registered recording (a Ray task; no Dagster inside). A duplicate has no checks of its own."""
    outcome, summary = ingest_registered(load_config(config_path or None, overrides), key)
    if outcome is not None:
        summary["published"] = outcome.published
    return (outcome.checks if outcome is not None else []), summary


def build_raw_teleop(cfg: ProjectConfig, spec: Any = None) -> dg.AssetsDefinition:
    """raw_teleop for ``cfg`` (``spec``: the configured pipeline YAML, whose datasources ingest too)."""
    # The stored output's settings (every topic map, the tier's bounds, compression): changing one marks the
    # materialized partitions stale. The data version keeps only what shapes the episodes read downstream.
    content = digest(CODE_REVISIONS["raw_teleop"], raw_teleop_content_settings(cfg))
    code_version = raw_teleop_version(cfg, spec)
    parts = fleet_partitions(cfg)
    specs = [*check_specs("raw_teleop", IngestStage.check_types(cfg.quality.robot_model)),
             dg.AssetCheckSpec(CHECK_SYNC, asset="raw_teleop", blocking=False,
                                        description="At most 5 % of reference frames dropped for being out of sync"),
             every_recording_spec("raw_teleop")]

    # A multi_asset only so that a run may materialize nothing: a partition whose new recordings are all copies
    # of bytes other recordings own yields no output, and eager automation sees no update.
    @dg.multi_asset(
        name="raw_teleop",
        specs=[dg.AssetSpec(
            "raw_teleop", partitions_def=parts, group_name="recording_tiers", kinds={"ray", "hdf5"},
            code_version=code_version, skippable=True,
            description=("One robot's recordings of one day (ROS 1/2 bags, MCAP, Isaac Lab HDF5) as canonical, "
                         "time-synced episodes (Isaac Lab HDF5 layout) in the data store, one file each."),
        )],
        partitions_def=parts,
        can_subset=True,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        op_tags={"dagster/concurrency_key": "ingest"},
        check_specs=specs,
        retry_policy=retry_policy(cfg),
    )
    def raw_teleop(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
        with failures_classified(context, f"raw_teleop partition {context.partition_key}"):
            out = _ingest(context, project)
        if out is not None:
            yield out

    def _ingest(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult | None:
        cfg = project.config
        registry = Registry(cfg.registry_url)
        tick = context.run.tags.get(TICK_TAG)  # a sensor's run: the recordings its tick registered
        plan = plan_partition(registry, "raw_teleop", context.partition_key, code_version, None,
                              only_tick=int(tick) if tick else None)
        # Ray workers may outlive this run's environment: hand them the resolved locations explicitly.
        overrides = {**json.loads(project.overrides_json or "{}"), "storage_root": cfg.storage_url,
                     "landing_root": cfg.landing_url, "landing": {"registry": cfg.registry_url}}
        keys = [t.rec.key for t in plan.todo]
        t0 = time.perf_counter()
        tasks = run_tasks(ingest_partition, [(k, cfg.source_file or "", overrides) for k in keys], num_cpus=1)
        results, reports = [], []
        faults: list[BaseException] = []  # the transient errors that stopped recordings
        for t, r in zip(plan.todo, tasks, strict=True):
            k = t.rec.key
            if not r.ok and r.error is not None and r.transient:  # a worker or node lost beyond Ray's retries, a storage timeout
                faults.append(r.error)
                continue
            if not r.ok:
                err = " ".join(str(r.error).split())
                results.append(Result(k, FAILED, error=err if t.rec.name in err else f"{t.rec.url}: {err}"))
                continue
            checks, rep = r.value
            if rep.get("duplicate_of"):
                context.log.info(f"{k} ({t.rec.name}): the same bytes as recording {rep['duplicate_of']}; "
                                 "not ingested again (registry: duplicate)")
                results.append(Result(k, DUPLICATE_RESULT))
                continue
            reports.append(rep)
            per_rec = summarize_ingests([k], [rep], 0.0)
            frac = per_rec["dropped_fraction"]
            checks = [*checks, CheckResult(CHECK_SYNC, frac <= MAX_DROPPED_FRACTION, blocking=False,
                                           metadata={"dropped_fraction": frac,
                                                     "dropped_frames": per_rec["dropped_frames"]})]
            results.append(Result(k, PUBLISHED if rep["published"] else QUARANTINED,
                                  version=digest(per_rec["version"], content), checks=checks, path=rep["path"],
                                  summary={**{key: per_rec[key] for key in ("episodes", "frames", "dropped_frames",
                                                                            "duration_s", "recordings")},
                                           **{key: rep[key] for key in ("profile",) if key in rep}}))
        metadata: dict[str, Any] = {}
        if reports:
            summary = summarize_ingests([r.key for r in results if r.summary], reports, time.perf_counter() - t0)
            for k in ("version", "path", "recordings"):  # the partition's own table of recordings says these
                summary.pop(k)
            metadata = {k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v for k, v in summary.items()}
            metadata["overview"] = dg.MetadataValue.md(markdown_image(reports[0]["png"],
                                                                      "trajectories and topic timing"))
            profiles = [r["profile"] for r in reports if isinstance(r.get("profile"), dict)]
            if profiles:  # the recordings' profiling reports (HTML in the store), a headline each
                metadata["profiles"] = dg.MetadataValue.json(
                    [{k: p.get(k) for k in ("episodes", "hours", "idle_fraction", "warning_count", "warnings",
                                            "profile_path")} for p in profiles][:50])
        if faults:  # the step is retried for the recordings a fault stopped; what was made stays made
            keep_made(registry, plan, results)
            raise faults[0]
        dups = {r.key for r in results if r.status == DUPLICATE_RESULT}
        if dups:
            metadata["duplicates_not_ingested"] = dg.MetadataValue.json(sorted(dups))
        return finish_partition(context, registry, plan, results, specs, metadata, asset_key="raw_teleop")

    return raw_teleop
