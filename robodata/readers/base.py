"""The reader interface every recording format implements: topics, and messages in log-time order."""

from __future__ import annotations

import math
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robodata.errors import RobodataError
from robodata.msgconv import COMPRESSED_VIDEO_TYPES, MessageConversionError, VideoStream, normalize_msgtype

__all__ = [
    "InterArrival",
    "decode_video_streams",
    "Message",
    "RecordingError",
    "RecordingReader",
    "RecordingWarning",
    "TopicInfo",
    "normalize_msgtype",
]


class RecordingError(RobodataError):
    """A recording (bag, MCAP) is missing, unreadable, damaged, or asked for something it does not hold."""


class RecordingWarning(UserWarning):
    """A recording was read, but not all of it (e.g. a truncated MCAP read with ``allow_truncated=True``)."""


@dataclass
class TopicInfo:
    """One topic of a recording: its message type (ROS 2 spelling), message count and time span.

    ``first_ns``/``last_ns`` are the log times of its first and last message (``None`` when it has none);
    ``encoding`` is the serialization (``cdr``, ``ros1``, ``json``...).
    """

    name: str
    msgtype: str
    count: int
    first_ns: int | None
    last_ns: int | None
    encoding: str

    @property
    def rate_hz(self) -> float | None:
        """Mean message rate over the topic's own span; ``None`` with fewer than two messages."""
        if self.count < 2 or self.first_ns is None or self.last_ns is None or self.last_ns <= self.first_ns:
            return None
        return (self.count - 1) / ((self.last_ns - self.first_ns) / 1e9)


@dataclass(slots=True)
class Message:
    """One message: topic, log (receive) time in ns, type (ROS 2 spelling) and payload.

    ``data`` is the decoded message (attribute access like the ROS message: ``msg.header.stamp.sec``) or,
    when read with ``decode=False``, the serialized payload as ``bytes``.
    """

    topic: str
    log_time_ns: int
    msgtype: str
    data: Any


class RecordingReader(ABC):
    """A recording opened for reading; use as a context manager.

    ``messages()`` streams in log-time order (never loads the whole recording); ``topics()`` and the
    summary properties come from the recording's index where it has one.
    """

    #: A short name of the storage format, e.g. ``"mcap"``, ``"rosbag1"``, ``"rosbag2/sqlite3"``.
    storage: str = "unknown"

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    # -- context manager ------------------------------------------------------------------------------------
    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the file handles (idempotent)."""

    # -- what the recording holds ---------------------------------------------------------------------------
    @abstractmethod
    def topics(self) -> dict[str, TopicInfo]:
        """Every topic of the recording (also those without messages), by name."""

    @abstractmethod
    def messages(self, topics: Iterable[str] | None = None, decode: bool = True) -> Iterator[Message]:
        """Yield the messages of ``topics`` (all when ``None``) in log-time order.

        Raises:
            RecordingError: the recording has no messages, a topic is not in it, or the data is damaged.
        """

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics().values())

    @property
    def start_ns(self) -> int | None:
        """Log time of the first message (``None`` for an empty recording)."""
        firsts = [t.first_ns for t in self.topics().values() if t.first_ns is not None]
        return min(firsts) if firsts else None

    @property
    def end_ns(self) -> int | None:
        """Log time of the last message (``None`` for an empty recording)."""
        lasts = [t.last_ns for t in self.topics().values() if t.last_ns is not None]
        return max(lasts) if lasts else None

    @property
    def duration_s(self) -> float:
        if self.start_ns is None or self.end_ns is None:
            return 0.0
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def size_bytes(self) -> int:
        """Bytes on disk (all files of a split bag)."""
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        return self.path.stat().st_size

    def interarrival(self, topics: Iterable[str] | None = None) -> dict[str, InterArrival]:
        """Per topic, streaming statistics of the gaps between consecutive log times (timing jitter).

        Reads payloads without decoding them; readers with a time index (ROS 1 index, MCAP message indexes)
        override this to not read the data at all.
        """
        out: dict[str, InterArrival] = {}
        for m in self.messages(topics, decode=False):
            ia = out.get(m.topic)
            if ia is None:
                ia = out[m.topic] = InterArrival()
            ia.add(m.log_time_ns)
        return out

    # -- helpers for implementations ------------------------------------------------------------------------
    def _select_topics(self, topics: Iterable[str] | None) -> set[str] | None:
        """Check the requested topic names against the recording; ``None`` means all."""
        known = self.topics()
        if self.message_count == 0:
            raise RecordingError(f"{self.path}: the recording contains no messages (topics: {sorted(known) or 'none'})")
        if topics is None:
            return None
        if isinstance(topics, str):
            topics = [topics]
        wanted = set(topics)
        missing = sorted(wanted - set(known))
        if missing:
            raise RecordingError(
                f"{self.path}: no topic {', '.join(missing)} in this recording (it has: {', '.join(sorted(known))})"
            )
        return wanted


def decode_video_streams(path: Path, messages: Iterable[Message]) -> Iterator[Message]:
    """``messages`` (decoded, in log-time order) with each video topic's packets (``foxglove.CompressedVideo``)
    decoded as a stream: one stateful decoder per topic, frames out in order, each a :class:`robodata.msgconv.
    VideoFrame` in place of its packet message. A stream that starts before a keyframe starts at the first
    keyframe, with one ``RecordingWarning`` saying how many messages were skipped.

    Raises:
        RecordingError: a video format that is not supported or does not decode (file, topic, schema, format
            named), or a video topic without any keyframe.
    """
    streams: dict[str, VideoStream] = {}

    def fail(topic: str, msgtype: str, err: Exception) -> RecordingError:
        return RecordingError(f"{path}: topic {topic} (schema {msgtype}): {str(err).removeprefix(f'{msgtype}: ')}")

    for m in messages:
        if m.msgtype not in COMPRESSED_VIDEO_TYPES:
            yield m
            continue
        vs = streams.get(m.topic)
        if vs is None:
            vs = streams[m.topic] = VideoStream(m.msgtype)
        started = vs.started
        try:
            ready = vs.push(m.log_time_ns, m.data)
        except MessageConversionError as err:
            raise fail(m.topic, m.msgtype, err) from err
        if vs.started and not started and vs.skipped:
            warnings.warn(f"{path}: topic {m.topic} ({m.msgtype}, {vs.format}): the stream starts before a keyframe; "
                          f"its first {vs.skipped} message(s) are skipped, decoding starts at the first keyframe",
                          RecordingWarning, stacklevel=2)  # fmt: skip
        for lt, frame in ready:
            yield Message(m.topic, lt, m.msgtype, frame)
    for topic, vs in streams.items():
        if not vs.started:
            raise RecordingError(f"{path}: topic {topic} (schema {vs.where}): no keyframe in its {vs.skipped} "
                                 f"{vs.format} message(s), so no frame decodes")  # fmt: skip
        try:
            ready = vs.flush()
        except MessageConversionError as err:
            raise fail(topic, vs.where, err) from err
        for lt, frame in ready:
            yield Message(topic, lt, vs.where, frame)


class InterArrival:
    """Streaming mean/std of the gaps between consecutive timestamps (Welford), in seconds."""

    __slots__ = ("last", "n", "mean", "m2", "max")

    def __init__(self) -> None:
        self.last: int | None = None
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.max = 0.0

    def add(self, t_ns: int) -> None:
        if self.last is not None:
            dt = (t_ns - self.last) / 1e9
            self.n += 1
            delta = dt - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (dt - self.mean)
            self.max = max(self.max, dt)
        self.last = t_ns

    def add_many(self, times_ns: np.ndarray) -> None:
        """Add a sorted batch of times at once (vectorised; merges batch statistics, Chan et al.)."""
        times_ns = np.asarray(times_ns, dtype=np.int64)
        if times_ns.size == 0:
            return
        if self.last is not None:
            self.add(int(times_ns[0]))
        gaps = np.diff(times_ns) / 1e9
        self.last = int(times_ns[-1])
        nb = gaps.size
        if nb == 0:
            return
        mean_b = float(gaps.mean())
        m2_b = float(((gaps - mean_b) ** 2).sum())
        n = self.n + nb
        delta = mean_b - self.mean
        self.m2 += m2_b + delta * delta * self.n * nb / n
        self.mean += delta * nb / n
        self.n = n
        self.max = max(self.max, float(gaps.max()))

    @property
    def std(self) -> float | None:
        return math.sqrt(self.m2 / self.n) if self.n else None
