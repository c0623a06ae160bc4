"""new_recordings: watch the landing zone, register each finished recording, request its partition's ingest.

The tick is :class:`robodata.landing.Scanner` over the project's registry: listing metadata only, cost per
tick following what changed, state in the registry's tables. The cursor is two numbers: the last tick whose
result Dagster stored (recordings registered by a later tick, whose result was lost with a crashed daemon,
are requested again under the same run keys, which Dagster never launches twice) and when the last full scan
ran. A tick requests one run per robot x day partition its new recordings fall in (run key: partition and the
tick that registered them), and adds each robot it has not seen to the ``robots`` dimension.
"""


import json
import time
from typing import TYPE_CHECKING

import dagster as dg

from robodata.landing import Scanner
from robodata.registry import Registry
from robodata_dagster.assets.partitions import ROBOTS, robot_of
from robodata_dagster.assets.raw_teleop import TICK_TAG
from robodata_dagster.resources.project import ProjectResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

SENSOR_NAME = "new_recordings"
TICK_SECONDS = 15
FULL_SCAN_SECONDS = 20.0  # a full scan's share of one tick (Dagster times a sensor tick out at 60 s)


def evaluate_landing(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    stored_tick = int(cursor.get("tick", 0))
    full_at = float(cursor.get("full_at", 0.0))
    full_from = str(cursor.get("full_from", ""))  # a full scan in progress (it spans ticks at fleet scale)
    if context.instance_ref is not None or getattr(context, "_instance", None) is not None:
        from robodata_dagster.runs import sweep_dead_runs

        for run_id in sweep_dead_runs(context.instance):  # a killed process's runs would hold the ingest slots
            context.log.warning(f"run {run_id}: the process executing it (a CLI, a run worker) is gone; marked "
                                "failed, its concurrency slots freed")
    cfg = project.config
    registry = Registry(cfg.registry_url)
    now = time.time()
    full = bool(full_from) or now - full_at >= cfg.landing.full_scan_minutes * 60
    orphans = registry.registered_since(stored_tick)
    tick = max(stored_tick, registry.last_tick()) + 1
    rep = Scanner(project.landing(), registry, cfg.landing).scan(tick, full=full, now=now, resume_after=full_from,
                                                                 deadline_s=FULL_SCAN_SECONDS)
    if full and rep.resume_point:
        full_from = rep.resume_point
    elif full:
        full_at, full_from = now, ""
    new = {r.key: r for r in [*orphans, *rep.new]}
    reasons = rep.reasons()
    for line in reasons:  # every object not taken is said, whether or not the tick also requests runs
        context.log.info(line)
    context.log.info(f"tick {tick}{' (full scan)' if full else ''}: {len(rep.new)} new, {len(orphans)} re-requested, "
                     f"{rep.folders_listed} folders listed, {rep.folders_skipped} unchanged, "
                     f"{rep.objects_seen} objects looked at{'; more next tick' if rep.more else ''}")
    from robodata import metrics_hooks  # the long-running process: serves /metrics, counts what runs recorded

    metrics_hooks.sensor_tick(registry, cfg, registered=len(rep.new))
    new_cursor = json.dumps({"tick": tick, "full_at": full_at, "full_from": full_from})
    if not new:
        return dg.SensorResult(skip_reason="; ".join(reasons) or "no new recordings", cursor=new_cursor)
    groups: dict[tuple[str, int], list] = {}
    for r in new.values():
        if not r.partition_key:  # registered by a robodata from before robot x day partitions
            context.log.warning(f"{r.url}: registered without a robot x day partition; land it again")
            continue
        groups.setdefault((r.partition_key, r.tick), []).append(r)
    if not groups:
        return dg.SensorResult(skip_reason="no new recordings with a partition", cursor=new_cursor)
    for (part, _), recs in groups.items():
        notes = sorted({r.note for r in recs if r.note})
        for n in notes:
            context.log.warning(f"{part}: {n}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            run_key=f"{part}@{t}", partition_key=part,
            tags={TICK_TAG: str(t), "robodata/recordings": str(len(recs)), "robodata/source": recs[0].path[:200]},
        ) for (part, t), recs in sorted(groups.items())],
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(
            ROBOTS, sorted({robot_of(p) for p, _ in groups}))],
        cursor=new_cursor,
    )


def build_new_recordings_sensor(job: "dg.JobDefinition | UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=TICK_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Registers each finished recording in the landing zone and ingests it once, in its robot x day "
                    "partition.",
    )
    def new_recordings(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SensorResult:
        return evaluate_landing(context, project)

    return new_recordings
