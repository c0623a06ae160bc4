"""The three steps for one episode store: clips out (HDF5 -> MP4 + controls), variants, variants back in (MP4 -> HDF5).

``plan`` lists the clips; ``run_clips`` exports them (and, with the local engine, augments them) as Ray tasks
where Ray is up; ``variants_from`` turns per-clip results into per-demo variants (a variant needs every camera);
``merge_variants`` and ``check_store`` finish. Failures stay per clip: the rest of the store goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.augment.clips import load_mask, process_clip
from robodata.augment.config import AugmentedVideosConfig
from robodata.augment.errors import AugmentError
from robodata.augment.local import variant_seed
from robodata.augment.merge import Variant
from robodata.formats.isaaclab import EpisodeStore


@dataclass
class Clip:
    demo: str
    camera: str
    variants: list[tuple[int, int]]  # (variant index, seed)

    @property
    def name(self) -> str:
        return f"{self.demo}/{self.camera}"


@dataclass
class ClipRun:
    """Results of the clip tasks: reports of the clips that worked, one clear message per clip that did not."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def plan(store_path: str | Path, cfg: AugmentedVideosConfig) -> list[Clip]:
    """Every configured camera of every demo (the first ``max_demos``), with its K (variant, seed) pairs."""
    with EpisodeStore(store_path) as es:
        cams = [f.name for f in es.schema.cameras]
        if cfg.cameras != "all":
            missing = [c for c in cfg.cameras if c not in cams]
            if missing and not cams:
                raise AugmentError(f"{store_path}: no cameras in the store (configured {cfg.cameras})")
            cams = list(cfg.cameras)  # a demo lacking one fails on its own clip, with the camera named
        if not cams:
            raise AugmentError(f"{store_path}: the store has no camera (image) features to augment")
        demos = [d for d in es.demo_names if "augmented_from" not in es.attrs(d)]
    demos = demos[: cfg.max_demos] if cfg.max_demos else demos
    return [Clip(d, c, [(k, variant_seed(cfg.seed, d, k)) for k in range(cfg.variants)]) for d in demos for c in cams]


def run_clips(
    store_path: str | Path, out_dir: str | Path, clips: list[Clip], cfg: AugmentedVideosConfig,
    *, num_gpus: float = 0, use_ray: bool = True,
) -> ClipRun:
    """Run :func:`~robodata.augment.clips.process_clip` per clip (Ray tasks where Ray is up)."""
    from robodata.parallel import run_tasks

    local = cfg.engine == "local"
    args = [(str(store_path), c.demo, c.camera, str(out_dir), cfg.model_dump(), c.variants if local else [])
            for c in clips]
    results = run_tasks(process_clip, args, num_cpus=1, num_gpus=num_gpus, use_ray=use_ray)
    run = ClipRun()
    for c, r in zip(clips, results, strict=True):
        if r.ok:
            run.reports[c.name] = r.value
        else:
            run.failed[c.name] = str(r.error) if isinstance(r.error, AugmentError) else f"{c.name}: {r.error!r}"
    return run


def variants_from(clips: list[Clip], run: ClipRun, engine: str, videos: dict[tuple[str, str, int], str] | None = None
                  ) -> tuple[list[Variant], dict[str, str]]:
    """Group clip results into per-demo variants; a variant with a failed camera is reported, not written.

    ``videos`` maps ``(demo, camera, k)`` to a collected output (Cosmos); the local engine's are in the reports.
    """
    by_demo: dict[str, list[Clip]] = {}
    for c in clips:
        by_demo.setdefault(c.demo, []).append(c)
    out, failed = [], {}
    for demo, cs in by_demo.items():
        for k, seed in cs[0].variants:
            vids, params, why = {}, None, []
            for c in cs:
                if c.name in run.failed:
                    why.append(run.failed[c.name])
                    continue
                rep = run.reports[c.name]
                path = (videos or {}).get((demo, c.camera, k)) or rep["variants"].get(k) or rep["variants"].get(str(k))
                if path is None:
                    why.append(f"{c.name} v{k}: no output video")
                    continue
                vids[c.camera] = path
                params = params or rep["params"].get(k) or rep["params"].get(str(k))
            if why:
                failed[f"{demo} v{k}"] = "; ".join(why)
            else:
                out.append(Variant(demo, k, seed, engine, vids, params))
    return out, failed


def masks_of(run: ClipRun) -> dict[tuple[str, str], np.ndarray]:
    """The robot/object masks the clip tasks wrote, by ``(demo, camera)``."""
    out = {}
    for rep in run.reports.values():
        if "mask" in rep["files"]:
            out[(rep["demo"], rep["camera"])] = load_mask(rep["files"]["mask"])
    return out
