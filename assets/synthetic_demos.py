"""synthetic_demos: MimicGen-style demos generated from a recording's source demos, validated in simulation."""

import hashlib
import json
import sys
import time
from typing import Any

import dagster as dg
from dagster_ray import RayResource

from robodata_dagster.assets.partitions import recordings_partitions
from robodata import store_layout as layout
from robodata_dagster.resources.project import ProjectResource
from robodata.errors import RobodataError

CHECK_SUCCESS = "kept_demos_succeed_in_sim"
CHECK_INVARIANT = "object_centric_invariant"
CHECK_FINITE = "no_nan"
CHECK_LENGTHS = "demo_lengths_in_bounds"
# The production engine's stand-in for Isaac Lab (tests, and `engine: isaaclab` on a machine without Isaac Sim).
STANDIN_COMMAND = [sys.executable, "-m", "robodata.mimicgen.isaaclab_standin"]


def synthetic_demos_path(key: str) -> str:
    return f"synthetic_demos/{key}.hdf5"


def failed_demos_path(key: str) -> str:
    return f"synthetic_demos/{key}.failed.hdf5"


def _check(name: str, passed: bool, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, passed=bool(passed), severity=dg.AssetCheckSeverity.ERROR,
                               metadata={k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
                                         for k, v in metadata.items() if v is not None})


def _generate_local(context: dg.AssetExecutionContext, project: ProjectResource, key: str, src_rel: str):
    from robodata.mimicgen.generate import cached_sim, generate_demos
    from robodata.mimicgen.plots import generation_overview_png
    from robodata.mimicgen.source import load_sources
    from robodata.mimicgen.validate import validate_generated
    from robodata.plots import markdown_image

    cfg = project.config
    tier = cfg.tiers.synthetic_demos
    store = project.store()
    rel = synthetic_demos_path(key)
    with store.read_path(src_rel) as src:
        with store.write_path(rel) as tmp:
            if tier.datagen.keep_failed:
                with store.write_path(failed_demos_path(key)) as tmp_failed:
                    rep = generate_demos(src, tmp, tier, failed_path=tmp_failed)
            else:
                rep = generate_demos(src, tmp, tier)
            if rep.successes == 0:
                raise RobodataError(
                    f"{store.url(src_rel)}: 0 of {rep.trials} generation trials succeeded "
                    f"(failure reasons: {rep.failure_reasons}); nothing written"
                )
            from robodata.formats.isaaclab import EpisodeStore

            with EpisodeStore(tmp) as es:
                hw = tuple(es.schema.cameras[0].shape[:2]) if es.schema.cameras else (48, 64)
            checks = validate_generated(tmp, src, tier.subtasks, tolerance=tier.invariant_tolerance,
                                        min_frames=tier.min_demo_frames, max_frames=tier.max_demo_frames,
                                        sim=cached_sim(hw))
        png = generation_overview_png(load_sources(src, tier.subtasks), rep.scenes, title=key)
    context.log.info(f"{key}: {rep.successes}/{rep.trials} trials kept, {rep.demos_per_min:.1f} demos/min")
    metadata = {
        "engine": "local",
        "sources": rep.sources,
        "trials": rep.trials,
        "successes": rep.successes,
        "failures": rep.failures,
        "success_rate": round(rep.success_rate, 3),
        "failure_reasons": dg.MetadataValue.json(rep.failure_reasons),
        "demos_per_min": round(rep.demos_per_min, 2),
        "source_usage_per_subtask": dg.MetadataValue.json(rep.source_usage),
        "frames": rep.kept_frames,
        "sim_steps": rep.steps,
        "workers": rep.workers,
        "wall_s": round(rep.wall_s, 2),
        "path": dg.MetadataValue.path(store.url(rel)),
        "overview": dg.MetadataValue.md(markdown_image(png, "source vs generated scenes and paths")),
    }
    if rep.failed_path:
        metadata["failed_path"] = dg.MetadataValue.path(store.url(failed_demos_path(key)))
    results = [_check(c.name, c.passed, c.details) for c in checks.values()]
    return metadata, results


def _generate_isaaclab(context: dg.AssetExecutionContext, project: ProjectResource, key: str, src_rel: str):
    """Isaac Lab Mimic in its container, through Dagster Pipes; the output HDF5 collected and checked here."""
    from robodata.mimicgen.isaaclab import generate_dataset_argv, summarize_output

    cfg = project.config
    tier = cfg.tiers.synthetic_demos
    il = tier.isaaclab
    store = project.store()
    if not store.local:
        raise RobodataError(f"engine isaaclab needs a store the container shares (a local path); got {store.root}")
    rel = synthetic_demos_path(key)
    with store.read_path(src_rel) as src, store.write_path(rel) as tmp:
        argv = generate_dataset_argv(il, str(src), str(tmp))
        entry = [sys.executable, "-m", "robodata.mimicgen.pipes_entry", "--output_file", str(tmp),
                 "--min_frames", str(tier.min_demo_frames), "--max_frames", str(tier.max_demo_frames), "--", *argv]
        try:
            if il.launcher == "k8s":
                from dagster_k8s import PipesK8sClient

                result = PipesK8sClient().run(context=context, image=il.image, command=["python", *entry[1:]],
                                              namespace=il.namespace)
            else:
                result = dg.PipesSubprocessClient().run(command=entry, context=context)
        except Exception as err:  # noqa: BLE001 - Dagster's Pipes errors are private classes
            raise RobodataError(f"Isaac Lab Mimic (engine isaaclab) failed: {err} (its log is in the run's logs)"
                                ) from err
        reported = {}
        for ev in result.get_results():
            if isinstance(ev, dg.MaterializeResult):
                reported = dict(ev.metadata or {})
        summary = summarize_output(tmp, tier.min_demo_frames, tier.max_demo_frames)
    reported["command"] = dg.MetadataValue.text(" ".join(argv))
    reported["path"] = dg.MetadataValue.path(store.url(rel))
    results = [
        _check(CHECK_SUCCESS, summary["successes"] == summary["demos"] and summary["demos"] > 0,
               {"demos": summary["demos"], "successes": summary["successes"], "note": "success flags of Isaac Lab"}),
        _check(CHECK_INVARIANT, True, {"checked": False,
                                       "reason": "Isaac Lab Mimic records no per-segment provenance to check against"}),
        _check(CHECK_FINITE, not summary["nan_demos"], {"bad": summary["nan_demos"][:20]}),
        _check(CHECK_LENGTHS, not summary["bad_length_demos"], {"out_of_bounds": summary["bad_length_demos"][:20]}),
    ]
    return reported, results


@dg.asset(
    name="synthetic_demos",
    partitions_def=recordings_partitions,
    deps=[dg.AssetDep("raw_teleop")],
    group_name="recording_tiers",
    kinds={"ray", "hdf5", "mujoco"},
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    op_tags={"dagster/concurrency_key": "mimicgen"},
    check_specs=[
        dg.AssetCheckSpec(CHECK_SUCCESS, asset="synthetic_demos", blocking=True,
                          description="every kept demo succeeds when its actions are replayed in the simulator"),
        dg.AssetCheckSpec(CHECK_INVARIANT, asset="synthetic_demos", blocking=True,
                          description="in each transformed segment, the target end-effector pose in the reference "
                                      "object's frame equals the source's (within invariant_tolerance)"),
        dg.AssetCheckSpec(CHECK_FINITE, asset="synthetic_demos", blocking=True,
                          description="no NaN or inf in any float dataset"),
        dg.AssetCheckSpec(CHECK_LENGTHS, asset="synthetic_demos", blocking=True,
                          description="demo lengths within [min_demo_frames, max_demo_frames]"),
    ],
    description=(
        "MimicGen-style synthetic demos of one recording: source demos cut into object-centric subtasks, "
        "replayed in new scenes (T_obj_new · T_obj_src^-1 · T_eef_src), executed and kept only when they "
        "succeed (local Fetch simulator on Ray, or Isaac Lab Mimic through Dagster Pipes)."
    ),
)
def synthetic_demos(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
    from robodata.mimicgen.errors import MimicGenError

    key = context.partition_key
    cfg = project.config
    tier = cfg.tiers.synthetic_demos
    store = project.store()
    src_rel = layout.episodes_path(layout.RAW_TELEOP, key)
    if not store.exists(src_rel):
        raise dg.Failure(f"recording {key}: no source demos at {store.url(src_rel)} (materialize raw_teleop first)",
                         allow_retries=False)
    t0 = time.perf_counter()
    try:
        if tier.engine == "isaaclab":
            metadata, checks = _generate_isaaclab(context, project, key, src_rel)
        else:
            metadata, checks = _generate_local(context, project, key, src_rel)
    except (MimicGenError, RobodataError) as err:
        raise dg.Failure(description=f"recording {key}: {err}", allow_retries=False) from err
    metadata["elapsed_s"] = round(time.perf_counter() - t0, 2)
    version = hashlib.sha1(json.dumps({
        "config": tier.model_dump(mode="json"), "source_bytes": store.size(src_rel),
        "out_bytes": store.size(synthetic_demos_path(key)),
    }, sort_keys=True).encode()).hexdigest()[:16]
    return dg.MaterializeResult(metadata=metadata, check_results=checks, data_version=dg.DataVersion(version))
