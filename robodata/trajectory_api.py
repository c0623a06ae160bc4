"""Trajectory extraction in the Python API: the ``trim_idle`` and ``segment_episodes`` stages, the
``idle_fraction`` metric (registered by entry point, like every built-in).

They work on episode rows (:mod:`robodata.api.extensions`): the speed comes from a row column
(``observation.state`` unless ``speed_feature`` names another), the clock from ``timestamp`` where a row has
one, else ``frame / fps``. Unlike :func:`robodata.trajectory.extract_store`, which sees a whole store, an
episode row is alone: a relative idle speed is relative to the episode's own 95th percentile speed (give
``idle_speed`` for one threshold across episodes).

The stages change episode lengths. Every per-frame array column is cut to the kept frames, and the row
says which frames of its source demo it holds in ``_frames`` (``[start, stop)``, composed over stages), so
that the writer can cut the camera frames and the other datasets of the demo to match. A segment is a new
episode: ``episode_id`` ``<source id>/segment_<k>``, with ``segment_of``, ``segment_index`` and
``segment_reason`` columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from robodata.api.episodes import FRAMES_COLUMN
from robodata.api.extensions import Metric, PipelineStage
from robodata.trajectory import EpisodePlan, TrajectoryConfig, idle_threshold, plan_episode, speed


def _config(where: str, defaults: dict[str, Any], options: dict[str, Any]) -> TrajectoryConfig:
    from robodata.api.errors import PipelineError
    from robodata.topicmap import format_validation_error

    try:
        return TrajectoryConfig(**(defaults | options))
    except ValidationError as err:
        raise PipelineError(format_validation_error(err, where)) from err


def _clock(row: dict[str, Any], n: int) -> np.ndarray:
    ts = row.get("timestamp")
    if ts is not None and len(np.asarray(ts).reshape(-1)) == n:
        return np.asarray(ts, np.float64).reshape(-1)
    return np.arange(n, dtype=np.float64) / float(row.get("fps") or 1.0)


def _plan(row: dict[str, Any], cfg: TrajectoryConfig, gripper: np.ndarray | None = None) -> EpisodePlan:
    n = int(row["num_frames"])
    col = cfg.speed_feature or "observation.state"
    if col not in row:
        from robodata.api.errors import PipelineError

        raise PipelineError(f"episode {row.get('episode_id')}: no column {col!r} to take the speed from")
    x = np.asarray(row[col], np.float64).reshape(n, -1)
    ts = _clock(row, n)
    v = speed(x, ts)
    return plan_episode(str(row.get("episode_id", "")), v, ts, cfg, idle_threshold([v], cfg), gripper)


def cut_row(row: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """``row`` holding only its frames ``[start, stop)``: every per-frame array column cut, ``num_frames`` and
    ``_frames`` (the frames of the source demo) updated."""
    n = int(row["num_frames"])
    out = dict(row)
    for k, v in row.items():
        if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n:
            out[k] = v[start:stop]
    base = int(np.asarray(row.get(FRAMES_COLUMN, [0, n])).reshape(-1)[0])
    out[FRAMES_COLUMN] = np.array([base + start, base + stop], np.int64)
    out["num_frames"] = stop - start
    if "timestamp" in out and isinstance(out["timestamp"], np.ndarray) and len(out["timestamp"]):
        out["timestamp"] = out["timestamp"] - out["timestamp"][0]
    return out


class TrimIdle(PipelineStage):
    """Trim idle frames off the start and/or end of each episode; drop an episode idle throughout.

    Options are :class:`robodata.trajectory.TrajectoryConfig`'s (``idle_speed``, ``min_idle_s``, ``trim_idle``,
    ``keep_idle_s``, ``speed_feature`` (a row column), ...)."""

    name = "trim_idle"

    def __init__(self, **options: Any):
        self.config = _config("stage trim_idle", {"segment_by": "none"}, options)

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        plan = _plan(episode, self.config)
        if plan.dropped:
            return None
        out = cut_row(episode, plan.kept.start, plan.kept.stop)
        out["trimmed_start"], out["trimmed_end"] = plan.trimmed_start, plan.trimmed_end
        return out


class SegmentEpisodes(PipelineStage):
    """Cut each episode into segments at gripper events (default) or at pauses (``segment_by: velocity``);
    each segment becomes an episode of its own. The gripper signal is column ``gripper_dim`` (default: the
    last) of the row column ``gripper_feature`` (default: ``action``). Idle ends are not trimmed unless
    ``trim_idle`` says so."""

    name = "segment_episodes"

    def __init__(self, **options: Any):
        self.config = _config("stage segment_episodes", {"segment_by": "gripper", "trim_idle": "none"}, options)

    def segments(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        cfg = self.config
        n = int(row["num_frames"])
        grip = None
        if cfg.segment_by == "gripper":
            g = np.asarray(row[cfg.gripper_feature or "action"], np.float64).reshape(n, -1)
            grip = g[:, cfg.gripper_dim if cfg.gripper_dim is not None else -1]
        plan = _plan(row, cfg, grip)
        out = []
        for i, seg in enumerate(plan.segments):
            r = cut_row(row, seg.start, seg.stop)
            r.update({"episode_id": f"{row['episode_id']}/segment_{i}", "segment_of": str(row["episode_id"]),
                      "segment_index": i, "segment_reason": seg.reason})
            out.append(r)
        return out

    def process_batch(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from robodata.api.episodes import batch_of, rows_of

        rows = [r for row in rows_of(batch) for r in self.segments(row)]
        return batch_of(rows, batch)


class IdleFraction(Metric):
    """Share of each episode's time spent idle (and the idle seconds, and the number of idle stretches)."""

    name = "idle_fraction"

    def __init__(self, **options: Any):
        self.config = _config("metric idle_fraction", {"segment_by": "none", "trim_idle": "none"}, options)

    def compute(self, episode: dict[str, Any]) -> dict[str, float]:
        plan = _plan(episode, self.config)
        return {"idle_fraction": plan.idle_fraction, "idle_s": plan.idle_s, "idle_segments": float(len(plan.idle))}
