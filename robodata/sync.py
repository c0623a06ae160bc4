"""Time synchronisation: align sampled streams to a reference clock (nearest, linear, hold) within a tolerance."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Alignment:
    """A stream aligned to reference times: values per reference frame, the time offset used, and validity."""

    values: np.ndarray
    offsets: np.ndarray  # seconds between the reference time and the sample(s) used (>= 0)
    ok: np.ndarray  # bool per reference frame: a sample within tolerance existed

    @property
    def misaligned(self) -> int:
        return int((~self.ok).sum())

    @property
    def worst_offset(self) -> float:
        return float(self.offsets.max()) if len(self.offsets) else 0.0


def _nearest(ref: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.searchsorted(t, ref)
    lo = np.clip(idx - 1, 0, len(t) - 1)
    hi = np.clip(idx, 0, len(t) - 1)
    d_lo = np.abs(ref - t[lo])
    d_hi = np.abs(t[hi] - ref)
    pick = np.where(d_hi < d_lo, hi, lo)
    return pick, np.minimum(d_lo, d_hi)


def _slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions (x, y, z, w), row-wise."""
    q0 = q0 / np.linalg.norm(q0, axis=1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
    dot = np.sum(q0 * q1, axis=1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)
    dot = np.abs(dot)
    out = np.empty_like(q0)
    close = dot > 0.9995
    wc = w[close, None]
    out[close] = q0[close] + wc * (q1[close] - q0[close])
    far = ~close
    if far.any():
        theta = np.arccos(np.clip(dot[far], -1, 1))
        s = np.sin(theta)
        a = np.sin((1 - w[far]) * theta) / s
        b = np.sin(w[far] * theta) / s
        out[far] = a[:, None] * q0[far] + b[:, None] * q1[far]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def align(
    ref: np.ndarray,
    t: np.ndarray,
    values: np.ndarray,
    method: str = "nearest",
    tolerance: float = 0.02,
    *,
    is_pose: bool = False,
) -> Alignment:
    """Align ``values`` sampled at ``t`` (sorted seconds) to reference times ``ref``.

    ``nearest``: the closest sample. ``hold``: the latest sample at or before the reference time (zero-order
    hold; the offset is its age). ``linear``: interpolation between the samples around the reference time
    (quaternions of 7-vector poses are slerped when ``is_pose``); its offset is the distance to the closer of
    the two, and outside the sampled range it falls back to nearest. Non-float values always use nearest.
    A frame is ``ok`` when its offset is within ``tolerance``.
    """
    ref = np.asarray(ref, np.float64)
    t = np.asarray(t, np.float64)
    values = np.asarray(values)
    n = len(ref)
    if len(t) == 0:
        return Alignment(np.zeros((n, *values.shape[1:]), values.dtype), np.full(n, math.inf), np.zeros(n, bool))
    if method == "linear" and not np.issubdtype(values.dtype, np.floating):
        method = "nearest"
    if method == "hold":
        idx = np.searchsorted(t, ref, side="right") - 1
        valid = idx >= 0
        idx = np.clip(idx, 0, len(t) - 1)
        off = np.where(valid, ref - t[idx], math.inf)
        return Alignment(values[idx], off, valid & (off <= tolerance))
    pick, off = _nearest(ref, t)
    if method == "nearest" or len(t) < 2:
        return Alignment(values[pick], off, off <= tolerance)
    if method != "linear":
        raise ValueError(f"unknown sync method {method!r}")
    out = values[pick].astype(np.float64)
    b = np.searchsorted(t, ref, side="left")
    inside = (b > 0) & (b < len(t))
    exact = (b < len(t)) & (t[np.clip(b, 0, len(t) - 1)] == ref)
    interp = inside & ~exact
    if interp.any():
        bi = b[interp]
        ai = bi - 1
        ta, tb = t[ai], t[bi]
        w = (ref[interp] - ta) / np.maximum(tb - ta, 1e-12)
        va = values[ai].astype(np.float64).reshape(len(ai), -1)
        vb = values[bi].astype(np.float64).reshape(len(bi), -1)
        mixed = va + w[:, None] * (vb - va)
        if is_pose and va.shape[1] == 7:
            mixed[:, 3:] = _slerp(va[:, 3:], vb[:, 3:], w)
        out[interp] = mixed.reshape(len(ai), *values.shape[1:])
    return Alignment(out.astype(values.dtype), off, off <= tolerance)


@dataclass
class StreamStats:
    """Streaming rate and jitter of one topic (Welford over inter-arrival times; no samples kept)."""

    count: int = 0
    first: float = math.nan
    last: float = math.nan
    _mean: float = 0.0
    _m2: float = 0.0
    max_gap: float = 0.0
    backwards: int = 0
    duplicates: int = 0
    gaps: list[float] = field(default_factory=list)  # a bounded sample of inter-arrival times (for histograms)

    def add(self, ts: float) -> None:
        if self.count:
            dt = ts - self.last
            if dt < 0:
                self.backwards += 1
            elif dt == 0:
                self.duplicates += 1
            n = self.count  # number of intervals after this one
            delta = dt - self._mean
            self._mean += delta / n
            self._m2 += delta * (dt - self._mean)
            self.max_gap = max(self.max_gap, dt)
            if len(self.gaps) < 20_000:
                self.gaps.append(dt)
        else:
            self.first = ts
        self.last = ts
        self.count += 1

    @property
    def mean_dt(self) -> float:
        return self._mean if self.count > 1 else math.nan

    @property
    def rate_hz(self) -> float:
        return (self.count - 1) / (self.last - self.first) if self.count > 1 and self.last > self.first else 0.0

    @property
    def median_rate_hz(self) -> float:
        """The rate between consecutive messages, robust to pauses (e.g. between episodes)."""
        pos = [g for g in self.gaps if g > 0]
        return 1.0 / float(np.median(pos)) if pos else 0.0

    @property
    def jitter_s(self) -> float:
        return math.sqrt(self._m2 / (self.count - 2)) if self.count > 2 else 0.0

    def summary(self) -> dict[str, float]:
        return {
            "count": self.count,
            "rate_hz": round(self.median_rate_hz, 3),
            "mean_rate_hz": round(self.rate_hz, 3),
            "jitter_ms": round(self.jitter_s * 1e3, 3),
            "max_gap_ms": round(self.max_gap * 1e3, 3),
            "duration_s": round(self.last - self.first, 3) if self.count > 1 else 0.0,
        }


def pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """(N, 7) xyz + quaternion xyzw -> (N, 4, 4) homogeneous transforms."""
    pose = np.asarray(pose, np.float64).reshape(-1, 7)
    x, y, z, w = (pose[:, 3 + i] for i in range(4))
    norm = np.sqrt(x * x + y * y + z * z + w * w)
    norm[norm == 0] = 1
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    m = np.zeros((len(pose), 4, 4))
    m[:, 0, 0] = 1 - 2 * (y * y + z * z)
    m[:, 0, 1] = 2 * (x * y - z * w)
    m[:, 0, 2] = 2 * (x * z + y * w)
    m[:, 1, 0] = 2 * (x * y + z * w)
    m[:, 1, 1] = 1 - 2 * (x * x + z * z)
    m[:, 1, 2] = 2 * (y * z - x * w)
    m[:, 2, 0] = 2 * (x * z - y * w)
    m[:, 2, 1] = 2 * (y * z + x * w)
    m[:, 2, 2] = 1 - 2 * (x * x + y * y)
    m[:, :3, 3] = pose[:, :3]
    m[:, 3, 3] = 1
    return m
