"""raw_teleop: one landed recording -> canonical, time-synced Isaac Lab HDF5 episodes, with GX checks."""


import json
import time
from typing import Any

import dagster as dg
from dagster_ray import RayResource

from robodata.config import load_config
from robodata.parallel import run_tasks
from robodata.plots import markdown_image
from robodata.stages.base import CheckResult
from robodata.stages.recordings import MAX_DROPPED_FRACTION, ingest_registered, summarize_ingests
from robodata.stages.tiers import IngestStage
from robodata_dagster.assets.checks import check_specs, merged_results
from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.resources.project import ProjectResource

CHECK_SYNC = "few_frames_out_of_sync"
_SPECS = check_specs("raw_teleop", IngestStage.checks)


def ingest_partition(key: str, config_path: str, overrides: dict[str, Any]) -> tuple[list[CheckResult], dict]:
    """Ingest one registered recording (a Ray task; no Dagster inside)."""
    outcome, summary = ingest_registered(load_config(config_path or None, overrides), key)
    return outcome.checks, summary


def build_raw_teleop(max_partitions_per_run: int = 1) -> dg.AssetsDefinition:
    @dg.asset(
        name="raw_teleop",
        partitions_def=recordings_partitions,
        group_name="recording_tiers",
        kinds={"ray", "hdf5"},
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=max_partitions_per_run),
        op_tags={"dagster/concurrency_key": "ingest"},
        check_specs=[*_SPECS, dg.AssetCheckSpec(CHECK_SYNC, asset="raw_teleop", blocking=False,
                                                 description="At most 5 % of reference frames dropped for being out of sync")],
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
        failed = [(k, r.error) for k, r in zip(keys, results, strict=True) if not r.ok]
        if failed:
            msg = "; ".join(str(e) for _, e in failed)
            raise dg.Failure(description=msg, metadata={"failed_partitions": [k for k, _ in failed]},
                             allow_retries=False)
        checks = [r.value[0] for r in results]
        reports = [r.value[1] for r in results]
        summary = summarize_ingests(keys, reports, time.perf_counter() - t0)
        frac = summary["dropped_fraction"]
        check_results = [*merged_results(checks), dg.AssetCheckResult(
            check_name=CHECK_SYNC, passed=frac <= MAX_DROPPED_FRACTION, severity=dg.AssetCheckSeverity.WARN,
            metadata={"dropped_fraction": frac, "dropped_frames": summary["dropped_frames"]},
        )]
        version = summary.pop("version")
        metadata = {k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v for k, v in summary.items()}
        metadata["path"] = dg.MetadataValue.path(summary["path"])
        metadata["overview"] = dg.MetadataValue.md(markdown_image(reports[0]["png"], "trajectories and topic timing"))
        return dg.MaterializeResult(metadata=metadata, check_results=check_results,
                                    data_version=dg.DataVersion(version))

    return raw_teleop
