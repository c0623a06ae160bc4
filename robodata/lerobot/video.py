"""Camera video for LeRobot datasets with PyAV: streaming encoders, remux (concatenate / cut) and probing.

Encoding follows lerobot's conventions (libsvtav1, yuv420p, g=2, crf=30, preset 12); libx264 and, where a GPU
is present, h264_nvenc are options. Frame ``i`` of a file has pts exactly ``i / fps``; every episode starts on
a keyframe, so episode files can be joined or cut by copying packets, without re-encoding.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from robodata.lerobot.errors import LeRobotError
from robodata.logs import quiet_encoders

log = logging.getLogger(__name__)

DEFAULT_CODEC = "libsvtav1"
SVTAV1_DEFAULT_PRESET = 12  # lerobot's LIBSVTAV1_DEFAULT_PRESET
GPU_CODEC = "h264_nvenc"
CANONICAL_CODECS = {"libsvtav1": "av1", "libaom-av1": "av1", "libx264": "h264", "h264": "h264",
                    "h264_nvenc": "h264", "libx265": "hevc", "hevc": "hevc", "hevc_nvenc": "hevc"}  # fmt: skip
_KEY = av.video.frame.PictureType.I


@dataclass(frozen=True)
class VideoSettings:
    """How camera streams are encoded. ``codec="auto"`` picks h264_nvenc when a GPU encoder opens, else libsvtav1."""

    codec: str = DEFAULT_CODEC
    crf: int | None = 30
    gop: int = 2
    pix_fmt: str = "yuv420p"
    preset: int | str | None = None
    threads: int | None = None
    extra_options: dict[str, str] = field(default_factory=dict)

    def resolved(self) -> VideoSettings:
        codec = self.codec
        if codec == "auto":
            codec = GPU_CODEC if nvenc_available() else DEFAULT_CODEC
        elif codec == GPU_CODEC and not nvenc_available():
            log.warning("h264_nvenc cannot open here (no NVIDIA GPU); encoding with %s instead", DEFAULT_CODEC)
            codec = DEFAULT_CODEC
        try:
            av.codec.Codec(codec, "w")
        except Exception as err:
            raise LeRobotError(f"video codec {codec!r} is not available in this PyAV build ({err})") from err
        preset = self.preset
        if preset is None and codec == "libsvtav1":
            preset = SVTAV1_DEFAULT_PRESET
        return replace(self, codec=codec, preset=preset)

    def options(self) -> dict[str, str]:
        """Codec options as lerobot's ``VideoEncoderConfig.get_codec_options`` builds them."""
        opts: dict[str, str] = {"g": str(self.gop)}
        if self.codec == "libsvtav1":
            if self.crf is not None:
                opts["crf"] = str(self.crf)
            if self.preset is not None:
                opts["preset"] = str(self.preset)
            if self.threads is not None:
                opts["svtav1-params"] = f"lp={self.threads}"
        elif self.codec in ("h264_nvenc", "hevc_nvenc"):
            opts["rc"] = "constqp"
            if self.crf is not None:
                opts["qp"] = str(self.crf)
            if self.preset is not None:
                opts["preset"] = str(self.preset)
        else:
            if self.crf is not None:
                opts["crf"] = str(self.crf)
            if self.preset is not None:
                opts["preset"] = str(self.preset)
            if self.threads is not None:
                opts["threads"] = str(self.threads)
        for k, v in self.extra_options.items():
            opts.setdefault(k, str(v))
        return opts

    def info(self, height: int, width: int, fps: int) -> dict[str, Any]:
        """The ``info`` block of a video feature in ``info.json`` (the keys lerobot 0.6.1 writes)."""
        return {
            "video.height": int(height),
            "video.width": int(width),
            "video.codec": CANONICAL_CODECS.get(self.codec, self.codec),
            "video.pix_fmt": self.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(fps),
            "video.channels": 3,
            "has_audio": False,
            "video.g": self.gop,
            "video.crf": self.crf,
            "video.preset": self.preset,
            "video.fast_decode": 0,
            "video.extra_options": dict(self.extra_options),
            "video.video_backend": "pyav",
            "is_depth_map": False,
        }


@functools.cache
def nvenc_available() -> bool:
    """Whether an h264_nvenc encoder actually opens here (the codec is in PyAV's wheels; a GPU may not be)."""
    try:
        ctx = cast("av.video.codeccontext.VideoCodecContext", av.codec.CodecContext.create(GPU_CODEC, "w"))
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.open()
        ctx.close() if hasattr(ctx, "close") else None
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return False


class CameraEncoder:
    """Encodes one camera's frames into one MP4 in a background thread (PyAV releases the GIL while encoding).

    Frames arrive in batches through a bounded queue (memory stays flat); :meth:`start_episode` makes the next
    frame a keyframe. pts run on across episodes: frame ``i`` of the file is at ``i / fps`` seconds.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: int, settings: VideoSettings, queue_size: int = 4):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.settings = settings
        quiet_encoders()  # SVT-AV1's banner is not for the user (``robodata --verbose`` shows it)
        self.frames = 0
        self._queued = 0
        self._q: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._key_at: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"encode-{self.path.name}", daemon=True)
        self._thread.start()

    def start_episode(self) -> None:
        self._key_at = self._queued

    def feed(self, frames: np.ndarray) -> None:
        """Queue ``(n, H, W, 3)`` uint8 RGB frames (blocks while the encoder is behind)."""
        self._check()
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3) or frames.dtype != np.uint8:
            raise LeRobotError(
                f"{self.path}: frames must be uint8 ({self.height}, {self.width}, 3), got {frames.dtype} {frames.shape[1:]}"
            )
        key = -1 if self._key_at is None else self._key_at - self._queued
        self._key_at = None
        while True:
            try:
                self._q.put((frames, key), timeout=0.5)
                break
            except queue.Full:
                self._check()
        self._queued += len(frames)

    def close(self) -> int:
        """Flush and close the file; returns the number of frames written."""
        self._q.put(None)
        self._thread.join()
        self._check()
        return self.frames

    def abort(self) -> None:
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        self._q.put(None)
        self._thread.join()

    def _check(self) -> None:
        if self._error is not None:
            raise LeRobotError(f"{self.path}: video encoding failed ({self._error})") from self._error

    def _run(self) -> None:
        tb = Fraction(1, self.fps)
        try:
            with av.open(str(self.path), "w") as out:
                stream = cast("av.VideoStream", out.add_stream(self.settings.codec, rate=self.fps,
                                                                options=self.settings.options()))
                stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.settings.pix_fmt
                stream.time_base = tb
                while True:
                    item = self._q.get()
                    if item is None:
                        break
                    frames, key = item
                    for j in range(len(frames)):
                        vf = av.VideoFrame.from_ndarray(frames[j], format="rgb24")
                        vf.pts, vf.time_base = self.frames, tb
                        if j == key:
                            vf.pict_type = _KEY
                        out.mux(stream.encode(vf))
                        self.frames += 1
                out.mux(stream.encode(None))
        except BaseException as err:  # noqa: BLE001 - surfaced to the caller by _check
            self._error = err
            try:  # unblock a producer waiting on a full queue
                while self._q.get_nowait() is not None:
                    pass
            except queue.Empty:
                pass


@dataclass
class VideoProbe:
    """What the container says about a video file, plus the pts (seconds) of every packet, from demuxing only."""

    path: Path
    codec: str
    pix_fmt: str
    width: int
    height: int
    fps: float
    pts: np.ndarray
    keyframes: np.ndarray

    @property
    def frames(self) -> int:
        return len(self.pts)

    def count_between(self, from_ts: float, to_ts: float, tol: float = 1e-4) -> int:
        return int(np.count_nonzero((self.pts >= from_ts - tol) & (self.pts < to_ts - tol)))


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise LeRobotError(f"{path}: video file is missing")
    try:
        c = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise LeRobotError(f"{path}: not a readable MP4 video ({err})") from err
    if not c.streams.video:
        c.close()
        raise LeRobotError(f"{path}: has no video stream")
    return c


def _time_base(s: Any, path: Path) -> Fraction:
    tb = s.time_base
    if tb is None:
        raise LeRobotError(f"{path}: the video stream has no time base")
    return Fraction(tb)


def probe(path: str | Path) -> VideoProbe:
    """Container facts and packet timestamps of ``path`` (demux only, no decoding)."""
    path = Path(path)
    c = _open(path)
    try:
        s = c.streams.video[0]
        stb = _time_base(s, path)
        pts, keys = [], []
        for p in c.demux(s):
            if p.pts is None or p.size == 0:
                continue
            pts.append(float(p.pts * stb))
            keys.append(p.is_keyframe)
        order = np.argsort(pts, kind="stable")
        return VideoProbe(
            path, CANONICAL_CODECS.get(s.codec.name, s.codec.canonical_name) if s.codec else "", s.format.name if s.format else "",
            s.width, s.height, float(s.base_rate or s.average_rate or 0),
            np.asarray(pts)[order], np.asarray(keys, bool)[order],
        )  # fmt: skip
    except av.error.FFmpegError as err:
        raise LeRobotError(f"{path}: corrupt video stream ({err})") from err
    finally:
        c.close()


def decode(path: str | Path, from_ts: float = 0.0, to_ts: float = float("inf")) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(seconds, rgb HxWx3 uint8)`` for frames with ``from_ts <= t < to_ts`` (seeks to ``from_ts``)."""
    path = Path(path)
    c = _open(path)
    try:
        s = c.streams.video[0]
        stb = _time_base(s, path)
        if from_ts > 0:
            c.seek(max(0, round(from_ts / stb) - 1), backward=True, any_frame=False, stream=s)
        for frame in c.decode(s):
            if frame.pts is None:
                continue
            t = float(frame.pts * stb)
            if t < from_ts - 1e-4:
                continue
            if t >= to_ts - 1e-4:
                break
            yield t, frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as err:
        raise LeRobotError(f"{path}: cannot decode video ({err})") from err
    finally:
        c.close()


def copy_packets(
    inputs: list[tuple[Path, float, float, float]], output: Path, fps: float
) -> list[tuple[float, float]]:
    """Remux packets: for each ``(path, from_s, to_s, offset_s)`` copy packets with pts in [from, to) shifted by
    ``offset_s - from_s``. Returns each input's ``(start, end)`` seconds in the output."""
    output.parent.mkdir(parents=True, exist_ok=True)
    spans: list[tuple[float, float]] = []
    out = av.open(str(output), "w")
    try:
        ostream = None
        otb: Fraction | None = None
        for path, from_s, to_s, offset_s in inputs:
            c = _open(path)
            try:
                s = c.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(template=s, opaque=True)
                    otb = _time_base(s, Path(path))
                    ostream.time_base = otb
                elif (s.codec_context.name, s.width, s.height) != (ostream.codec_context.name, ostream.width, ostream.height):
                    raise LeRobotError(
                        f"{path}: video {s.codec_context.name} {s.width}x{s.height} cannot be joined to "
                        f"{ostream.codec_context.name} {ostream.width}x{ostream.height}"
                    )
                itb = _time_base(s, Path(path))
                assert otb is not None  # set with the output stream, from the first input
                shift = offset_s - from_s
                first = True
                n = 0
                for p in c.demux(s):
                    if p.dts is None or p.pts is None:
                        continue
                    t = float(p.pts * itb)
                    if t < from_s - 1e-4 or t >= to_s - 1e-4:
                        continue
                    if first and not p.is_keyframe:
                        raise LeRobotError(f"{path}: no keyframe at {from_s:.4f} s, the episode cannot be cut without re-encoding")
                    first = False
                    p.pts = round((p.pts * itb + Fraction(shift).limit_denominator(1_000_000)) / otb)
                    p.dts = round((p.dts * itb + Fraction(shift).limit_denominator(1_000_000)) / otb)
                    p.stream = ostream
                    out.mux(p)
                    n += 1
                spans.append((offset_s, offset_s + n / fps))
            except av.error.FFmpegError as err:
                raise LeRobotError(f"{path}: corrupt video stream ({err})") from err
            finally:
                c.close()
    finally:
        out.close()
    return spans


def concat(paths: list[Path], output: Path, fps: float, frame_counts: list[int] | None = None) -> list[tuple[float, float]]:
    """Join MP4 files by copying packets (no re-encoding); returns each input's ``(from_s, to_s)`` in the output."""
    inputs, offset = [], 0.0
    for i, p in enumerate(paths):
        n = frame_counts[i] if frame_counts is not None else probe(p).frames
        inputs.append((Path(p), 0.0, float("inf"), offset))
        offset += n / fps
    return copy_packets(inputs, output, fps)


def cut(src: Path, output: Path, from_s: float, to_s: float, fps: float) -> int:
    """Copy the packets of ``[from_s, to_s)`` of ``src`` into ``output`` starting at 0 s; returns frames copied."""
    (start, end), = copy_packets([(Path(src), from_s, to_s, 0.0)], output, fps)
    return round((end - start) * fps)


def reencode(src: Path, output: Path, from_s: float, to_s: float, fps: int, settings: VideoSettings) -> int:
    """Decode ``[from_s, to_s)`` of ``src`` and encode it into ``output`` (for sources without keyframes to cut at)."""
    probe_ = probe(src)
    enc = CameraEncoder(output, probe_.width, probe_.height, fps, settings.resolved())
    try:
        enc.start_episode()
        batch: list[np.ndarray] = []
        for _, img in decode(src, from_s, to_s):
            batch.append(img)
            if len(batch) == 32:
                enc.feed(np.stack(batch))
                batch = []
        if batch:
            enc.feed(np.stack(batch))
        return enc.close()
    except BaseException:
        enc.abort()
        raise
