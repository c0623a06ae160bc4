"""Action spaces: delta <-> absolute actions, and action normalisation whose statistics live with the dataset.

Conventions: actions are ``(T, D)`` float arrays, one row per frame. A *delta* action is relative to a
reference the caller gives (usually the state at the same frame: ``delta[t] = action[t] - state[t]``), so
``to_absolute(to_delta(a, s), s) == a``. Poses are ``(T, 7)`` xyz (m) + quaternion xyzw; a pose delta keeps
that layout: translation difference (world axes) and the rotation ``R_ref^T R_action`` (``frame="local"``,
in the reference's axes) or ``R_action R_ref^T`` (``frame="world"``).

:class:`ActionNormalizer` follows lerobot's normalisation modes: ``mean_std`` ``(x - mean) / (std + eps)``,
``min_max`` and ``quantile`` map ``[min, max]`` or ``[q01, q99]`` to ``[-1, 1]``. It fits streaming
(episode by episode; mean and variance merged exactly in float64, min/max exact, quantiles from a bounded
uniform reservoir sample: exact while the data fit in it) and stores its statistics in the dataset as
``meta/robodata_action_norm.json``, keyed like lerobot's ``meta/stats.json`` (``{feature: {min, max, mean,
std, count, q01, q10, q50, q90, q99}}``, lists per dimension).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robodata.errors import RobodataError
from robodata.lerobot.layout import QUANTILE_KEYS, QUANTILES

ACTION_NORM_PATH = "meta/robodata_action_norm.json"  # in a LeRobot dataset folder [robodata extension]
ACTION_NORM_FORMAT = "robodata.action_norm/1"
MODES = ("mean_std", "min_max", "quantile")
DEFAULT_EPS = 1e-8
DEFAULT_RESERVOIR = 100_000  # rows kept for quantiles (exact up to this many frames)


class ActionSpaceError(RobodataError):
    """Actions or their statistics do not fit what was asked (shape, mode, a statistics file)."""


# ---- delta <-> absolute ---------------------------------------------------------------------------------


def _dims(width: int, dims: Sequence[int] | None) -> np.ndarray:
    idx = np.arange(width) if dims is None else np.asarray(list(dims), dtype=np.int64)
    if idx.size and (idx.min() < -width or idx.max() >= width):
        raise ActionSpaceError(f"action dimensions {list(idx)} out of range for {width}-dimensional actions")
    return idx % width if idx.size else idx


def _check(actions: np.ndarray, reference: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actions, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.ndim != 2:
        raise ActionSpaceError(f"actions must be (T, D), got shape {a.shape}")
    if r.shape != (a.shape[0], idx.size):
        raise ActionSpaceError(f"the reference must be (T, {idx.size}) = one value per converted action "
                               f"dimension per frame, got {r.shape} for actions {a.shape}")
    return a, r


def to_delta(actions: np.ndarray, reference: np.ndarray, dims: Sequence[int] | None = None) -> np.ndarray:
    """Absolute -> delta: ``out[:, dims] = actions[:, dims] - reference``; other dimensions (a gripper) as they are."""
    idx = _dims(np.shape(actions)[-1], dims)
    a, r = _check(actions, reference, idx)
    out = a.copy()
    out[:, idx] = a[:, idx] - r
    return out


def to_absolute(deltas: np.ndarray, reference: np.ndarray, dims: Sequence[int] | None = None) -> np.ndarray:
    """Delta -> absolute: ``out[:, dims] = deltas[:, dims] + reference`` (the inverse of :func:`to_delta`)."""
    idx = _dims(np.shape(deltas)[-1], dims)
    d, r = _check(deltas, reference, idx)
    out = d.copy()
    out[:, idx] = d[:, idx] + r
    return out


def chained_to_absolute(deltas: np.ndarray, start: np.ndarray, dims: Sequence[int] | None = None) -> np.ndarray:
    """Deltas relative to the previous *action* (``a[t] = a[t-1] + d[t]``, ``a[-1] = start``) -> absolute."""
    idx = _dims(np.shape(deltas)[-1], dims)
    d = np.asarray(deltas, dtype=np.float64)
    out = d.copy()
    out[:, idx] = np.asarray(start, dtype=np.float64).reshape(1, -1) + np.cumsum(d[:, idx], axis=0)
    return out


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz], axis=-1)


def _quat_conj(q: np.ndarray) -> np.ndarray:
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def _unit(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return q * np.where(q[..., 3:4] < 0, -1.0, 1.0)


def _poses(p: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 7:
        raise ActionSpaceError(f"{what} must be (T, 7) poses (xyz + quat xyzw), got {p.shape}")
    return p


def pose_to_delta(poses: np.ndarray, reference: np.ndarray, frame: str = "local") -> np.ndarray:
    """``(T, 7)`` absolute poses -> deltas from ``reference`` poses (see the module docstring for ``frame``)."""
    a, r = _poses(poses, "poses"), _poses(reference, "reference poses")
    qa, qr = _unit(a[:, 3:]), _unit(r[:, 3:])
    if frame == "local":
        dq = _quat_mul(_quat_conj(qr), qa)
    elif frame == "world":
        dq = _quat_mul(qa, _quat_conj(qr))
    else:
        raise ActionSpaceError(f"pose delta frame must be 'local' or 'world', got {frame!r}")
    return np.concatenate([a[:, :3] - r[:, :3], _unit(dq)], axis=1)


def delta_to_pose(deltas: np.ndarray, reference: np.ndarray, frame: str = "local") -> np.ndarray:
    """The inverse of :func:`pose_to_delta`."""
    d, r = _poses(deltas, "pose deltas"), _poses(reference, "reference poses")
    qd, qr = _unit(d[:, 3:]), _unit(r[:, 3:])
    if frame == "local":
        q = _quat_mul(qr, qd)
    elif frame == "world":
        q = _quat_mul(qd, qr)
    else:
        raise ActionSpaceError(f"pose delta frame must be 'local' or 'world', got {frame!r}")
    return np.concatenate([d[:, :3] + r[:, :3], _unit(q)], axis=1)


# ---- normalisation ----------------------------------------------------------------------------------------


class ActionNormalizer:
    """Per-dimension action normalisation with statistics fitted in one streaming pass.

    Args:
        mode: ``mean_std``, ``min_max`` or ``quantile`` (``[q01, q99]`` -> ``[-1, 1]``).
        feature: the feature the statistics belong to (``action``), the key in the stats file.
        names: per-dimension names (recorded with the statistics).
        dims: the dimensions to normalise (default all); the others pass through unchanged.
        clip: clip normalised values to ``[-clip, clip]`` (None: no clipping; ``invert`` cannot undo clipping).
        reservoir: rows kept for quantiles; ``seed`` makes the sample reproducible.
    """

    def __init__(self, mode: str = "mean_std", *, feature: str = "action", names: Sequence[str] | None = None,
                 dims: Sequence[int] | None = None, eps: float = DEFAULT_EPS, clip: float | None = None,
                 reservoir: int = DEFAULT_RESERVOIR, seed: int = 0):
        if mode not in MODES:
            raise ActionSpaceError(f"unknown action normalisation mode {mode!r} (choose from {list(MODES)})")
        self.mode, self.feature, self.eps, self.clip = mode, feature, float(eps), clip
        self.names = list(names) if names is not None else None
        self.dims = None if dims is None else [int(d) for d in dims]
        self._cap = int(reservoir)
        self._rng = np.random.default_rng(seed)
        self._n = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._min: np.ndarray | None = None
        self._max: np.ndarray | None = None
        self._sample: np.ndarray | None = None
        self._stats: dict[str, np.ndarray] | None = None

    # -- fitting -------------------------------------------------------------------------------------------

    def update(self, actions: np.ndarray) -> None:
        """Add one episode's (or batch's) ``(T, D)`` actions to the statistics."""
        a = np.asarray(actions, dtype=np.float64)
        if a.ndim == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2:
            raise ActionSpaceError(f"actions must be (T, D), got shape {a.shape}")
        if not len(a):
            return
        if self._mean is not None and a.shape[1] != self._mean.shape[0]:
            raise ActionSpaceError(f"actions have {a.shape[1]} dimensions, earlier ones {self._mean.shape[0]}")
        if not np.isfinite(a).all():
            raise ActionSpaceError("actions hold NaN or infinite values: cannot fit normalisation statistics")
        n_b = len(a)
        mean_b = a.mean(axis=0)
        m2_b = ((a - mean_b) ** 2).sum(axis=0)
        if self._mean is None or self._m2 is None or self._min is None or self._max is None:
            self._mean, self._m2 = mean_b, m2_b
            self._min, self._max = a.min(axis=0), a.max(axis=0)
            self._sample = np.empty((0, a.shape[1]))
        else:  # Chan et al.'s pairwise merge
            n = self._n + n_b
            delta = mean_b - self._mean
            self._mean = self._mean + delta * (n_b / n)
            self._m2 = self._m2 + m2_b + delta**2 * (self._n * n_b / n)
            self._min, self._max = np.minimum(self._min, a.min(axis=0)), np.maximum(self._max, a.max(axis=0))
        self._reservoir(a)
        self._n += n_b
        self._stats = None

    def _reservoir(self, a: np.ndarray) -> None:
        assert self._sample is not None
        room = max(self._cap - len(self._sample), 0)
        if room:
            self._sample = np.concatenate([self._sample, a[:room]])
        rest = a[room:]
        if len(rest):  # Algorithm R: row number g (0-based, overall) replaces a random slot with p = cap / (g + 1)
            g = self._n + room + np.arange(len(rest))
            slots = (self._rng.random(len(rest)) * (g + 1)).astype(np.int64)
            keep = slots < self._cap
            self._sample[slots[keep]] = rest[keep]

    def fit(self, episodes: Iterable[np.ndarray | Mapping[str, Any]]) -> ActionNormalizer:
        """Fit over episodes (arrays, or rows with a ``feature`` column), one at a time."""
        for ep in episodes:
            self.update(ep[self.feature] if isinstance(ep, Mapping) else ep)
        if self._n == 0:
            raise ActionSpaceError("no actions to fit normalisation statistics on")
        return self

    @property
    def fitted(self) -> bool:
        return self._stats is not None or self._n > 0

    @property
    def quantiles_exact(self) -> bool:
        return self._n <= self._cap

    @property
    def stats(self) -> dict[str, np.ndarray]:
        """lerobot-style statistics: ``min max mean std count q01 q10 q50 q90 q99`` (per dimension)."""
        if self._stats is None:
            if self._n == 0 or self._mean is None or self._m2 is None or self._sample is None:
                raise ActionSpaceError("the action normaliser has not been fitted (call fit(episodes) or load())")
            assert self._min is not None and self._max is not None
            qs = np.quantile(self._sample, QUANTILES, axis=0)
            self._stats = {"min": self._min.copy(), "max": self._max.copy(), "mean": self._mean.copy(),
                           "std": np.sqrt(self._m2 / self._n), "count": np.array([self._n])}
            self._stats |= {k: q for k, q in zip(QUANTILE_KEYS, qs, strict=True)}
        return self._stats

    # -- applying ------------------------------------------------------------------------------------------

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) with ``normalised = (x - offset) / scale``."""
        s = self.stats
        if self.mode == "mean_std":
            return s["mean"], s["std"] + self.eps
        lo, hi = (s["min"], s["max"]) if self.mode == "min_max" else (s["q01"], s["q99"])
        half = (hi - lo + self.eps) / 2.0
        return lo + half, half

    def _idx(self, width: int) -> np.ndarray:
        if width != len(self.stats["mean"]):
            raise ActionSpaceError(f"actions have {width} dimensions, the statistics {len(self.stats['mean'])}")
        return _dims(width, self.dims)

    def apply(self, actions: np.ndarray) -> np.ndarray:
        """Normalise ``(T, D)`` actions (float32 in, float32 out; float64 otherwise)."""
        a = np.asarray(actions)
        out = a.astype(np.float64)
        idx = self._idx(out.shape[-1])
        off, scale = self._bounds()
        out[..., idx] = (out[..., idx] - off[idx]) / scale[idx]
        if self.clip is not None:
            out[..., idx] = np.clip(out[..., idx], -self.clip, self.clip)
        return out.astype(a.dtype) if a.dtype == np.float32 else out

    def invert(self, normalised: np.ndarray) -> np.ndarray:
        """Undo :meth:`apply` (a policy's normalised output -> actions the robot takes)."""
        a = np.asarray(normalised)
        out = a.astype(np.float64)
        idx = self._idx(out.shape[-1])
        off, scale = self._bounds()
        out[..., idx] = out[..., idx] * scale[idx] + off[idx]
        return out.astype(a.dtype) if a.dtype == np.float32 else out

    # -- storage -------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        stats = {k: [int(v) for v in arr] if k == "count" else [float(v) for v in arr] for k, arr in self.stats.items()}
        return {"format": ACTION_NORM_FORMAT, "feature": self.feature, "mode": self.mode, "eps": self.eps,
                "clip": self.clip, "dims": self.dims, "names": self.names,
                "quantiles_exact": self.quantiles_exact, "sample_rows": int(min(self._n, self._cap)),
                "stats": {self.feature: stats}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], where: str = "action normalisation statistics") -> ActionNormalizer:
        if d.get("format") != ACTION_NORM_FORMAT:
            raise ActionSpaceError(f"{where}: not robodata action normalisation statistics "
                                   f"(format {d.get('format')!r}, expected {ACTION_NORM_FORMAT!r})")
        feature = str(d.get("feature", "action"))
        try:
            raw = d["stats"][feature]
            norm = cls(str(d["mode"]), feature=feature, names=d.get("names"), dims=d.get("dims"),
                       eps=float(d.get("eps", DEFAULT_EPS)), clip=d.get("clip"))
            stats = {k: np.asarray(v, dtype=np.int64 if k == "count" else np.float64) for k, v in raw.items()}
            missing = [k for k in ("min", "max", "mean", "std", "count", *QUANTILE_KEYS) if k not in stats]
        except (KeyError, TypeError, ValueError) as err:
            raise ActionSpaceError(f"{where}: malformed statistics ({err})") from err
        if missing:
            raise ActionSpaceError(f"{where}: statistics of {feature!r} lack {missing}")
        norm._stats, norm._n = stats, int(stats["count"][0])
        norm._cap = int(d.get("sample_rows", norm._n))  # quantiles_exact as when they were fitted
        return norm

    def save(self, dataset_root: str | os.PathLike[str]) -> Path:
        """Write the statistics into a dataset folder (``meta/robodata_action_norm.json``); returns the path."""
        from robodata.atomic import atomic_write_json

        dest = Path(dataset_root) / ACTION_NORM_PATH
        dest.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(dest, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ActionNormalizer:
        """Read statistics from a dataset folder (its ``meta/robodata_action_norm.json``) or a JSON file."""
        p = Path(path)
        f = p / ACTION_NORM_PATH if p.is_dir() else p
        if not f.is_file():
            raise ActionSpaceError(f"{f}: no action normalisation statistics here")
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ActionSpaceError(f"{f}: cannot read action normalisation statistics ({err})") from err
        return cls.from_json(d, str(f))
