"""Reading and writing the ``meta/`` files of LeRobot datasets (v3.0 parquet tables, v2.x JSON lines)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from robodata.lerobot import stats as st
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.layout import (
    DATA_CHUNK_COLUMN,
    DATA_FILE_COLUMN,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    EPISODES_CHUNK_COLUMN,
    EPISODES_FILE_COLUMN,
    INFO_PATH,
    LOCATION_PREFIXES,
    STATS_PATH,
    V20,
    V21,
    V21_DATA_PATH,
    V21_EPISODES_PATH,
    V21_EPISODES_STATS_PATH,
    V21_TASKS_PATH,
    V21_VIDEO_PATH,
    V30,
    V30_DATA_PATH,
    V30_EPISODES_DIR,
    V30_EPISODES_GLOB,
    V30_TASKS_PATH,
    V30_VIDEO_PATH,
    v30_episodes_path,
    video_column,
)


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as lerobot does (indent 4, numpy values as plain numbers); parents are created.

    Not atomic on its own: dataset files are written inside a temporary folder (:mod:`robodata.atomic`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4, default=_default) + "\n")


def read_json(path: Path) -> Any:
    """The JSON in ``path``; raises :class:`LeRobotError` naming the file when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise LeRobotError(f"{path}: file is missing") from err
    except json.JSONDecodeError as err:
        raise LeRobotError(f"{path}: not valid JSON ({err})") from err


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write one JSON object per line (v2.x ``episodes.jsonl``, ``tasks.jsonl``...); parents are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, default=_default) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; raises :class:`LeRobotError` naming the file when it is bad."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError as err:
        raise LeRobotError(f"{path}: file is missing") from err
    except json.JSONDecodeError as err:
        raise LeRobotError(f"{path}: not valid JSON lines ({err})") from err


def read_info(root: str | os.PathLike[str]) -> dict[str, Any]:
    """``meta/info.json`` of the dataset at ``root`` (for callers that need only it; :func:`read_meta` reads all).

    Raises:
        LeRobotError: the file is missing, not JSON, or not a JSON object (the message names the file).
    """
    path = Path(root) / INFO_PATH
    info = read_json(path)
    if not isinstance(info, dict):
        raise LeRobotError(f"{path}: not a JSON object")
    return info


def make_info(
    version: str,
    *,
    fps: int,
    features: Mapping[str, Any],
    robot_type: str | None,
    total_episodes: int,
    total_frames: int,
    total_tasks: int,
    total_videos: int = 0,
    chunks_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, Any]:
    """``meta/info.json`` of a version, with lerobot's key order."""
    has_video = any(f.get("dtype") == "video" for f in features.values())
    info: dict[str, Any] = {"codebase_version": version, "robot_type": robot_type,
                            "total_episodes": total_episodes, "total_frames": total_frames, "total_tasks": total_tasks}  # fmt: skip
    if version == V30:
        info.update(
            chunks_size=chunks_size,
            data_files_size_in_mb=DEFAULT_DATA_FILE_SIZE_IN_MB,
            video_files_size_in_mb=DEFAULT_VIDEO_FILE_SIZE_IN_MB,
            fps=int(fps),
            splits={"train": f"0:{total_episodes}"},
            data_path=V30_DATA_PATH,
            video_path=V30_VIDEO_PATH if has_video else None,
        )
    else:
        info.update(
            total_videos=total_videos,
            total_chunks=max(1, -(-total_episodes // chunks_size)),
            chunks_size=chunks_size,
            fps=int(fps),
            splits={"train": f"0:{total_episodes}"},
            data_path=V21_DATA_PATH,
            video_path=V21_VIDEO_PATH if has_video else None,
        )
    info["features"] = dict(features)
    return info


def write_tasks_v30(root: Path, tasks: list[str]) -> None:
    """``meta/tasks.parquet``: the task strings as the index, ``task_index`` as the column (lerobot's shape)."""
    path = root / V30_TASKS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task"))
    df.to_parquet(path)


def write_episodes_v30(root: Path, rows: list[dict[str, Any]]) -> None:
    """``meta/episodes/chunk-000/file-000.parquet`` (one row per episode; stats flattened into columns)."""
    path = root / v30_episodes_path(0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for r in rows:
        r = dict(r)
        r[EPISODES_CHUNK_COLUMN] = 0
        r[EPISODES_FILE_COLUMN] = 0
        out.append(r)
    pq.write_table(pa.Table.from_pylist(out), path)


@dataclass
class EpisodeMeta:
    """One episode as any version describes it; ``location`` holds the v3.0 file indices and video spans."""

    index: int
    length: int
    tasks: list[str]
    stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetMeta:
    """The metadata of a LeRobot dataset on disk (v2.0, v2.1 or v3.0)."""

    root: Path
    version: str
    info: dict[str, Any]
    tasks: list[str]
    episodes: list[EpisodeMeta]
    stats: dict[str, dict[str, np.ndarray]] | None

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "video"]

    @property
    def chunks_size(self) -> int:
        return int(self.info.get("chunks_size") or DEFAULT_CHUNK_SIZE)

    def data_file(self, ep: EpisodeMeta) -> Path:
        if self.version == V30:
            loc = ep.location
            return self.root / self.info["data_path"].format(
                chunk_index=loc[DATA_CHUNK_COLUMN], file_index=loc[DATA_FILE_COLUMN]
            )
        return self.root / self.info["data_path"].format(
            episode_chunk=ep.index // self.chunks_size, episode_index=ep.index
        )

    def video_file(self, ep: EpisodeMeta, key: str) -> tuple[Path, float, float]:
        """The MP4 holding ``key`` for ``ep`` and the episode's ``[from, to)`` seconds in it."""
        if self.version == V30:
            loc = ep.location
            path = self.root / self.info["video_path"].format(
                video_key=key,
                chunk_index=loc[video_column(key, "chunk_index")],
                file_index=loc[video_column(key, "file_index")],
            )
            return path, float(loc[video_column(key, "from_timestamp")]), float(loc[video_column(key, "to_timestamp")])
        path = self.root / self.info["video_path"].format(
            episode_chunk=ep.index // self.chunks_size, video_key=key, episode_index=ep.index
        )
        return path, 0.0, ep.length / self.fps


def read_meta(root: str | os.PathLike[str]) -> DatasetMeta:
    """Read ``meta/`` of a dataset of any supported version; raises :class:`LeRobotError` naming the bad file."""
    root = Path(root)
    if not root.is_dir():
        raise LeRobotError(f"{root}: no such dataset folder")
    info = read_json(root / INFO_PATH)
    if not isinstance(info, dict) or "codebase_version" not in info:
        raise LeRobotError(f"{root / INFO_PATH}: lacks 'codebase_version'")
    version = str(info["codebase_version"])
    if version not in (V20, V21, V30):
        raise LeRobotError(f"{root / INFO_PATH}: codebase_version {version!r} is not one of v2.0, v2.1, v3.0")
    missing = [k for k in ("fps", "features", "data_path") if k not in info]
    if missing:
        raise LeRobotError(f"{root / INFO_PATH}: lacks {', '.join(map(repr, missing))}")
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0 or fps != int(fps):
        raise LeRobotError(f"{root / INFO_PATH}: fps {fps!r} is not a positive integer")
    if not isinstance(info["features"], dict) or not all(isinstance(v, dict) for v in info["features"].values()):
        raise LeRobotError(f"{root / INFO_PATH}: 'features' is not an object of feature objects")
    stats_path = root / STATS_PATH
    stats = st.from_json(read_json(stats_path)) if stats_path.exists() else None
    if version == V30:
        tasks, episodes = _read_v30(root)
    else:
        tasks, episodes = _read_v2(root)
    return DatasetMeta(root, version, info, tasks, episodes, stats)


def _read_v30(root: Path) -> tuple[list[str], list[EpisodeMeta]]:
    tpath = root / V30_TASKS_PATH
    try:
        tdf = pd.read_parquet(tpath)
    except FileNotFoundError as err:
        raise LeRobotError(f"{tpath}: file is missing") from err
    except Exception as err:
        raise LeRobotError(f"{tpath}: not a readable parquet file ({err})") from err
    if "task" in tdf.columns:
        tdf = tdf.set_index("task")
    if "task_index" not in tdf.columns:
        raise LeRobotError(f"{tpath}: lacks the 'task_index' column")
    tasks = [str(t) for t in tdf.sort_values("task_index").index]
    files = sorted((root / V30_EPISODES_DIR).glob(V30_EPISODES_GLOB))
    if not files:
        raise LeRobotError(f"{root / V30_EPISODES_DIR}: no episode metadata parquet files")
    rows: list[dict[str, Any]] = []
    for f in files:
        try:
            rows.extend(pq.read_table(f).to_pylist())
        except Exception as err:
            raise LeRobotError(f"{f}: not a readable parquet file ({err})") from err
    _require(root / V30_EPISODES_DIR, rows, ("episode_index", "length"))
    episodes = []
    for r in sorted(rows, key=lambda r: r["episode_index"]):
        loc = {k: v for k, v in r.items() if k.startswith(LOCATION_PREFIXES)}
        episodes.append(EpisodeMeta(int(r["episode_index"]), int(r["length"]), list(r.get("tasks") or []), st.unflatten(r), loc))
    return tasks, episodes


def _require(path: Path, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    for i, r in enumerate(rows):
        missing = [k for k in keys if not isinstance(r, dict) or k not in r]
        if missing:
            raise LeRobotError(f"{path}: line {i + 1} lacks {', '.join(map(repr, missing))}")


def _read_v2(root: Path) -> tuple[list[str], list[EpisodeMeta]]:
    tasks_rows = read_jsonl(root / V21_TASKS_PATH)
    _require(root / V21_TASKS_PATH, tasks_rows, ("task_index", "task"))
    tasks = [str(r["task"]) for r in sorted(tasks_rows, key=lambda r: r["task_index"])]
    ep_rows = read_jsonl(root / V21_EPISODES_PATH)
    _require(root / V21_EPISODES_PATH, ep_rows, ("episode_index", "length"))
    stats_by_ep: dict[int, dict] = {}
    if (root / V21_EPISODES_STATS_PATH).exists():
        stats_rows = read_jsonl(root / V21_EPISODES_STATS_PATH)
        _require(root / V21_EPISODES_STATS_PATH, stats_rows, ("episode_index", "stats"))
        for r in stats_rows:
            stats_by_ep[int(r["episode_index"])] = st.from_json(r["stats"])
    episodes = []
    for r in sorted(ep_rows, key=lambda r: r["episode_index"]):
        idx = int(r["episode_index"])
        episodes.append(EpisodeMeta(idx, int(r["length"]), list(r.get("tasks") or []), stats_by_ep.get(idx, {})))
    return tasks, episodes
