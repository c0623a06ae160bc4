"""What is in a recording or dataset: a summary dict, and a readable table of it (``robodata inspect PATH``).

Knows three kinds of input (told apart by :mod:`robodata.pathkind`): a recording (ROS 1 bag, ROS 2 bag
folder, MCAP), an Isaac Lab / robomimic HDF5 episode store, and a LeRobot dataset folder (``meta/info.json``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robodata.errors import RobodataError
from robodata.pathkind import HDF5_SUFFIXES, PathKind, detect, require

__all__ = [
    "HDF5_SUFFIXES",
    "InspectError",
    "format_inspection",
    "inspect_episode_store",
    "inspect_lerobot",
    "inspect_path",
    "inspect_recording",
]


class InspectError(RobodataError):
    """A dataset cannot be inspected: its metadata is unreadable (the message names the file)."""


def inspect_path(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarise a recording, an Isaac Lab HDF5 episode store or a LeRobot dataset folder.

    The dict always has ``kind`` (``"recording"``, ``"isaaclab_hdf5"``, ``"lerobot"``) and ``path``.

    Raises:
        RobodataError: the path is missing (:class:`~robodata.pathkind.PathKindError`), damaged, or not one of
            those kinds (:class:`~robodata.pathkind.PathKindError`).
    """
    info = require(path, _INSPECTORS.keys(), what="something robodata can inspect")
    return _INSPECTORS[info.kind](info.path)


# -- recordings ----------------------------------------------------------------------------------------------
def inspect_recording(path: Path) -> dict[str, Any]:
    """Storage, time span, size, and per topic: type, count, rate and timing jitter (without decoding)."""
    from robodata.readers import McapRecordingReader, open_recording

    options = {"allow_truncated": True} if detect(path, (PathKind.MCAP,)) is not None else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_recording(path, **options) as rec:
            topics = rec.topics()
            count = rec.message_count
            timing = rec.interarrival() if count else {}
            out: dict[str, Any] = {
                "kind": "recording",
                "path": str(rec.path),
                "storage": rec.storage,
                "size_bytes": rec.size_bytes,
                "message_count": count,
                "start_ns": rec.start_ns,
                "end_ns": rec.end_ns,
                "duration_s": rec.duration_s,
                "topics": [],
            }
            if isinstance(rec, McapRecordingReader):
                out["truncated"] = rec.truncated
                out["has_summary"] = rec.has_summary
            for name in sorted(topics):
                t = topics[name]
                ia = timing.get(name)
                out["topics"].append(
                    {
                        "name": name,
                        "type": t.msgtype,
                        "encoding": t.encoding,
                        "count": t.count,
                        "first_ns": t.first_ns,
                        "last_ns": t.last_ns,
                        "rate_hz": t.rate_hz,
                        "period_mean_ms": ia.mean * 1e3 if ia is not None and ia.n else None,
                        "jitter_ms": ia.std * 1e3 if ia is not None and ia.std is not None else None,
                        "max_gap_ms": ia.max * 1e3 if ia is not None and ia.n else None,
                    }
                )
    out["warnings"] = [str(w.message) for w in caught]
    return out


# -- Isaac Lab HDF5 ------------------------------------------------------------------------------------------
def inspect_episode_store(path: Path) -> dict[str, Any]:
    """Demos, frames, features (role, shape, dtype), fps and success counts of an Isaac Lab HDF5 file."""
    from robodata.formats.isaaclab import ENV_NAME_KEY, EpisodeStore

    with EpisodeStore(path) as store:
        lengths = [store.num_samples(n) for n in store.demo_names]
        success = {"true": 0, "false": 0, "unknown": 0}
        for name in store.demo_names:
            v = store.attrs(name).get("success")
            success["unknown" if v is None else ("true" if bool(v) else "false")] += 1
        schema = store.schema
        first = store.demo_names[0] if store.demo_names else None
        layout = {} if first is None else {
            "per_frame": {p: list(store.group(first)[p].shape[1:]) for p in store._layout(first).per_frame},
            "static": {p: list(store.group(first)[p].shape) for p in store._layout(first).static},
        }
        return {
            "kind": "isaaclab_hdf5",
            "written_by": "isaaclab" if store.foreign else "robodata",
            "timestamps": "inferred" if store.timestamps_inferred else "stored",
            "quaternions": store.quaternion_order.describe() if store.quaternion_order else None,
            "other_datasets": layout,
            "path": str(path),
            "size_bytes": path.stat().st_size,
            "env_name": store.env_args.get(ENV_NAME_KEY, ""),
            "task": schema.task,
            "robot_type": schema.robot_type,
            "fps": schema.fps,
            "demos": len(store),
            "frames": sum(lengths),
            "demo_length": _stats(lengths),
            "success": success,
            "features": [
                {"name": f.name, "role": f.role, "shape": list(f.shape), "dtype": f.dtype, "path": f.h5path}
                for f in schema.features
            ],
        }


# -- LeRobot -------------------------------------------------------------------------------------------------
def inspect_lerobot(path: Path) -> dict[str, Any]:
    """codebase_version, fps, robot type, episodes, frames, tasks, features and video keys of a LeRobot dataset."""
    from robodata.lerobot.layout import INFO_PATH, MODALITY_PATH

    info_path = path / INFO_PATH
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InspectError(f"{info_path}: not readable JSON ({err})") from err
    if not isinstance(info, dict) or "features" not in info:
        raise InspectError(f"{info_path}: not a LeRobot info.json (no 'features')")
    features = info.get("features") or {}
    lengths = _lerobot_episode_lengths(path)
    return {
        "kind": "lerobot",
        "path": str(path),
        "size_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
        "codebase_version": info.get("codebase_version"),
        "robot_type": info.get("robot_type"),
        "fps": info.get("fps"),
        "episodes": info.get("total_episodes"),
        "frames": info.get("total_frames"),
        "episode_length": _stats(lengths) if lengths else None,
        "tasks": _lerobot_tasks(path),
        "features": [
            {"name": k, "dtype": v.get("dtype"), "shape": list(v.get("shape") or [])}
            for k, v in features.items()
            if isinstance(v, dict)
        ],
        "video_keys": [k for k, v in features.items() if isinstance(v, dict) and v.get("dtype") == "video"],
        "image_keys": [k for k, v in features.items() if isinstance(v, dict) and v.get("dtype") == "image"],
        "has_modality_json": (path / MODALITY_PATH).is_file(),
        "findings": _lerobot_findings(path),
    }


def _lerobot_findings(path: Path) -> list[str]:
    """What ``robodata convert`` would find missing or unusual and do about it (or why it cannot convert)."""
    from robodata.lerobot.errors import LeRobotError
    from robodata.lerobot.validate import survey_dataset

    try:
        return [str(f) for f in survey_dataset(path).findings]
    except LeRobotError as err:
        return [f"error: {err}"]


def _lerobot_tasks(path: Path) -> list[str]:
    from robodata.lerobot.layout import META_DIR, V21_TASKS_PATH, V30_TASKS_PATH

    meta = path / META_DIR
    try:
        if (path / V30_TASKS_PATH).is_file():  # v3.0: the task strings are the index
            import pandas as pd

            df = pd.read_parquet(path / V30_TASKS_PATH)
            if "task_index" in df.columns:
                df = df.sort_values("task_index")
            return [str(t) for t in (df["task"] if "task" in df.columns else df.index)]
        if (path / V21_TASKS_PATH).is_file():  # v2.x
            rows = [json.loads(line) for line in (path / V21_TASKS_PATH).read_text().splitlines() if line.strip()]
            return [str(r["task"]) for r in sorted(rows, key=lambda r: r.get("task_index", 0))]
    except Exception as err:
        raise InspectError(f"{meta}: cannot read the tasks table ({err})") from err
    return []


def _lerobot_episode_lengths(path: Path) -> list[int]:
    from robodata.lerobot.layout import META_DIR, V21_EPISODES_PATH, V30_EPISODES_DIR, V30_EPISODES_GLOB

    meta = path / META_DIR
    try:
        files = sorted((path / V30_EPISODES_DIR).glob(V30_EPISODES_GLOB))
        if files:  # v3.0
            import pyarrow.parquet as pq

            return [int(x) for f in files for x in pq.read_table(f, columns=["length"]).column("length").to_pylist()]
        if (path / V21_EPISODES_PATH).is_file():  # v2.x
            lines = (path / V21_EPISODES_PATH).read_text().splitlines()
            return [int(json.loads(line)["length"]) for line in lines if line.strip()]
    except Exception as err:
        raise InspectError(f"{meta}: cannot read the episodes table ({err})") from err
    return []


def _stats(values: Iterable[int]) -> dict[str, float] | None:
    v = list(values)
    if not v:
        return None
    return {"min": min(v), "max": max(v), "mean": sum(v) / len(v)}


# Which summary each kind of path gets.
_INSPECTORS: dict[PathKind, Callable[[Path], dict[str, Any]]] = {
    PathKind.MCAP: inspect_recording,
    PathKind.ROS1_BAG: inspect_recording,
    PathKind.ROS2_BAG: inspect_recording,
    PathKind.ISAACLAB_HDF5: inspect_episode_store,
    PathKind.LEROBOT: inspect_lerobot,
}


# -- formatting ----------------------------------------------------------------------------------------------
def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _time(ns: int | None) -> str:
    if ns is None:
        return "-"
    try:
        when = datetime.fromtimestamp(ns / 1e9, tz=UTC)
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"


def _num(v: float | None, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def _table(headers: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    right = set(right)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_inspection(d: dict[str, Any]) -> str:
    """A readable text report of an ``inspect_path`` result."""
    kind = d.get("kind")
    if kind == "recording":
        head = [
            f"{d['path']}",
            f"  storage    {d['storage']}"
            + ("  (no summary section: read by scanning)" if d.get("has_summary") is False else ""),
            f"  size       {_size(d['size_bytes'])}",
            f"  messages   {d['message_count']}",
            f"  start      {_time(d['start_ns'])}",
            f"  end        {_time(d['end_ns'])}",
            f"  duration   {d['duration_s']:.3f} s",
        ]
        if d.get("truncated"):
            head.append(f"  TRUNCATED  {d['truncated']}")
        for w in d.get("warnings", []):
            if not d.get("truncated") or d["truncated"] not in w:
                head.append(f"  warning    {w}")
        rows = [
            [
                t["name"],
                t["type"],
                str(t["count"]),
                _num(t["rate_hz"]),
                _num(t["jitter_ms"], ".3f"),
                _num(t["max_gap_ms"], ".1f"),
            ]
            for t in d["topics"]
        ]
        table = _table(["topic", "type", "count", "rate Hz", "jitter ms", "max gap ms"], rows, right=(2, 3, 4, 5))
        return "\n".join(head) + "\n\n" + (table if rows else "(no topics)")
    if kind == "isaaclab_hdf5":
        s = d["success"]
        length = d["demo_length"]
        head = [
            f"{d['path']}",
            "  format     Isaac Lab / robomimic HDF5 episode store",
            f"  env        {d['env_name'] or '-'}" + (f"  task: {d['task']}" if d.get("task") else ""),
            f"  fps        {d['fps']:g}" + ("  (no timestamps in the file: frame / fps)"
                                                 if d.get("timestamps") == "inferred" else ""),
            *([f"  quaternions {d['quaternions']}; features read as xyzw"] if d.get("quaternions") else []),
            f"  demos      {d['demos']}  (success: {s['true']}, failed: {s['false']}, unknown: {s['unknown']})",
            f"  frames     {d['frames']}"
            + (f"  (per demo: min {length['min']}, mean {length['mean']:.1f}, max {length['max']})" if length else ""),
            f"  size       {_size(d['size_bytes'])}",
        ]
        rows = [[f["name"], f["role"], "x".join(map(str, f["shape"])) or "scalar", f["dtype"], f.get("path", "")]
                for f in d["features"]]
        text = "\n".join(head) + "\n\n" + _table(["feature", "role", "shape", "dtype", "dataset"], rows)
        other = d.get("other_datasets") or {}
        kept = [[p, "per frame", "x".join(map(str, sh)) or "scalar"] for p, sh in (other.get("per_frame") or {}).items()]
        kept += [[p, "once", "x".join(map(str, sh)) or "scalar"] for p, sh in (other.get("static") or {}).items()]
        if kept:
            text += "\n\nkept as recorded (sim state, ...):\n" + _table(["dataset", "rows", "shape"], kept)
        return text
    if kind == "lerobot":
        length = d.get("episode_length")
        head = [
            f"{d['path']}",
            f"  format     LeRobot {d['codebase_version']}"
            + ("  (+ meta/modality.json, GR00T)" if d.get("has_modality_json") else ""),
            f"  robot      {d['robot_type']}",
            f"  fps        {d['fps']}",
            f"  episodes   {d['episodes']}",
            f"  frames     {d['frames']}"
            + (
                f"  (per episode: min {length['min']}, mean {length['mean']:.1f}, max {length['max']})"
                if length
                else ""
            ),
            f"  tasks      {len(d['tasks'])}: " + "; ".join(d["tasks"][:5]) + (" ..." if len(d["tasks"]) > 5 else ""),
            f"  videos     {', '.join(d['video_keys']) or '-'}",
            f"  size       {_size(d['size_bytes'])}",
        ]
        findings = d.get("findings") or []
        if findings:
            head.append(f"  gaps       {len(findings)} (what robodata convert does about each):")
            head += [f"    {f}" for f in findings]
        rows = [[f["name"], str(f["dtype"]), "x".join(map(str, f["shape"]))] for f in d["features"]]
        return "\n".join(head) + "\n\n" + _table(["feature", "dtype", "shape"], rows)
    raise InspectError(f"unknown inspection kind {kind!r}")
