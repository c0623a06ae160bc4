"""Per-episode and dataset statistics as lerobot 0.6 writes them: min/max/mean/std/count and q01..q99.

Vectors: per component over the episode's frames, quantiles exact (``np.quantile``). Images: per channel over
sampled, downsampled frames (lerobot's sampling), scaled to [0, 1], shape ``(3, 1, 1)``, ``count`` = frames
sampled; computed from exact 256-bin histograms. Dataset stats aggregate per-episode stats like lerobot's
``aggregate_stats``: count-weighted mean, pooled variance, min of mins, max of maxes, and count-weighted
quantiles (an approximation, the same one lerobot makes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from robodata.lerobot.layout import QUANTILE_KEYS, QUANTILES

Stats = dict[str, np.ndarray]


def sample_indices(n: int, min_samples: int = 100, max_samples: int = 10_000, power: float = 0.75) -> np.ndarray:
    """Frames sampled for image stats (lerobot's heuristic: 100 up to ~500 frames, growing as n**0.75)."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    k = max(min(min_samples, n), min(int(n**power), max_samples))
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def downsample(frame: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """lerobot's stats downsampling of an ``(H, W, C)`` frame (integer stride so the larger side is ~150)."""
    h, w = frame.shape[:2]
    if max(h, w) < threshold:
        return frame
    step = int(w / target) if w > h else int(h / target)
    return frame[::step, ::step]


def vector_stats(values: np.ndarray) -> Stats:
    """Stats of ``(n,)`` or ``(n, d)`` values over the first axis (``(n,)`` gives shape-``(1,)`` stats)."""
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    n = arr.shape[0]
    f = arr.astype(np.float64)
    out: Stats = {
        "min": arr.min(axis=0),
        "max": arr.max(axis=0),
        "mean": f.mean(axis=0),
        "std": f.std(axis=0),
        "count": np.array([n], dtype=np.int64),
    }
    if n >= 2:
        qs = np.quantile(f, QUANTILES, axis=0)
        for key, q in zip(QUANTILE_KEYS, qs, strict=True):
            out[key] = q
    else:
        for key in QUANTILE_KEYS:
            out[key] = out["mean"].copy()
    return out


class ImageStats:
    """Accumulates per-channel histograms of sampled uint8 ``(H, W, C)`` frames; :meth:`stats` gives lerobot's layout."""

    def __init__(self) -> None:
        self.hist: np.ndarray | None = None
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        small = downsample(np.asarray(frame))
        c = small.shape[-1]
        if self.hist is None:
            self.hist = np.zeros((c, 256), dtype=np.int64)
        flat = small.reshape(-1, c)
        for ch in range(c):
            self.hist[ch] += np.bincount(flat[:, ch], minlength=256)
        self.frames += 1

    def stats(self) -> Stats:
        if self.hist is None:
            raise ValueError("no frames were added")
        levels = np.arange(256, dtype=np.float64) / 255.0
        total = self.hist.sum(axis=1, keepdims=True).astype(np.float64)
        p = self.hist / total
        mean = (p * levels).sum(axis=1)
        std = np.sqrt(np.maximum(0.0, (p * levels**2).sum(axis=1) - mean**2))
        nz = self.hist > 0
        mins = np.array([levels[np.argmax(row)] for row in nz])
        maxs = np.array([levels[255 - np.argmax(row[::-1])] for row in nz])
        cum = np.cumsum(self.hist, axis=1) / total
        out: Stats = {"min": mins, "max": maxs, "mean": mean, "std": std}
        for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
            out[key] = np.array([levels[min(255, int(np.searchsorted(row, q)))] for row in cum])
        shaped: dict[str, np.ndarray] = {k: v.reshape(-1, 1, 1) for k, v in out.items()}
        shaped["count"] = np.array([self.frames], dtype=np.int64)
        return shaped


def aggregate(stats_list: Iterable[Mapping[str, Mapping[str, np.ndarray]]]) -> dict[str, Stats]:
    """Dataset stats from per-episode (or per-dataset) stats, feature by feature (lerobot's rule)."""
    per_key: dict[str, list[Mapping[str, np.ndarray]]] = {}
    for stats in stats_list:
        for key, s in stats.items():
            per_key.setdefault(key, []).append(s)
    return {key: _aggregate_feature(items) for key, items in per_key.items()}


def _aggregate_feature(items: list[Mapping[str, np.ndarray]]) -> Stats:
    means = np.stack([np.asarray(s["mean"], np.float64) for s in items])
    variances = np.stack([np.asarray(s["std"], np.float64) ** 2 for s in items])
    counts = np.stack([np.asarray(s["count"], np.int64).reshape(1) for s in items])
    total = counts.sum(axis=0)
    w = counts.astype(np.float64)
    while w.ndim < means.ndim:
        w = w[..., None]
    mean = (means * w).sum(axis=0) / total.reshape((1,) * (means.ndim - 1) or (1,))
    var = ((variances + (means - mean) ** 2) * w).sum(axis=0) / total.reshape((1,) * (means.ndim - 1) or (1,))
    out: Stats = {
        "min": np.min(np.stack([np.asarray(s["min"]) for s in items]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in items]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "count": total,
    }
    for key in QUANTILE_KEYS:
        if all(key in s for s in items):
            q = np.stack([np.asarray(s[key], np.float64) for s in items])
            out[key] = (q * w).sum(axis=0) / total.reshape((1,) * (means.ndim - 1) or (1,))
    return out


def to_json(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {kk: np.asarray(vv).tolist() for kk, vv in s.items()} for k, s in stats.items()}


def from_json(d: Mapping[str, Mapping[str, Any]]) -> dict[str, Stats]:
    return {k: {kk: np.atleast_1d(np.asarray(vv)) for kk, vv in s.items()} for k, s in d.items()}


def flatten(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per-episode stats as v3.0 ``meta/episodes`` columns (``stats/<feature>/<stat>``)."""
    return {f"stats/{k}/{kk}": np.asarray(vv).tolist() for k, s in stats.items() for kk, vv in s.items()}


def unflatten(row: Mapping[str, Any]) -> dict[str, Stats]:
    out: dict[str, Stats] = {}
    for col, v in row.items():
        if not col.startswith("stats/") or v is None:
            continue
        _, rest = col.split("/", 1)
        key, stat = rest.rsplit("/", 1)
        out.setdefault(key, {})[stat] = np.atleast_1d(np.asarray(_to_list(v)))
    return out


def _to_list(v: Any) -> Any:
    if isinstance(v, np.ndarray) and v.dtype == object:
        return [_to_list(x) for x in v]
    return v
