"""Per-frame measurements taken while a clip decodes, and the quality verdict on each shot.

:class:`ClipAnalyzer` sees every decoded frame once, downscaled to ``analysis_width``, and keeps only scalars
per frame (content change, mean luma, global motion, motion over ``static_gap_seconds``) plus, at
``hash_fps``, a blur score and the frame's perceptual hashes (of a grey ``hash_width`` frame): memory is flat in the clip's length but for a
few floats per frame. :func:`judge_shot` turns the scalars of one shot into a :class:`Rejection` reason or
``None`` (kept). The measurements are written here in NumPy (no OpenCV dependency): each is a few lines.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import av
import numpy as np
from PIL import Image

from robodata.video.config import VideoCorpusConfig
from robodata.video.hashing import frame_hashes

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_HIST_BINS = 32
_THUMB = 2  # block size of the motion thumbnail (block means average sensor noise away)
_HIST_OFFSETS = np.arange(3, dtype=np.int64) * _HIST_BINS
_MIN_PEAK = 0.03  # phase-correlation peak below which a frame pair has no reliable global motion


def blur_score(grey: np.ndarray) -> float:
    """No-reference blur of a grey frame (Crete, Dolmiere, Ladret, Nicolas, SPIE 2007): how much of the
    frame's neighbour-to-neighbour variation survives a 9-tap box blur. 0: sharp, 1: no detail at all."""
    f = np.asarray(grey, np.float32)
    if f.shape[0] < 10 or f.shape[1] < 10:
        return 1.0
    worst = 0.0
    for axis in (0, 1):
        c = np.cumsum(np.pad(f, [(4, 5) if a == axis else (0, 0) for a in (0, 1)], mode="edge"), axis=axis,
                      dtype=np.float64)
        n = f.shape[axis]
        box = (np.take(c, np.arange(9, n + 9), axis=axis) - np.take(c, np.arange(0, n), axis=axis)) / 9.0
        d_f = np.abs(np.diff(f, axis=axis))
        d_b = np.abs(np.diff(box, axis=axis))
        s_f = float(d_f.sum())
        if s_f <= 0:
            return 1.0
        s_v = float(np.maximum(0.0, d_f - d_b).sum())
        worst = max(worst, (s_f - s_v) / s_f)
    return worst


def _window(h: int, w: int) -> np.ndarray:
    return np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)


def phase_shift(prev_fft: np.ndarray, cur_fft: np.ndarray) -> tuple[float, float, float]:
    """(dx, dy, peak) of the global translation between two frames from their windowed 2-D FFTs (phase
    correlation: the normalised cross-power spectrum's inverse peaks at the shift)."""
    r = prev_fft * np.conj(cur_fft)
    r /= np.abs(r) + 1e-9
    corr = np.fft.irfft2(r)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    dy = iy - h if iy > h // 2 else iy
    dx = ix - w if ix > w // 2 else ix
    return float(-dx), float(-dy), float(corr[iy, ix])


@dataclass
class ClipAnalyzer:
    """Feed it every decoded frame in order (:meth:`push`); read the per-frame arrays afterwards."""

    config: VideoCorpusConfig
    fps: float
    width: int
    height: int
    scores: list[float] = field(default_factory=list)
    luma: list[float] = field(default_factory=list)
    shift: list[tuple[float, float]] = field(default_factory=list)
    gap_change: list[float] = field(default_factory=list)  # NaN where no frame is static_gap_seconds back
    hash_frames: list[int] = field(default_factory=list)
    hashes: list[list[int]] = field(default_factory=list)  # per hashed frame: one pHash per hash_scales entry
    blur: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        cfg = self.config
        self.aw = min(cfg.analysis_width, self.width) // 2 * 2
        self.ah = max(2, round(self.aw * self.height / self.width) // 2 * 2)
        self.hw = min(cfg.hash_width, self.width) // 2 * 2
        self.hh = max(2, round(self.hw * self.height / self.width) // 2 * 2)
        self.bw = min(cfg.blur_width, self.width) // 2 * 2
        self.bh = max(2, round(self.bw * self.height / self.width) // 2 * 2)
        self.gap = max(1, round(cfg.static_gap_seconds * self.fps))
        self.hash_every = max(1, round(self.fps / cfg.hash_fps))
        self._win = _window(self.ah, self.aw)
        self._prev_hsv: np.ndarray | None = None
        self._prev_hist: np.ndarray | None = None
        self._prev_fft: np.ndarray | None = None
        self._thumbs: deque[np.ndarray] = deque(maxlen=self.gap + 1)

    @property
    def frames(self) -> int:
        return len(self.scores)

    def push(self, frame: av.VideoFrame) -> None:
        cfg = self.config
        i = self.frames
        rgb = frame.reformat(width=self.aw, height=self.ah, format="rgb24").to_ndarray()
        hsv8 = np.asarray(Image.fromarray(rgb).convert("HSV"))
        counts = np.bincount(((hsv8 >> 3).astype(np.int64) + _HIST_OFFSETS).ravel(), minlength=3 * _HIST_BINS)
        hist = counts.reshape(3, _HIST_BINS).astype(np.float32) / (self.aw * self.ah)
        hsv = hsv8.astype(np.int16)
        grey = rgb.astype(np.float32) @ _LUMA
        if self._prev_hsv is None or self._prev_hist is None:
            score = 0.0
        else:
            pixel = float(np.abs(hsv - self._prev_hsv).mean())
            histo = float(0.5 * np.abs(hist - self._prev_hist).sum(axis=1).mean()) * 255.0
            score = 0.5 * (pixel + histo)
        self._prev_hsv, self._prev_hist = hsv, hist
        self.scores.append(score)
        self.luma.append(float(grey.mean()))
        fft = np.fft.rfft2((grey - grey.mean()) * self._win)
        if self._prev_fft is None:
            self.shift.append((0.0, 0.0))
        else:
            dx, dy, peak = phase_shift(self._prev_fft, fft)
            self.shift.append((dx, dy) if peak >= _MIN_PEAK else (0.0, 0.0))
        self._prev_fft = fft
        th, tw = self.ah // _THUMB, self.aw // _THUMB
        thumb = grey[: th * _THUMB, : tw * _THUMB].reshape(th, _THUMB, tw, _THUMB).mean(axis=(1, 3))
        self._thumbs.append(thumb)
        self.gap_change.append(float(np.quantile(np.abs(thumb - self._thumbs[0]), 1 - cfg.static_area))
                               if len(self._thumbs) > self.gap else float("nan"))
        if i % self.hash_every == 0:
            self.hash_frames.append(i)
            self.hashes.append(frame_hashes(frame.reformat(width=self.hw, height=self.hh, format="gray").to_ndarray(),
                                            cfg.hash_scales))
            self.blur.append(blur_score(frame.reformat(width=self.bw, height=self.bh, format="gray").to_ndarray()))

    def hashed_in(self, start: int, end: int) -> list[int]:
        """Positions (into :attr:`hash_frames`) of the hashed frames of ``[start, end)``."""
        return [j for j, f in enumerate(self.hash_frames) if start <= f < end]


def shake(shifts: np.ndarray, window: int) -> float:
    """RMS jitter of the camera path: cumulative per-frame translation minus its moving average (a steady pan
    is a straight path and leaves nothing; shake is what the average smooths away)."""
    if len(shifts) < window:
        return 0.0
    path = np.cumsum(shifts, axis=0)
    k = np.ones(window) / window
    smooth = np.stack([np.convolve(path[:, d], k, mode="valid") for d in range(2)], axis=1)
    h = window // 2
    resid = path[h: h + len(smooth)] - smooth
    return float(np.sqrt((resid ** 2).sum(axis=1).mean()))


def judge_shot(a: ClipAnalyzer, start: int, end: int) -> tuple[str, str] | None:
    """The first quality filter frames ``[start, end)`` fail, as ``(reason, detail)``; ``None`` when kept."""
    cfg = a.config
    seconds = (end - start) / a.fps
    if seconds < cfg.min_shot_seconds:
        return "too_short", f"{seconds:.2f} s, below {cfg.min_shot_seconds:g} s"
    luma = np.asarray(a.luma[start:end])
    dark = float((luma < cfg.black_luma).mean())
    if dark >= cfg.black_fraction:
        return "black", f"{dark:.0%} of frames darker than luma {cfg.black_luma:g} (limit {cfg.black_fraction:.0%})"
    gap = min(a.gap, end - start - 1)
    if gap >= 1:
        if gap == a.gap:
            change = np.asarray(a.gap_change[start + gap:end])
        else:  # a shot shorter than the gap: its first against its last thumbnail is not kept; use the scores
            change = np.asarray(a.scores[start + 1:end])
        motion = float(np.nanmean(change)) if len(change) and not np.isnan(change).all() else 0.0
        if motion < cfg.static_threshold:
            return "static", f"luma change {motion:.2f} over {cfg.static_gap_seconds:g} s in the most moving " \
                             f"{cfg.static_area:.0%} of the picture, below {cfg.static_threshold:g}"
    hashed = a.hashed_in(start, end)
    if hashed:
        b = float(np.median([a.blur[j] for j in hashed]))
        if b > cfg.blur_threshold:
            return "blurred", f"blur {b:.2f}, above {cfg.blur_threshold:g}"
    jitter = shake(np.asarray(a.shift[start + 1:end], np.float64).reshape(-1, 2), cfg.shake_window) / a.aw
    if jitter > cfg.shake_threshold:
        return "shaky", f"camera jitter {jitter:.3f} of the frame width per frame, above {cfg.shake_threshold:g}"
    return None
