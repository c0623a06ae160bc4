"""Cosmos Transfer 2.5 as the production engine: one JSON spec per clip, the command line, the outputs collected.

The spec is what ``examples/inference.py -i SPEC -o OUTDIR`` of nvidia-cosmos/cosmos-transfer2.5 reads::

    {"name": "demo_0.front.v0", "prompt": "...", "video_path": ".../demo_0/front.mp4",
     "seed": 1234, "guidance": 3.0,
     "depth": {"control_path": ".../demo_0/front.depth.mp4", "control_weight": 0.5},
     "edge":  {"control_path": ".../demo_0/front.edge.mp4",  "control_weight": 1.0},
     "seg":   {"control_path": ".../demo_0/front.seg.mp4",   "control_weight": 0.5}}

``guidance`` is an integer in 0..7 and each ``control_weight`` in 0..1 (Cosmos validates both). The distilled edge
model (``--model=edge/distilled`` in ``cosmos.extra_args``) takes the edge control only and ``num_steps: 4``.
Guardrails are turned off with ``--disable-guardrails`` (the script uses tyro's ``OmitArgPrefixes``).
A control without a video of ours (``vis``, or depth where the store had none) goes in without ``control_path``:
Cosmos then computes it on the fly. The output is ``OUTDIR/<name>.mp4``; it is checked (readable, same frame
count as the source) and moved next to the clip as ``<camera>.v<k>.mp4``. This module builds and collects; the
asset launches the command through Dagster Pipes (the library does not import Dagster).

On Kubernetes the pod mounts the store's volume elsewhere (``cosmos.k8s.mount_path``): :func:`spec_for_pod` is the
spec with its videos on that mount, written in the store (under the clip folder) so that the pod can read it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from robodata.atomic import atomic_path
from robodata.augment.clips import clip_paths, variant_path
from robodata.augment.config import CONTROL_KINDS, CosmosConfig
from robodata.augment.errors import AugmentError
from robodata.augment.video import count_frames
from robodata.stages.engines import PodPaths

DISTILLED_MODEL_FLAG = "--model=edge/distilled"  # Cosmos Transfer 2.5's distilled edge checkpoint
DISTILLED_STEPS = 4  # the sampling steps it was distilled to


def is_distilled(cfg: CosmosConfig) -> bool:
    """True when ``cosmos.extra_args`` selects the distilled edge model (``--model=edge/distilled``)."""
    args = list(cfg.extra_args)
    return DISTILLED_MODEL_FLAG in args or any(a == "--model" and b == "edge/distilled" for a, b in zip(args, args[1:], strict=False))


def spec_name(demo: str, camera: str, variant: int) -> str:
    return f"{demo}.{camera}.v{variant}"


def build_spec(
    out_dir: str | Path, demo: str, camera: str, variant: int, seed: int, cfg: CosmosConfig
) -> dict[str, Any]:
    """The inference spec of one clip variant (paths absolute, as this machine sees them; see :func:`spec_for_pod`)."""
    if cfg.guidance != int(cfg.guidance) or not 0 <= cfg.guidance <= 7:
        raise AugmentError(f"tiers.augmented_videos.cosmos.guidance is {cfg.guidance}: Cosmos Transfer 2.5 takes an "
                           "integer guidance in 0..7")
    paths = clip_paths(out_dir, demo, camera)
    if not paths["video"].exists():
        raise AugmentError(f"{demo}/{camera}: the clip video {paths['video']} was not exported")
    distilled = is_distilled(cfg)
    spec: dict[str, Any] = {
        "name": spec_name(demo, camera, variant),
        "prompt": cfg.prompt,
        "video_path": str(paths["video"].resolve()),
        "seed": int(seed) % (2**31),
        "guidance": int(cfg.guidance),
    }
    if cfg.negative_prompt:
        spec["negative_prompt"] = cfg.negative_prompt
    if distilled and cfg.num_steps not in (None, DISTILLED_STEPS):
        raise AugmentError(f"tiers.augmented_videos.cosmos.num_steps is {cfg.num_steps}: the distilled edge model "
                           f"({DISTILLED_MODEL_FLAG}) runs {DISTILLED_STEPS} steps")
    if cfg.num_steps or distilled:
        spec["num_steps"] = cfg.num_steps or DISTILLED_STEPS
    if distilled and set(cfg.controls) != {"edge"}:
        raise AugmentError(f"tiers.augmented_videos.cosmos.controls are {sorted(cfg.controls)}: the distilled edge "
                           f"model ({DISTILLED_MODEL_FLAG}) takes the edge control only")
    for kind, weight in cfg.controls.items():
        if kind not in ("depth", "edge", "seg", "vis"):
            raise AugmentError(f"tiers.augmented_videos.cosmos.controls: unknown control {kind!r} (depth, edge, seg, vis)")
        if not 0.0 <= float(weight) <= 1.0:
            raise AugmentError(f"tiers.augmented_videos.cosmos.controls.{kind} is {weight}: a control_weight is in 0..1")
        ctl: dict[str, Any] = {"control_weight": float(weight)}
        p = paths.get(kind)
        if p is not None and p.exists():
            ctl["control_path"] = str(p.resolve())
        spec[kind] = ctl
    return spec


def spec_for_pod(spec: dict[str, Any], paths: PodPaths) -> dict[str, Any]:
    """``spec`` as a pod reads it: the input and control videos on the pod's mount of the store (a video outside
    the store is refused, :class:`~robodata.stages.engines.PodPathError`: the pod could not open it)."""
    out = {**spec, "video_path": paths.to_pod(spec["video_path"])}
    for kind in CONTROL_KINDS:
        ctl = spec.get(kind)
        if isinstance(ctl, dict) and "control_path" in ctl:
            out[kind] = {**ctl, "control_path": paths.to_pod(ctl["control_path"])}
    return out


def write_spec(spec_dir: str | Path, spec: dict[str, Any]) -> Path:
    path = Path(spec_dir) / f"{spec['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1))
    return path


def command(cfg: CosmosConfig, spec_path: str | Path, output_dir: str | Path) -> list[str]:
    """``[*cfg.command, -i SPEC, -o OUTDIR, *cfg.extra_args]``, e.g. ``python examples/inference.py -i ... -o ...``."""
    return [*cfg.command, "-i", str(spec_path), "-o", str(output_dir), *cfg.extra_args]


def collect_output(output_dir: str | Path, out_dir: str | Path, demo: str, camera: str, variant: int,
                   frames: int) -> Path:
    """Check Cosmos' ``<name>.mp4`` (readable, ``frames`` long) and move it to the clip's variant path."""
    name = spec_name(demo, camera, variant)
    src = Path(output_dir) / f"{name}.mp4"
    if not src.exists():
        raise AugmentError(f"{name}: Cosmos Transfer wrote no {src}")
    got = count_frames(src)
    if got != frames:
        raise AugmentError(f"{name}: Cosmos Transfer output has {got} frames, the source clip {frames}")
    dst = variant_path(out_dir, demo, camera, variant)
    with atomic_path(dst, kind="file") as tmp:  # Cosmos' output folder may be on another filesystem
        shutil.move(str(src), tmp)
    return dst
