"""HDF5 -> MP4 for one clip (one camera of one demo): the camera video, its control videos, and local variants.

Files of a clip under ``out_dir`` (see :func:`clip_paths`)::

    <demo>/<camera>.mp4            the camera, frame-exact, pts from the episode clock
    <demo>/<camera>.depth.mp4      control videos Cosmos Transfer reads (near = bright)
    <demo>/<camera>.seg.mp4        classes as palette colours
    <demo>/<camera>.edge.mp4       white edges on black
    <demo>/<camera>.mask.npz       robot/object pixels (bit-packed), for the checks
    <demo>/<camera>.v<k>.mp4       augmented variant k (local engine here; Cosmos outputs are collected to it)

The local engine reads the source frames from the HDF5 (lossless), not back from the MP4.
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.augment.config import AugmentedVideosConfig
from robodata.augment.controls import KEEP_CLASSES, ControlSource, depth_video, edge_video, seg_video
from robodata.augment.errors import AugmentError
from robodata.augment.video import write_clip


def clip_paths(out_dir: str | Path, demo: str, camera: str) -> dict[str, Path]:
    base = Path(out_dir) / demo
    return {
        "video": base / f"{camera}.mp4",
        "depth": base / f"{camera}.depth.mp4",
        "seg": base / f"{camera}.seg.mp4",
        "edge": base / f"{camera}.edge.mp4",
        "mask": base / f"{camera}.mask.npz",
    }


def variant_path(out_dir: str | Path, demo: str, camera: str, variant: int) -> Path:
    return Path(out_dir) / demo / f"{camera}.v{variant}.mp4"


@dataclass
class ClipReport:
    """What one clip task produced (JSON-able: it travels back from a Ray task)."""

    demo: str
    camera: str
    frames: int
    hw: tuple[int, int]
    control_source: str
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    variants: dict[int, str] = field(default_factory=dict)
    params: dict[int, dict[str, Any]] = field(default_factory=dict)
    bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    augment: dict[int, dict[str, Any]] = field(default_factory=dict)  # per variant: device, torch batch size

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Encoders:
    """Several clip MP4s fed batch by batch (each encoded in its own generator-driven writer thread)."""

    def __init__(self, fps: float, timestamps: np.ndarray, settings: Any):
        import queue
        import threading

        self._fps, self._ts, self._settings = fps, timestamps, settings
        self._queues: dict[str, queue.Queue] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.results: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self._queue, self._thread = queue.Queue, threading.Thread

    def add(self, name: str, path: Path) -> None:
        q: queue.Queue = self._queue(maxsize=4)
        self._queues[name] = q

        def gen():
            while (item := q.get()) is not None:
                yield item

        def run():
            try:
                self.results[name] = write_clip(path, gen(), self._ts, self._fps, self._settings)
            except BaseException as err:  # noqa: BLE001 - surfaced by close()
                self.errors[name] = err
                while q.get() is not None:  # drain so the producer never blocks
                    pass

        t = self._thread(target=run, name=f"clip-{path.name}", daemon=True)
        t.start()
        self._threads[name] = t

    def feed(self, name: str, frames: np.ndarray) -> None:
        self._queues[name].put(frames)

    def close(self) -> dict[str, Any]:
        for q in self._queues.values():
            q.put(None)
        for t in self._threads.values():
            t.join()
        if self.errors:
            name, err = next(iter(self.errors.items()))
            raise err if isinstance(err, AugmentError) else AugmentError(f"{name}: {err}")
        return self.results


def process_clip(
    store_path: str | Path,
    demo: str,
    camera: str,
    out_dir: str | Path,
    cfg: AugmentedVideosConfig | dict[str, Any],
    variants: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    """Export one clip (camera + control videos + mask) and, with the local engine, write its variants.

    ``variants`` lists ``(variant index, seed)``. Returns a :class:`ClipReport` as a dict. Raises
    :class:`AugmentError` naming the clip when the demo lacks the camera or a video cannot be written.
    """
    import time

    from robodata.augment.local import LocalAugmenter, draw_params, torch_threads
    from robodata.augment.video import video_settings
    from robodata.formats.isaaclab import EpisodeStore

    cfg = cfg if isinstance(cfg, AugmentedVideosConfig) else AugmentedVideosConfig.model_validate(cfg)
    clip = f"{Path(store_path).name}:{demo}/{camera}"
    paths = clip_paths(out_dir, demo, camera)
    settings = video_settings(cfg.codec, cfg.crf)
    t0 = time.perf_counter()
    with EpisodeStore(store_path) as es:
        if demo not in es.demo_names:
            raise AugmentError(f"{clip}: no such demo in the store")
        names = [f.name for f in es.schema.features]
        if camera not in names or not es.has(demo, camera):
            raise AugmentError(f"{clip}: demo has no camera {camera!r} (its features: {names})")
        images = es.dataset(demo, camera)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise AugmentError(f"{clip}: {es.spec(camera).h5path} is not uint8 (T, H, W, 3) images ({images.dtype} {images.shape})")
        n = es.num_samples(demo)
        if images.shape[0] != n:
            raise AugmentError(f"{clip}: {images.shape[0]} camera frames for {n} low-dim frames")
        hw = (int(images.shape[1]), int(images.shape[2]))
        ts = es.timestamps(demo)
        fps = es.schema.fps
        report = ClipReport(demo, camera, n, hw, "none")
        with ControlSource(es, demo, camera) as ctl:
            report.control_source, report.notes = ctl.source, list(ctl.notes)
            enc = _Encoders(fps, ts, settings)
            enc.add("video", paths["video"])
            if "edge" in cfg.controls:
                enc.add("edge", paths["edge"])
            if "depth" in cfg.controls and ctl.has_depth:
                enc.add("depth", paths["depth"])
            if "seg" in cfg.controls and ctl.has_seg:
                enc.add("seg", paths["seg"])
            augmenters = {}
            if cfg.engine == "local":
                for k, seed in variants:
                    p = draw_params(cfg.local, seed)
                    report.params[k] = p.to_json()
                    augmenters[k] = LocalAugmenter(cfg.local, p, hw, camera_salt=sum(map(ord, camera)))
                    enc.add(f"v{k}", variant_path(out_dir, demo, camera, k))
            masks: list[np.ndarray | None] = []
            edge_thr = None
            depth_range = None
            t_aug = 0.0
            with torch_threads(cfg.local.torch_threads if augmenters else None):
                try:
                    for s in range(0, n, cfg.local.batch_frames):
                        e = min(n, s + cfg.local.batch_frames)
                        frames = images[s:e]
                        enc.feed("video", frames)
                        depth, seg = ctl.batch(s, e, frames)
                        if "edge" in enc._queues:
                            edges, edge_thr = edge_video(frames, edge_thr)
                            enc.feed("edge", edges)
                        if "depth" in enc._queues and depth is not None:
                            if depth_range is None:
                                depth_range = _depth_range(depth)
                            enc.feed("depth", depth_video(depth, depth_range))
                        if "seg" in enc._queues and seg is not None:
                            enc.feed("seg", seg_video(seg))
                        masks.append(np.packbits(np.isin(seg, KEEP_CLASSES), axis=-1) if seg is not None else None)
                        ta = time.perf_counter()
                        for k, aug in augmenters.items():
                            enc.feed(f"v{k}", aug.apply(frames, seg, s))
                        t_aug += time.perf_counter() - ta
                finally:
                    files = enc.close()
    for name, f in files.items():
        if f.frames != n:
            raise AugmentError(f"{clip}: {f.path.name} has {f.frames} frames, the demo {n}")
        report.bytes += f.bytes
        if name[0] == "v" and name[1:].isdigit():
            report.variants[int(name[1:])] = str(f.path)
        else:
            report.files[name] = str(f.path)
    packed = [m for m in masks if m is not None]
    if masks and len(packed) == len(masks):
        np.savez_compressed(paths["mask"], mask=np.concatenate(packed), width=hw[1])
        report.files["mask"] = str(paths["mask"])
    report.seconds = {"total": round(time.perf_counter() - t0, 3), "augment": round(t_aug, 3)}
    report.augment = {k: aug.report() for k, aug in augmenters.items()}
    return report.to_json()


def _depth_range(depth: np.ndarray) -> tuple[float, float]:
    d = depth[np.isfinite(depth) & (depth > 0)]
    if d.size == 0:
        return 0.0, 1.0
    lo, hi = float(np.percentile(d, 1)), float(np.percentile(d, 99))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def load_mask(path: str | Path) -> np.ndarray:
    """The ``(T, H, W)`` bool robot/object mask written by :func:`process_clip`."""
    z = np.load(path)
    return np.unpackbits(z["mask"], axis=-1, count=int(z["width"])).astype(bool)
