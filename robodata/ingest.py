"""Ingest one recording (bag, MCAP or Isaac Lab HDF5) into a canonical, time-synced episode store.

Message recordings are read in one streaming pass. Camera frames are matched to the reference clock on the
fly with a small look-behind buffer of undecoded messages, so memory stays flat however long the bag is;
low-dimensional streams are buffered for one episode at a time and aligned when the episode closes.
Frames where any stream is farther from the reference clock than its tolerance are dropped and reported.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.errors import RobodataError
from robodata.formats.isaaclab import (
    EpisodeSchema,
    EpisodeStore,
    EpisodeStoreError,
    EpisodeStoreWriter,
    FeatureSpec,
)
from robodata.sync import StreamStats, align, pose_to_matrix
from robodata.topicmap import FeatureMap, TopicMap, TopicMapError

HDF5_SUFFIXES = (".hdf5", ".h5", ".he5")
POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")
_NS = 1e-9


class IngestError(RobodataError):
    """A recording cannot be turned into episodes (the message names the file and what is wrong)."""


@dataclass
class EpisodeReport:
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

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.episodes)

    @property
    def dropped_frames(self) -> int:
        return sum(e.dropped_frames for e in self.episodes)

    @property
    def duration_s(self) -> float:
        return sum(e.duration_s for e in self.episodes)

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
        }


def is_hdf5(path: str | Path) -> bool:
    return Path(path).suffix.lower() in HDF5_SUFFIXES


def ingest_recording(
    path: str | Path,
    out_path: str | Path,
    topic_map: TopicMap | None = None,
    *,
    min_frames: int | None = None,
    max_frames: int = 10**9,
    progress: Callable[[float], None] | None = None,
) -> IngestReport:
    """Turn a recording into an Isaac Lab HDF5 episode store at ``out_path`` (written atomically).

    Raises:
        IngestError: the recording is unreadable, empty, lacks a mapped topic, has timestamps out of order
            or non-finite values, or yields no episode.
    """
    path = Path(path)
    t0 = time.perf_counter()
    if not path.exists():
        raise IngestError(f"{path}: no such file or folder")
    if is_hdf5(path):
        report = _ingest_hdf5(path, Path(out_path), min_frames=min_frames or 1, max_frames=max_frames)
    else:
        if topic_map is None:
            raise IngestError(f"{path}: a message recording needs a topic map (none is configured for this file)")
        report = _MessageIngest(path, Path(out_path), topic_map, min_frames, max_frames, progress).run()
    report.seconds = time.perf_counter() - t0
    report.bytes_written = Path(out_path).stat().st_size
    return report


# ---------------------------------------------------------------------------------------------------------
# Isaac Lab HDF5 sources: validate, then copy demo by demo into the canonical layout.
# ---------------------------------------------------------------------------------------------------------


def _ingest_hdf5(path: Path, out: Path, *, min_frames: int, max_frames: int) -> IngestReport:
    try:
        src = EpisodeStore(path)
    except EpisodeStoreError as err:
        raise IngestError(str(err)) from err
    report = IngestReport(str(path), str(out), bytes_read=path.stat().st_size, fps=src.schema.fps)
    with src:
        if not src.demo_names:
            raise IngestError(f"{path}: /data holds no demo_N groups (no episodes)")
        schema = src.schema
        with EpisodeStoreWriter(out, schema, env_name=src.env_args.get("env_name", "robodata"),
                                env_kwargs=src.env_args.get("env_kwargs", {})) as dst:
            for name in src.demo_names:
                n = src.num_samples(name)
                if n < min_frames:
                    report.short_episodes_skipped += 1
                    continue
                if n > max_frames:
                    raise IngestError(f"{path}: /data/{name} has {n} frames, more than the limit of {max_frames}")
                ts = src.timestamps(name)
                if len(ts) != n:
                    raise IngestError(f"{path}: /data/{name} has {len(ts)} timestamps for {n} samples")
                if n > 1 and not np.all(np.diff(ts) > 0):
                    bad = int(np.argmax(np.diff(ts) <= 0)) + 1
                    raise IngestError(f"{path}: /data/{name} timestamps are not strictly increasing at frame {bad}")
                demo = dst.begin_episode(attrs={k: v for k, v in src.attrs(name).items() if k != "num_samples"})
                g = src.group(name)
                for batch_start in range(0, n, 256):
                    e = min(n, batch_start + 256)
                    obs = {}
                    for f in schema.features:
                        if f.role == "action":
                            continue
                        if f.name not in g["obs"]:
                            if f.role == "extra":
                                continue
                            raise IngestError(f"{path}: /data/{name}/obs lacks {f.name!r} (present in other demos)")
                        arr = g["obs"][f.name][batch_start:e]
                        _check_finite(arr, path, f"/data/{name}/obs/{f.name}", batch_start)
                        obs[f.name] = arr
                    actions = g["actions"][batch_start:e]
                    _check_finite(actions, path, f"/data/{name}/actions", batch_start)
                    states = g["states"][batch_start:e] if "states" in g else None
                    datagen = {}
                    if "datagen_info" in g["obs"]:
                        for kind, grp in g["obs"]["datagen_info"].items():
                            if hasattr(grp, "items"):
                                datagen[kind] = {k: d[batch_start:e] for k, d in grp.items() if hasattr(d, "shape")}
                    demo.extend(ts[batch_start:e], obs, actions, states=states, datagen=datagen)
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
# Message recordings (ROS 1/2 bags, MCAP): one streaming pass.
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Episode:
    index: int
    refs: list[float] = field(default_factory=list)  # reference times (s) of frames already finalised
    image_ok: list[bool] = field(default_factory=list)
    written: list[bool] = field(default_factory=list)  # frames whose images were written (in sync at finalise)
    image_offsets: dict[str, list[float]] = field(default_factory=dict)
    start: float = math.nan
    end: float = math.inf


class _MessageIngest:
    def __init__(
        self,
        path: Path,
        out: Path,
        tm: TopicMap,
        min_frames: int | None,
        max_frames: int,
        progress: Callable[[float], None] | None,
    ):
        self.path, self.out, self.tm = path, out, tm
        self.min_frames = min_frames or tm.episodes.min_frames
        self.max_frames = max_frames
        self.progress = progress
        self.cameras = [f for f in tm.features if f.role == "image"]
        self.lowdim = [f for f in tm.features if f.role != "image"]
        self.report = IngestReport(str(path), str(out), fps=tm.fps)

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

    # -- main ---------------------------------------------------------------------------------------------
    def run(self) -> IngestReport:
        from robodata.readers import open_recording
        from robodata.readers.base import RecordingError

        try:
            # Ingest checks MCAP chunk CRCs: a flipped byte that still decompresses must not become data.
            opts = {"validate_crcs": True} if self.path.is_file() and self.path.suffix.lower() == ".mcap" else {}
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
        self.features = [f for f in self.tm.features if f.topic in topics and topics[f.topic].count]
        self.cameras = [f for f in self.features if f.role == "image"]
        self.lowdim = [f for f in self.features if f.role != "image"]
        first: dict[str, np.ndarray] = {}
        for f in self.features:
            for m in reader.messages([f.topic]):
                first[f.name] = self._convert(f, m)
                break
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
            if not names and role == "pose":
                names = list(POSE_NAMES)
            if names and len(names) != shape[0]:
                raise self._err(f"feature {f.name!r} lists {len(names)} names for {shape[0]} values")
            feats.append(FeatureSpec(f.name, role, shape, dtype, list(names) if names else None))
        return EpisodeSchema(
            feats, self.tm.fps, task=self.tm.task, robot_type=self.tm.robot_type,
            extra={"source": self.path.name, "topic_map": self.tm.model_dump(mode="json")},
        )

    def _run(self, reader: Any) -> IngestReport:
        first = self._probe(reader)
        schema = self._schema(first)
        tm = self.tm
        ref_topic = tm.reference.topic
        rate_dt = 1.0 / tm.reference.rate_hz if tm.reference.rate_hz else None
        cam_by_topic: dict[str, list[FeatureMap]] = collections.defaultdict(list)
        for c in self.cameras:
            cam_by_topic[c.topic].append(c)
        low_by_topic: dict[str, list[FeatureMap]] = collections.defaultdict(list)
        for f in self.lowdim:
            low_by_topic[f.topic].append(f)
        cam_tol = {c.name: tm.sync_for(c).tolerance_s for c in self.cameras}
        max_tol = max([tm.sync_for(f).tolerance_s for f in self.features] + [tm.sync.tolerance_s])
        slack = 0.25  # transport latency allowed between a header stamp and its log time
        topics = set(tm.topics)
        stats: dict[str, StreamStats] = {t: StreamStats() for t in topics}
        last_stamp: dict[str, float] = {}
        info = reader.topics()
        total_msgs = sum(info[t].count for t in topics if t in info) or 1
        self.report.bytes_read = _size(self.path)

        # Look-behind buffers of undecoded camera messages: (stamp, message).
        cam_buf: dict[str, collections.deque] = {c: collections.deque() for c in cam_by_topic}
        low_buf: dict[str, list[tuple[float, np.ndarray]]] = {f.name: [] for f in self.lowdim}
        low_ptr: dict[str, int] = {f.name: 0 for f in self.lowdim}
        first_t: dict[str, float] = {}  # each low-dim stream's first sample time (for `default`)
        pending: collections.deque[tuple[float, int]] = collections.deque()  # (ref time, episode index)
        markers_open = tm.episodes.split != "marker"
        ep_counter = 0 if tm.episodes.split != "marker" else -1
        last_ref = -math.inf
        success: dict[int, bool] = {}
        cur: _Episode | None = None
        demo = None
        written_demo_by_ep: dict[int, str] = {}
        img_batch: dict[str, list[np.ndarray]] = {c.name: [] for c in self.cameras}

        writer = EpisodeStoreWriter(self.out, schema, env_name=f"robodata/{self.path.name}",
                                    env_kwargs={"fps": tm.fps, "source": self.path.name})
        try:
            def flush_images() -> None:
                for name, frames in img_batch.items():
                    if frames:
                        demo.write_feature(name, np.stack(frames))
                        frames.clear()

            def close_episode() -> None:
                nonlocal cur, demo
                if cur is None:
                    return
                flush_images()
                n = len(cur.refs)
                if n < self.min_frames:
                    writer.discard_open_episode()
                    if n:
                        self.report.short_episodes_skipped += 1
                    cur, demo = None, None
                    return
                if n > self.max_frames:
                    raise self._err(f"episode {cur.index} has {n} frames, more than the limit of {self.max_frames}")
                all_refs = np.asarray(cur.refs)
                written = np.asarray(cur.written, bool)
                # Frames found out of sync at finalise time were never written; align the rest.
                refs = all_refs[written]
                ok = np.ones(len(refs), bool)
                obs: dict[str, np.ndarray] = {}
                for f in self.lowdim:
                    samples = low_buf[f.name]
                    pol = tm.sync_for(f)
                    if samples:
                        t = np.fromiter((s[0] for s in samples), np.float64, len(samples))
                        v = np.stack([s[1].reshape(-1) for s in samples])
                    else:
                        t, v = np.zeros(0), np.zeros((0, schema_shape(schema, f.name)))
                    for which, at in (("all", all_refs), ("kept", refs)):
                        al = align(at, t, v, pol.method, pol.tolerance_s, is_pose=f.role == "pose")
                        if f.default is not None:  # before the stream's first sample: its declared default
                            before = at < first_t.get(f.name, math.inf)
                            if len(f.default) != al.values.reshape(len(at), -1).shape[1]:
                                raise self._err(f"feature {f.name!r}: default has {len(f.default)} values")
                            al.values[before] = np.asarray(f.default, al.values.dtype).reshape(al.values.shape[1:])
                            al.ok[before] = True
                            al.offsets[before] = 0.0
                        if which == "all":
                            self._note_misaligned(f.name, al.ok, al.offsets)
                    obs[f.name] = al.values
                    ok &= al.ok
                for c in self.cameras:
                    offs = np.asarray(cur.image_offsets[c.name])
                    self._note_misaligned(c.name, offs <= cam_tol[c.name], offs)
                for f in self.lowdim:
                    if f.role != "image" and np.issubdtype(obs[f.name].dtype, np.floating):
                        bad = ~np.isfinite(obs[f.name])
                        if bad.any():
                            row = int(np.argwhere(bad)[0][0])
                            raise self._err(
                                f"topic {f.topic} -> feature {f.name!r} holds NaN/inf values "
                                f"(episode {cur.index}, t={refs[row] - refs[0]:.3f} s)"
                            )
                if len(refs) == 0:
                    writer.discard_open_episode()
                    self.report.short_episodes_skipped += 1
                    cur, demo = None, None
                    return
                datagen = _datagen(tm, obs, schema)
                demo.extend(refs - refs[0], obs, skip_roles=("image",), datagen=datagen)
                demo.keep(ok)  # rare: frames the finalise-time check let through but full alignment rejects
                kept = int(ok.sum())
                dropped = n - kept
                if kept < self.min_frames:
                    writer.discard_open_episode()
                    self.report.short_episodes_skipped += 1
                    cur, demo = None, None
                    return
                name = demo.name
                demo.close(source=self.path.name, recording_episode=cur.index, t0_s=float(refs[0]),
                           dropped_frames=dropped)
                written_demo_by_ep[cur.index] = name
                kept_refs = refs[ok]
                self.report.episodes.append(
                    EpisodeReport(name, kept, float(kept_refs[-1] - kept_refs[0]), dropped, None)
                )
                # Keep low-dim samples that a following episode may still need (hold/nearest look-behind).
                horizon = refs[-1] - max_tol * 4 - 1.0
                for k in low_buf:
                    low_buf[k] = [s for s in low_buf[k] if s[0] >= horizon]
                    low_ptr[k] = 0
                cur, demo = None, None

            def lowdim_in_sync(r: float) -> bool:
                """Does every low-dim stream have a sample within its tolerance of ``r``? (all have arrived)"""
                for f in self.lowdim:
                    buf, pol = low_buf[f.name], tm.sync_for(f)
                    before_first = r < first_t.get(f.name, math.inf)
                    if f.default is not None and before_first:
                        continue
                    if not buf:
                        return False
                    p = low_ptr[f.name]
                    while p + 1 < len(buf) and buf[p + 1][0] <= r:
                        p += 1
                    low_ptr[f.name] = p
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

            def finalize(upto: float) -> None:
                """Finalise pending reference frames whose image candidates have all arrived."""
                nonlocal cur, demo
                while pending and pending[0][0] + max_tol + slack < upto:
                    r, ep = pending.popleft()
                    if cur is None or cur.index != ep:
                        close_episode()
                        cur = _Episode(ep, image_offsets={c.name: [] for c in self.cameras})
                        demo = writer.begin_episode()
                    all_ok = True
                    picks = []
                    for topic, feats in cam_by_topic.items():
                        buf = cam_buf[topic]
                        best, best_d = None, math.inf
                        for ts, m in buf:
                            d = abs(ts - r)
                            if d < best_d:
                                best, best_d = m, d
                        for c in feats:
                            picks.append((c, best))
                            cur.image_offsets[c.name].append(best_d)
                            if best_d > cam_tol[c.name]:
                                all_ok = False
                        # Drop buffered frames no later reference can prefer.
                        while len(buf) > 1 and buf[1][0] <= r:
                            buf.popleft()
                    # Decide before decoding: a frame out of sync is never decoded nor written.
                    write = all_ok and lowdim_in_sync(r)
                    if write:
                        for c, best in picks:
                            frame = self._convert(c, best)
                            want = schema_shape_full(schema, c.name)
                            if frame.shape != want:
                                raise self._err(
                                    f"topic {c.topic}: image size changed from {want} to {frame.shape} at t={r:.3f} s"
                                )
                            img_batch[c.name].append(frame)
                    cur.refs.append(r)
                    cur.image_ok.append(all_ok)
                    cur.written.append(write)
                    if len(img_batch[self.cameras[0].name] if self.cameras else ()) >= 16:
                        flush_images()

            def add_ref(r: float) -> None:
                nonlocal ep_counter, last_ref
                if tm.episodes.split == "gap" and last_ref > -math.inf and r - last_ref > tm.episodes.gap_s:
                    ep_counter += 1
                last_ref = r
                if markers_open and ep_counter >= 0:
                    pending.append((r, ep_counter))
                else:
                    self.report.frames_outside_episodes += 1

            seen = 0
            next_rate_ref = None
            for m in reader.messages(sorted(topics)):
                seen += 1
                topic = m.topic
                ts = self._stamp(m)
                st = stats[topic]
                prev = last_stamp.get(topic)
                if prev is not None and ts <= prev and (topic in cam_by_topic or topic in low_by_topic or topic == ref_topic):
                    kind = "repeats" if ts == prev else "goes backwards"
                    raise self._err(
                        f"topic {topic}: timestamp {kind} at message {st.count + 1} "
                        f"({ts:.6f} s after {prev:.6f} s); timestamps must be strictly increasing"
                    )
                last_stamp[topic] = ts
                st.add(ts)
                now = m.log_time_ns * _NS

                if tm.episodes.split == "marker" and topic == tm.episodes.topic:
                    text = str(getattr(m.data, "data", "")).strip().lower()
                    if text.startswith("end") or text.startswith("stop"):
                        markers_open = False
                    else:  # "start" (or any other marker): a new episode begins
                        markers_open = True
                        ep_counter += 1
                if tm.success and topic == tm.success.topic:
                    val = np.asarray(self._convert(FeatureMap(name="success", topic=topic, role="extra",
                                                              field=tm.success.field), m)).reshape(-1)
                    success[max(ep_counter, 0)] = bool(val[0]) if len(val) else False
                if topic in cam_by_topic:
                    cam_buf[topic].append((ts, m))
                if topic in low_by_topic:
                    for f in low_by_topic[topic]:
                        low_buf[f.name].append((ts, self._convert(f, m)))
                        first_t.setdefault(f.name, ts)
                if topic == ref_topic:
                    add_ref(ts)
                elif rate_dt is not None:
                    if next_rate_ref is None:
                        next_rate_ref = ts
                    while next_rate_ref <= ts:
                        add_ref(next_rate_ref)
                        next_rate_ref += rate_dt
                finalize(now)
                # Bound the camera look-behind: nothing older than the oldest pending frame's window is needed.
                horizon = (pending[0][0] if pending else now - slack) - max_tol
                for buf in cam_buf.values():
                    while len(buf) > 1 and buf[1][0] <= horizon:
                        buf.popleft()
                if self.progress and seen % 2000 == 0:
                    self.progress(min(1.0, seen / total_msgs))
            finalize(math.inf)
            close_episode()
            for ep, ok in success.items():
                if ep in written_demo_by_ep:
                    writer.set_attrs(written_demo_by_ep[ep], success=ok)
                    for e in self.report.episodes:
                        if e.name == written_demo_by_ep[ep]:
                            e.success = ok
            self.report.topics = {t: s.summary() for t, s in stats.items() if s.count}
            self.report.topic_gaps = {t: s.gaps[:2000] for t, s in stats.items() if s.count > 1}
            if ref_topic and stats[ref_topic].count > 1:
                self.report.reference_rate_hz = stats[ref_topic].median_rate_hz
            elif rate_dt:
                self.report.reference_rate_hz = 1.0 / rate_dt
            if not self.report.episodes:
                why = (f"{self.report.short_episodes_skipped} episode(s) shorter than {self.min_frames} frames"
                       if self.report.short_episodes_skipped else "no reference frames inside an episode")
                dropped = {k: v for k, v in self.report.misaligned.items() if v["count"]}
                if dropped:
                    why += f"; frames out of sync: {dropped}"
                raise self._err(f"no episode could be built ({why})")
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        if self.progress:
            self.progress(1.0)
        return self.report

    def _note_misaligned(self, name: str, ok: np.ndarray, offsets: np.ndarray) -> None:
        """Per feature: frames out of tolerance, frames with no sample at all, and the worst offset seen."""
        m = self.report.misaligned.setdefault(name, {"count": 0, "no_sample": 0, "worst_offset_ms": 0.0})
        m["count"] += int((~ok).sum())
        finite = np.isfinite(offsets)
        m["no_sample"] += int((~finite).sum())
        if finite.any():
            m["worst_offset_ms"] = round(max(m["worst_offset_ms"], float(offsets[finite].max()) * 1e3), 3)


def schema_shape(schema: EpisodeSchema, name: str) -> int:
    f = next(x for x in schema.features if x.name == name)
    return int(np.prod(f.shape))


def schema_shape_full(schema: EpisodeSchema, name: str) -> tuple[int, ...]:
    return next(x for x in schema.features if x.name == name).shape


def _datagen(tm: TopicMap, obs: dict[str, np.ndarray], schema: EpisodeSchema) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for kind in ("object_pose", "eef_pose", "target_eef_pose"):
        for key, feat in getattr(tm.datagen, kind).items():
            if feat in obs:
                out.setdefault(kind, {})[key] = pose_to_matrix(obs[feat]).astype(np.float32)
    for key, feat in tm.datagen.subtask_term_signals.items():
        if feat in obs:
            out.setdefault("subtask_term_signals", {})[key] = np.asarray(obs[feat]).reshape(len(obs[feat]), -1)[:, 0] > 0.5
    return out


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
