"""Observation-only episodes: accepted shots as a LeRobot dataset with video, task text and timestamps, no robot
state or action.

Each shot's frames ``[start_frame, end_frame)`` are decoded with PyAV, picked to the dataset's one frame rate
(frame ``j`` of the episode is the source frame showing at ``j / fps`` s), fitted to the configured camera size
(letterboxed or centre-cropped) and encoded through :class:`robodata.lerobot.writer_v3.LeRobotV3Writer`. The
caption is the task text. Training code tells these datasets apart by:

- ``meta/info.json``: ``"observation_only": true`` and no ``observation.state`` / ``action`` feature;
- ``meta/episodes`` (v3.0) or ``meta/episodes.jsonl`` (v2.1), per episode: ``layer``, ``provenance`` (a JSON
  string), ``source_clip``, ``shot_index``, ``shot_start_s``, ``shot_end_s``, ``source_fps``, ``phash``;
- ``meta/modality.json`` (GR00T's terms): an embodiment without action, only ``video`` and ``annotation``.

lerobot loads them like any dataset (``LeRobotDataset(repo_id, root=..., video_backend="pyav")``); its items
have the camera, ``timestamp``, ``frame_index``, ``task`` and no ``action``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robodata.atomic import atomic_path, partial_name
from robodata.errors import RobodataError
from robodata.lerobot.features import video_feature
from robodata.lerobot.layout import (
    INFO_PATH,
    TASK_ANNOTATION,
    V21,
    V21_EPISODES_PATH,
    V30,
    V30_EPISODES_DIR,
    V30_EPISODES_GLOB,
    VERSIONS,
    camera_key,
)
from robodata.lerobot.metadata import read_json, read_jsonl, write_json, write_jsonl
from robodata.lerobot.video import VideoSettings
from robodata.video.shots import Shot

OBSERVATION_ONLY = "observation_only"  # the info.json key that marks a dataset without state and action
EPISODE_COLUMNS = ("layer", "provenance", "source_clip", "shot_index", "shot_start_s", "shot_end_s", "source_fps",
                   "phash")  # fmt: skip


class VideoEpisodeError(RobodataError):
    """Shots cannot become observation-only episodes (no shots, a clip that does not decode to the shot's end)."""


class ObservationEpisodesConfig(BaseModel):
    """How shots become episodes: one frame rate and one camera size for the dataset, the video encoding."""

    model_config = ConfigDict(extra="forbid")

    fps: int = Field(30, ge=1, description="the dataset's frame rate; shots are resampled to it by frame picking")
    width: int = Field(256, ge=16)
    height: int = Field(256, ge=16)
    resize: Literal["letterbox", "crop"] = Field(
        "letterbox", description="letterbox: the whole frame, black bars; crop: centre-crop to the aspect, no bars")
    camera: str = Field("main", description="the camera name: feature observation.images.<camera>")
    default_task: str | None = Field(None, description="task text of a shot without caption (else the clip's name)")
    robot_type: str | None = None
    codec: str = "libsvtav1"
    crf: int | None = 30
    gop: int = Field(2, ge=1)
    preset: int | str | None = None
    batch_frames: int = Field(32, ge=1)

    @property
    def video_key(self) -> str:
        return camera_key(self.camera)

    def settings(self) -> VideoSettings:
        return VideoSettings(codec=self.codec, crf=self.crf, gop=self.gop, preset=self.preset)


@dataclass
class ObservationReport:
    """What :func:`write_observation_episodes` wrote; ``skipped`` names each shot left out and why."""

    path: Path
    version: str
    episodes: int
    frames: int
    fps: int
    video_key: str
    tasks: list[str]
    seconds: float
    layers: dict[str, int] = field(default_factory=dict)  # layer -> episodes
    episode_frames: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (shot id, why)


def observation_modality(video_keys: Sequence[str]) -> dict[str, Any]:
    """GR00T's ``meta/modality.json`` of an embodiment without action: video and annotation keys only."""
    return {"video": {k.removeprefix("observation.images."): {"original_key": k} for k in video_keys},
            "annotation": {TASK_ANNOTATION: {}}}  # fmt: skip


def resample_offsets(frames: int, src_fps: float, fps: int) -> np.ndarray:
    """Which source frames (offsets into a shot of ``frames`` frames at ``src_fps``) make the episode at ``fps``.

    Output frame ``j`` shows at ``j / fps`` s: it is the last source frame shown by then (``floor(j * src / fps)``),
    so a 60 fps shot at 30 fps takes every second frame and a 25 fps shot at 30 fps repeats every fifth one."""
    if frames <= 0 or src_fps <= 0:
        return np.zeros(0, np.int64)
    n = max(1, math.floor(frames * fps / src_fps + 1e-6))
    idx = np.floor(np.arange(n) * src_fps / fps + 1e-6).astype(np.int64)
    return np.minimum(idx, frames - 1)


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    import av

    # swscale (through PyAV, already a dependency) with area averaging: the right filter for downscaling
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    return vf.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()


def fit_frame(img: np.ndarray, width: int, height: int, mode: str = "letterbox") -> np.ndarray:
    """``img`` (H, W, 3 uint8) at ``width`` x ``height``: letterboxed (scaled to fit, centred on black) or
    centre-cropped to the target's aspect and scaled."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    if mode == "crop":
        scale = max(width / w, height / h)
        cw, ch = min(w, round(width / scale)), min(h, round(height / scale))
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return _resize(img[y0:y0 + ch, x0:x0 + cw], width, height)
    scale = min(width / w, height / h)
    nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = _resize(img, nw, nh)
    return out


def episode_columns(shot: Shot) -> dict[str, Any]:
    """The per-episode ``meta/episodes`` columns of a shot (provenance as a JSON string: one parquet type)."""
    return {
        "layer": shot.layer,
        "provenance": json.dumps(shot.provenance, sort_keys=True, default=str),
        "source_clip": shot.clip,
        "shot_index": int(shot.index),
        "shot_start_s": float(shot.start),
        "shot_end_s": float(shot.end),
        "source_fps": float(shot.fps),
        "phash": f"{int(shot.phash) & (2**64 - 1):016x}",
    }


@contextlib.contextmanager
def local_clip(url: str) -> Iterator[Path]:
    """A local path for a clip (itself when local, a downloaded copy for a bucket URL)."""
    if "://" not in url or url.startswith("file://"):
        yield Path(url.removeprefix("file://"))
        return
    from robodata.storage import DataStore

    parent, _, name = url.rstrip("/").rpartition("/")
    with DataStore(parent).read_path(name) as p:
        yield p


def _decoded(path: Path) -> Iterator[np.ndarray]:
    from robodata.lerobot.video import decode

    for _, img in decode(path):
        yield img


def _by_clip(shots: Sequence[Shot]) -> list[tuple[str, list[Shot]]]:
    """Shots grouped by clip (clips in first-seen order, shots in time order): one decoding pass per clip."""
    groups: dict[str, list[Shot]] = {}
    for s in shots:
        groups.setdefault(s.clip, []).append(s)
    return [(c, sorted(g, key=lambda s: (s.start_frame, s.index))) for c, g in groups.items()]


def _task(shot: Shot, cfg: ObservationEpisodesConfig) -> str:
    caption = (shot.caption or "").strip()
    if caption:
        return caption
    return cfg.default_task or Path(shot.clip.rstrip("/")).stem


def _write_v30(shots: Sequence[Shot], out_dir: Path, cfg: ObservationEpisodesConfig,
               info_extra: Mapping[str, Any]) -> ObservationReport:
    from robodata.lerobot.errors import LeRobotError
    from robodata.lerobot.video import probe
    from robodata.lerobot.writer_v3 import LeRobotV3Writer

    t0 = time.perf_counter()
    key = cfg.video_key
    features = {key: video_feature(cfg.height, cfg.width, {})}
    report = ObservationReport(out_dir, V30, 0, 0, cfg.fps, key, [], 0.0)
    info = {OBSERVATION_ONLY: True, **info_extra}
    with LeRobotV3Writer(out_dir, fps=cfg.fps, features=features, robot_type=cfg.robot_type, video=cfg.settings(),
                         modality=observation_modality([key]), info_extra=info) as w:  # fmt: skip
        for clip, group in _by_clip(shots):
            with local_clip(clip) as path:
                try:
                    available = probe(path).frames  # demux only: a truncated clip is found before encoding
                except LeRobotError as err:
                    report.skipped += [(s.id, str(err)) for s in group]
                    continue
                frames: Iterator[np.ndarray] | None = None
                pos, last = 0, None
                for shot in group:
                    if shot.frames <= 0 or shot.end_frame > available:
                        report.skipped.append((shot.id, f"{clip}: frames [{shot.start_frame}, {shot.end_frame}) but "
                                                        f"the clip has {available}"))
                        continue
                    pick = shot.start_frame + resample_offsets(shot.frames, shot.fps, cfg.fps)
                    if frames is None or shot.start_frame < pos:  # overlapping shots: decode again from the start
                        frames, pos, last = _decoded(path), 0, None
                    ep = w.begin_episode(_task(shot, cfg), length=len(pick), columns=episode_columns(shot))
                    batch: list[np.ndarray] = []
                    for target in pick.tolist():
                        while pos <= target:
                            last = next(frames, None)
                            if last is None:
                                raise VideoEpisodeError(f"{clip}: the video ends at frame {pos}, shot {shot.index} "
                                                        f"needs frames up to {shot.end_frame - 1}")
                            pos += 1
                        assert last is not None
                        batch.append(fit_frame(last, cfg.width, cfg.height, cfg.resize))
                        if len(batch) == cfg.batch_frames:
                            ep.add({key: np.stack(batch)})
                            batch = []
                    if batch:
                        ep.add({key: np.stack(batch)})
                    n = ep.end()
                    report.episode_frames.append(n)
                    report.layers[shot.layer] = report.layers.get(shot.layer, 0) + 1
        if not w.total_episodes:
            why = "; ".join(f"{s}: {r}" for s, r in report.skipped[:3])
            raise VideoEpisodeError(f"{out_dir}: none of the {len(shots)} shots could be written ({why})")
        report.tasks = list(w.tasks)
    report.episodes, report.frames = len(report.episode_frames), sum(report.episode_frames)
    report.seconds = time.perf_counter() - t0
    return report


def write_observation_episodes(
    shots: Sequence[Shot],
    out_dir: str | os.PathLike[str],
    config: ObservationEpisodesConfig | None = None,
    *,
    version: str = V30,
    info_extra: Mapping[str, Any] | None = None,
) -> ObservationReport:
    """Write ``shots`` as a LeRobot dataset of observation-only episodes in ``out_dir`` (atomically).

    ``version`` v3.0, or v2.1 in GR00T's flavour (one MP4 and one parquet per episode, ``meta/modality.json``
    with video and annotation keys and no state/action). ``info_extra`` adds keys to ``meta/info.json``.
    Shots beyond the end of their clip are skipped and named in the report.

    Raises:
        VideoEpisodeError: no shots, none could be written, or a clip does not decode to a shot's end.
    """
    if version not in VERSIONS:
        raise VideoEpisodeError(f"{out_dir}: unknown LeRobot version {version!r} (one of {', '.join(VERSIONS)})")
    if not shots:
        raise VideoEpisodeError(f"{out_dir}: no shots to write")
    cfg = config or ObservationEpisodesConfig()
    out = Path(out_dir)
    extra = dict(info_extra or {})
    if version == V30:
        return _write_v30(shots, out, cfg, extra)
    from robodata.lerobot.aggregate import aggregate

    tmp_v3 = partial_name(out)  # names its owner: `robodata doctor` removes it if this process is killed
    try:
        rep = _write_v30(shots, tmp_v3, cfg, extra)
        with atomic_path(out, kind="dir") as tmp:
            aggregate([tmp_v3], tmp, version=V21)  # video cut per episode (episodes start on keyframes)
            cols = read_episode_columns(tmp_v3, EPISODE_COLUMNS)
            info = read_json(tmp / INFO_PATH)
            info.update({k: v for k, v in {OBSERVATION_ONLY: True, **extra}.items() if k not in info})
            write_json(tmp / INFO_PATH, info)
            add_episode_columns(tmp, cols)
    finally:
        shutil.rmtree(tmp_v3, ignore_errors=True)
    rep.path, rep.version = out, V21
    return rep


# ---- per-episode columns, both versions ------------------------------------------------------------------------


def read_episode_columns(root: str | os.PathLike[str], keys: Sequence[str] = ("layer", "provenance")) -> list[dict]:
    """The ``keys`` columns of every episode of the dataset at ``root`` (v3.0 or v2.1), in episode order; a
    missing column reads as ``None``."""
    root = Path(root)
    info = read_json(root / INFO_PATH)
    if info.get("codebase_version") == V30:
        import pyarrow.parquet as pq

        rows = [r for f in sorted((root / V30_EPISODES_DIR).glob(V30_EPISODES_GLOB)) for r in pq.read_table(f).to_pylist()]
    else:
        rows = read_jsonl(root / V21_EPISODES_PATH)
    rows.sort(key=lambda r: int(r["episode_index"]))
    return [{"episode_index": int(r["episode_index"]), **{k: r.get(k) for k in keys}} for r in rows]


def add_episode_columns(root: str | os.PathLike[str], columns: Sequence[Mapping[str, Any]]) -> None:
    """Add per-episode columns to a dataset being written (``columns[i]`` for episode ``i``; an existing column
    of the same name is replaced). v3.0: ``meta/episodes/*.parquet``; v2.1: ``meta/episodes.jsonl``.

    Not atomic on its own: call it on a staged folder (:mod:`robodata.atomic`)."""
    root = Path(root)
    info = read_json(root / INFO_PATH)
    by_index = {i: {k: v for k, v in c.items() if k != "episode_index"} for i, c in enumerate(columns)}
    if info.get("codebase_version") == V30:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for f in sorted((root / V30_EPISODES_DIR).glob(V30_EPISODES_GLOB)):
            t = pq.read_table(f)
            idx = t.column("episode_index").to_pylist()
            missing = [i for i in idx if i not in by_index]
            if missing:
                raise VideoEpisodeError(f"{f}: no columns given for episodes {missing[:5]}")
            names = sorted({k for i in idx for k in by_index[i]})
            for name in names:
                arr = pa.array([by_index[i].get(name) for i in idx])
                if name in t.column_names:
                    t = t.set_column(t.column_names.index(name), name, arr)
                else:
                    t = t.append_column(name, arr)
            pq.write_table(t, f)
        return
    path = root / V21_EPISODES_PATH
    rows = read_jsonl(path)
    for r in rows:
        i = int(r["episode_index"])
        if i not in by_index:
            raise VideoEpisodeError(f"{path}: no columns given for episode {i}")
        r.update(by_index[i])
    write_jsonl(path, rows)


__all__ = [
    "EPISODE_COLUMNS",
    "OBSERVATION_ONLY",
    "ObservationEpisodesConfig",
    "ObservationReport",
    "VideoEpisodeError",
    "add_episode_columns",
    "fit_frame",
    "observation_modality",
    "read_episode_columns",
    "resample_offsets",
    "write_observation_episodes",
]
