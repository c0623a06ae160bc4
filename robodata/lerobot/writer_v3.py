"""Writing LeRobot v3.0 datasets: frames streamed in batches, cameras encoded in parallel threads, atomic.

``write_shard`` turns one episode store (Isaac Lab HDF5) into a complete small v3.0 dataset, the per-recording
*shard* that :func:`robodata.lerobot.aggregate.aggregate` later joins into a release.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robodata.atomic import AtomicPath
from robodata.formats.isaaclab import EpisodeStore, EpisodeStoreError
from robodata.formats.isaaclab_layout import ACTIONS
from robodata.lerobot import stats as st
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.features import arrow_schema, features_from_schema, table_keys, video_keys
from robodata.lerobot.layout import (
    ACTION_KEY,
    DATA_CHUNK_COLUMN,
    DATA_FILE_COLUMN,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_FEATURES,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    INFO_PATH,
    MODALITY_PATH,
    STATE_KEY,
    STATS_PATH,
    V30,
    camera_key,
    observation_key,
    v30_data_path,
    v30_video_path,
    video_column,
)
from robodata.lerobot.metadata import make_info, write_episodes_v30, write_json, write_tasks_v30
from robodata.lerobot.modality import modality_from_schema
from robodata.lerobot.video import CameraEncoder, VideoSettings

MB = 1024 * 1024


def next_file(chunk_index: int, file_index: int, chunks_size: int = DEFAULT_CHUNK_SIZE) -> tuple[int, int]:
    """The chunk/file indices after ``(chunk_index, file_index)`` (a new chunk every ``chunks_size`` files)."""
    file_index += 1
    if file_index == chunks_size:
        return chunk_index + 1, 0
    return chunk_index, file_index


def check_fps(fps: float, where: str) -> int:
    if fps <= 0 or abs(fps - round(fps)) > 1e-6:
        raise LeRobotError(f"{where}: fps {fps} is not a positive integer (LeRobot datasets need an integer fps)")
    return int(round(fps))


def column(values: np.ndarray, ft: Mapping[str, Any]) -> pa.Array:
    """A parquet column for a feature from ``(n, *shape)`` values."""
    dtype = np.dtype(ft["dtype"])
    arr = np.ascontiguousarray(values, dtype=dtype)
    shape = list(ft["shape"])
    if shape == [1]:
        return pa.array(arr.reshape(-1))
    flat = pa.array(arr.reshape(-1))
    for n in reversed(shape):
        flat = pa.FixedSizeListArray.from_arrays(flat, int(n))
    return flat


class EpisodeWriter:
    """Frames of one episode, added in batches; created by :meth:`LeRobotV3Writer.begin_episode`."""

    def __init__(self, w: LeRobotV3Writer, index: int, task_index: int, length: int | None,
                 columns: Mapping[str, Any] | None = None):
        self._w = w
        self._columns = dict(columns or {})
        self.index = index
        self.task_index = task_index
        self.length = 0
        self._expected = length
        self._sample = set(st.sample_indices(length).tolist()) if length else None
        self._vectors: dict[str, list[np.ndarray]] = {k: [] for k in w.vector_keys}
        self._images = {k: st.ImageStats() for k in w.video_keys}
        self._video_from = {k: w._video_frames[k] / w.fps for k in w.video_keys}
        for k in w.video_keys:
            w._encoders[k].start_episode()

    def add(self, batch: Mapping[str, np.ndarray]) -> None:
        """Append ``n`` frames: ``batch`` maps every non-default feature key to an ``(n, *shape)`` array."""
        w = self._w
        n = None
        for k in (*w.vector_keys, *w.video_keys):
            if k not in batch:
                raise LeRobotError(f"{w.root}: frame batch of episode {self.index} lacks feature {k!r}")
            m = len(batch[k])
            if n is None:
                n = m
            elif m != n:
                raise LeRobotError(f"{w.root}: feature {k!r} has {m} frames in a batch of {n}")
        if not n:
            return
        for k in w.vector_keys:
            self._vectors[k].append(np.asarray(batch[k], np.float32).reshape(n, -1))
        for k in w.video_keys:
            frames = np.asarray(batch[k])
            w._encoders[k].feed(frames)
            w._video_frames[k] += n
            for j in range(n):
                if self._sample is None or (self.length + j) in self._sample:
                    self._images[k].add(frames[j])
        self.length += n

    def end(self) -> int:
        """Write the episode's rows and metadata; returns its length."""
        w = self._w
        n = self.length
        if n == 0:
            raise LeRobotError(f"{w.root}: episode {self.index} has no frames")
        if self._expected is not None and n != self._expected:
            raise LeRobotError(f"{w.root}: episode {self.index} got {n} frames, {self._expected} announced")
        frame_index = np.arange(n, dtype=np.int64)
        cols: dict[str, np.ndarray] = {k: np.concatenate(v) for k, v in self._vectors.items()}
        cols["timestamp"] = (frame_index / w.fps).astype(np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(n, self.index, np.int64)
        cols["index"] = np.arange(w.total_frames, w.total_frames + n, dtype=np.int64)
        cols["task_index"] = np.full(n, self.task_index, np.int64)
        table = pa.Table.from_arrays([column(cols[k], w.features[k]) for k in w.table_keys], schema=w.schema)
        data_file = w._data_writer()
        data_file.write_table(table)
        ep_stats = {k: st.vector_stats(cols[k]) for k in w.table_keys}
        for k in w.video_keys:
            ep_stats[k] = self._images[k].stats()
        row: dict[str, Any] = {
            "episode_index": self.index,
            "tasks": [w.tasks[self.task_index]],
            "length": n,
            DATA_CHUNK_COLUMN: w._data_loc[0],
            DATA_FILE_COLUMN: w._data_loc[1],
            "dataset_from_index": w.total_frames,
            "dataset_to_index": w.total_frames + n,
        }
        for k in w.video_keys:
            row[video_column(k, "chunk_index")] = w._video_loc[k][0]
            row[video_column(k, "file_index")] = w._video_loc[k][1]
            row[video_column(k, "from_timestamp")] = self._video_from[k]
            row[video_column(k, "to_timestamp")] = self._video_from[k] + n / w.fps
        row.update(st.flatten(ep_stats))
        row.update(self._columns)
        w._episode_rows.append(row)
        w._episode_stats.append(ep_stats)
        w.total_frames += n
        w._open = None
        return n


class LeRobotV3Writer:
    """Writes one LeRobot v3.0 dataset folder, atomically (a temp sibling renamed on :meth:`commit`)::

        with LeRobotV3Writer(root, fps=30, features=feats) as w:
            ep = w.begin_episode("pick the cube", length=len(frames))
            ep.add({"observation.state": s, "action": a, "observation.images.front": rgb})
            ep.end()

    ``features`` are lerobot features (see :func:`robodata.lerobot.features.features_from_schema`); each video
    feature gets its own encoder thread writing one continuous MP4 (episodes start on keyframes). A dataset
    may have no state or action (observation-only episodes: video and task text). ``info_extra`` adds keys to
    ``meta/info.json`` (never replacing lerobot's).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fps: int,
        features: Mapping[str, Mapping[str, Any]],
        robot_type: str | None = None,
        video: VideoSettings | None = None,
        data_files_size_in_mb: int = DEFAULT_DATA_FILE_SIZE_IN_MB,
        video_files_size_in_mb: int = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        modality: Mapping[str, Any] | None = None,
        info_extra: Mapping[str, Any] | None = None,
    ):
        self.root = Path(root)
        self.modality = modality
        self.info_extra = dict(info_extra or {})
        self.fps = check_fps(fps, str(self.root))
        self.video = (video or VideoSettings()).resolved()
        feats = {k: dict(v) for k, v in features.items() if k not in DEFAULT_FEATURES}
        for k in video_keys(feats):
            h, w_ = feats[k]["shape"][:2]
            feats[k]["info"] = self.video.info(h, w_, self.fps)
        feats.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
        self.features = feats
        self.robot_type = robot_type
        self.video_keys = video_keys(feats)
        self.table_keys = table_keys(feats)
        self.vector_keys = [k for k in self.table_keys if k not in DEFAULT_FEATURES]
        self.schema = arrow_schema(feats)
        self.tasks: list[str] = []
        self.total_frames = 0
        self._data_mb = data_files_size_in_mb
        self._video_mb = video_files_size_in_mb
        self._episode_rows: list[dict[str, Any]] = []
        self._episode_stats: list[dict[str, Any]] = []
        self._open: EpisodeWriter | None = None
        self._atomic = AtomicPath(self.root, kind="dir")
        self.tmp = self._atomic.tmp
        self._data_loc = (0, 0)
        self._data_pq: pq.ParquetWriter | None = None
        self._video_loc = {k: (0, 0) for k in self.video_keys}
        self._video_frames = {k: 0 for k in self.video_keys}
        self._encoders: dict[str, CameraEncoder] = {}
        for k in self.video_keys:
            self._encoders[k] = self._new_encoder(k)
        self.committed = False

    @property
    def total_episodes(self) -> int:
        return len(self._episode_rows)

    def _new_encoder(self, key: str) -> CameraEncoder:
        h, w = self.features[key]["shape"][:2]
        path = self.tmp / v30_video_path(key, *self._video_loc[key])
        return CameraEncoder(path, w, h, self.fps, self.video)

    def _data_writer(self) -> pq.ParquetWriter:
        path = self.tmp / v30_data_path(*self._data_loc)
        if self._data_pq is not None and path.stat().st_size >= self._data_mb * MB:
            self._data_pq.close()
            self._data_pq = None
            self._data_loc = next_file(*self._data_loc)
            path = self.tmp / v30_data_path(*self._data_loc)
        if self._data_pq is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_pq = pq.ParquetWriter(path, self.schema)
        return self._data_pq

    def _roll_videos(self) -> None:
        for k in self.video_keys:
            enc = self._encoders[k]
            if enc.path.exists() and enc.path.stat().st_size >= self._video_mb * MB:
                enc.close()
                self._video_loc[k] = next_file(*self._video_loc[k])
                self._video_frames[k] = 0
                self._encoders[k] = self._new_encoder(k)

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            self.tasks.append(task)
        return self.tasks.index(task)

    def begin_episode(self, task: str, length: int | None = None,
                      columns: Mapping[str, Any] | None = None) -> EpisodeWriter:
        """Start the next episode (``length``, when known, lets image stats sample frames like lerobot).

        ``columns`` are extra per-episode columns of ``meta/episodes`` (scalars or strings, e.g. a layer name);
        every episode of a dataset should give the same keys."""
        if self._open is not None:
            raise LeRobotError(f"{self.root}: end episode {self._open.index} before starting another")
        clash = sorted(set(columns or {}) & {"episode_index", "tasks", "length", DATA_CHUNK_COLUMN, DATA_FILE_COLUMN})
        if clash:
            raise LeRobotError(f"{self.root}: extra episode columns {clash} would overwrite lerobot's own")
        self._roll_videos()
        self._open = EpisodeWriter(self, self.total_episodes, self.task_index(task), length, columns)
        return self._open

    def commit(self) -> Path:
        """Close the files, write ``meta/`` and publish the folder as ``root`` (atomically); returns ``root``."""
        if self._open is not None:
            raise LeRobotError(f"{self.root}: episode {self._open.index} was not ended")
        if not self._episode_rows:
            raise LeRobotError(f"{self.root}: no episodes were written")
        for enc in self._encoders.values():
            enc.close()
        if self._data_pq is not None:
            self._data_pq.close()
        info = make_info(V30, fps=self.fps, features=self.features, robot_type=self.robot_type,
                         total_episodes=self.total_episodes, total_frames=self.total_frames, total_tasks=len(self.tasks))  # fmt: skip
        info["video_files_size_in_mb"] = self._video_mb
        info["data_files_size_in_mb"] = self._data_mb
        info.update({k: v for k, v in self.info_extra.items() if k not in info})  # robodata's marks [extension]
        write_json(self.tmp / INFO_PATH, info)
        write_json(self.tmp / STATS_PATH, st.to_json(st.aggregate(self._episode_stats)))
        write_tasks_v30(self.tmp, self.tasks)
        write_episodes_v30(self.tmp, self._episode_rows)
        if self.modality is not None:
            write_json(self.tmp / MODALITY_PATH, self.modality)
        self._atomic.commit()
        self.committed = True
        return self.root

    def abort(self) -> None:
        """Stop the encoders and remove the temporary folder; ``root`` stays as it was."""
        for enc in self._encoders.values():
            enc.abort()
        if self._data_pq is not None:
            self._data_pq.close()
        self._atomic.abort()

    def __enter__(self) -> LeRobotV3Writer:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self.commit()
            except BaseException:
                self.abort()
                raise
        else:
            self.abort()


@dataclass
class ShardReport:
    """What :func:`write_shard` wrote (for the asset's metadata)."""

    path: Path
    episodes: int
    frames: int
    fps: int
    tasks: list[str]
    video_keys: list[str]
    codec: str
    seconds: float
    bytes: int = 0
    episode_lengths: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what reading the store assumed (EpisodeStore.notes)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def write_shard(
    store_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    video_codec: str = "libsvtav1",
    crf: int | None = 30,
    gop: int = 2,
    preset: int | str | None = None,
    task: str | None = None,
    robot_type: str | None = None,
    episodes: list[str] | None = None,
    batch_frames: int = 16,
    fps: float | None = None,
    quaternion_order: str | None = None,
    quaternion_columns: Mapping[str, Sequence[int]] | None = None,
) -> ShardReport:
    """Write the episodes of one episode store (Isaac Lab HDF5) as a complete LeRobot v3.0 dataset in ``out_dir``.

    The task of an episode is ``task`` if given, else the demo's ``task`` attribute, else the store's task,
    else the store's file name. ``episodes`` selects demos by name (default: all, in order). ``fps``,
    ``quaternion_order`` and ``quaternion_columns`` read a file of Isaac Lab's recorder as ``robodata ingest``
    does (:class:`~robodata.formats.isaaclab.EpisodeStore`); what that assumed is in the report's ``notes``.

    Raises:
        LeRobotError: the store cannot be read, has no episodes, or its fps is not an integer.
    """
    t0 = time.perf_counter()
    store_path = Path(store_path)
    try:
        store = EpisodeStore(store_path, fps=fps, quaternion_order=quaternion_order,
                             quaternion_columns=quaternion_columns)
    except EpisodeStoreError as err:
        raise LeRobotError(str(err)) from err
    with store:
        schema = store.schema
        notes = store.notes
        rate = check_fps(schema.fps, str(store_path))
        names = episodes if episodes is not None else store.demo_names
        if not names:
            raise LeRobotError(f"{store_path}: the episode store has no episodes")
        features = features_from_schema(schema, {})
        settings = VideoSettings(codec=video_codec, crf=crf, gop=gop, preset=preset)
        states = schema.of_role("state")
        poses = schema.of_role("pose")
        cams = schema.cameras
        lengths = []
        with LeRobotV3Writer(out_dir, fps=rate, features=features, robot_type=robot_type or schema.robot_type,
                             video=settings, modality=modality_from_schema(schema)) as w:  # fmt: skip
            for name in names:
                if name not in store.demo_names:
                    raise LeRobotError(f"{store_path}: no episode {name!r}")
                g = store.group(name)
                n = store.num_samples(name)
                ep_task = task or str(store.attrs(name).get("task") or schema.task or store_path.stem)
                ep = w.begin_episode(ep_task, length=n)
                for s in range(0, n, batch_frames):
                    e = min(n, s + batch_frames)
                    batch: dict[str, np.ndarray] = {}
                    if STATE_KEY in w.features:
                        if all(store.has(name, f.name) for f in states):
                            parts = [store.feature(name, f.name, s, e).reshape(e - s, -1) for f in states]
                            batch[STATE_KEY] = np.concatenate(parts, axis=1)
                        else:
                            batch[STATE_KEY] = store.state_vector(name, s, e)
                    if ACTION_KEY in w.features:
                        batch[ACTION_KEY] = g[ACTIONS][s:e]
                    for f in poses:
                        batch[observation_key(f.name)] = store.feature(name, f.name, s, e).reshape(e - s, -1)
                    for f in cams:
                        if not store.has(name, f.name):
                            raise LeRobotError(f"{store_path}: {name} lacks camera {f.h5path}")
                        batch[camera_key(f.name)] = store.feature(name, f.name, s, e)
                    ep.add(batch)
                lengths.append(ep.end())
            tasks = list(w.tasks)
            codec = w.video.codec
    out = Path(out_dir)
    return ShardReport(out, len(lengths), sum(lengths), rate, tasks, video_keys(features), codec,
                       time.perf_counter() - t0, _folder_bytes(out), lengths, notes)  # fmt: skip
