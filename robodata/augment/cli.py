"""``robodata export-video`` and ``robodata augment``: the augmentation tier's subcommands for the main CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from robodata.errors import require


def add_subcommands(subparsers: Any) -> None:
    """Add ``export-video`` and ``augment`` to an ``argparse`` subparsers object (each sets ``func``)."""
    p = subparsers.add_parser("export-video", help="episode-store HDF5 -> one MP4 per camera per demo, plus depth/seg/edge control videos")
    p.add_argument("src", help="episode-store .hdf5")
    p.add_argument("out", help="output folder (<demo>/<camera>.mp4, <camera>.depth|seg|edge.mp4)")
    p.add_argument("--camera", action="append", help="only this camera (repeatable; default all)")
    p.add_argument("--codec", default="libx264", choices=["libx264", "libsvtav1", "h264_nvenc", "auto"])
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--controls", default="depth,seg,edge", help="comma-separated control videos ('' for none)")
    p.set_defaults(func=_export)
    a = subparsers.add_parser("augment", help="local domain randomisation: HDF5 -> K variants per demo -> new HDF5")
    a.add_argument("src")
    a.add_argument("dst", help="output .hdf5 (originals + variants); MP4s go beside it in <dst stem>/")
    a.add_argument("--variants", type=int, default=1)
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(func=_augment)


def _cfg(**kw: Any):
    from robodata.augment.config import AugmentedVideosConfig

    return AugmentedVideosConfig.model_validate({k: v for k, v in kw.items() if v is not None})


def _export(args: argparse.Namespace) -> int:
    from robodata.augment.pipeline import plan, run_clips

    controls = [c for c in args.controls.split(",") if c]
    if "edge" in controls:  # edge controls are computed in torch (clips fail one by one without it)
        require("robodata export-video (edge controls)", "torch")
    cfg = _cfg(cameras=args.camera or "all", codec=args.codec, crf=args.crf, controls=controls)
    clips = plan(args.src, cfg)
    run = run_clips(args.src, args.out, clips, cfg.model_copy(update={"engine": "cosmos"}), use_ray=False)
    for name, rep in run.reports.items():
        print(f"{name}: {rep['frames']} frames, controls from {rep['control_source']}: {sorted(rep['files'])}")
    for name, err in run.failed.items():
        print(f"FAILED {name}: {err}")
    return 1 if run.failed else 0


def _augment(args: argparse.Namespace) -> int:
    require("robodata augment", "torch")  # the local engine runs in torch (clips would fail one by one without it)
    from robodata.augment.checks import check_store
    from robodata.augment.merge import merge_variants
    from robodata.augment.pipeline import masks_of, plan, run_clips, variants_from

    cfg = _cfg(variants=args.variants, seed=args.seed)
    dst = Path(args.dst)
    clips = plan(args.src, cfg)
    run = run_clips(args.src, dst.with_suffix(""), clips, cfg, use_ray=False)
    variants, failed = variants_from(clips, run, "local")
    rep = merge_variants(args.src, dst, variants)
    checks = check_store(dst, masks_of(run), min_distance=cfg.min_distance, max_masked_residual=cfg.max_masked_residual)
    print(json.dumps({"written": {k: f"{v.demo} v{v.variant}" for k, v in rep.written.items()},
                      "failed": {**failed, **{f"{v.demo} v{v.variant}": e for v, e in rep.failed}},
                      "checks": {k: c.passed for k, c in checks.items()}}, indent=1))
    return 0 if all(c.passed for c in checks.values()) and not failed and not rep.failed else 1
