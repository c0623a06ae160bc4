"""Releases: many v3.0 shards joined into one dataset (v3.0, or v2.1 for GR00T) without re-encoding video."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robodata.atomic import atomic_path
from robodata.lerobot import stats as st
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.features import arrow_schema
from robodata.lerobot.layout import (
    DATA_CHUNK_COLUMN,
    DATA_FILE_COLUMN,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_FEATURES,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    INFO_PATH,
    MODALITY_PATH,
    STATS_PATH,
    TASK_ANNOTATION_COLUMN,
    V21,
    V30,
    VERSIONS,
    v30_data_path,
    v30_video_path,
    video_column,
)
from robodata.lerobot.metadata import DatasetMeta, make_info, read_json, write_episodes_v30, write_json, write_tasks_v30
from robodata.lerobot.modality import modality_from_features, modality_problems
from robodata.lerobot.source import (
    SourceEpisode,
    check_compatible,
    iter_episodes,
    merge_tasks,
    table_features,
)
from robodata.lerobot.validate import Finding, Survey, strict_error, survey_dataset
from robodata.lerobot.video import copy_packets
from robodata.lerobot.writer_v3 import MB, next_file

VIDEO_TOL_S = 1e-4


@dataclass
class ReleaseReport:
    """What :func:`aggregate` wrote."""

    path: Path
    version: str
    episodes: int
    frames: int
    tasks: list[str]
    shards: list[str]
    seconds: float
    bytes: int = 0
    video_keys: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # the sources' gaps, each converted around
    notes: list[Finding] = field(default_factory=list)  # layout normal for a source's version (never strict's)


def release_features(meta: DatasetMeta) -> dict[str, dict[str, Any]]:
    """A dataset's features without GR00T's annotation column, with every default column (v2.0 may lack some)."""
    feats = {k: dict(v) for k, v in meta.features.items() if k != TASK_ANNOTATION_COLUMN and k not in DEFAULT_FEATURES}
    feats.update({k: dict(meta.features.get(k) or v) for k, v in DEFAULT_FEATURES.items()})
    return feats


def release_modality(
    metas: Sequence[DatasetMeta], features: Mapping[str, Any], modality: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``modality`` (the first dataset's ``meta/modality.json`` as surveyed), else that file (shards from
    episode stores carry one), else one guessed from feature names; raises if its slices do not fit the
    features. Keys robodata does not read (GR00T's annotations, ``rotation_type``...) are kept."""
    path = metas[0].root / MODALITY_PATH
    if modality is None:
        modality = read_json(path) if path.exists() else modality_from_features(features)
    modality = dict(modality)
    problems = modality_problems(modality, features)
    if problems:
        raise LeRobotError(f"{path}: {'; '.join(problems)}")
    return modality


class _VideoRun:
    """Segments of source MP4s going into one output MP4 (adjacent segments of one file are merged)."""

    def __init__(self, key: str, loc: tuple[int, int]):
        self.key = key
        self.loc = loc
        self.segments: list[list[Any]] = []  # [path, from, to, offset, frames]
        self.seconds = 0.0
        self.est_bytes = 0.0

    def add(self, path: Path, from_s: float, to_s: float, frames: int, fps: int) -> float:
        start = self.seconds
        last = self.segments[-1] if self.segments else None
        if last is not None and last[0] == path and abs(last[2] - from_s) < VIDEO_TOL_S:
            last[2] = to_s
            last[4] += frames
        else:
            self.segments.append([path, from_s, to_s, start, frames])
        self.seconds += frames / fps
        try:
            size = path.stat().st_size
        except FileNotFoundError as err:
            raise LeRobotError(f"{path}: video file is missing") from err
        self.est_bytes += size * frames / max(1, round(fps * max(to_s, 1e-9)))
        return start

    def write(self, root: Path, fps: int) -> None:
        out = root / v30_video_path(self.key, *self.loc)
        spans = copy_packets([(p, f, t, o) for p, f, t, o, _ in self.segments], out, fps)
        for (p, f, t, _, frames), (s, e) in zip(self.segments, spans, strict=True):
            got = round((e - s) * fps)
            if got != frames:
                raise LeRobotError(f"{p}: {got} video frames in [{f:.4f}, {t:.4f}) s, the data has {frames} rows")


def write_v30(
    episodes: Iterable[SourceEpisode],
    out_dir: str | os.PathLike[str],
    *,
    fps: int,
    features: Mapping[str, Mapping[str, Any]],
    tasks: list[str],
    robot_type: str | None,
    modality: Mapping[str, Any] | None = None,
    data_files_size_in_mb: int = DEFAULT_DATA_FILE_SIZE_IN_MB,
    video_files_size_in_mb: int = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
) -> tuple[int, int]:
    """Write ``episodes`` as one v3.0 dataset, copying video packets; returns (episodes, frames)."""
    schema = arrow_schema(features)
    vkeys = [k for k, f in features.items() if f.get("dtype") == "video"]
    rows: list[dict[str, Any]] = []
    all_stats = []
    frames = 0
    with atomic_path(out_dir, kind="dir") as tmp:
        data_loc, writer = (0, 0), None
        runs = {k: _VideoRun(k, (0, 0)) for k in vkeys}
        try:
            for ep in episodes:
                path = tmp / v30_data_path(*data_loc)
                if writer is not None and path.stat().st_size >= data_files_size_in_mb * MB:
                    writer.close()
                    writer, data_loc = None, next_file(*data_loc)
                    path = tmp / v30_data_path(*data_loc)
                if writer is None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(path, schema)
                writer.write_table(_cast(ep.table, schema, ep.origin))
                row: dict[str, Any] = {"episode_index": ep.index, "tasks": [ep.task], "length": ep.length,
                                       DATA_CHUNK_COLUMN: data_loc[0], DATA_FILE_COLUMN: data_loc[1],
                                       "dataset_from_index": frames, "dataset_to_index": frames + ep.length}  # fmt: skip
                for k in vkeys:
                    run = runs[k]
                    if run.segments and run.est_bytes >= video_files_size_in_mb * MB:
                        run.write(tmp, fps)
                        run = runs[k] = _VideoRun(k, next_file(*run.loc))
                    src, f, t = ep.videos[k]
                    start = run.add(src, f, t, ep.length, fps)
                    row[video_column(k, "chunk_index")] = run.loc[0]
                    row[video_column(k, "file_index")] = run.loc[1]
                    row[video_column(k, "from_timestamp")] = start
                    row[video_column(k, "to_timestamp")] = start + ep.length / fps
                row.update(st.flatten(ep.stats))
                rows.append(row)
                all_stats.append(ep.stats)
                frames += ep.length
            for run in runs.values():
                if run.segments:
                    run.write(tmp, fps)
        finally:
            if writer is not None:
                writer.close()
        if not rows:
            raise LeRobotError(f"{out_dir}: no episodes to write")
        info = make_info(V30, fps=fps, features=features, robot_type=robot_type, total_episodes=len(rows),
                         total_frames=frames, total_tasks=len(tasks))  # fmt: skip
        info["data_files_size_in_mb"] = data_files_size_in_mb
        info["video_files_size_in_mb"] = video_files_size_in_mb
        write_json(tmp / INFO_PATH, info)
        write_json(tmp / STATS_PATH, st.to_json(st.aggregate(all_stats)))
        write_tasks_v30(tmp, tasks)
        write_episodes_v30(tmp, rows)
        if modality is not None:
            write_json(tmp / MODALITY_PATH, modality)
    return len(rows), frames


def _cast(t: pa.Table, schema: pa.Schema, origin: str) -> pa.Table:
    try:
        return t.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as err:
        raise LeRobotError(f"{origin}: frame rows do not fit the release's columns ({err})") from err


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def aggregate(
    shard_dirs: Sequence[str | os.PathLike[str] | Survey],
    out_dir: str | os.PathLike[str],
    *,
    version: str = V30,
    repo_id: str | None = None,
    robot_type: str | None = None,
    strict: bool = False,
    exclude: Mapping[int, set[int]] | None = None,
) -> ReleaseReport:
    """Join LeRobot datasets (the per-recording shards) into one release in ``out_dir``, atomically.

    Global episode and frame indices are re-based, tasks merged (first seen first), video packets copied
    without re-encoding (v3.0: concatenated per camera; v2.1: cut per episode), per-episode stats carried
    over (index columns shifted) and aggregated into ``meta/stats.json``. ``repo_id`` is recorded only in
    the report (LeRobot keeps it outside the dataset).

    Each shard is surveyed first (:func:`robodata.lerobot.validate.survey_dataset`; a :class:`Survey` in
    ``shard_dirs`` is taken as it is): what a dataset from the wild lacks (video files not shipped, columns,
    stats) is converted around and named in the report's ``findings``; ``strict`` refuses instead.

    Raises:
        LeRobotError: a shard is unreadable, or its fps/features differ from the first shard's (named); with
            ``strict``, any finding (all listed, nothing written).
    """
    if version not in VERSIONS:
        raise LeRobotError(f"{out_dir}: unknown LeRobot version {version!r} (one of {', '.join(VERSIONS)})")
    t0 = time.perf_counter()
    if not shard_dirs:
        raise LeRobotError(f"{out_dir}: no datasets to read (the list of shards is empty)")
    surveys = [s if isinstance(s, Survey) else survey_dataset(s) for s in shard_dirs]
    findings = [f for s in surveys for f in s.findings]
    if strict and findings:
        raise strict_error(", ".join(str(s.meta.root) for s in surveys), findings)
    metas = [s.meta for s in surveys]
    for i, drop in (exclude or {}).items():  # episodes left out (duplicates, by policy): by shard, episode index
        if drop:
            metas[i] = replace(metas[i], episodes=[ep for ep in metas[i].episodes if ep.index not in drop])
    metas = [m for m in metas if m.episodes] or metas[:1]
    check_compatible(metas)
    tasks = merge_tasks(metas)
    features = release_features(metas[0])
    keys = table_features(metas[0])
    src_modality = surveys[0].modality
    modality = release_modality(metas, features, src_modality) if version == V21 or src_modality is not None else None
    robot = robot_type or metas[0].info.get("robot_type")
    episodes = iter_episodes(metas, tasks, keys)
    if version == V30:
        n_eps, n_frames = write_v30(episodes, out_dir, fps=metas[0].fps, features=features, tasks=tasks,
                                    robot_type=robot, modality=modality)  # fmt: skip
    else:
        from robodata.lerobot.writer_v21 import write_v21

        n_eps, n_frames = write_v21(episodes, out_dir, fps=metas[0].fps, features=features, tasks=tasks,
                                    robot_type=robot, modality=modality or {})  # fmt: skip
    out = Path(out_dir)
    vkeys = [k for k, f in features.items() if f.get("dtype") == "video"]
    return ReleaseReport(out, version, n_eps, n_frames, tasks, [str(m.root) for m in metas],
                         time.perf_counter() - t0, _folder_bytes(out), vkeys, findings,
                         [f for s in surveys for f in s.notes])  # fmt: skip


__all__ = ["ReleaseReport", "aggregate", "write_v30"]
