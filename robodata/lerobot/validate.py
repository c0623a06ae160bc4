"""Checks a LeRobot dataset (v2.0, v2.1 or v3.0) the way its readers will use it; returns findings, not exceptions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.layout import (
    DATA_DIR,
    DEFAULT_FEATURES,
    INFO_PATH,
    META_DIR,
    MODALITY_PATH,
    STATS_PATH,
    TASK_ANNOTATION_COLUMN,
    V20,
    V21_EPISODES_STATS_PATH,
    V21_INFO_KEYS,
    V30,
    V30_EPISODES_DIR,
    V30_INFO_KEYS,
)
from robodata.lerobot.metadata import DatasetMeta, read_json, read_meta
from robodata.lerobot.modality import modality_problems, without_videos
from robodata.lerobot.source import FileCache, episode_rows_raw
from robodata.lerobot.video import probe

TIMESTAMP_TOL_S = 1e-4
ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Finding:
    """One problem: its severity (``error`` breaks readers, ``warning`` is suspicious), where, and what; ``fix``
    says what a conversion did about it (a gap of a dataset from the wild that was converted around)."""

    severity: str
    where: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}" + (f"; {self.fix}" if self.fix else "")


def exit_code(findings: list[Finding]) -> int:
    """0 when no finding is an error, 1 otherwise (for the CLI)."""
    return 1 if any(f.severity == ERROR for f in findings) else 0


def validate_dataset(path: str | os.PathLike[str], *, check_videos: bool = True) -> list[Finding]:
    """All findings for the dataset at ``path`` (empty when it is sound)."""
    root = Path(path)
    out: list[Finding] = []
    try:
        meta = read_meta(root)
    except LeRobotError as err:
        return [Finding(ERROR, str(root), str(err))]
    out += _check_info(meta)
    out += _check_episodes_and_rows(meta)
    if check_videos:
        out += _check_videos(meta)
    out += _check_stats(meta)
    mpath = root / MODALITY_PATH
    if mpath.exists():
        try:
            problems = modality_problems(read_json(mpath), meta.features)
        except LeRobotError as err:
            problems = [str(err)]
        out += [Finding(ERROR, str(mpath), p) for p in problems]
    elif meta.version != V30:
        out.append(Finding(WARNING, str(mpath), "missing (GR00T N1.5 needs it)"))
    return out


def _check_info(meta: DatasetMeta) -> list[Finding]:
    where = str(meta.root / INFO_PATH)
    info = meta.info
    out = []
    required = V30_INFO_KEYS if meta.version == V30 else V21_INFO_KEYS
    missing = [k for k in required if k not in info]
    if missing:
        out.append(Finding(ERROR if meta.version == V30 else WARNING, where, f"lacks keys {missing}"))
    fps = info.get("fps")
    if not isinstance(fps, int) or fps <= 0:
        out.append(Finding(ERROR, where, f"fps {fps!r} is not a positive integer"))
    for k, ft in meta.features.items():
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            out.append(Finding(ERROR, where, f"feature {k!r} lacks dtype or shape"))
            continue
        if ft["dtype"] == "video":
            vinfo = ft.get("info") or {}
            if vinfo.get("video.fps") not in (None, fps):
                out.append(Finding(ERROR, where, f"{k}: video.fps {vinfo.get('video.fps')} differs from fps {fps}"))
            shape = list(ft["shape"])
            if len(shape) != 3:
                out.append(Finding(ERROR, where, f"{k}: video shape {shape} is not (height, width, channels)"))
    for k in DEFAULT_FEATURES:
        if k not in meta.features and not (k == "frame_index" and meta.version != V30):
            out.append(Finding(ERROR, where, f"default feature {k!r} is missing"))
    if info.get("total_episodes") != len(meta.episodes):
        out.append(Finding(ERROR, where, f"total_episodes {info.get('total_episodes')} but {len(meta.episodes)} episodes listed"))
    total = sum(e.length for e in meta.episodes)
    if info.get("total_frames") != total:
        out.append(Finding(ERROR, where, f"total_frames {info.get('total_frames')} but episodes hold {total}"))
    if info.get("total_tasks") != len(meta.tasks):
        out.append(Finding(ERROR, where, f"total_tasks {info.get('total_tasks')} but {len(meta.tasks)} tasks listed"))
    return out


def _check_episodes_and_rows(meta: DatasetMeta) -> list[Finding]:
    out: list[Finding] = []
    idx = [e.index for e in meta.episodes]
    if idx != list(range(len(idx))):
        out.append(Finding(ERROR, str(meta.root / META_DIR), f"episode indices are not 0..{len(idx) - 1}"))
    cache = FileCache()
    next_index = 0
    has_annotation = TASK_ANNOTATION_COLUMN in meta.features
    for ep in meta.episodes:
        try:
            t = episode_rows_raw(meta, ep, cache)
        except LeRobotError as err:
            out.append(Finding(ERROR, str(meta.data_file(ep)), str(err)))
            continue
        where = f"{meta.data_file(ep)} (episode {ep.index})"
        n = t.num_rows
        if n != ep.length:
            out.append(Finding(ERROR, where, f"{n} rows but length {ep.length}"))
        if "frame_index" not in t.column_names:
            out.append(Finding(ERROR if meta.version == V30 else WARNING, where, "no frame_index column"))
            fi = np.arange(n)
        else:
            fi = t.column("frame_index").to_numpy()
            if not np.array_equal(fi, np.arange(n)):
                out.append(Finding(ERROR, where, "frame_index is not 0..length-1 in order"))
        if "timestamp" in t.column_names:
            ts = t.column("timestamp").to_numpy().astype(np.float64)
            bad = np.abs(ts - fi / meta.fps) > TIMESTAMP_TOL_S
            if bad.any():
                j = int(np.argmax(bad))
                out.append(Finding(ERROR, where, f"{int(bad.sum())} timestamps differ from frame_index/fps by more than "
                                                 f"{TIMESTAMP_TOL_S} s (first at frame {j}: {ts[j]:.6f} vs {fi[j] / meta.fps:.6f})"))  # fmt: skip
        else:
            out.append(Finding(ERROR, where, "no timestamp column"))
        if "index" in t.column_names:
            ix = t.column("index").to_numpy()
            if not np.array_equal(ix, np.arange(next_index, next_index + n)):
                out.append(Finding(ERROR, where, f"index is not contiguous (expected {next_index}..{next_index + n - 1})"))
        if "task_index" in t.column_names:
            ti = t.column("task_index").to_numpy()
            if len(ti) and (ti.min() < 0 or ti.max() >= len(meta.tasks)):
                out.append(Finding(ERROR, where, f"task_index outside 0..{len(meta.tasks) - 1}"))
            if has_annotation and TASK_ANNOTATION_COLUMN in t.column_names:
                ann = t.column(TASK_ANNOTATION_COLUMN).to_numpy()
                if len(ann) and (ann.min() < 0 or ann.max() >= len(meta.tasks)):
                    out.append(Finding(ERROR, where, f"{TASK_ANNOTATION_COLUMN} outside 0..{len(meta.tasks) - 1}"))
        out += _nonfinite(meta, t, where)
        if meta.version == V30:
            loc = ep.location
            if loc.get("dataset_from_index") != next_index or loc.get("dataset_to_index") != next_index + ep.length:
                out.append(Finding(ERROR, where, "dataset_from_index/dataset_to_index do not match the frame count"))
        next_index += n
    return out


_FLOATS = ("float16", "float32", "float64")


def _nonfinite(meta: DatasetMeta, table: Any, where: str) -> list[Finding]:
    """One finding per float feature of an episode's table holding NaN or inf (a policy trained on them
    learns NaN): how many values, and the first frame."""
    import pyarrow as pa

    out = []
    n = max(table.num_rows, 1)
    for k, ft in meta.features.items():
        if not isinstance(ft, dict) or ft.get("dtype") not in _FLOATS or k not in table.column_names:
            continue
        col = table.column(k).combine_chunks()
        while pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type):
            col = col.flatten()
        values = col.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.argmax(bad)) // max(1, values.size // n)
            out.append(Finding(ERROR, where, f"{k}: {int(bad.sum())} non-finite values (NaN or inf), first at "
                                             f"frame {first}"))
    return out


def nonfinite_findings(path: str | os.PathLike[str]) -> list[Finding]:
    """The NaN / inf findings of a LeRobot dataset alone (what ``convert`` refuses)."""
    meta = read_meta(Path(path))
    cache = FileCache()
    out: list[Finding] = []
    for ep in meta.episodes:
        out += _nonfinite(meta, episode_rows_raw(meta, ep, cache), f"{meta.data_file(ep)} (episode {ep.index})")
    return out


def _check_videos(meta: DatasetMeta) -> list[Finding]:
    out: list[Finding] = []
    probes: dict[Path, Any] = {}
    for key in meta.video_keys:
        ft = meta.features[key]
        for ep in meta.episodes:
            try:
                path, f, t = meta.video_file(ep, key)
            except KeyError as err:
                out.append(Finding(ERROR, str(meta.root), f"episode {ep.index} has no video location for {key} ({err})"))
                continue
            if path not in probes:
                try:
                    probes[path] = probe(path)
                except LeRobotError as err:
                    probes[path] = err
            p = probes[path]
            if isinstance(p, LeRobotError):
                out.append(Finding(ERROR, str(path), str(p)))
                continue
            where = f"{path} (episode {ep.index})"
            n = p.count_between(f, f + ep.length / meta.fps)
            if n != ep.length:
                out.append(Finding(ERROR, where, f"{n} video frames for {ep.length} rows"))
            if abs((t - f) - ep.length / meta.fps) > TIMESTAMP_TOL_S * 10 and meta.version == V30:
                out.append(Finding(WARNING, where, f"to_timestamp - from_timestamp = {t - f:.4f} s, length/fps = {ep.length / meta.fps:.4f} s"))
            h, w = list(ft["shape"])[:2]
            if (p.height, p.width) != (h, w):
                out.append(Finding(ERROR, where, f"video is {p.width}x{p.height}, feature says {w}x{h}"))
    return out


def _check_stats(meta: DatasetMeta) -> list[Finding]:
    out: list[Finding] = []
    if meta.stats is None:
        return [Finding(ERROR if meta.version == V30 else WARNING, str(meta.root / STATS_PATH), "missing")]
    where = str(meta.root / STATS_PATH)
    total = sum(e.length for e in meta.episodes)
    for key, s in meta.stats.items():
        try:
            mn, mx, mean = (np.asarray(s[k], np.float64) for k in ("min", "max", "mean"))
        except KeyError as err:
            out.append(Finding(ERROR, where, f"{key}: lacks {err}"))
            continue
        if mn.shape != mx.shape or mn.shape != mean.shape:
            out.append(Finding(ERROR, where, f"{key}: min/max/mean shapes differ"))
            continue
        slack = 1e-4 * np.maximum(1.0, np.abs(mean))  # lerobot accumulates means in float32
        if np.any(mn > mean + slack) or np.any(mean > mx + slack):
            out.append(Finding(ERROR, where, f"{key}: min <= mean <= max does not hold"))
        if "std" in s and np.any(np.asarray(s["std"], np.float64) < 0):
            out.append(Finding(ERROR, where, f"{key}: negative std"))
        count = int(np.asarray(s.get("count", [0])).ravel()[0])
        if meta.features.get(key, {}).get("dtype") not in ("video", "image") and key in meta.features and count != total:
            out.append(Finding(WARNING, where, f"{key}: count {count} but the dataset has {total} frames"))
        ft = meta.features.get(key)
        if ft and ft.get("dtype") not in ("video", "image") and list(ft["shape"]) != [1] and mean.shape != tuple(ft["shape"]):
            out.append(Finding(ERROR, where, f"{key}: stats shape {mean.shape} differs from feature shape {tuple(ft['shape'])}"))
    return out


# -- Datasets from the wild: gaps a conversion works around -----------------------------------------------------


@dataclass
class Survey:
    """A source dataset as a conversion will read it: ``meta`` with what is not there left out (a video feature
    none of whose files are shipped, the episodes whose file of a camera is not), ``modality`` likewise (``None``
    without ``meta/modality.json``), one ``findings`` entry per gap (each saying what the conversion does about
    it; ``--strict`` refuses them), ``notes`` (``info``: layout normal for the dataset's version that the
    conversion still fills in, such as a v2.0 dataset's per-episode stats; never a reason to refuse), and
    ``nonfinite`` (errors: NaN / inf values, only when asked for)."""

    meta: DatasetMeta
    modality: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)
    nonfinite: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)


def strict_error(src: str | os.PathLike[str], findings: list[Finding]) -> LeRobotError:
    """The one error ``--strict`` raises: every finding of the source, one a line; nothing was written."""
    lines = "\n".join(f"  {f}" for f in findings)
    return LeRobotError(f"{src}: {len(findings)} finding(s), and --strict makes each an error; nothing written:\n{lines}")


def survey_dataset(
    source: str | os.PathLike[str] | DatasetMeta, *, stats: bool = True, nonfinite: bool = False
) -> Survey:
    """What a conversion of ``source`` finds missing or unusual, and the metadata it converts from instead.

    Gaps (warnings, each with its ``fix``): a declared video feature none of whose MP4s are shipped (left out,
    with its modality.json entry), an episode whose MP4 of a camera is not shipped while other episodes' are
    (that episode left out, one finding per episode and camera; the camera is kept), modality.json keys GR00T's
    loader does not know either (kept), data without ``frame_index`` (made from row order) or ``timestamp``
    (made from frame_index / fps), per-episode timestamps not starting at 0 (rebased) or off the 1/fps grid
    (rewritten), and, with ``stats``, missing per-episode stats (recomputed from the data) or
    ``meta/stats.json`` (aggregated from the per-episode stats). What is normal for the dataset's version
    (a v2.0 dataset has no ``episodes_stats.jsonl``; GR00T's documented modality.json keys) is no finding.

    Raises:
        LeRobotError: the dataset cannot be read at all (a metadata or data file missing or not readable).
    """
    meta = source if isinstance(source, DatasetMeta) else read_meta(Path(source))
    out: list[Finding] = []
    dropped, skipped, video_findings = _missing_videos(meta)
    out += video_findings
    modality = None
    mpath = meta.root / MODALITY_PATH
    if mpath.exists():
        raw = read_json(mpath)
        if not isinstance(raw, dict):
            raise LeRobotError(f"{mpath}: not a JSON object")
        out += [Finding(WARNING, str(mpath), what, "kept") for what in groot_unknown_keys(raw)]
        modality = without_videos(raw, dropped) if dropped else raw
    if dropped:
        meta = _without_features(meta, dropped)
    if skipped:
        meta = replace(meta, episodes=[ep for ep in meta.episodes if ep.index not in skipped])
    rows, bad = _row_gaps(meta, nonfinite)
    out += rows
    notes: list[Finding] = []
    if stats:
        for f in _stats_gaps(meta):
            (notes if f.severity == INFO else out).append(f)
    return Survey(meta, modality, out, bad, notes)


# GR00T's modality.json schema (Isaac-GR00T ``gr00t/data/schema.py``, ``LeRobot_compatible_data_schema.md``):
# what its loader reads in each section; robodata reads start/end/original_key and carries the rest through.
_GROOT_SECTIONS = ("state", "action", "video", "annotation")
_GROOT_PART_KEYS = {
    "state": ("start", "end", "rotation_type", "absolute", "dtype", "range", "original_key"),
    "action": ("start", "end", "rotation_type", "absolute", "dtype", "range", "original_key"),
    "video": ("original_key",),
    "annotation": ("original_key",),
}
_GROOT_ROTATIONS = ("axis_angle", "quaternion", "rotation_6d", "matrix", "euler_angles_rpy", "euler_angles_ryp",
                    "euler_angles_pry", "euler_angles_pyr", "euler_angles_yrp", "euler_angles_ypr")  # fmt: skip


def groot_unknown_keys(modality: Mapping[str, Any]) -> list[str]:
    """What in ``modality`` GR00T's loader does not know, in file order: a top-level section other than
    state/action/video/annotation (``extra key 'cameras'``), a key of a part GR00T's schema lacks (``extra key
    'state.arm.units'``), a ``rotation_type`` that is none of GR00T's. Annotation names are free
    (``human.validity``, ``human.action.task_description``: GR00T's ``annotation.<source>.<type>`` columns)."""
    out = []
    for section, body in modality.items():
        if section not in _GROOT_SECTIONS:
            out.append(f"extra key {section!r}")
            continue
        if not isinstance(body, Mapping):
            continue  # not an object: modality_problems says so for state/action
        known = _GROOT_PART_KEYS[section]
        for part, v in body.items():
            if not isinstance(v, Mapping):
                continue
            out += [f"extra key {f'{section}.{part}.{k}'!r}" for k in v if k not in known]
            rot = v.get("rotation_type")
            if section in ("state", "action") and rot is not None and rot not in _GROOT_ROTATIONS:
                rots = ", ".join(_GROOT_ROTATIONS)
                out.append(f"{section}.{part}.rotation_type {rot!r} is not one of GR00T's ({rots})")
    return out


def _without_features(meta: DatasetMeta, keys: set[str]) -> DatasetMeta:
    info = dict(meta.info)
    info["features"] = {k: v for k, v in meta.features.items() if k not in keys}
    episodes = [replace(ep, stats={k: v for k, v in ep.stats.items() if k not in keys}) for ep in meta.episodes]
    stats = None if meta.stats is None else {k: v for k, v in meta.stats.items() if k not in keys}
    return replace(meta, info=info, episodes=episodes, stats=stats)


def _rel(meta: DatasetMeta, path: Path) -> str:
    try:
        return str(path.relative_to(meta.root))
    except ValueError:
        return str(path)


def _missing_videos(meta: DatasetMeta) -> tuple[set[str], set[int], list[Finding]]:
    """The video features none of whose files are shipped (or that have no location at all), left out; and
    the episodes whose file of a camera is missing while the camera's other files are shipped, left out with
    one finding per episode and camera (the camera and every other episode are kept). When leaving episodes
    out would leave none, those cameras are left out instead, so the rows survive."""
    dropped: set[str] = set()
    out: list[Finding] = []
    partial: dict[str, list[tuple[int, str]]] = {}  # camera -> (episode, what is missing)
    total = len(meta.episodes)
    for key in meta.video_keys:
        files: dict[Path, bool] = {}
        unlocated = 0
        lacking: list[tuple[int, str]] = []
        for ep in meta.episodes:
            try:
                path = meta.video_file(ep, key)[0]
            except (KeyError, AttributeError):  # no video_path in info.json, no videos/<key>/ columns in meta/episodes
                unlocated += 1
                lacking.append((ep.index, f"has no video location (no videos/{key}/ columns in {META_DIR}/episodes)"))
                continue
            if path not in files:
                files[path] = path.is_file()
            if not files[path]:
                lacking.append((ep.index, f"{_rel(meta, path)} is not shipped"))
        if not lacking:
            continue
        missing = [p for p, ok in files.items() if not ok]
        if len(lacking) < total:
            partial[key] = lacking
            continue
        dropped.add(key)
        if unlocated:
            what = (f"has no video location for {unlocated} of {total} episodes (no video_path in "
                    f"{INFO_PATH}, or no videos/{key}/ columns in {META_DIR}/episodes)")  # fmt: skip
        elif len(files) == 1:
            what = f"{_rel(meta, missing[0])} is not shipped"
        else:
            what = f"none of its {len(files)} files is shipped (first: {_rel(meta, missing[0])})"
        out.append(Finding(WARNING, key, f"{INFO_PATH} declares a video feature but {what}", "the feature is left out"))
    skipped = {i for lacking in partial.values() for i, _ in lacking}
    if partial and len(skipped) == total:  # no episode has every camera: keep the rows, lose those cameras
        for key, lacking in partial.items():
            dropped.add(key)
            first = lacking[0]
            out.append(Finding(WARNING, key, f"{INFO_PATH} declares a video feature but {len(lacking)} of {total} "
                                             f"episodes lack it (first: episode {first[0]}: {first[1]}), and no "
                                             "episode has every camera", "the feature is left out"))  # fmt: skip
        return dropped, set(), out
    for key, lacking in partial.items():
        out += [Finding(WARNING, key, f"episode {i}: {what}", "the episode is left out") for i, what in lacking]
    return dropped, skipped, out


def _episodes_label(indices: list[int], total: int) -> str:
    if len(indices) == 1:
        return f"episode {indices[0]}"
    if len(indices) == total:
        return f"all {total} episodes"
    head = ", ".join(map(str, indices[:5]))
    return f"episodes {head}" + (f" and {len(indices) - 5} more" if len(indices) > 5 else "")


def _seconds(v: float) -> str:
    return f"{round(float(v), 4):g} s"


def _row_gaps(meta: DatasetMeta, nonfinite: bool) -> tuple[list[Finding], list[Finding]]:
    """One pass over the data files (only the index, time and, for ``nonfinite``, float columns)."""
    import pyarrow.parquet as pq

    floats = [k for k, ft in meta.features.items() if isinstance(ft, dict) and ft.get("dtype") in _FLOATS] if nonfinite else []
    no_frame_index: list[int] = []
    no_timestamp: list[int] = []
    offsets: list[tuple[int, float]] = []
    off_grid: list[tuple[int, int]] = []
    bad: list[Finding] = []
    path: Path | None = None
    table: Any = None
    episode_col: Any = None
    for ep in meta.episodes:
        p = meta.data_file(ep)
        if p != path:
            try:
                names = pq.read_schema(p).names
                cols = [c for c in dict.fromkeys(("episode_index", "frame_index", "timestamp", *floats)) if c in names]
                table = pq.read_table(p, columns=cols)
            except FileNotFoundError as err:
                raise LeRobotError(f"{p}: data file is missing") from err
            except Exception as err:
                raise LeRobotError(f"{p}: not a readable parquet file ({err})") from err
            if "episode_index" not in table.column_names:
                raise LeRobotError(f"{p}: lacks the 'episode_index' column")
            path, episode_col = p, table.column("episode_index").to_numpy()
        rows = np.flatnonzero(episode_col == ep.index)
        if len(rows) == 0:
            raise LeRobotError(f"{p}: has no rows for episode {ep.index}")
        t = table.take(rows)
        n = t.num_rows
        if "frame_index" in t.column_names:
            order = np.argsort(t.column("frame_index").to_numpy(), kind="stable")
        else:
            no_frame_index.append(ep.index)
            order = np.arange(n)
        if "timestamp" in t.column_names:
            ts = t.column("timestamp").to_numpy().astype(np.float64)[order]
            if abs(ts[0]) > TIMESTAMP_TOL_S:
                offsets.append((ep.index, float(ts[0])))
            off = np.abs(ts - ts[0] - np.arange(n) / meta.fps) > TIMESTAMP_TOL_S
            if off.any():
                off_grid.append((ep.index, int(off.sum())))
        else:
            no_timestamp.append(ep.index)
        if floats:
            bad += _nonfinite(meta, t, f"{p} (episode {ep.index})")
    out = []
    data = str(meta.root / DATA_DIR)
    total = len(meta.episodes)
    if no_frame_index:
        out.append(Finding(WARNING, data, f"no frame_index column ({_episodes_label(no_frame_index, total)})",
                           "made from row order"))  # fmt: skip
    if no_timestamp:
        out.append(Finding(WARNING, data, f"no timestamp column ({_episodes_label(no_timestamp, total)})",
                           "made from frame_index / fps"))  # fmt: skip
    if offsets:
        label = _episodes_label([i for i, _ in offsets], total)
        starts = ", ".join(_seconds(s) for _, s in offsets[:3]) + (", ..." if len(offsets) > 3 else "")
        out.append(Finding(WARNING, data, f"{label}: timestamps start at {starts}", "rebased to 0"))
    if off_grid:
        label = _episodes_label([i for i, _ in off_grid], total)
        frames = sum(c for _, c in off_grid)
        out.append(Finding(WARNING, data, f"{label}: {frames} timestamps are off the 1/fps grid by more than "
                                          f"{TIMESTAMP_TOL_S} s", "rewritten as frame_index / fps"))  # fmt: skip
    return out, bad


def _stats_gaps(meta: DatasetMeta) -> list[Finding]:
    from robodata.lerobot.source import table_features

    out = []
    total = len(meta.episodes)
    if meta.version == V30:
        where = str(meta.root / V30_EPISODES_DIR)
        absent = "no per-episode stats columns (stats/<feature>/<stat>)"
    else:
        where = str(meta.root / V21_EPISODES_STATS_PATH)
        absent = "missing"
    # default columns (index, timestamp...) are always re-derived from the re-based rows, so never a gap
    needed = [k for k in table_features(meta) if k not in DEFAULT_FEATURES] + meta.video_keys
    empty = [ep.index for ep in meta.episodes if not ep.stats]
    if len(empty) == total:
        if meta.version == V20:  # v2.0 has no per-episode stats file: normal for it, so a note, not a finding
            out.append(Finding(INFO, where, "none (v2.0 datasets have none)",
                               "per-episode stats computed from the data"))  # fmt: skip
        else:
            out.append(Finding(WARNING, where, absent, "per-episode stats recomputed from the data"))
    else:
        if empty:
            out.append(Finding(WARNING, where, f"no stats for {_episodes_label(empty, total)}",
                               "recomputed from the data"))  # fmt: skip
        lacking: dict[str, list[int]] = {}
        for ep in meta.episodes:
            if ep.stats:
                for k in needed:
                    if k not in ep.stats:
                        lacking.setdefault(k, []).append(ep.index)
        for k, eps in lacking.items():
            out.append(Finding(WARNING, where, f"no {k} stats for {_episodes_label(eps, total)}",
                               "recomputed from the data"))  # fmt: skip
    if meta.stats is None:
        out.append(Finding(WARNING, str(meta.root / STATS_PATH), "missing", "aggregated from the per-episode stats"))
    return out
