"""Episodes read back from LeRobot datasets of any version, re-based onto one release's global indices.

A release (or a conversion) is a sequence of :class:`SourceEpisode` s: each carries its frame rows (timestamps
rewritten as ``frame_index / fps``; a v2.0 table without ``frame_index`` gets one), its per-episode stats with
the index columns shifted (stats a source lacks are computed from its rows, and for cameras from sampled decoded
frames), and where its video lies (file, from, to) for every camera.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robodata.lerobot import stats as st
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.features import comparable
from robodata.lerobot.layout import DEFAULT_FEATURES, QUANTILE_KEYS, TASK_ANNOTATION_COLUMN
from robodata.lerobot.metadata import DatasetMeta, EpisodeMeta, read_meta


@dataclass
class SourceEpisode:
    """One episode of the output: new ``index``, rows already re-based, video segments in the source files."""

    index: int
    task_index: int
    task: str
    length: int
    table: pa.Table
    stats: dict[str, dict[str, np.ndarray]]
    videos: dict[str, tuple[Path, float, float]]
    origin: str


_REBASED = ("frame_index", "timestamp")


def check_compatible(metas: Sequence[DatasetMeta]) -> None:
    """All datasets share fps and features (video encoder settings aside); else name the first that differs."""
    ref = metas[0]
    ref_feats = comparable(ref.features)
    for m in metas[1:]:
        if m.fps != ref.fps:
            raise LeRobotError(f"{m.root}: fps {m.fps} differs from {ref.root} ({ref.fps})")
        feats = comparable(m.features)
        if feats != ref_feats:
            missing = sorted(set(ref_feats) - set(feats))
            extra = sorted(set(feats) - set(ref_feats))
            changed = sorted(k for k in set(feats) & set(ref_feats) if feats[k] != ref_feats[k])
            raise LeRobotError(
                f"{m.root}: features differ from {ref.root} (missing {missing}, extra {extra}, different {changed})"
            )


def merge_tasks(metas: Sequence[DatasetMeta]) -> list[str]:
    tasks: list[str] = []
    for m in metas:
        for t in m.tasks:
            if t not in tasks:
                tasks.append(t)
    return tasks


class FileCache:
    """Keeps the last-read data file (v3.0 files hold many consecutive episodes)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.table: pa.Table | None = None
        self.episode_col: np.ndarray | None = None

    def get(self, path: Path) -> tuple[pa.Table, np.ndarray]:
        if path != self.path:
            try:
                self.table = pq.read_table(path)
            except FileNotFoundError as err:
                raise LeRobotError(f"{path}: data file is missing") from err
            except Exception as err:
                raise LeRobotError(f"{path}: not a readable parquet file ({err})") from err
            if "episode_index" not in self.table.column_names:
                raise LeRobotError(f"{path}: lacks the 'episode_index' column")
            self.episode_col = self.table.column("episode_index").to_numpy()
            self.path = path
        assert self.table is not None and self.episode_col is not None
        return self.table, self.episode_col


def episode_rows_raw(meta: DatasetMeta, ep: EpisodeMeta, cache: FileCache | None = None) -> pa.Table:
    """The rows of ``ep`` as stored."""
    path = meta.data_file(ep)
    table, col = (cache or FileCache()).get(path)
    rows = np.flatnonzero(col == ep.index)
    if len(rows) == 0:
        raise LeRobotError(f"{path}: has no rows for episode {ep.index}")
    if rows[-1] - rows[0] + 1 == len(rows):
        t = table.slice(int(rows[0]), len(rows))
    else:
        t = table.take(pa.array(rows))
    return t


def episode_rows(meta: DatasetMeta, ep: EpisodeMeta, cache: FileCache | None = None) -> pa.Table:
    """The rows of ``ep`` with ``frame_index`` derived if absent and timestamps exactly ``frame_index / fps``."""
    path = meta.data_file(ep)
    t = episode_rows_raw(meta, ep, cache)
    if t.num_rows != ep.length:
        raise LeRobotError(f"{path}: episode {ep.index} has {t.num_rows} rows, the metadata says {ep.length}")
    n = t.num_rows
    if "frame_index" in t.column_names:
        fi = t.column("frame_index").to_numpy().astype(np.int64)
        if not np.array_equal(fi, np.arange(n)):
            order = np.argsort(fi, kind="stable")
            t = t.take(pa.array(order))
            fi = fi[order]
            if not np.array_equal(fi, np.arange(n)):
                raise LeRobotError(f"{path}: frame_index of episode {ep.index} is not 0..{n - 1}")
    else:
        fi = np.arange(n, dtype=np.int64)
    t = _set(t, "frame_index", pa.array(fi))
    t = _set(t, "timestamp", pa.array((fi / meta.fps).astype(np.float32)))
    return t


def _set(t: pa.Table, name: str, arr: pa.Array) -> pa.Table:
    if name in t.column_names:
        return t.set_column(t.column_names.index(name), name, arr)
    return t.append_column(name, arr)


def _shift_stats(s: dict[str, np.ndarray], offset: int) -> dict[str, np.ndarray]:
    out = dict(s)
    for k in ("min", "max", "mean", *QUANTILE_KEYS):
        if k in out:
            out[k] = np.asarray(out[k]) + offset
    return out


def _const_stats(value: int, n: int) -> dict[str, np.ndarray]:
    return st.vector_stats(np.full(n, value, np.int64))


def iter_episodes(metas: Sequence[DatasetMeta], tasks: list[str], table_keys: list[str]) -> Iterator[SourceEpisode]:
    """Episodes of ``metas`` in order with global ``episode_index``/``index``/``task_index``; rows hold
    ``table_keys`` (in that order) and nothing else."""
    task_pos = {t: i for i, t in enumerate(tasks)}
    ep_offset = frame_offset = 0
    cache = FileCache()
    for m in metas:
        local_task = {i: task_pos[t] for i, t in enumerate(m.tasks)}
        for ep in m.episodes:
            t = episode_rows(m, ep, cache)
            n = t.num_rows
            if "task_index" in t.column_names:
                old = t.column("task_index").to_numpy()
                try:
                    new_task = np.array([local_task[int(x)] for x in np.unique(old)])
                except KeyError as err:
                    raise LeRobotError(f"{m.data_file(ep)}: task_index {err} is not in the dataset's tasks") from err
                lut = dict(zip(np.unique(old).tolist(), new_task.tolist(), strict=True))
                task_idx = np.vectorize(lut.get, otypes=[np.int64])(old)
            else:
                task_idx = np.full(n, task_pos[ep.tasks[0]] if ep.tasks else 0, np.int64)
            index = np.arange(frame_offset, frame_offset + n, dtype=np.int64)
            t = _set(t, "episode_index", pa.array(np.full(n, ep_offset, np.int64)))
            t = _set(t, "index", pa.array(index))
            t = _set(t, "task_index", pa.array(task_idx))
            missing = [k for k in table_keys if k not in t.column_names]
            if missing:
                raise LeRobotError(f"{m.data_file(ep)}: lacks columns {missing}")
            t = t.select(table_keys)
            stats = {k: v for k, v in ep.stats.items()}
            if "episode_index" in stats:
                stats["episode_index"] = _const_stats(ep_offset, n)
            if "index" in stats:
                stats["index"] = _shift_stats(stats["index"], frame_offset - int(np.asarray(stats["index"]["min"]).ravel()[0]))
            if "task_index" in stats:
                stats["task_index"] = st.vector_stats(task_idx)
            for k in table_keys:  # stats a source lacks (no episodes_stats.jsonl...) come from the rows;
                if k not in stats or k in _REBASED:  # re-based time columns never keep the source's
                    stats[k] = st.vector_stats(_numpy(t.column(k)))
            videos = {key: meta_video(m, ep, key) for key in m.video_keys}
            for key, (path, start, end) in videos.items():
                if key not in stats:
                    stats[key] = video_stats(path, start, end, n)
            first_task = int(task_idx[0])
            yield SourceEpisode(ep_offset, first_task, tasks[first_task], n, t, stats, videos, str(m.root))
            ep_offset += 1
            frame_offset += n


def video_stats(path: Path, start: float, end: float, length: int) -> dict[str, np.ndarray]:
    """Image stats of an episode's video segment, from the frames lerobot samples for them (decoded)."""
    from robodata.lerobot.video import decode

    keep = set(st.sample_indices(length).tolist())
    acc = st.ImageStats()
    for i, (_, img) in enumerate(decode(path, start, end)):
        if i in keep:
            acc.add(img)
    if acc.frames == 0:
        raise LeRobotError(f"{path}: no video frames in [{start:.4f}, {end:.4f}) s to compute the stats from")
    return acc.stats()


def meta_video(m: DatasetMeta, ep: EpisodeMeta, key: str) -> tuple[Path, float, float]:
    try:
        return m.video_file(ep, key)
    except KeyError as err:
        raise LeRobotError(f"{m.root}: episode {ep.index} has no video location for {key} ({err})") from err


def _numpy(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type):
        return np.stack(arr.to_numpy(zero_copy_only=False))
    return arr.to_numpy(zero_copy_only=False)


def table_features(meta: DatasetMeta) -> list[str]:
    """Parquet columns of a dataset, defaults included, in ``info.json`` order (GR00T extras dropped)."""
    keys = [k for k, f in meta.features.items() if f.get("dtype") not in ("video", "image")]
    keys = [k for k in keys if k != TASK_ANNOTATION_COLUMN]
    for k in DEFAULT_FEATURES:
        if k not in keys:
            keys.append(k)
    return keys


def open_all(paths: Sequence[str | os.PathLike[str]]) -> list[DatasetMeta]:
    if not paths:
        raise LeRobotError("no datasets to read (the list of shards is empty)")
    return [read_meta(p) for p in paths]


def to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    return _numpy(col)
