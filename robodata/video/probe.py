"""What a clip is (duration, fps, resolution, codec, frame count), or why it cannot be used.

The container facts come from :func:`robodata.lerobot.video.probe` (demux only: every packet's pts, so the
frame count is exact even for formats whose header declares none, such as WebM); this module names the
problem of a file that is not a usable clip in one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from robodata.errors import RobodataError
from robodata.lerobot.errors import LeRobotError

_SLACK = 2  # frames a container's declared count may exceed its packets by (encoder delay, a dropped last frame)


class ClipUnusable(RobodataError):
    """A file of the corpus that is not a usable clip (the message is the problem, without the path)."""


@dataclass(frozen=True)
class ClipProbe:
    codec: str
    width: int
    height: int
    fps: float
    frames: int  # video packets with a pts (the frame count)
    duration: float  # seconds: frames / fps

    def to_dict(self) -> dict[str, object]:
        return {"codec": self.codec, "width": self.width, "height": self.height, "fps": self.fps,
                "frames": self.frames, "duration": self.duration}


def _has_audio(path: Path) -> bool:
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    return False


def _declared_frames(path: Path, fps: float) -> int:
    """Frames the container's index or header declares (0: it declares none)."""
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            if s.frames:
                return int(s.frames)
            if s.duration and s.time_base:
                return round(float(s.duration * s.time_base) * fps)
            return round(c.duration / av.time_base * fps) if c.duration else 0
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        pass
    return 0


def _mp4_cut_short(path: Path, size: int) -> str | None:
    """Why an ISO-BMFF (MP4/MOV) file that FFmpeg cannot open looks cut short, from its top-level boxes."""
    seen: list[bytes] = []
    with path.open("rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            n, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if n == 1 and len(head) == 16:
                n = int.from_bytes(head[8:16], "big")
            elif n == 0:
                n = size - pos
            if not seen and kind != b"ftyp":
                return None  # not an MP4 at all
            if n < 8:
                return None
            seen.append(kind)
            if pos + n > size:
                return (f"the {kind.decode('latin-1')} box needs {pos + n - size} more bytes than the file has"
                        + ("" if b"moov" in seen else " and there is no moov index: the download was cut short"))
            pos += n
    if seen and b"moov" not in seen:
        return "the MP4 has no moov index (an incomplete download or recording)"
    return None


def probe_clip(path: str | Path) -> ClipProbe:
    """Probe ``path``; raises :class:`ClipUnusable` naming the problem (empty, audio only, truncated, ...)."""
    from robodata.lerobot.video import probe

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ClipUnusable(f"cannot be read ({err.strerror or err})") from None
    if size == 0:
        raise ClipUnusable("empty file (0 bytes)")
    try:
        vp = probe(path)
    except LeRobotError as err:
        cause = str(err.__cause__ or err)
        if "no video stream" in str(err):
            raise ClipUnusable("audio only: no video stream" if _has_audio(path) else "no video stream") from None
        cut = _mp4_cut_short(path, size)
        if cut:
            raise ClipUnusable(f"truncated: {cut}") from None
        raise ClipUnusable(f"not a readable video ({cause.strip()})") from None
    declared = _declared_frames(path, float(vp.fps or 0))
    if declared > vp.frames + _SLACK:
        raise ClipUnusable(f"truncated: its index declares {declared} frames, the file holds {vp.frames}")
    if vp.frames == 0:
        raise ClipUnusable("zero-length: the video stream has no frames")
    if not vp.fps or vp.fps <= 0 or not vp.width or not vp.height:
        raise ClipUnusable(f"no frame rate or size in the video stream ({vp.fps} fps, {vp.width}x{vp.height})")
    return ClipProbe(vp.codec, int(vp.width), int(vp.height), float(vp.fps), vp.frames, vp.frames / float(vp.fps))
