"""LeRobot datasets (v2.0, v2.1, v3.0) read back into the canonical episode store (Isaac Lab HDF5).

One demo per episode, in the dataset's order. ``observation.state`` and ``action`` become state/action features,
split into named parts where ``meta/modality.json`` (GR00T) gives slices that tile the vector, else one feature
each (``state`` / ``action``) carrying the dataset's component names. Each ``observation.images.<camera>`` video
is decoded frame by frame with PyAV and appended in small batches (memory stays flat in the episode length)
as the image feature ``<camera>``; parquet-embedded image features (``dtype: image``) are decoded likewise.
Other numeric columns (``observation.environment_state``, ``next.reward``...) are kept as ``extra`` features.
Timestamps are ``frame_index / fps``; the task text goes into the demo's ``task`` attribute and the schema.
"""

from __future__ import annotations

import io
import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreError, EpisodeStoreWriter, FeatureSpec
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.layout import (
    ACTION_KEY,
    DEFAULT_FEATURES,
    IMAGES_PREFIX,
    INFO_PATH,
    OBSERVATION_PREFIX,
    STATE_KEY,
    TASK_ANNOTATION_COLUMN,
)
from robodata.lerobot.metadata import DatasetMeta, EpisodeMeta, read_meta
from robodata.lerobot.source import FileCache, episode_rows, meta_video, to_numpy
from robodata.lerobot.validate import strict_error, survey_dataset
from robodata.lerobot.video import decode

_NUMERIC = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
            "uint64", "bool")  # fmt: skip
_CHANNEL_NAMES = ("channel", "channels", "c")


def _flat_names(ft: Mapping[str, Any], width: int) -> list[str] | None:
    names = ft.get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == width and all(isinstance(n, (str, int)) for n in names):
        return [str(n) for n in names]
    return None


def _width(ft: Mapping[str, Any]) -> int:
    return int(np.prod([int(s) for s in ft.get("shape") or [1]]))


def _parts(
    key: str, ft: Mapping[str, Any], slices: Mapping[str, Any] | None, fallback: str
) -> list[tuple[str, int, int, list[str] | None]]:
    """``(part name, start, end, component names)`` for a state/action vector: modality slices when they tile
    ``[0, width)`` exactly (sorted by start), else the whole vector as one part named ``fallback``."""
    width = _width(ft)
    names = _flat_names(ft, width)
    parts: list[tuple[str, int, int]] = []
    for name, sl in (slices or {}).items():
        if not isinstance(sl, Mapping) or not isinstance(sl.get("start"), int) or not isinstance(sl.get("end"), int):
            parts = []
            break
        parts.append((str(name), int(sl["start"]), int(sl["end"])))
    parts.sort(key=lambda p: p[1])
    pos, tiles = 0, bool(parts)
    for _, s, e in parts:
        if s != pos or e <= s:
            tiles = False
            break
        pos = e
    if not tiles or pos != width:
        parts = [(fallback, 0, width)]
    return [(n, s, e, names[s:e] if names else None) for n, s, e in parts]


def _unique(name: str, prefix: str, used: set[str]) -> str:
    out = name
    if out in used:
        out = f"{prefix}_{name}"
    i = 2
    while out in used:
        out = f"{prefix}_{name}_{i}"
        i += 1
    used.add(out)
    return out


def _image_shape(key: str, ft: Mapping[str, Any], meta: DatasetMeta) -> tuple[int, int, int]:
    shape = [int(s) for s in ft.get("shape") or []]
    names = [str(n).lower() for n in ft.get("names") or []] if isinstance(ft.get("names"), list) else []
    info = ft.get("info") or ft.get("video_info") or {}
    if "video.height" in info and "video.width" in info:
        return int(info["video.height"]), int(info["video.width"]), 3
    if len(shape) != 3:
        raise LeRobotError(f"{meta.root / INFO_PATH}: feature {key!r} has shape {shape}, not an image shape")
    if names and names[0] in _CHANNEL_NAMES:
        return shape[1], shape[2], 3
    return shape[0], shape[1], 3


class _Plan:
    """How the dataset's features map onto an episode schema."""

    def __init__(self, meta: DatasetMeta, modality: Mapping[str, Any] | None):
        feats = meta.features
        used: set[str] = set()
        self.state: list[tuple[str, int, int]] = []
        self.action: list[tuple[str, int, int]] = []
        self.cameras: dict[str, str] = {}  # feature key -> camera name
        self.embedded: dict[str, str] = {}  # parquet image column -> camera name
        self.extras: dict[str, str] = {}  # column -> feature name
        self.origin: dict[str, str] = {}
        specs: list[FeatureSpec] = []
        for key, role, group, fallback in ((STATE_KEY, "state", "state", "state"), (ACTION_KEY, "action", "action", "action")):
            if key not in feats:
                continue
            ft = feats[key]
            if ft.get("dtype") not in _NUMERIC:
                raise LeRobotError(f"{meta.root / INFO_PATH}: {key!r} has dtype {ft.get('dtype')!r}, not a number type")
            out = self.state if role == "state" else self.action
            for name, s, e, names in _parts(key, ft, (modality or {}).get(group), fallback):
                fname = _unique(name, role, used)
                out.append((fname, s, e))
                specs.append(FeatureSpec(fname, role, (e - s,), "float32", names))
                self.origin[fname] = f"{key}[{s}:{e}]"
        for key, ft in feats.items():
            dtype = ft.get("dtype")
            if dtype in ("video", "image"):
                cam = _unique(key.removeprefix(IMAGES_PREFIX).removeprefix(OBSERVATION_PREFIX), "image", used)
                (self.cameras if dtype == "video" else self.embedded)[key] = cam
                specs.append(FeatureSpec(cam, "image", _image_shape(key, ft, meta), "uint8"))
                self.origin[cam] = key
            elif key in (STATE_KEY, ACTION_KEY) or key in DEFAULT_FEATURES or key == TASK_ANNOTATION_COLUMN:
                continue  # the task annotation is the demo's task text; other annotations (human.validity) are kept
            elif dtype in _NUMERIC:
                name = _unique(key.removeprefix(OBSERVATION_PREFIX), "extra", used)
                shape = tuple(int(s) for s in ft.get("shape") or [1])
                shape = () if shape == (1,) else shape
                self.extras[key] = name
                specs.append(FeatureSpec(name, "extra", shape, "float32" if dtype.startswith("float") else dtype,
                                         _flat_names(ft, _width(ft))))  # fmt: skip
                self.origin[name] = key
        self.specs = specs


def _episode_task(meta: DatasetMeta, ep: EpisodeMeta, rows: pa.Table) -> tuple[str, list[str]]:
    tasks: list[str] = []
    if "task_index" in rows.column_names and rows.num_rows:
        for ti in dict.fromkeys(rows.column("task_index").to_numpy().tolist()):
            if 0 <= int(ti) < len(meta.tasks):
                tasks.append(meta.tasks[int(ti)])
    for t in ep.tasks:
        if t not in tasks:
            tasks.append(str(t))
    return (tasks[0] if tasks else ""), tasks


def _vector(rows: pa.Table, key: str, n: int, where: Path) -> np.ndarray:
    arr = to_numpy(rows.column(key))
    arr = np.asarray(arr)
    if arr.dtype == object:
        raise LeRobotError(f"{where}: column {key!r} holds rows of different lengths")
    return arr.reshape(n, -1)


def _frames(path: Path, start: float, end: float, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    for _, img in decode(path, start, end):
        if img.shape != shape:
            raise LeRobotError(f"{path}: frames are {img.shape[1]}x{img.shape[0]}, info.json says {shape[1]}x{shape[0]}")
        yield img


def _embedded_frames(col: pa.ChunkedArray, shape: tuple[int, ...], where: str) -> Iterator[np.ndarray]:
    from PIL import Image  # only parquet-embedded images need Pillow

    for v in col.to_pylist():
        data = v.get("bytes") if isinstance(v, dict) else v
        if data is None and isinstance(v, dict) and v.get("path"):
            data = Path(v["path"]).read_bytes()
        if data is None:
            raise LeRobotError(f"{where}: an image cell is empty")
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        if img.shape != shape:
            raise LeRobotError(f"{where}: an image is {img.shape[1]}x{img.shape[0]}, info.json says {shape[1]}x{shape[0]}")
        yield img


def import_lerobot(
    src_dir: str | os.PathLike[str],
    out_hdf5: str | os.PathLike[str],
    *,
    episodes: Sequence[int] | None = None,
    batch_frames: int = 32,
    progress: Callable[[float], None] | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Write the LeRobot dataset ``src_dir`` (v2.0, v2.1 or v3.0) as an episode store at ``out_hdf5`` (atomic).

    ``episodes`` selects episodes by their ``episode_index`` (default: all, in order); they become ``demo_0``,
    ``demo_1``... with the original index in the demo attribute ``lerobot_episode_index``. ``progress`` gets the
    fraction of frames done. Returns a summary (path, version, episodes, frames, fps, cameras, tasks, seconds,
    findings).

    A dataset from the wild imports as far as it goes: a video feature none of whose files are shipped is left
    out; an episode whose MP4 of a camera is missing (while the camera's other episodes are shipped) is left out,
    the camera and the other episodes kept; rows without ``frame_index`` are numbered in order, timestamps are
    ``frame_index / fps`` (re-based to 0), modality.json keys robodata does not read are kept (in the schema's
    ``extra``), and GR00T annotation columns other than the task (``annotation.human.validity``) become
    ``extra`` features. Each gap is one :class:`robodata.lerobot.validate.Finding` in the summary's
    ``findings``; ``strict`` refuses instead. The episodes left out are listed in ``skipped_episodes``.

    Raises:
        LeRobotError: ``src_dir`` is not a LeRobot dataset, a data or video file is unreadable, a video's frame
            count differs from the episode's length (the message names the file); with ``strict``, any finding.
    """
    t0 = time.perf_counter()
    src, out = Path(src_dir), Path(out_hdf5)
    if not src.is_dir():
        raise LeRobotError(f"{src}: no such dataset folder")
    if not (src / INFO_PATH).exists():
        raise LeRobotError(f"{src}: not a LeRobot dataset (no {INFO_PATH})")
    meta = read_meta(src)
    if meta.fps <= 0:
        raise LeRobotError(f"{src / INFO_PATH}: fps {meta.fps} is not positive")
    by_index = {ep.index: ep for ep in meta.episodes}
    if episodes is None:
        chosen = list(meta.episodes)
    else:
        missing = [i for i in episodes if int(i) not in by_index]
        if missing:
            raise LeRobotError(f"{src}: no episodes {missing} (the dataset has {len(meta.episodes)})")
        chosen = [by_index[int(i)] for i in episodes]
    if not chosen:
        raise LeRobotError(f"{src}: the dataset has no episodes")
    survey = survey_dataset(replace(meta, episodes=chosen), stats=False)  # an episode store keeps no stats
    if strict and survey.findings:
        raise strict_error(src, survey.findings)
    meta, modality = survey.meta, survey.modality
    kept = {ep.index for ep in meta.episodes}
    skipped = [ep.index for ep in chosen if ep.index not in kept]
    chosen = list(meta.episodes)
    plan = _Plan(meta, modality)
    if not plan.specs:
        raise LeRobotError(f"{src / INFO_PATH}: no state, action or camera features to import")
    # Fail fast on missing videos, before decoding anything.
    videos: dict[tuple[int, str], tuple[Path, float, float]] = {}
    for ep in chosen:
        for key in plan.cameras:
            path, start, end = meta_video(meta, ep, key)
            if not path.is_file():
                raise LeRobotError(f"{path}: video file is missing (episode {ep.index}, {key})")
            videos[(ep.index, key)] = (path, start, end)

    fps = meta.fps
    first_task = meta.tasks[0] if meta.tasks else ""
    schema = EpisodeSchema(
        plan.specs,
        float(fps),
        task=first_task,
        robot_type=str(meta.info.get("robot_type") or "unknown"),
        extra={"lerobot": {"source": str(src), "codebase_version": meta.version, "features": plan.origin,
                           "modality": modality}},  # fmt: skip
    )
    specs = {f.name: f for f in plan.specs}
    total = sum(ep.length for ep in chosen) or 1
    done = 0
    frames_written = 0
    tasks_seen: list[str] = []
    cache = FileCache()
    try:
        with EpisodeStoreWriter(out, schema, env_name=str(meta.info.get("robot_type") or "lerobot"),
                                env_kwargs={"fps": fps, "source": str(src)}) as store:  # fmt: skip
            for ep in chosen:
                rows = episode_rows(meta, ep, cache)
                n = rows.num_rows
                where = meta.data_file(ep)
                task, tasks = _episode_task(meta, ep, rows)
                for t in tasks:
                    if t not in tasks_seen:
                        tasks_seen.append(t)
                attrs: dict[str, Any] = {"task": task, "lerobot_episode_index": ep.index, "source": str(src)}
                if len(tasks) > 1:
                    attrs["tasks"] = tasks
                fi = rows.column("frame_index").to_numpy().astype(np.int64)
                ts = fi / float(fps)
                state = _vector(rows, STATE_KEY, n, where).astype(np.float32) if plan.state else None
                action = _vector(rows, ACTION_KEY, n, where).astype(np.float32) if plan.action else None
                extras = {}
                for key, name in plan.extras.items():
                    if key in rows.column_names:
                        extras[name] = np.asarray(to_numpy(rows.column(key))).reshape(n, *specs[name].shape)
                streams: dict[str, Iterator[np.ndarray]] = {}
                for key, cam in plan.cameras.items():
                    path, start, end = videos[(ep.index, key)]
                    streams[cam] = _frames(path, start, end, specs[cam].shape)
                for key, cam in plan.embedded.items():
                    if key not in rows.column_names:
                        raise LeRobotError(f"{where}: lacks the image column {key!r}")
                    streams[cam] = _embedded_frames(rows.column(key), specs[cam].shape, f"{where} ({key})")
                demo = store.begin_episode(attrs=attrs)
                for s in range(0, n, batch_frames):
                    e = min(n, s + batch_frames)
                    obs: dict[str, np.ndarray] = {}
                    if state is not None:
                        for name, a, b in plan.state:
                            obs[name] = state[s:e, a:b]
                    for name, arr in extras.items():
                        obs[name] = arr[s:e]
                    for cam, it in streams.items():
                        batch = list(itertools.islice(it, e - s))
                        if len(batch) != e - s:
                            raise LeRobotError(_count_error(meta, ep, plan, cam, videos, s + len(batch), n))
                        obs[cam] = np.stack(batch)
                    demo.extend(ts[s:e], obs, actions=action[s:e] if action is not None else None,
                                states=state[s:e] if state is not None else None)  # fmt: skip
                    done += e - s
                    if progress is not None:
                        progress(done / total)
                for cam, it in streams.items():
                    if next(it, None) is not None:
                        raise LeRobotError(_count_error(meta, ep, plan, cam, videos, None, n))
                demo.close()
                frames_written += n
    except EpisodeStoreError as err:
        raise LeRobotError(str(err)) from err
    return {
        "path": str(out),
        "source": str(src),
        "version": meta.version,
        "episodes": len(chosen),
        "frames": frames_written,
        "fps": fps,
        "robot_type": schema.robot_type,
        "cameras": [plan.cameras.get(k) or plan.embedded[k] for k in (*plan.cameras, *plan.embedded)],
        "state": [name for name, _, _ in plan.state],
        "action": [name for name, _, _ in plan.action],
        "tasks": tasks_seen,
        "seconds": time.perf_counter() - t0,
        "findings": survey.findings,
        "skipped_episodes": skipped,
    }


def _count_error(
    meta: DatasetMeta, ep: EpisodeMeta, plan: _Plan, cam: str, videos: Mapping[tuple[int, str], tuple[Path, float, float]],
    got: int | None, n: int,
) -> str:  # fmt: skip
    key = next((k for k, c in plan.cameras.items() if c == cam), None)
    if key is None:
        return f"{meta.data_file(ep)}: episode {ep.index} has a different number of {cam} images than rows ({n})"
    path, start, end = videos[(ep.index, key)]
    have = f"{got} frames" if got is not None else "more frames"
    return (f"{path}: episode {ep.index} has {have} in [{start:.3f}, {end:.3f}) s but {n} rows in "
            f"{meta.data_file(ep)} (frame count mismatch)")  # fmt: skip

