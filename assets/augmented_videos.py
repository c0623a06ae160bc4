"""augmented_videos: a recording's demos as MP4 clips (+ control videos), K augmented variants each, merged back."""

import time
from pathlib import Path

import dagster as dg
from dagster_ray import RayResource

from robodata_dagster.assets.partitions import recordings_partitions
from robodata_dagster.resources.project import ProjectResource
from robodata.augment.checks import CHECKS, CHECK_FRAMES, CHECK_IMAGES, CHECK_LOWDIM, CHECK_SCENE
from robodata.storage import DataStore

# The upstream tiers, most processed first (synthetic_demos is wired in as a dependency once it lands).
SOURCE_TIERS = ("synthetic_demos", "raw_teleop")
_DESCRIPTIONS = {
    CHECK_FRAMES: "every augmented clip has the same number of frames as its source demo",
    CHECK_LOWDIM: "actions, states, timestamps and non-image observations are copied unchanged",
    CHECK_IMAGES: "augmented images are neither blank nor saturated",
    CHECK_SCENE: "variants differ from the source, robot and object stay where they were (masked residual)",
}


def augmented_path(key: str) -> str:
    return f"augmented_videos/{key}.hdf5"


def videos_path(key: str) -> str:
    return f"augmented_videos/{key}"


def source_for(store: DataStore, key: str) -> str:
    for tier in SOURCE_TIERS:
        if store.exists(f"{tier}/{key}.hdf5"):
            return f"{tier}/{key}.hdf5"
    raise dg.Failure(f"recording {key}: no synthetic_demos or raw_teleop episodes in {store.root}", allow_retries=False)


def _launch_cosmos(context, cfg, clips, run, out_dir: Path) -> dict:
    """Write one spec per clip variant, run Cosmos Transfer (or its stand-in) through Dagster Pipes, collect."""
    from robodata.augment.cosmos import build_spec, collect_output, command, write_spec
    cc = cfg.cosmos
    videos, spec_dir, raw_out = {}, out_dir / "cosmos" / "specs", out_dir / "cosmos" / "outputs"
    client = _pipes_client(cc)
    for c in clips:
        if c.name in run.failed:
            continue
        frames = run.reports[c.name]["frames"]
        for k, seed in c.variants:
            try:
                spec = write_spec(spec_dir, build_spec(out_dir, c.demo, c.camera, k, seed, cc))
                argv = command(cc, spec, raw_out)
                context.log.info(f"cosmos: {' '.join(argv)}")
                inv = client.run(context=context, command=argv, cwd=cc.cwd, env=dict(cc.env),
                                 extras={"clip": c.name, "variant": k})
                for msg in inv.get_custom_messages():
                    context.log.info(f"cosmos reported: {msg}")
                videos[(c.demo, c.camera, k)] = str(collect_output(raw_out, out_dir, c.demo, c.camera, k, frames))
            except Exception as err:  # noqa: BLE001 - a bad output or a failed launch fails this clip only
                run.failed[f"{c.name} v{k}"] = f"{c.name} v{k}: {err}"
    return videos


def _pipes_client(cc):
    if cc.launcher == "k8s":  # Cosmos in its container on a GPU node (dagster-k8s)
        from dagster_k8s import PipesK8sClient

        return _K8sAdapter(PipesK8sClient(), cc)
    return dg.PipesSubprocessClient()


class _K8sAdapter:
    """PipesK8sClient with the subprocess client's call shape (command, cwd, env)."""

    def __init__(self, client, cc):
        self.client, self.cc = client, cc

    def run(self, *, context, command, cwd=None, env=None, extras=None):
        return self.client.run(context=context, image=self.cc.image, command=command, namespace=self.cc.namespace,
                               env=env, extras=extras, base_pod_spec={"containers": [{"workingDir": cwd}]} if cwd else None)


@dg.asset(
    name="augmented_videos",
    partitions_def=recordings_partitions,
    deps=["synthetic_demos"],  # reads synthetic_demos/<key>.hdf5, else raw_teleop/<key>.hdf5
    group_name="recording_tiers",
    kinds={"ray", "hdf5", "mp4", "torch"},
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    check_specs=[dg.AssetCheckSpec(name, asset="augmented_videos", blocking=True, description=_DESCRIPTIONS[name])
                 for name in CHECKS],
    description="Each demo's cameras as MP4 (+ depth/seg/edge control videos), K visual variants per demo "
    "(local torch domain randomisation or Cosmos Transfer 2.5), merged back as new demos beside the originals.",
)
def augmented_videos(context: dg.AssetExecutionContext, project: ProjectResource, ray_cluster: RayResource):
    from robodata.augment.checks import check_store
    from robodata.augment.errors import AugmentError
    from robodata.augment.merge import merge_variants
    from robodata.augment.pipeline import masks_of, plan, run_clips, variants_from
    from robodata.augment.sheet import sheet_from_store
    from robodata.parallel import gpus_available
    from robodata.plots import markdown_image

    cfg = project.config
    acfg = cfg.tiers.augmented_videos
    store = project.store()
    key = context.partition_key
    src_rel = source_for(store, key)
    t0 = time.perf_counter()
    with store.read_path(src_rel) as src, store.write_path(videos_path(key)) as out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            clips = plan(src, acfg)
        except AugmentError as err:
            raise dg.Failure(str(err), allow_retries=False) from err
        gpu = 1 if gpus_available() >= 1 and (acfg.local.device != "cpu") else 0
        run = run_clips(src, out_dir, clips, acfg, num_gpus=gpu)
        videos = _launch_cosmos(context, acfg, clips, run, out_dir) if acfg.engine == "cosmos" else None
        variants, failed = variants_from(clips, run, acfg.engine, videos)
        if not variants:
            raise dg.Failure(f"recording {key}: no variant could be made: " + "; ".join({**run.failed, **failed}.values()),
                             allow_retries=False)
        with store.write_path(augmented_path(key)) as tmp_h5:
            rep = merge_variants(src, tmp_h5, variants)
            failed.update({f"{v.demo} v{v.variant}": e for v, e in rep.failed})
            checks = check_store(tmp_h5, masks_of(run), min_distance=acfg.min_distance,
                                 max_masked_residual=acfg.max_masked_residual)
            png = sheet_from_store(tmp_h5)
        elapsed = time.perf_counter() - t0
        mp4_bytes = sum(p.stat().st_size for p in out_dir.rglob("*.mp4"))
    for name, err in {**run.failed, **failed}.items():
        context.log.warning(f"augmented_videos {key}: {name} failed: {err}")
    variant_frames = sum(r["frames"] * len(c.variants) for c in clips if (r := run.reports.get(c.name)))
    sources = sorted({r["control_source"] for r in run.reports.values()})
    metadata = {
        "source": store.url(src_rel),
        "engine": acfg.engine,
        "clips": len(clips),
        "clips_failed": len(run.failed),
        "variants": len(rep.written),
        "variants_failed": dg.MetadataValue.json({**failed} if failed else {}),
        "failed_clips": dg.MetadataValue.json(run.failed),
        "demos_out": rep.originals + len(rep.written),
        "frames_out": rep.frames,
        "frames_per_s": round(variant_frames / elapsed, 1) if elapsed else 0.0,
        "control_sources": dg.MetadataValue.json(sources),
        "mp4_bytes": mp4_bytes,
        "hdf5_bytes": store.size(augmented_path(key)),
        "seconds": round(elapsed, 2),
        "path": dg.MetadataValue.path(store.url(augmented_path(key))),
        "videos": dg.MetadataValue.path(store.url(videos_path(key))),
        **{f"check_{k}": v for k, v in checks[CHECK_SCENE].measures.items() if v is not None},
    }
    if png:
        metadata["before_after"] = dg.MetadataValue.md(markdown_image(png, "source (above) and augmented (below)"))
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[dg.AssetCheckResult(check_name=name, passed=c.passed, severity=dg.AssetCheckSeverity.ERROR,
                                           metadata={"failures": dg.MetadataValue.json(c.failures[:20]),
                                                     **{k: v for k, v in c.measures.items() if v is not None}})
                       for name, c in checks.items()],
    )
