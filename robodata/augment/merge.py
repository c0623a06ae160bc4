"""MP4 -> HDF5: the originals plus one new demo per augmented variant, low-dim data copied unchanged.

A variant demo gets the next free demo id and provenance attrs: ``augmented_from`` (original demo id),
``augment_engine``, ``augment_variant``, ``augment_seed`` (and ``augment_params`` for the local engine). Each
camera's video must have exactly as many frames as the demo's low-dim data; a variant whose video is missing,
corrupt or of another length is skipped and reported, the others are written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.augment.errors import AugmentError
from robodata.augment.video import count_frames, iter_clip
from robodata.formats.isaaclab import EpisodeStore, EpisodeStoreWriter, demo_index
from robodata.formats.isaaclab_layout import (
    ENV_KWARGS_KEY,
    ENV_NAME_KEY,
    NUM_SAMPLES_ATTR,
    SUCCESS_ATTR,
    demo_name,
)

PROVENANCE = ("augmented_from", "augment_engine", "augment_variant", "augment_seed")


@dataclass
class Variant:
    """One augmented variant of one demo: its videos per camera (cameras not listed are copied unchanged)."""

    demo: str
    variant: int
    seed: int
    engine: str
    videos: dict[str, str]
    params: dict[str, Any] | None = None


@dataclass
class MergeReport:
    path: Path
    originals: int
    written: dict[str, Variant] = field(default_factory=dict)  # new demo name -> variant
    failed: list[tuple[Variant, str]] = field(default_factory=list)
    frames: int = 0


def _resized(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Frames from an engine that works at its own resolution (Cosmos: 720p) back to the camera's size."""
    if frames.shape[1:3] == hw:
        return frames
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def merge_variants(
    src: str | os.PathLike[str], out: str | os.PathLike[str], variants: list[Variant], batch: int = 64
) -> MergeReport:
    """Write ``out`` (atomically): every demo of ``src`` unchanged, then one new demo per variant."""
    out = Path(out)
    with EpisodeStore(src) as es:
        env_kwargs = dict(es.env_args.get(ENV_KWARGS_KEY) or {})
        env_kwargs["augmented"] = True
        report = MergeReport(out, len(es.demo_names))
        image_names = {f.name for f in es.schema.cameras}
        with EpisodeStoreWriter(out, es.schema, env_name=es.env_args.get(ENV_NAME_KEY, "robodata"),
                                env_kwargs=env_kwargs) as w:
            for demo in es.demo_names:
                _copy_demo(es, w, demo, demo_index(demo), es.attrs(demo), {}, batch)
                report.frames += es.num_samples(demo)
            next_index = max((demo_index(d) for d in es.demo_names), default=-1) + 1
            for v in variants:
                try:
                    _check_variant(es, v, image_names)
                    attrs = {k: a for k, a in es.attrs(v.demo).items() if k != NUM_SAMPLES_ATTR}
                    attrs.update({"augmented_from": v.demo, "augment_engine": v.engine,
                                  "augment_variant": v.variant, "augment_seed": v.seed})
                    if v.params:
                        attrs["augment_params"] = v.params
                    _copy_demo(es, w, v.demo, next_index, attrs, v.videos, batch)
                except AugmentError as err:
                    w.discard_open_episode()
                    report.failed.append((v, str(err)))
                    continue
                report.written[demo_name(next_index)] = v
                report.frames += es.num_samples(v.demo)
                next_index += 1
    return report


def _check_variant(es: EpisodeStore, v: Variant, image_names: set[str]) -> None:
    if v.demo not in es.demo_names:
        raise AugmentError(f"{v.demo} v{v.variant}: no such demo in {es.path}")
    n = es.num_samples(v.demo)
    for camera, path in v.videos.items():
        if camera not in image_names:
            raise AugmentError(f"{v.demo} v{v.variant}: {camera!r} is not a camera of {es.path}")
        frames = count_frames(path)
        if frames != n:
            raise AugmentError(
                f"{v.demo} v{v.variant}: {Path(path).name} has {frames} frames, the demo's low-dim data {n}"
            )


def _copy_demo(es, w, demo, index, attrs, videos, batch) -> None:
    attrs = {k: a for k, a in attrs.items() if k not in (NUM_SAMPLES_ATTR, SUCCESS_ATTR)}
    success = es.attrs(demo).get(SUCCESS_ATTR)
    d = w.begin_episode(index=index, attrs=attrs)
    streams = {cam: _frames_of(path) for cam, path in videos.items()}
    hw = {cam: tuple(es.dataset(demo, cam).shape[1:3]) for cam in videos}
    for b in es.batches(demo, batch):  # everything of the demo: features, datagen, a nested sim state, ...
        obs = b.obs
        for cam, it in streams.items():
            frames = _take(it, b.e - b.s, videos[cam])
            obs[cam] = _resized(frames, hw[cam])
        d.extend(b.timestamps, obs, b.actions, states=b.states, datagen=b.datagen or None,
                 passthrough=b.passthrough)
    for path, value in es.statics(demo).items():
        d.put_static(path, value)
    for cam, it in streams.items():
        if next(it, None) is not None:
            raise AugmentError(f"{demo}: {Path(videos[cam]).name} has more frames than the demo")
    d.close(success=None if success is None else bool(success))


def _frames_of(path: str) -> Iterator[np.ndarray]:
    for _, frames in iter_clip(path):
        yield from frames


def _take(it: Iterator[np.ndarray], n: int, path: str) -> np.ndarray:
    out = [f for _, f in zip(range(n), it, strict=False)]
    if len(out) != n:
        raise AugmentError(f"{path}: the video ends before the demo does")
    return np.stack(out)
