"""Writing LeRobot v2.1 datasets in GR00T N1.5's flavour: one parquet and one MP4 per episode, JSON-lines
metadata, ``meta/modality.json`` and an ``annotation.human.action.task_description`` column of task indices."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robodata.atomic import atomic_path
from robodata.lerobot import stats as st
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.features import arrow_schema
from robodata.lerobot.layout import (
    DEFAULT_CHUNK_SIZE,
    INFO_PATH,
    MODALITY_PATH,
    STATS_PATH,
    TASK_ANNOTATION_COLUMN,
    V21,
    V21_EPISODES_PATH,
    V21_EPISODES_STATS_PATH,
    V21_TASKS_PATH,
    v21_data_path,
    v21_video_path,
)
from robodata.lerobot.metadata import make_info, write_json, write_jsonl
from robodata.lerobot.source import SourceEpisode, to_numpy
from robodata.lerobot.video import VideoSettings, cut, reencode

log = logging.getLogger(__name__)

ANNOTATION_FEATURE = {"dtype": "int64", "shape": [1], "names": None}


def v21_features(features: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """v2.1 features: the same, plus GR00T's task annotation column."""
    out = {k: dict(v) for k, v in features.items() if k != TASK_ANNOTATION_COLUMN}
    out[TASK_ANNOTATION_COLUMN] = dict(ANNOTATION_FEATURE)
    return out


def _copy_video(src: Path, dst: Path, from_s: float, to_s: float, fps: int, length: int, info: Mapping[str, Any]) -> None:
    try:
        got = cut(src, dst, from_s, to_s, fps)
    except LeRobotError as err:
        if "no keyframe" not in str(err):
            raise
        codec = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265"}.get(str(info.get("video.codec")), "libsvtav1")
        log.warning("%s: episode does not start on a keyframe; re-encoding it with %s", src, codec)
        got = reencode(src, dst, from_s, to_s, fps, VideoSettings(codec=codec, crf=info.get("video.crf") or 30,
                                                                   gop=int(info.get("video.g") or 2)))  # fmt: skip
    if got != length:
        raise LeRobotError(f"{src}: {got} video frames in [{from_s:.4f}, {to_s:.4f}) s, the data has {length} rows")


def write_v21(
    episodes: Iterable[SourceEpisode],
    out_dir: str | os.PathLike[str],
    *,
    fps: int,
    features: Mapping[str, Mapping[str, Any]],
    tasks: list[str],
    robot_type: str | None,
    modality: Mapping[str, Any],
    chunks_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[int, int]:
    """Write ``episodes`` as a GR00T-ready v2.1 dataset; returns (episodes, frames)."""
    feats = v21_features(features)
    schema = arrow_schema(feats)
    vkeys = [k for k, f in feats.items() if f.get("dtype") == "video"]
    ep_rows, stats_rows, all_stats = [], [], []
    frames = 0
    with atomic_path(out_dir, kind="dir") as tmp:
        for ep in episodes:
            t = ep.table.append_column(TASK_ANNOTATION_COLUMN, ep.table.column("task_index"))
            try:
                t = t.select(schema.names).cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as err:
                raise LeRobotError(f"{ep.origin}: frame rows do not fit the release's columns ({err})") from err
            path = tmp / v21_data_path(ep.index, chunks_size)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(t, path)
            for k in vkeys:
                src, f, to = ep.videos[k]
                dst = tmp / v21_video_path(k, ep.index, chunks_size)
                _copy_video(src, dst, f, to, fps, ep.length, feats[k].get("info") or {})
            stats = dict(ep.stats)
            stats[TASK_ANNOTATION_COLUMN] = st.vector_stats(to_numpy(t.column(TASK_ANNOTATION_COLUMN)))
            ep_rows.append({"episode_index": ep.index, "tasks": [ep.task], "length": ep.length})
            stats_rows.append({"episode_index": ep.index, "stats": st.to_json(stats)})
            all_stats.append(stats)
            frames += ep.length
        if not ep_rows:
            raise LeRobotError(f"{out_dir}: no episodes to write")
        info = make_info(V21, fps=fps, features=feats, robot_type=robot_type, total_episodes=len(ep_rows),
                         total_frames=frames, total_tasks=len(tasks), total_videos=len(ep_rows) * len(vkeys),
                         chunks_size=chunks_size)  # fmt: skip
        write_json(tmp / INFO_PATH, info)
        write_jsonl(tmp / V21_EPISODES_PATH, ep_rows)
        write_jsonl(tmp / V21_EPISODES_STATS_PATH, stats_rows)
        write_jsonl(tmp / V21_TASKS_PATH, [{"task_index": i, "task": t} for i, t in enumerate(tasks)])
        write_json(tmp / STATS_PATH, st.to_json(st.aggregate(all_stats)))
        write_json(tmp / MODALITY_PATH, modality)
    return len(ep_rows), frames


__all__ = ["write_v21", "v21_features"]
