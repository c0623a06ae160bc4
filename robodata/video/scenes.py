"""Scene cuts: where one shot ends and the next begins.

PySceneDetect (the usual tool) is not installable here, so this is its AdaptiveDetector rewritten on the
per-frame scores :class:`robodata.video.filters.ClipAnalyzer` computes while decoding: the content change of a
frame is the mean of (a) the mean absolute HSV pixel change from the previous frame and (b) the colour
histogram change (half the L1 distance of the normalised H, S and V histograms, times 255), both on the
downscaled frame. A frame starts a new shot when its change is at least ``cut_ratio`` times the mean change of
its ``cut_window`` neighbours each side and at least ``cut_min_content``; a cut closer than ``min_shot_frames``
to the previous one is dropped. Continuous motion and camera shake raise the neighbours too, so they do not
cut; a hard cut is one frame far above its neighbours. :func:`cut_accuracy` measures it against known cuts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robodata.video.config import VideoCorpusConfig


def detect_cuts(scores: Sequence[float] | np.ndarray, config: VideoCorpusConfig | None = None) -> list[int]:
    """Frame indices that start a new shot (never 0), from per-frame content changes (``scores[0]`` unused)."""
    cfg = config or VideoCorpusConfig()
    s = np.asarray(scores, np.float64)
    n = len(s)
    if n < 2:
        return []
    w = cfg.cut_window
    cuts: list[int] = []
    last = 0
    for i in range(1, n):
        if s[i] < cfg.cut_min_content:
            continue
        nb = np.concatenate([s[max(1, i - w):i], s[i + 1:i + 1 + w]])
        ref = float(nb.mean()) if len(nb) else 0.0
        if s[i] < cfg.cut_ratio * max(ref, 1e-3):
            continue
        if i - last < cfg.min_shot_frames:
            continue
        cuts.append(i)
        last = i
    return cuts


def shot_spans(frames: int, cuts: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, end)`` frame spans of the shots between ``cuts``."""
    bounds = [0, *[c for c in cuts if 0 < c < frames], frames]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def cut_accuracy(found: Sequence[int], truth: Sequence[int], tolerance: int = 1) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives): a found cut matches an unmatched true cut within
    ``tolerance`` frames."""
    left = sorted(truth)
    tp = 0
    for f in sorted(found):
        hit = next((t for t in left if abs(t - f) <= tolerance), None)
        if hit is not None:
            left.remove(hit)
            tp += 1
    return tp, len(found) - tp, len(left)
