"""Clip MP4s with PyAV: frames at their episode-clock timestamps (90 kHz time base), read back frame-exactly.

A clip is one camera of one demo. Frame ``i`` is written with pts ``round(t_i * 90000)``, where ``t_i`` is the
episode's own timestamp, so frame count, order and timing survive the round trip; the stream's nominal rate is
the store's fps (what Cosmos Transfer and players read). Codecs: libx264 (default), libsvtav1, h264_nvenc on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from robodata.atomic import atomic_path
from robodata.augment.errors import AugmentError
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.video import VideoSettings
from robodata.lerobot.video import decode as _decode
from robodata.lerobot.video import probe as _probe
from robodata.logs import quiet_encoders

TIME_BASE = Fraction(1, 90_000)


def video_settings(codec: str = "libx264", crf: int = 18, gop: int = 30) -> VideoSettings:
    """Settings for clip MP4s (resolved: ``auto`` picks NVENC when a GPU encoder opens)."""
    try:
        return VideoSettings(codec=codec, crf=crf, gop=gop).resolved()
    except LeRobotError as err:
        raise AugmentError(str(err)) from err


@dataclass
class ClipFile:
    path: Path
    frames: int
    bytes: int


def write_clip(
    path: str | Path,
    batches: Iterable[np.ndarray],
    timestamps: np.ndarray,
    fps: float,
    settings: VideoSettings,
) -> ClipFile:
    """Encode ``(n, H, W, 3)`` uint8 batches to ``path``; frame ``i`` gets pts ``timestamps[i]`` (seconds).

    Raises :class:`AugmentError` when the frames and timestamps disagree in number or the clock goes backwards.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ts = np.asarray(timestamps, np.float64).reshape(-1)
    pts = np.round((ts - (ts[0] if len(ts) else 0.0)) * TIME_BASE.denominator).astype(np.int64)
    if len(pts) > 1 and np.any(np.diff(pts) <= 0):
        bad = int(np.flatnonzero(np.diff(pts) <= 0)[0]) + 1
        raise AugmentError(f"{path}: timestamps are not strictly increasing at frame {bad}")
    try:
        with atomic_path(path, kind="file") as tmp:  # on any error the partial clip is removed
            n = _encode(tmp, path, batches, pts, fps, settings)
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise AugmentError(f"{path}: video encoding failed ({err})") from err
    return ClipFile(path, n, path.stat().st_size)


def _encode(tmp: Path, path: Path, batches: Iterable[np.ndarray], pts: np.ndarray, fps: float,
            settings: VideoSettings) -> int:
    """Encode the batches into the MP4 ``tmp`` (errors name ``path``, the clip's final name); returns frames."""
    n = 0
    quiet_encoders()  # SVT-AV1's banner is not for the user (``robodata --verbose`` shows it)
    with av.open(str(tmp), "w", format="mp4") as out:
        stream: av.VideoStream | None = None
        for batch in batches:
            batch = np.asarray(batch)
            if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
                raise AugmentError(f"{path}: frames must be uint8 (n, H, W, 3), got {batch.dtype} {batch.shape}")
            if stream is None:
                stream = cast("av.VideoStream", out.add_stream(settings.codec, rate=round(fps) or 30,
                                                                options=settings.options()))
                stream.height, stream.width = batch.shape[1] - batch.shape[1] % 2, batch.shape[2] - batch.shape[2] % 2
                stream.pix_fmt = settings.pix_fmt
                stream.time_base = TIME_BASE
                stream.codec_context.time_base = TIME_BASE
                if (stream.height, stream.width) != batch.shape[1:3]:
                    raise AugmentError(f"{path}: yuv420p needs even image sizes, got {batch.shape[1:3]}")
            for frame in batch:
                if n >= len(pts):
                    raise AugmentError(f"{path}: more frames than the {len(pts)} timestamps")
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts, vf.time_base = int(pts[n]), TIME_BASE
                out.mux(stream.encode(vf))
                n += 1
        if stream is None:
            raise AugmentError(f"{path}: no frames to encode")
        out.mux(stream.encode(None))
    if n != len(pts):
        raise AugmentError(f"{path}: {n} frames for {len(pts)} timestamps")
    return n


def count_frames(path: str | Path) -> int:
    """Frames in an MP4 (demux only); :class:`AugmentError` when it is missing or corrupt."""
    try:
        return _probe(path).frames
    except LeRobotError as err:
        raise AugmentError(str(err)) from err


def iter_clip(path: str | Path, batch: int = 32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(seconds (b,), rgb (b, H, W, 3) uint8)`` batches in presentation order."""
    ts: list[float] = []
    frames: list[np.ndarray] = []
    try:
        for t, img in _decode(path):
            ts.append(t)
            frames.append(img)
            if len(frames) == batch:
                yield np.asarray(ts), np.stack(frames)
                ts, frames = [], []
    except LeRobotError as err:
        raise AugmentError(str(err)) from err
    if frames:
        yield np.asarray(ts), np.stack(frames)


def read_clip(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The whole clip: ``(seconds (T,), rgb (T, H, W, 3))`` (small clips, tests and checks)."""
    parts = list(iter_clip(path))
    if not parts:
        raise AugmentError(f"{path}: the video has no frames")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
