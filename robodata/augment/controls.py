"""Control signals for a clip: depth and segmentation (stored, re-rendered in the simulator, or estimated) and edges.

Where the depth/segmentation come from, best first:

1. ``obs/<camera>_depth`` (float metres) and ``obs/<camera>_seg`` (uint8 classes) datasets in the demo;
2. the simulator: when the store was recorded in our Fetch sim (``env_args`` names it) and ``states`` holds the
   sim state (qpos + qvel), every frame is re-rendered by ``set_state`` (checked against the stored first frame);
3. an estimate: a static-background median gives a foreground mask (static cameras only; a moving camera gets
   no mask) and there is no depth.

Edges are always computed (Sobel on a blurred luminance, one threshold per clip so they do not flicker).
Classes are those of :data:`robodata.sim.fetch.SEGMENT_CLASSES` (background, floor, table, robot, object).
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from robodata.augment.errors import AugmentError
from robodata.formats.isaaclab_layout import ENV_KWARGS_KEY, ENV_NAME_KEY, STATES

CLASSES = {"background": 0, "floor": 1, "table": 2, "robot": 3, "object": 4}
KEEP_CLASSES = (CLASSES["robot"], CLASSES["object"])  # what augmentation must leave in place
PALETTE = np.array(
    [[0, 0, 0], [70, 70, 160], [200, 160, 60], [220, 60, 60], [60, 220, 90], [255, 255, 255]], np.uint8
)  # one colour per class, for the segmentation control video
REPLAY_MAX_DIFF = 12.0  # mean |rendered - stored| (0-255) for the replay to count as the same scene
ESTIMATE_DIFF = 30  # grey levels from the median background that make a pixel foreground
ESTIMATE_MAX_FOREGROUND = 0.5  # more foreground than this: the camera moves, no mask


class ControlSource:
    """Depth and class maps of one camera of one demo, batch by batch (memory stays flat in the clip length).

    ``source`` says where they come from: ``hdf5``, ``sim-replay``, ``estimated`` or ``none``; ``notes`` why.
    """

    def __init__(self, store: Any, demo: str, camera: str):
        self.camera = camera
        group = store.group(demo)
        self._g = group
        self._sim = None
        self._median: np.ndarray | None = None
        self.notes: list[str] = []
        images = store.dataset(demo, camera)
        obs = images.parent  # a camera's depth and classes sit beside it: <camera>_depth, <camera>_seg
        self._leaf = images.name.rsplit("/", 1)[-1]
        self._obs = obs
        self.has_depth = False
        if f"{self._leaf}_seg" in obs:
            self.source = "hdf5"
            self.has_depth = f"{self._leaf}_depth" in obs
            return
        env_id, kw = _env(store.env_args)
        states = group.get(STATES)
        if env_id.startswith("FetchPickAndPlace") and isinstance(states, h5py.Dataset) and states.ndim == 2:
            try:
                self._sim = _open_sim(kw, camera, images, states)
                self.source, self.has_depth = "sim-replay", True
                return
            except AugmentError as err:
                self.notes.append(str(err))
        else:
            self.notes.append(f"store env {env_id or 'unknown'!r} is not the Fetch sim: no depth")
        self._estimate(images)

    def _estimate(self, images: Any) -> None:
        n = images.shape[0]
        step = max(1, n // 48)
        sample = images[::step]
        median = np.median(sample, axis=0).astype(np.int16)
        fg = np.abs(sample.astype(np.int16) - median).max(axis=-1) > ESTIMATE_DIFF
        frac = float(fg.mean())
        if frac > ESTIMATE_MAX_FOREGROUND:
            self.source = "none"
            self.notes.append(f"camera {self.camera!r} moves ({frac:.0%} foreground): no mask, no re-texturing")
        else:
            self.source, self._median = "estimated", median
            self.notes.append(f"segmentation of {self.camera!r} estimated from a static-background median")

    @property
    def has_seg(self) -> bool:
        return self.source != "none"

    def batch(self, s: int, e: int, frames: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(depth (n, H, W) float32 | None, classes (n, H, W) uint8 | None)`` for frames ``s:e``."""
        obs = self._obs
        if self.source == "hdf5":
            depth = obs[f"{self._leaf}_depth"][s:e].astype(np.float32) if self.has_depth else None
            return depth, obs[f"{self._leaf}_seg"][s:e].astype(np.uint8)
        if self.source == "sim-replay":
            sim, states = self._sim, self._g[STATES][s:e]
            assert sim is not None  # set up with the source "sim-replay"
            depth = np.empty(frames.shape[:3], np.float32)
            seg = np.empty(frames.shape[:3], np.uint8)
            for i, st in enumerate(states):
                sim.set_state(st)
                depth[i] = sim.render_depth(self.camera)
                seg[i] = sim.render_semantic(self.camera)
            return depth, seg
        if self.source == "estimated":
            assert self._median is not None  # computed with the source "estimated"
            fg = np.abs(frames.astype(np.int16) - self._median).max(axis=-1) > ESTIMATE_DIFF
            return None, np.where(fg, CLASSES["robot"], CLASSES["background"]).astype(np.uint8)
        return None, None

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None

    def __enter__(self) -> ControlSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _env(env_args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kw = env_args.get(ENV_KWARGS_KEY) or {}
    return str(kw.get("env_id") or env_args.get(ENV_NAME_KEY) or ""), kw


def _open_sim(env_kwargs: dict[str, Any], camera: str, images: Any, states: Any) -> Any:
    """A Fetch sim set up like the recording's, checked to reproduce the stored first frame."""
    from robodata.sim.fetch import FetchPickPlace, SimulatorError

    hw = tuple(images.shape[1:3])
    try:
        sim = FetchPickPlace(image_hw=hw, cameras=env_kwargs.get("cameras") or None)
    except SimulatorError as err:
        raise AugmentError(f"cannot start the simulator to re-render {camera!r}: {err}") from err
    try:
        if states.shape[1] != sim.state_size:
            raise AugmentError(
                f"states have {states.shape[1]} values, the Fetch sim state has {sim.state_size}: cannot replay"
            )
        sim.set_state(states[0])
        diff = float(np.abs(sim.render(camera).astype(np.int16) - images[0]).mean())
        if diff > REPLAY_MAX_DIFF:
            raise AugmentError(f"replaying the sim does not reproduce camera {camera!r} (mean diff {diff:.1f})")
        return sim
    except Exception as err:
        sim.close()
        if isinstance(err, AugmentError):
            raise
        raise AugmentError(f"re-rendering camera {camera!r} in the simulator failed ({err})") from err


# -- control videos ---------------------------------------------------------------------------------------


def depth_video(depth: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    """Depth -> grey RGB (near bright, far dark) over one ``(near, far)`` range per clip (no flicker)."""
    lo, hi = depth_range
    d = np.where(np.isfinite(depth) & (depth > 0), depth, hi)
    g8 = ((1.0 - np.clip((d - lo) / (hi - lo), 0, 1)) * 255).astype(np.uint8)
    return np.repeat(g8[..., None], 3, axis=-1)


def seg_video(seg: np.ndarray) -> np.ndarray:
    """Class map -> palette colours."""
    return PALETTE[np.minimum(seg, len(PALETTE) - 1)]


def edge_video(frames: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, float]:
    """White edges on black (Sobel magnitude of blurred luminance above one per-clip threshold)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2) / 255.0
    lum = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    k = torch.tensor([1.0, 2.0, 1.0]) / 4
    lum = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), (k[:, None] * k[None, :])[None, None])
    sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])[None, None]
    p = F.pad(lum, (1, 1, 1, 1), mode="replicate")
    mag = torch.sqrt(F.conv2d(p, sx) ** 2 + F.conv2d(p, sx.transpose(2, 3)) ** 2)[:, 0]
    if threshold is None:
        threshold = max(float(torch.quantile(mag[:: max(1, len(mag) // 8)].flatten()[::7], 0.9)), 0.05)
    e = ((mag > threshold).to(torch.uint8) * 255).numpy()
    return np.repeat(e[..., None], 3, axis=-1), threshold
