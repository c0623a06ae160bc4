"""Ingest one recording (bag, MCAP or Isaac Lab HDF5) into a canonical, time-synced episode store.

Message recordings are read in one streaming pass. Camera frames are matched to the reference clock on the
fly with a small look-behind buffer of undecoded messages, so memory stays flat however long the bag is;
low-dimensional streams are buffered for one episode at a time and aligned when the episode closes.
Frames where any stream is farther from the reference clock than its tolerance are dropped and reported.

The pass is an orchestrator (:class:`_MessageIngest`) of four named steps, each with its state in the open
and testable on its own: :class:`EpisodeSplitter` (which episode a reference tick belongs to),
:class:`CameraMatcher` (the camera frame nearest each tick, decided before anything is decoded),
:class:`LowDimStreams` (state/action/pose samples: in sync at a tick, aligned per episode) and
:class:`EpisodeCloser` (length bounds, alignment, writing or discarding an episode).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.errors import RobodataError
from robodata.formats.isaaclab import (
    ACTIONS,
    DATA_GROUP,
    DEFAULT_IMAGE_COMPRESSION,
    ENV_KWARGS_KEY,
    ENV_NAME_KEY,
    NUM_SAMPLES_ATTR,
    DemoWriter,
    EpisodeSchema,
    EpisodeStore,
    EpisodeStoreError,
    EpisodeStoreWriter,
    FeatureSpec,
    ImageCompression,
)
from robodata.pathkind import HDF5_SUFFIXES, RECORDINGS, PathInfo, PathKind, PathKindError, detect, require
from robodata.sync import StreamStats, align, pose_to_matrix
from robodata.topicmap import DatagenMap, FeatureMap, SyncPolicy, TopicMap, TopicMapError

__all__ = [
    "HDF5_SUFFIXES",
    "POSE_NAMES",
    "CameraMatch",
    "CameraMatcher",
    "EpisodeCloser",
    "EpisodeReport",
    "EpisodeSplitter",
    "IngestError",
    "IngestReport",
    "LowDimAlignment",
    "LowDimStreams",
    "OpenEpisode",
    "ingest_recording",
    "is_hdf5",
]

POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")
_NS = 1e-9
_SLACK_S = 0.25  # transport latency allowed between a header stamp and its log time
_IMAGE_BATCH = 16  # decoded camera frames per camera written to the HDF5 at once
# Kinds of path ingest takes: message recordings, and Isaac Lab HDF5 stores (copied into the canonical layout).
_INGESTS = RECORDINGS | {PathKind.ISAACLAB_HDF5}


class IngestError(RobodataError):
    """A recording cannot be turned into episodes (the message names the file and what is wrong)."""


@dataclass
class EpisodeReport:
    """One episode written: its demo name, frames kept, duration, frames dropped as out of sync, success."""

    name: str
    frames: int
    duration_s: float
    dropped_frames: int
    success: bool | None


@dataclass
class IngestReport:
    """What an ingest did: the numbers a person wants to see in the UI."""

    source: str
    output: str
    episodes: list[EpisodeReport] = field(default_factory=list)
    topics: dict[str, dict[str, float]] = field(default_factory=dict)
    topic_gaps: dict[str, list[float]] = field(default_factory=dict)  # a sample of inter-arrival times per topic
    misaligned: dict[str, dict[str, float]] = field(default_factory=dict)  # feature -> {count, worst_offset_ms}
    frames_outside_episodes: int = 0
    short_episodes_skipped: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    reference_rate_hz: float = 0.0
    fps: float = 0.0
    notes: list[str] = field(default_factory=list)  # what was assumed or converted (no timestamps, quaternions)

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.episodes)

    @property
    def dropped_frames(self) -> int:
        return sum(e.dropped_frames for e in self.episodes)

    @property
    def duration_s(self) -> float:
        return sum(e.duration_s for e in self.episodes)

    def note_misaligned(self, name: str, ok: np.ndarray, offsets: np.ndarray) -> None:
        """Per feature: frames out of tolerance, frames with no sample at all, and the worst offset seen."""
        m = self.misaligned.setdefault(name, {"count": 0, "no_sample": 0, "worst_offset_ms": 0.0})
        m["count"] += int((~ok).sum())
        finite = np.isfinite(offsets)
        m["no_sample"] += int((~finite).sum())
        if finite.any():
            m["worst_offset_ms"] = round(max(m["worst_offset_ms"], float(offsets[finite].max()) * 1e3), 3)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "episodes": len(self.episodes),
            "frames": self.frames,
            "duration_s": round(self.duration_s, 3),
            "dropped_frames": self.dropped_frames,
            "frames_outside_episodes": self.frames_outside_episodes,
            "short_episodes_skipped": self.short_episodes_skipped,
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "ingest_seconds": round(self.seconds, 3),
            "reference_rate_hz": round(self.reference_rate_hz, 3),
            "successes": sum(1 for e in self.episodes if e.success),
            **({"notes": list(self.notes)} if self.notes else {}),
        }


def is_hdf5(path: str | Path) -> bool:
    """Whether ``path`` is an Isaac Lab / robomimic HDF5 file (``.hdf5``/``.h5``/``.he5``): copied, not synced."""
    return detect(path, (PathKind.ISAACLAB_HDF5,)) is not None


def ingest_recording(
    path: str | Path,
    out_path: str | Path,
    topic_map: TopicMap | None = None,
    *,
    min_frames: int | None = None,
    max_frames: int = 10**9,
    progress: Callable[[float], None] | None = None,
    image_compression: ImageCompression = DEFAULT_IMAGE_COMPRESSION,
    fps: float | None = None,
    quaternion_order: str | None = None,
    quaternion_columns: Mapping[str, Sequence[int]] | None = None,
) -> IngestReport:
    """Turn a recording into an Isaac Lab HDF5 episode store at ``out_path`` (written atomically).

    ``fps``, ``quaternion_order`` and ``quaternion_columns`` read an Isaac Lab HDF5 file (its recorder stores no
    timestamps and does not say its quaternion order: ``wxyz`` in 2.x, ``xyzw`` from 3.0; ``auto``/None decides
    from a stamp in ``env_args`` or the data; ``quaternion_columns`` says where quaternions are beside what the
    feature names say, see :class:`~robodata.formats.isaaclab.EpisodeStore`).

    ``image_compression`` says how camera frames are stored (one frame per chunk, always lossless and readable
    by plain h5py): ``auto`` (default: deflated where that saves a quarter or more, raw otherwise), ``none``,
    ``lzf``, ``gzip`` (deflate level 1 on every frame), ``gzip-4``; see :mod:`robodata.formats.isaaclab`.

    Raises:
        IngestError: the path is missing or no recording/HDF5 store, the recording is unreadable, empty, lacks
            a mapped topic, has timestamps out of order or non-finite values, or yields no episode.
    """
    path = Path(path)
    t0 = time.perf_counter()
    try:
        info = require(path, _INGESTS, what="something robodata can ingest")
    except PathKindError as err:
        raise IngestError(str(err)) from err
    if info.kind is PathKind.ISAACLAB_HDF5:
        report = _ingest_hdf5(path, Path(out_path), min_frames=min_frames or 1, max_frames=max_frames,
                              image_compression=image_compression, fps=fps, quaternion_order=quaternion_order,
                              quaternion_columns=quaternion_columns)
    else:
        if topic_map is None:
            raise IngestError(f"{path}: a message recording needs a topic map (none is configured for this file)")
        report = _MessageIngest(info, Path(out_path), topic_map, min_frames, max_frames, progress,
                                image_compression).run()
    report.seconds = time.perf_counter() - t0
    report.bytes_written = Path(out_path).stat().st_size
    return report


# ---------------------------------------------------------------------------------------------------------
# Isaac Lab HDF5 sources: validate, then copy demo by demo into the canonical layout.
# ---------------------------------------------------------------------------------------------------------


def _ingest_hdf5(path: Path, out: Path, *, min_frames: int, max_frames: int,
                 image_compression: ImageCompression = DEFAULT_IMAGE_COMPRESSION,
                 fps: float | None = None, quaternion_order: str | None = None,
                 quaternion_columns: Mapping[str, Sequence[int]] | None = None) -> IngestReport:
    """Copy an Isaac Lab HDF5 file (robodata's or Isaac Lab's recorder's) demo by demo into the canonical store.

    Everything is read through :class:`EpisodeStore` (the one reader of the format) and kept: features,
    Mimic's datagen_info, a nested sim state (``states/...``, ``initial_state/...``) and other datasets at the
    paths they had. A file without timestamps gets ``frame / fps``; quaternions of the features are written in
    ``xyzw`` whatever order the file used (its order is recorded in the store's feature table).
    """
    try:
        src = EpisodeStore(path, fps=fps, quaternion_order=quaternion_order, quaternion_columns=quaternion_columns)
    except EpisodeStoreError as err:
        raise IngestError(str(err)) from err
    report = IngestReport(str(path), str(out), bytes_read=path.stat().st_size, fps=src.schema.fps)
    with src:
        if not src.demo_names:
            raise IngestError(f"{path}: /data holds no demo_N groups (no episodes)")
        schema = src.schema
        report.notes.extend(src.notes)  # assumed fps, quaternion order and columns, unconverted ones, filter keys
        with EpisodeStoreWriter(out, schema, env_name=src.env_args.get(ENV_NAME_KEY, "robodata"),
                                env_kwargs=src.env_args.get(ENV_KWARGS_KEY, {}),
                                image_compression=image_compression) as dst:
            for name in src.demo_names:
                n = src.num_samples(name)
                where = f"/{DATA_GROUP}/{name}"
                if n < min_frames:
                    report.short_episodes_skipped += 1
                    continue
                if n > max_frames:
                    raise IngestError(f"{path}: {where} has {n} frames, more than the limit of {max_frames}")
                ts = src.timestamps(name)
                if len(ts) != n:
                    raise IngestError(f"{path}: {where} has {len(ts)} timestamps for {n} samples")
                if n > 1 and not np.all(np.diff(ts) > 0):
                    bad = int(np.argmax(np.diff(ts) <= 0)) + 1
                    raise IngestError(f"{path}: {where} timestamps are not strictly increasing at frame {bad}")
                for f in schema.features:
                    if f.role not in ("action", "extra") and not src.has(name, f.name):
                        raise IngestError(f"{path}: {where}/{f.h5path} is missing (feature {f.name!r}, present in other demos)")
                demo = dst.begin_episode(attrs={k: v for k, v in src.attrs(name).items() if k != NUM_SAMPLES_ATTR})
                try:
                    for b in src.batches(name, 256):
                        for key, arr in b.obs.items():
                            _check_finite(arr, path, f"{where}/{src.spec(key).h5path}", b.s)
                        _check_finite(b.actions, path, f"{where}/{ACTIONS}", b.s)
                        demo.extend(b.timestamps, b.obs, b.actions, states=b.states, datagen=b.datagen,
                                    passthrough=b.passthrough)
                    for p, arr in src.statics(name).items():
                        demo.put_static(p, arr)
                except EpisodeStoreError as err:  # names the file and the group path already, or is about the output
                    msg = str(err)
                    raise IngestError(msg if msg.startswith(str(path)) else f"{path}: {where}: {msg}") from err
                demo.close()
                attrs = src.attrs(name)
                report.episodes.append(
                    EpisodeReport(demo.name, n, float(ts[-1] - ts[0]) if n else 0.0, 0, attrs.get("success"))
                )
            if not report.episodes:
                raise IngestError(f"{path}: every demo is shorter than {min_frames} frames")
    report.reference_rate_hz = schema.fps
    return report


def _check_finite(arr: np.ndarray, path: Path, where: str, offset: int = 0) -> None:
    if np.issubdtype(np.asarray(arr).dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0]) + offset
            raise IngestError(f"{path}: {where} holds NaN/inf values (first at frame {row})")


# ---------------------------------------------------------------------------------------------------------
# Message recordings (ROS 1/2 bags, MCAP): one streaming pass, an orchestrator of four steps.
#
#   EpisodeSplitter  reference tick -> episode index (whole recording / between markers / between gaps)
#   CameraMatcher    camera frames + reference ticks -> the nearest frame per camera, once all candidates arrived
#   LowDimStreams    state/action/pose samples -> in sync at a tick? values aligned to an episode's ticks
#   EpisodeCloser    an episode's ticks -> length bounds, alignment, NaN check, written demo (or discarded)
# ---------------------------------------------------------------------------------------------------------


class EpisodeSplitter:
    """Which episode each reference tick belongs to, per the topic map's ``episodes.split``.

    ``whole``: every tick is episode 0. ``gap``: a tick more than ``gap_s`` after the previous one starts the
    next episode. ``marker``: a marker message (see :meth:`marker`) starts episode 0, 1, ...; ticks before the
    first start or after an end/stop marker belong to no episode and are counted in ``outside``.
    """

    def __init__(self, split: str = "whole", gap_s: float = 1.0):
        self.split = split
        self.gap_s = gap_s
        self.open = split != "marker"  # ticks now fall inside an episode
        self.index = 0 if split != "marker" else -1  # the current (or last) episode
        self.last_tick = -math.inf
        self.outside = 0  # ticks that fell outside every episode

    def marker(self, text: str) -> None:
        """A marker message: ``end``/``stop`` (any case) closes the episode, anything else opens the next one."""
        text = text.strip().lower()
        if text.startswith(("end", "stop")):
            self.open = False
        else:  # "start" (or any other marker): a new episode begins
            self.open = True
            self.index += 1

    def tick(self, r: float) -> int | None:
        """The episode of the reference tick at ``r`` seconds; ``None`` (and counted) when it is in none."""
        if self.split == "gap" and self.last_tick > -math.inf and r - self.last_tick > self.gap_s:
            self.index += 1
        self.last_tick = r
        if self.open and self.index >= 0:
            return self.index
        self.outside += 1
        return None

    @property
    def success_episode(self) -> int:
        """The episode a success message refers to now: the current or last one (0 before the first)."""
        return max(self.index, 0)


@dataclass(slots=True)
class CameraMatch:
    """The camera frames picked for one reference tick (undecoded), and whether all are within tolerance.

    ``picks`` pairs each camera feature with its message (``None`` when the buffer was empty); ``offsets``
    pairs each camera feature's name with the time between the tick and its frame (inf: no frame).
    """

    tick: float
    episode: int
    picks: list[tuple[FeatureMap, Any]]
    offsets: list[tuple[str, float]]
    in_sync: bool


class CameraMatcher:
    """Matches camera frames to reference ticks through a small look-behind buffer of undecoded messages.

    A tick waits in ``pending`` until the log clock is past ``tick + tolerance + slack``: by then every sample
    of every stream that could be nearest to it has arrived (``tolerance`` is the largest of all streams, not
    only the cameras'). Each tick is matched exactly once, in order (:meth:`ready`); the caller decides from
    the match whether to decode and write the frames, so a frame out of sync is never decoded. Frames no later
    tick can prefer are dropped from the buffer (:meth:`trim`), so memory holds a few frames per camera.
    """

    def __init__(
        self,
        cameras: Sequence[FeatureMap],
        tolerances: Mapping[str, float],
        *,
        tolerance: float,
        slack: float = _SLACK_S,
    ):
        self.by_topic: dict[str, list[FeatureMap]] = {}
        for c in cameras:
            self.by_topic.setdefault(c.topic, []).append(c)
        self.tolerances = dict(tolerances)  # per camera feature
        self.tolerance = tolerance
        self.slack = slack
        self.buffers: dict[str, deque[tuple[float, Any]]] = {t: deque() for t in self.by_topic}
        self.pending: deque[tuple[float, int]] = deque()  # (tick, episode), not yet matched

    def add_frame(self, topic: str, stamp: float, message: Any) -> None:
        """Buffer a camera message (undecoded) stamped ``stamp`` seconds."""
        self.buffers[topic].append((stamp, message))

    def add_tick(self, tick: float, episode: int) -> None:
        """Queue a reference tick of ``episode`` for matching."""
        self.pending.append((tick, episode))

    def ready(self, upto: float) -> Iterator[CameraMatch]:
        """Match, in order, the pending ticks whose candidate frames have all arrived by log time ``upto``."""
        pending = self.pending
        while pending and pending[0][0] + self.tolerance + self.slack < upto:
            r, ep = pending.popleft()
            yield self._match(r, ep)

    def _match(self, r: float, episode: int) -> CameraMatch:
        in_sync = True
        picks: list[tuple[FeatureMap, Any]] = []
        offsets: list[tuple[str, float]] = []
        for topic, feats in self.by_topic.items():
            buf = self.buffers[topic]
            best, best_d = None, math.inf
            for ts, m in buf:
                d = abs(ts - r)
                if d < best_d:
                    best, best_d = m, d
            for c in feats:
                picks.append((c, best))
                offsets.append((c.name, best_d))
                if best_d > self.tolerances[c.name]:
                    in_sync = False
            # Drop buffered frames no later tick can prefer.
            while len(buf) > 1 and buf[1][0] <= r:
                buf.popleft()
        return CameraMatch(r, episode, picks, offsets, in_sync)

    def trim(self, now: float) -> None:
        """Bound the look-behind: nothing older than the oldest pending tick's window is needed."""
        horizon = (self.pending[0][0] if self.pending else now - self.slack) - self.tolerance
        for buf in self.buffers.values():
            while len(buf) > 1 and buf[1][0] <= horizon:
                buf.popleft()


@dataclass
class LowDimAlignment:
    """Low-dim streams aligned to an episode: values and validity at the kept ticks, offsets at all ticks.

    ``values`` maps each feature to its values at the kept ticks; ``ok`` says, per kept tick, whether every
    stream was within tolerance; ``all_ticks`` maps each feature to ``(ok, offsets)`` over every tick of the
    episode (written or not), for the misalignment report.
    """

    values: dict[str, np.ndarray]
    ok: np.ndarray
    all_ticks: dict[str, tuple[np.ndarray, np.ndarray]]


class LowDimStreams:
    """State, action and pose samples ``(stamp, value)`` per feature, checked and aligned with its sync policy.

    Samples are kept from the open episode back to a look-behind horizon (:meth:`forget_before`), so a hold
    or nearest lookup at an episode's first ticks still finds the sample before it. A feature with a
    ``default`` takes that value (in sync) at ticks before its stream's first sample.
    """

    def __init__(
        self,
        features: Sequence[FeatureMap],
        policies: Mapping[str, SyncPolicy],
        sizes: Mapping[str, int],
        *,
        source: Path,
    ):
        self.features = list(features)
        self.policies = dict(policies)  # per feature
        self.sizes = dict(sizes)  # values per sample, per feature (the width of an empty stream)
        self.source = source  # named in errors
        self.samples: dict[str, list[tuple[float, np.ndarray]]] = {f.name: [] for f in self.features}
        self.first: dict[str, float] = {}  # each stream's first sample time (for `default`)
        self._ptr: dict[str, int] = {f.name: 0 for f in self.features}  # last sample at or before the last check

    def add(self, name: str, stamp: float, value: np.ndarray) -> None:
        """Append a sample of feature ``name`` (stamps arrive in increasing order)."""
        self.samples[name].append((stamp, value))
        self.first.setdefault(name, stamp)

    def in_sync(self, r: float) -> bool:
        """Does every stream have a sample within its tolerance of ``r``? (all candidates have arrived)

        Ticks must come in increasing order: each stream's search resumes where the last one stopped.
        """
        for f in self.features:
            buf, pol = self.samples[f.name], self.policies[f.name]
            before_first = r < self.first.get(f.name, math.inf)
            if f.default is not None and before_first:
                continue
            if not buf:
                return False
            p = self._ptr[f.name]
            while p + 1 < len(buf) and buf[p + 1][0] <= r:
                p += 1
            self._ptr[f.name] = p
            t0 = buf[p][0]
            if t0 > r:
                d_prev, d_next = math.inf, t0 - r
            else:
                d_prev = r - t0
                d_next = buf[p + 1][0] - r if p + 1 < len(buf) else math.inf
            d = d_prev if pol.method == "hold" else min(d_prev, d_next)
            if d > pol.tolerance_s:
                return False
        return True

    def align(self, all_ticks: np.ndarray, kept: np.ndarray) -> LowDimAlignment:
        """Align every stream to ``kept`` (the values written) and to ``all_ticks`` (for the report).

        Raises:
            IngestError: a feature's ``default`` has a different number of values than its stream.
        """
        ok = np.ones(len(kept), bool)
        values: dict[str, np.ndarray] = {}
        report: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for f in self.features:
            samples = self.samples[f.name]
            pol = self.policies[f.name]
            if samples:
                t = np.fromiter((s[0] for s in samples), np.float64, len(samples))
                v = np.stack([s[1].reshape(-1) for s in samples])
            else:
                t, v = np.zeros(0), np.zeros((0, self.sizes[f.name]))
            for which, at in (("all", all_ticks), ("kept", kept)):
                al = align(at, t, v, pol.method, pol.tolerance_s, is_pose=f.role == "pose")
                if f.default is not None:  # before the stream's first sample: its declared default
                    before = at < self.first.get(f.name, math.inf)
                    if len(f.default) != al.values.reshape(len(at), -1).shape[1]:
                        raise IngestError(f"{self.source}: feature {f.name!r}: default has {len(f.default)} values")
                    al.values[before] = np.asarray(f.default, al.values.dtype).reshape(al.values.shape[1:])
                    al.ok[before] = True
                    al.offsets[before] = 0.0
                if which == "all":
                    report[f.name] = (al.ok, al.offsets)
            values[f.name] = al.values
            ok &= al.ok
        return LowDimAlignment(values, ok, report)

    def forget_before(self, horizon: float) -> None:
        """Drop samples older than ``horizon`` seconds (after an episode closed; the next starts later)."""
        for k in self.samples:
            self.samples[k] = [s for s in self.samples[k] if s[0] >= horizon]
            self._ptr[k] = 0


class EpisodeTasks:
    """The task instruction of each episode, from the task messages of a recording (``task: {topic, field}``).

    Task messages are few (one per episode or per change), so all since the last closed episode are kept. An
    episode's task (:meth:`for_episode`) is the last message at or before its first frame, else the first one
    inside it, else ``fallback``; asked when the episode closes, by which time every message up to its last
    frame has arrived.
    """

    def __init__(self, fallback: str):
        self.fallback = fallback
        self.messages: list[tuple[float, str]] = []  # (stamp s, text), in arrival (stamp) order

    def add(self, stamp: float, text: str) -> None:
        """A task message stamped ``stamp`` seconds; empty texts are ignored."""
        text = text.strip()
        if text:
            self.messages.append((stamp, text))

    def for_episode(self, first: float, last: float) -> str:
        """The task of the episode whose frames run from ``first`` to ``last`` seconds."""
        before = [t for ts, t in self.messages if ts <= first]
        if before:
            return before[-1]
        inside = [t for ts, t in self.messages if first < ts <= last]
        return inside[0] if inside else self.fallback

    def forget_through(self, t: float) -> None:
        """Drop messages at or before ``t`` but the latest of them (it still holds for the next episode)."""
        older = [m for m in self.messages if m[0] <= t]
        self.messages = older[-1:] + [m for m in self.messages if m[0] > t]


@dataclass
class OpenEpisode:
    """An episode being written: every tick matched to it, whether each was written, and camera offsets.

    Decoded camera frames wait in ``images`` and go to the HDF5 in batches (:meth:`flush_images`).
    """

    index: int
    demo: DemoWriter
    ticks: list[float] = field(default_factory=list)  # reference times (s) of the ticks matched so far
    written: list[bool] = field(default_factory=list)  # per tick: its images were written (in sync when matched)
    image_offsets: dict[str, list[float]] = field(default_factory=dict)  # per camera feature, per tick
    # Per camera feature: frames not flushed yet (arrays, or futures of frames still decoding).
    images: dict[str, list[np.ndarray | Future[np.ndarray]]] = field(default_factory=dict)

    @classmethod
    def begin(cls, index: int, writer: EpisodeStoreWriter, cameras: Sequence[str]) -> OpenEpisode:
        """Start episode ``index`` as the next demo of ``writer``."""
        return cls(index, writer.begin_episode(), image_offsets={c: [] for c in cameras},
                   images={c: [] for c in cameras})  # fmt: skip

    def add(self, tick: float, offsets: Sequence[tuple[str, float]],
            frames: Mapping[str, np.ndarray | Future[np.ndarray]] | None) -> None:
        """Record a tick: its camera offsets and, when it is written, its frames (``None``: not written)."""
        self.ticks.append(tick)
        self.written.append(frames is not None)
        for name, d in offsets:
            self.image_offsets[name].append(d)
        if frames is not None:
            for name, frame in frames.items():
                self.images[name].append(frame)
            if len(next(iter(self.images.values()), ())) >= _IMAGE_BATCH:
                self.flush_images()

    def flush_images(self) -> None:
        """Write the frames waiting in ``images`` (as they are: no batch copy), once those decoding are done."""
        for name, frames in self.images.items():
            if frames:
                self.demo.write_frames(name, [f.result() if isinstance(f, Future) else f for f in frames])
                frames.clear()


class EpisodeCloser:
    """Finalises episodes: length bounds, low-dim alignment, NaN check, then the demo written or discarded.

    What it did goes into ``report``: episodes written, episodes skipped as too short, misalignment per
    feature. Success flags, which may arrive after an episode's last frame, are set at the end
    (:meth:`mark_success`).
    """

    def __init__(
        self,
        writer: EpisodeStoreWriter,
        streams: LowDimStreams,
        report: IngestReport,
        *,
        min_frames: int,
        max_frames: int,
        camera_tolerances: Mapping[str, float],
        tolerance: float,
        datagen: DatagenMap | None = None,
        source: Path,
        tasks: EpisodeTasks | None = None,
    ):
        self.writer = writer
        self.streams = streams
        self.report = report
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.camera_tolerances = dict(camera_tolerances)
        self.tolerance = tolerance  # the largest of all streams: sets the low-dim look-behind kept
        self.datagen = datagen or DatagenMap()
        self.source = source  # named in errors and in each demo's attrs
        self.tasks = tasks  # each demo's task attribute, when the recording carries tasks
        self.demos: dict[int, str] = {}  # recording episode -> demo written

    def close(self, ep: OpenEpisode) -> EpisodeReport | None:
        """Write ``ep`` (its frames in sync) or discard it (too short); ``None`` when discarded.

        Raises:
            IngestError: the episode is longer than ``max_frames``, or a low-dim feature holds NaN/inf.
        """
        ep.flush_images()
        n = len(ep.ticks)
        if n < self.min_frames:
            self.writer.discard_open_episode()
            if n:
                self.report.short_episodes_skipped += 1
            return None
        if n > self.max_frames:
            raise IngestError(
                f"{self.source}: episode {ep.index} has {n} frames, more than the limit of {self.max_frames}"
            )
        all_ticks = np.asarray(ep.ticks)
        # Ticks found out of sync when matched were never written; align the rest.
        ticks = all_ticks[np.asarray(ep.written, bool)]
        aligned = self.streams.align(all_ticks, ticks)
        for name, (ok, offsets) in aligned.all_ticks.items():
            self.report.note_misaligned(name, ok, offsets)
        for name, offs in ep.image_offsets.items():
            arr = np.asarray(offs)
            self.report.note_misaligned(name, arr <= self.camera_tolerances[name], arr)
        self._check_finite(ep.index, aligned.values, ticks)
        if len(ticks) == 0:
            self._discard()
            return None
        obs = aligned.values
        ep.demo.extend(ticks - ticks[0], obs, skip_roles=("image",), datagen=_datagen(self.datagen, obs))
        ok = aligned.ok
        ep.demo.keep(ok)  # rare: ticks the match-time check let through but full alignment rejects
        kept = int(ok.sum())
        dropped = n - kept
        if kept < self.min_frames:
            self._discard()
            return None
        name = ep.demo.name
        kept_ticks = ticks[ok]
        extra: dict[str, Any] = {}
        if self.tasks is not None:
            extra["task"] = self.tasks.for_episode(float(kept_ticks[0]), float(kept_ticks[-1]))
            self.tasks.forget_through(float(kept_ticks[-1]))
        ep.demo.close(source=self.source.name, recording_episode=ep.index, t0_s=float(ticks[0]),
                      dropped_frames=dropped, **extra)  # fmt: skip
        self.demos[ep.index] = name
        rep = EpisodeReport(name, kept, float(kept_ticks[-1] - kept_ticks[0]), dropped, None)
        self.report.episodes.append(rep)
        # Keep low-dim samples that a following episode may still need (hold/nearest look-behind).
        self.streams.forget_before(ticks[-1] - self.tolerance * 4 - 1.0)
        return rep

    def _discard(self) -> None:
        """Drop the open demo, counted as an episode too short to keep."""
        self.writer.discard_open_episode()
        self.report.short_episodes_skipped += 1

    def _check_finite(self, index: int, values: Mapping[str, np.ndarray], ticks: np.ndarray) -> None:
        for f in self.streams.features:
            if np.issubdtype(values[f.name].dtype, np.floating):
                bad = ~np.isfinite(values[f.name])
                if bad.any():
                    row = int(np.argwhere(bad)[0][0])
                    raise IngestError(
                        f"{self.source}: topic {f.topic} -> feature {f.name!r} holds NaN/inf values "
                        f"(episode {index}, t={ticks[row] - ticks[0]:.3f} s)"
                    )

    def mark_success(self, success: Mapping[int, bool]) -> None:
        """Set the success flag of each written episode from ``{recording episode: success}``."""
        for ep, ok in success.items():
            name = self.demos.get(ep)
            if name is None:
                continue
            self.writer.set_attrs(name, success=ok)
            for e in self.report.episodes:
                if e.name == name:
                    e.success = ok


class _MessageIngest:
    """The streaming pass over a message recording: probe, then each message through the steps above."""

    # The steps and the output, set up by _run once the probe has given the schema.
    split: EpisodeSplitter
    matcher: CameraMatcher
    streams: LowDimStreams
    closer: EpisodeCloser
    writer: EpisodeStoreWriter

    def __init__(
        self,
        info: PathInfo,
        out: Path,
        tm: TopicMap,
        min_frames: int | None,
        max_frames: int,
        progress: Callable[[float], None] | None,
        image_compression: ImageCompression = DEFAULT_IMAGE_COMPRESSION,
    ):
        self.info = info
        self.image_compression = image_compression
        self.path, self.out, self.tm = info.path, out, tm
        self.min_frames = min_frames or tm.episodes.min_frames
        self.max_frames = max_frames
        self.progress = progress
        self.features = list(tm.features)
        self.cameras = [f for f in tm.features if f.role == "image"]
        self.lowdim = [f for f in tm.features if f.role != "image"]
        self.report = IngestReport(str(self.path), str(out), fps=tm.fps)
        self.image_shapes: dict[str, tuple[int, ...]] = {}  # per camera feature, from the schema
        self.episode: OpenEpisode | None = None
        self._decoders: ThreadPoolExecutor | None = None  # compressed camera frames decode here

    # -- helpers ------------------------------------------------------------------------------------------
    def _err(self, msg: str) -> IngestError:
        return IngestError(f"{self.path}: {msg}")

    def _stamp(self, m: Any) -> float:
        from robodata.msgconv import stamp_ns

        ns = None
        try:
            ns = stamp_ns(m.data)
        except Exception:  # noqa: BLE001 - messages without a usable header fall back to the log time
            ns = None
        return (ns if ns else m.log_time_ns) * _NS

    def _convert(self, f: FeatureMap, m: Any) -> np.ndarray:
        from robodata.msgconv import to_array

        try:
            if f.fields:
                return np.concatenate(
                    [np.asarray(to_array(m.data, x, m.msgtype, f.select), np.float64).reshape(-1) for x in f.fields]
                )
            return to_array(m.data, f.field, m.msgtype, f.select)
        except RobodataError as err:
            raise self._err(f"topic {f.topic} -> feature {f.name!r}: {err}") from err

    def _task_text(self, field: str | None, m: Any) -> str:
        """The text of a task message (``field`` of it: a string, or UTF-8 bytes)."""
        from robodata.msgconv import get_field

        try:
            value = get_field(m.data, field, m.msgtype)
        except RobodataError as err:
            raise self._err(f"topic {m.topic} -> task: {err}") from err
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value).decode("utf-8", "replace")
        if not isinstance(value, str):
            raise self._err(f"topic {m.topic} -> task: field {field or '<message>'!r} of {m.msgtype} is a "
                            f"{type(value).__name__}, not a string (the task instruction is text)")
        return value

    # -- main ---------------------------------------------------------------------------------------------
    def run(self) -> IngestReport:
        from robodata.readers import open_recording
        from robodata.readers.base import RecordingError

        try:
            # Ingest checks MCAP chunk CRCs: a flipped byte that still decompresses must not become data.
            opts = {"validate_crcs": True} if self.info.kind is PathKind.MCAP else {}
            reader_cm = open_recording(self.path, **opts)
        except RecordingError as err:
            raise IngestError(str(err)) from err
        try:
            with reader_cm as reader:
                return self._run(reader)
        except (RecordingError, EpisodeStoreError, TopicMapError) as err:
            msg = str(err)
            raise IngestError(msg if str(self.path) in msg else f"{self.path}: {msg}") from err

    def _probe(self, reader: Any) -> dict[str, np.ndarray]:
        """Check every mapped topic is present and convert its first message, to learn feature shapes."""
        topics = reader.topics()
        total = sum(getattr(i, "count", 0) for i in topics.values())
        if not topics or total == 0:
            raise self._err("the recording contains no messages")
        present = ", ".join(sorted(topics)) or "none"
        for f in self.tm.features:
            if f.topic not in topics or topics[f.topic].count == 0:
                if f.optional:
                    continue
                raise self._err(f"topic {f.topic} (mapped to feature {f.name!r}) is not in the recording; topics: {present}")
        for t, what in ((self.tm.reference.topic, "reference clock"), (self.tm.episodes.topic, "episode marker")):
            if t and (t not in topics or topics[t].count == 0):
                if what == "episode marker" and self.tm.episodes.split != "marker":
                    continue
                raise self._err(f"topic {t} ({what}) is not in the recording; topics: {present}")
        task = self.tm.task_topic
        if task is not None and task.topic not in topics and not task.optional:
            raise self._err(f"topic {task.topic} (the task instruction) is not in the recording; topics: {present} "
                            "(set task.optional: true to use the default task without it)")
        self.features = [f for f in self.tm.features if f.topic in topics and topics[f.topic].count]
        self.cameras = [f for f in self.features if f.role == "image"]
        self.lowdim = [f for f in self.features if f.role != "image"]
        return self._first_values(reader, topics)

    def _first_values(self, reader: Any, topics: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Each feature's value in the first message of its topic. The topics that start within a second of
        the earliest are read in one pass from the start, any later one on its own; the reader's chunk
        prefetch threads are off meanwhile (a probe needs a chunk or two, not the chunks queued after them)."""
        by_topic: dict[str, list[FeatureMap]] = {}
        for f in self.features:
            by_topic.setdefault(f.topic, []).append(f)
        starts = {t: topics[t].first_ns for t in by_topic}
        known = [v for v in starts.values() if v is not None]
        early = {t for t, v in starts.items() if known and v is not None and v - min(known) <= 1_000_000_000}
        first: dict[str, np.ndarray] = {}
        workers = getattr(reader, "workers", None)
        if workers is not None:
            reader.workers = 0
        try:
            passes = ([sorted(early)] if early else []) + [[t] for t in sorted(set(by_topic) - early)]
            for wanted in passes:
                left = set(wanted)
                for m in reader.messages(wanted):
                    if m.topic in left:
                        left.discard(m.topic)
                        for f in by_topic[m.topic]:
                            first[f.name] = self._convert(f, m)
                        if not left:
                            break
        finally:
            if workers is not None:
                reader.workers = workers
        return first

    def _schema(self, first: dict[str, np.ndarray]) -> EpisodeSchema:
        feats = []
        for f in self.features:
            v = first[f.name]
            role = f.role
            dtype = "uint8" if role == "image" else ("bool" if v.dtype == bool else "float32")
            shape = tuple(v.shape) if role == "image" else (int(np.prod(v.shape)) if v.ndim else 1,)
            if role == "pose" and shape != (7,):
                raise self._err(f"feature {f.name!r} has role pose but its field gives {shape[0]} values, not 7 (xyz + quaternion)")
            if role == "image" and (v.ndim != 3 or v.shape[2] != 3):
                raise self._err(f"feature {f.name!r} is an image feature but converts to shape {v.shape}")
            names = f.names or f.select
            if not f.names and f.select and shape[0] == 7 * len(f.select):  # TF child frames: a pose (7 values) each
                names = [f"{frame}.{n}" for frame in f.select for n in POSE_NAMES] if len(f.select) > 1 else None
            if not names and role == "pose":
                names = list(POSE_NAMES)
            if names and len(names) != shape[0]:
                raise self._err(f"feature {f.name!r} lists {len(names)} names for {shape[0]} values")
            feats.append(FeatureSpec(f.name, role, shape, dtype, list(names) if names else None))
        return EpisodeSchema(
            feats, self.tm.fps, task=self.tm.task_text, robot_type=self.tm.robot_type,
            extra={"source": self.path.name, "topic_map": self.tm.model_dump(mode="json")},
        )

    def _run(self, reader: Any) -> IngestReport:
        first = self._probe(reader)
        schema = self._schema(first)
        tm = self.tm
        self.report.bytes_read = self.info.size_bytes
        tolerance = max([tm.sync_for(f).tolerance_s for f in self.features] + [tm.sync.tolerance_s])
        cam_tol = {c.name: tm.sync_for(c).tolerance_s for c in self.cameras}
        self.image_shapes = {c.name: schema_shape_full(schema, c.name) for c in self.cameras}
        self.split = EpisodeSplitter(tm.episodes.split, tm.episodes.gap_s)
        self.matcher = CameraMatcher(self.cameras, cam_tol, tolerance=tolerance)
        self.streams = LowDimStreams(
            self.lowdim, {f.name: tm.sync_for(f) for f in self.lowdim},
            {f.name: schema_shape(schema, f.name) for f in self.lowdim}, source=self.path,
        )  # fmt: skip
        self.writer = EpisodeStoreWriter(self.out, schema, env_name=f"robodata/{self.path.name}",
                                         env_kwargs={"fps": tm.fps, "source": self.path.name},
                                         image_compression=self.image_compression)  # fmt: skip
        tasks = EpisodeTasks(tm.task_text or self.path.stem) if tm.task_topic else None
        try:
            self.closer = EpisodeCloser(
                self.writer, self.streams, self.report, min_frames=self.min_frames, max_frames=self.max_frames,
                camera_tolerances=cam_tol, tolerance=tolerance, datagen=tm.datagen, source=self.path, tasks=tasks,
            )  # fmt: skip
            stats, success = self._stream(reader)
            self.closer.mark_success(success)
            self._summarise(stats)
            self.writer.commit()
        except BaseException:
            self.writer.abort()
            raise
        finally:
            if self._decoders is not None:
                self._decoders.shutdown(wait=True, cancel_futures=True)
                self._decoders = None
        if self.progress:
            self.progress(1.0)
        return self.report

    def _stream(self, reader: Any) -> tuple[dict[str, StreamStats], dict[int, bool]]:
        """Every message once, in log-time order: stamps checked, each step fed; returns stats and successes."""
        tm = self.tm
        split, matcher, streams = self.split, self.matcher, self.streams
        ref_topic = tm.reference.topic
        rate_dt = 1.0 / tm.reference.rate_hz if tm.reference.rate_hz else None
        marker_topic = tm.episodes.topic if tm.episodes.split == "marker" else None
        success_feature = (FeatureMap(name="success", topic=tm.success.topic, role="extra", field=tm.success.field)
                           if tm.success else None)  # fmt: skip
        cam_topics = set(matcher.by_topic)
        low_by_topic: dict[str, list[FeatureMap]] = {}
        for f in self.lowdim:
            low_by_topic.setdefault(f.topic, []).append(f)
        ordered = cam_topics | set(low_by_topic) | {ref_topic}  # topics whose stamps must strictly increase
        info = reader.topics()
        task_src, tasks = tm.task_topic, self.closer.tasks
        task_topic = task_src.topic if task_src is not None and tasks is not None and task_src.topic in info else None
        topics = set(tm.topics)
        if task_src is not None and task_topic is None:
            topics.discard(task_src.topic)  # an optional task topic this recording lacks
        stats: dict[str, StreamStats] = {t: StreamStats() for t in topics}
        last_stamp: dict[str, float] = {}
        total_msgs = sum(info[t].count for t in topics if t in info) or 1
        success: dict[int, bool] = {}
        seen = 0
        next_rate_ref = None
        for m in reader.messages(sorted(topics)):
            seen += 1
            topic = m.topic
            ts = self._stamp(m)
            st = stats[topic]
            prev = last_stamp.get(topic)
            if prev is not None and ts <= prev and topic in ordered:
                kind = "repeats" if ts == prev else "goes backwards"
                raise self._err(
                    f"topic {topic}: timestamp {kind} at message {st.count + 1} "
                    f"({ts:.6f} s after {prev:.6f} s); timestamps must be strictly increasing"
                )
            last_stamp[topic] = ts
            st.add(ts)
            now = m.log_time_ns * _NS

            if topic == marker_topic:
                split.marker(str(getattr(m.data, "data", "")))
            if topic == task_topic and tasks is not None and task_src is not None:
                tasks.add(ts, self._task_text(task_src.field, m))
            if success_feature is not None and topic == success_feature.topic:
                val = np.asarray(self._convert(success_feature, m)).reshape(-1)
                success[split.success_episode] = bool(val[0]) if len(val) else False
            if topic in cam_topics:
                matcher.add_frame(topic, ts, m)
            lows = low_by_topic.get(topic)
            if lows:
                for f in lows:
                    streams.add(f.name, ts, self._convert(f, m))
            if topic == ref_topic:
                self._tick(ts)
            elif rate_dt is not None:
                if next_rate_ref is None:
                    next_rate_ref = ts
                while next_rate_ref <= ts:
                    self._tick(next_rate_ref)
                    next_rate_ref += rate_dt
            self.finalize(now)
            matcher.trim(now)
            if self.progress and seen % 2000 == 0:
                self.progress(min(1.0, seen / total_msgs))
        self.finalize(math.inf)
        self.close_episode()
        return stats, success

    def _tick(self, r: float) -> None:
        """A reference tick: queued for matching when it falls inside an episode."""
        ep = self.split.tick(r)
        if ep is not None:
            self.matcher.add_tick(r, ep)

    def finalize(self, upto: float) -> None:
        """Finalise the ticks whose candidates have all arrived: decide sync, then decode and write in-sync frames."""
        for match in self.matcher.ready(upto):
            ep = self.episode
            if ep is None or ep.index != match.episode:
                self.close_episode()
                ep = self.episode = OpenEpisode.begin(match.episode, self.writer, [c.name for c in self.cameras])
            # Decide before decoding: a frame out of sync is never decoded nor written.
            write = match.in_sync and self.streams.in_sync(match.tick)
            ep.add(match.tick, match.offsets, self._decode(match) if write else None)

    def _decode(self, match: CameraMatch) -> dict[str, np.ndarray | Future[np.ndarray]]:
        """The frames of a tick: raw rgb8 as views of their messages, compressed ones (JPEG/PNG) decoding in
        threads (PIL releases the GIL; :meth:`OpenEpisode.flush_images` waits for them), others converted."""
        frames: dict[str, np.ndarray | Future[np.ndarray]] = {}
        for c, message in match.picks:
            frame = _rgb8_view(c, message)
            if frame is None and message.msgtype.endswith(("/CompressedImage", "foxglove.CompressedImage")):
                if self._decoders is None:
                    self._decoders = ThreadPoolExecutor(_decode_threads(), thread_name_prefix="robodata-imdecode")
                frames[c.name] = self._decoders.submit(self._decode_one, c, message, match.tick)
                continue
            frames[c.name] = self._checked(c, self._convert(c, message) if frame is None else frame, match.tick)
        return frames

    def _decode_one(self, c: FeatureMap, message: Any, tick: float) -> np.ndarray:
        return self._checked(c, self._convert(c, message), tick)

    def _checked(self, c: FeatureMap, frame: np.ndarray, tick: float) -> np.ndarray:
        want = self.image_shapes[c.name]
        if frame.shape != want:
            raise self._err(f"topic {c.topic}: image size changed from {want} to {frame.shape} at t={tick:.3f} s")
        return frame

    def close_episode(self) -> None:
        """Close the open episode, if any (written or discarded by the closer)."""
        if self.episode is not None:
            self.closer.close(self.episode)
            self.episode = None

    def _summarise(self, stats: dict[str, StreamStats]) -> None:
        """Per-topic timing, the reference rate and frames outside episodes; refuse a recording with no episode."""
        tm, report = self.tm, self.report
        report.frames_outside_episodes = self.split.outside
        report.topics = {t: s.summary() for t, s in stats.items() if s.count}
        report.topic_gaps = {t: s.gaps[:2000] for t, s in stats.items() if s.count > 1}
        ref_topic = tm.reference.topic
        if ref_topic and stats[ref_topic].count > 1:
            report.reference_rate_hz = stats[ref_topic].median_rate_hz
        elif tm.reference.rate_hz:
            rate_dt = 1.0 / tm.reference.rate_hz
            report.reference_rate_hz = 1.0 / rate_dt  # the rate the ticks were spaced at
        if not report.episodes:
            why = (f"{report.short_episodes_skipped} episode(s) shorter than {self.min_frames} frames"
                   if report.short_episodes_skipped else "no reference frames inside an episode")  # fmt: skip
            dropped = {k: v for k, v in report.misaligned.items() if v["count"]}
            if dropped:
                why += f"; frames out of sync: {dropped}"
            raise self._err(f"no episode could be built ({why})")


def _decode_threads() -> int:
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return max(1, min(8, os.cpu_count() or 1))


def _rgb8_view(c: FeatureMap, m: Any) -> np.ndarray | None:
    """A whole ``sensor_msgs/Image`` (or ``foxglove.RawImage``) in ``rgb8`` with rows packed, as a read-only
    ``(H, W, 3)`` view of the message's bytes (no copy: the writer stores it as it is); ``None`` for anything else
    (converted instead)."""
    if c.field or c.fields or c.select or not m.msgtype.endswith(("/Image", "foxglove.RawImage")):
        return None
    img = m.data
    try:
        if str(img.encoding).lower() != "rgb8":
            return None
        h, w, step, data = int(img.height), int(img.width), int(img.step), img.data
    except AttributeError:
        return None
    if h <= 0 or w <= 0 or step != w * 3:
        return None
    buf = data if isinstance(data, np.ndarray) and data.dtype == np.uint8 else None
    if buf is None:
        try:
            buf = np.frombuffer(data, np.uint8)
        except (TypeError, ValueError):
            return None
    if buf.ndim != 1 or buf.size < h * step:
        return None
    return buf[: h * step].reshape(h, w, 3)


def schema_shape(schema: EpisodeSchema, name: str) -> int:
    """Values per frame of feature ``name`` (its shape flattened)."""
    f = next(x for x in schema.features if x.name == name)
    return int(np.prod(f.shape))


def schema_shape_full(schema: EpisodeSchema, name: str) -> tuple[int, ...]:
    """The per-frame shape of feature ``name``."""
    return next(x for x in schema.features if x.name == name).shape


def _datagen(datagen: DatagenMap, obs: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """MimicGen's ``datagen_info`` from the aligned features: poses as 4x4 matrices, subtask signals as bools."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for kind in ("object_pose", "eef_pose", "target_eef_pose"):
        for key, feat in getattr(datagen, kind).items():
            if feat in obs:
                out.setdefault(kind, {})[key] = pose_to_matrix(obs[feat]).astype(np.float32)
    for key, feat in datagen.subtask_term_signals.items():
        if feat in obs:
            out.setdefault("subtask_term_signals", {})[key] = np.asarray(obs[feat]).reshape(len(obs[feat]), -1)[:, 0] > 0.5
    return out
