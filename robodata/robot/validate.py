"""Joint data checked against a robot model: names exist, positions within limits, velocities within limits.

Findings are per joint and per kind, with the frame ranges (contiguous runs of offending frames, e.g.
``frames 120-164``), the time span, and the worst value against its limit. Positions in rad or m, velocities in
rad/s or m/s (the joint's unit). Velocities are the recorded ones when given, else backward differences of the
positions over the timestamps (the first frame takes the first difference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from robodata.robot.model import NO_VELOCITY_LIMITS, JointNameError, RobotModel, RobotModelError

KINDS = ("below lower limit", "above upper limit", "over velocity limit")
DEFAULT_POSITION_TOLERANCE = 1e-3  # rad or m: simulators and drivers overshoot soft limits by a little
DEFAULT_VELOCITY_TOLERANCE = 0.0  # rad/s or m/s


@dataclass
class JointFinding:
    """One joint breaking one limit: ``frames`` are inclusive ``(first, last)`` runs; ``worst`` is the value
    furthest past ``limit`` (at ``worst_frame``); ``unit`` is ``rad``/``m`` (positions) or ``rad/s``/``m/s``."""

    joint: str
    kind: str
    frames: list[tuple[int, int]]
    worst: float
    limit: float
    worst_frame: int
    unit: str
    count: int
    seconds: tuple[float, float] | None = None
    episode: str = ""

    @property
    def frame_ranges(self) -> str:
        """``frames 120-164, 300`` (inclusive ranges)."""
        parts = [f"{a}-{b}" if b > a else f"{a}" for a, b in self.frames]
        return ("frame " if self.count == 1 else "frames ") + ", ".join(parts)

    @property
    def message(self) -> str:
        span = ""
        if self.seconds:
            a, b = self.seconds
            span = f" (t={a:.3f} s)" if a == b else f" (t={a:.3f}-{b:.3f} s)"
        where = f"{self.episode}: " if self.episode else ""
        return (f"{where}joint {self.joint}: {self.kind} {self.limit:.4g} {self.unit} in {self.frame_ranges}{span}; "
                f"worst {self.worst:.4g} {self.unit} at frame {self.worst_frame} ({self.count} frame(s))")

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"message": self.message}


def frame_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` runs of True in a 1-d mask."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    if not m.any():
        return []
    edges = np.diff(np.concatenate([[0], m, [0]]))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def finite_difference_velocity(positions: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """``(T, J)`` velocities: backward differences ``(q[t] - q[t-1]) / (t[t] - t[t-1])``; frame 0 takes frame 1's."""
    q = np.asarray(positions, dtype=np.float64)
    t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    v = np.zeros_like(q)
    if len(q) < 2:
        return v
    dt = np.diff(t)
    if (dt <= 0).any():
        bad = int(np.flatnonzero(dt <= 0)[0]) + 1
        raise RobotModelError(f"timestamps do not increase at frame {bad} ({t[bad - 1]} -> {t[bad]} s): "
                              "cannot compute velocities")
    v[1:] = np.diff(q, axis=0) / dt[:, None]
    v[0] = v[1]
    return v


def _finding(joint: str, kind: str, values: np.ndarray, mask: np.ndarray, limit: float, unit: str,
             timestamps: np.ndarray | None, episode: str) -> JointFinding:
    idx = np.flatnonzero(mask)
    excess = np.abs(values[idx] - limit)
    w = int(idx[int(np.argmax(excess))])
    secs = (float(timestamps[idx[0]]), float(timestamps[idx[-1]])) if timestamps is not None else None
    return JointFinding(joint, kind, frame_runs(mask), float(values[w]), float(limit), w, unit, int(idx.size),
                        secs, episode)


@dataclass
class JointReport:
    """Findings of one episode (or one array), plus notes such as "no velocity limits in the model"."""

    findings: list[JointFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def validate_joints(
    model: RobotModel,
    joint_names: Sequence[str],
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    timestamps: np.ndarray | None = None,
    *,
    position_tolerance: float = DEFAULT_POSITION_TOLERANCE,
    velocity_tolerance: float = DEFAULT_VELOCITY_TOLERANCE,
    episode: str = "",
    notes: list[str] | None = None,
) -> list[JointFinding]:
    """Check ``(T, J)`` joint positions (and velocities) named ``joint_names`` against ``model``'s limits.

    Args:
        joint_names: the data's name for each column; every one must be a joint of the model, else one
            :class:`JointNameError` lists the mismatches (with close matches) and the model's joints.
        velocities: recorded ``(T, J)`` velocities; None computes them from ``positions`` and ``timestamps``
            (without timestamps velocities are not checked).
        timestamps: ``(T,)`` seconds, for computed velocities and the time span of each finding.
        position_tolerance / velocity_tolerance: how far past a limit a value may go before it is a finding.
        notes: a list to append remarks to (e.g. the model has no velocity limits).

    Returns:
        One :class:`JointFinding` per joint and kind of violation, in column order.
    """
    joints = model.resolve(list(joint_names))
    q = np.asarray(positions, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != len(joints):
        raise JointNameError(f"{model.path}: positions have shape {q.shape}, expected (T, {len(joints)}) "
                             f"for joints {list(joint_names)}")
    t = None if timestamps is None else np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if t is not None and len(t) != len(q):
        raise RobotModelError(f"{len(t)} timestamps for {len(q)} frames of joint positions")
    if velocities is not None:
        v: np.ndarray | None = np.asarray(velocities, dtype=np.float64)
        if v is not None and v.shape != q.shape:
            raise RobotModelError(f"velocities have shape {v.shape}, positions {q.shape}")
    else:
        v = finite_difference_velocity(q, t) if t is not None else None
    if notes is not None and not model.has_velocity_limits:
        notes.append(f"{model.path.name}: {NO_VELOCITY_LIMITS}; velocities not checked")
    out: list[JointFinding] = []
    for c, j in enumerate(joints):
        col = q[:, c]
        if np.isfinite(j.lower):
            below = col < j.lower - position_tolerance
            if below.any():
                out.append(_finding(j.name, KINDS[0], col, below, j.lower, j.unit, t, episode))
        if np.isfinite(j.upper):
            above = col > j.upper + position_tolerance
            if above.any():
                out.append(_finding(j.name, KINDS[1], col, above, j.upper, j.unit, t, episode))
        if v is not None and j.velocity is not None:
            vc = v[:, c]
            over = np.abs(vc) > j.velocity + velocity_tolerance
            if over.any():
                f = _finding(j.name, KINDS[2], np.abs(vc), over, j.velocity, j.unit + "/s", t, episode)
                f.worst = float(vc[f.worst_frame])  # signed, as recorded
                out.append(f)
    return out


def _feature_columns(store: Any, features: Sequence[str], joint_map: Mapping[str, str] | None) -> list[tuple[str, list[str]]]:
    """(feature, model joint names per column) for each position feature, names from the store's schema."""
    out = []
    for feat in features:
        spec = store.spec(feat)
        if not spec.names:
            raise RobotModelError(f"{store.path}: feature {feat!r} has no per-dimension names to match "
                                  "against the robot model's joints")
        out.append((feat, [(joint_map or {}).get(n, n) for n in spec.names]))
    return out


def validate_episode_store(
    store: Any,
    model: RobotModel,
    positions: Sequence[str] | Mapping[str, str | None] = ("joint_pos",),
    joint_map: Mapping[str, str] | None = None,
    **kw: Any,
) -> dict[str, JointReport]:
    """Validate every demo of an open :class:`robodata.formats.isaaclab.EpisodeStore`.

    Args:
        positions: the joint-position features (their schema ``names`` name the joints), or a mapping
            position feature -> velocity feature (None: velocities from positions and timestamps).
        joint_map: data joint name -> model joint name, where they differ (identity otherwise).
        kw: passed to :func:`validate_joints` (tolerances).

    Returns:
        demo name -> :class:`JointReport` (findings carry the demo name). Names are checked once, up front.
    """
    vel_of = dict(positions) if isinstance(positions, Mapping) else dict.fromkeys(positions)
    cols = _feature_columns(store, list(vel_of), joint_map)
    for _, names in cols:
        model.resolve(names)
    reports: dict[str, JointReport] = {}
    for demo in store.demo_names:
        report = JointReport()
        if not model.has_velocity_limits:
            report.notes.append(f"{model.path.name}: {NO_VELOCITY_LIMITS}; velocities not checked")
        t = store.timestamps(demo)
        for feat, names in cols:
            q = np.asarray(store.feature(demo, feat), dtype=np.float64).reshape(len(t), -1)
            vf = vel_of[feat]
            v = np.asarray(store.feature(demo, vf), dtype=np.float64).reshape(q.shape) if vf else None
            report.findings += validate_joints(model, names, q, v, t, episode=demo, **kw)
        reports[demo] = report
    return reports


def lerobot_feature_names(feature: Mapping[str, Any]) -> list[str]:
    """Per-dimension names of a LeRobot ``info.json`` feature (``names`` a list, or a dict of lists such as
    ``{"motors": [...]}``); empty when there are none or they do not cover the shape."""
    n = int(np.prod(feature.get("shape") or [1]))
    names = feature.get("names")
    flat: list[str] = []
    if isinstance(names, dict):
        for v in names.values():
            flat += [str(x) for x in v] if isinstance(v, list) else []
    elif isinstance(names, list):
        flat = [str(x) for x in names]
    return flat if len(flat) == n else []


def lerobot_joint_features(info: Mapping[str, Any], positions: Sequence[str] | None = None) -> list[str]:
    """The joint-position features of a LeRobot dataset: ``positions`` where given (each must be a feature),
    else ``observation.state``, plus ``action`` when it carries the same names (absolute joint targets; delta or
    end-effector actions have other names, or none, and are not joint positions)."""
    from robodata.lerobot.layout import ACTION_KEY, STATE_KEY

    feats = info.get("features") or {}
    if positions:
        return list(positions)
    out = [STATE_KEY] if STATE_KEY in feats else []
    if out and ACTION_KEY in feats and lerobot_feature_names(feats[ACTION_KEY]) == \
            lerobot_feature_names(feats[STATE_KEY]) and feats[ACTION_KEY].get("shape") == feats[STATE_KEY].get("shape"):
        out.append(ACTION_KEY)
    return out


def validate_lerobot_dataset(
    root: Any,
    model: RobotModel,
    positions: Sequence[str] | None = None,
    *,
    joints: Sequence[str] | None = None,
    joint_map: Mapping[str, str] | None = None,
    **kw: Any,
) -> dict[str, JointReport]:
    """Validate the joint features of a LeRobot dataset (v2.x or v3.0, any writer) against ``model``.

    Args:
        positions: joint-position features (default: :func:`lerobot_joint_features`).
        joints: the model's joint for each column, in order, where ``info.json`` names are missing or are not
            the model's (SO-101 recordings name motors ``j0..j5``); else the info.json names through ``joint_map``.
        kw: passed to :func:`validate_joints` (tolerances). Velocities come from positions and timestamps.

    Returns:
        ``episode_<i>`` -> :class:`JointReport`; frames in findings are the episode's ``frame_index``.
    """
    from pathlib import Path

    import pyarrow.parquet as pq

    from robodata.lerobot.layout import DATA_DIR, INFO_PATH
    from robodata.lerobot.metadata import read_info

    root = Path(root)
    info = read_info(root)
    feats = info.get("features") or {}
    keys = lerobot_joint_features(info, positions)
    if not keys:
        raise RobotModelError(f"{root / INFO_PATH}: no joint-position feature to check against the robot model "
                              f"(no observation.state; name them with positions); features: {sorted(feats)}")
    cols: list[tuple[str, list[str]]] = []
    for k in keys:
        if k not in feats:
            raise RobotModelError(f"{root / INFO_PATH}: no feature {k!r} (its features: {sorted(feats)})")
        n = int(np.prod(feats[k].get("shape") or [1]))
        if joints:
            if len(joints) != n:
                raise JointNameError(f"{root / INFO_PATH}: {k} has {n} dimension(s) but {len(joints)} joint name(s) "
                                     f"were given ({list(joints)})")
            names = list(joints)
        else:
            data_names = lerobot_feature_names(feats[k])
            if not data_names:
                raise RobotModelError(f"{root / INFO_PATH}: feature {k!r} has no per-dimension names to match "
                                      "against the robot model's joints; name them (--joints)")
            names = [(joint_map or {}).get(x, x) for x in data_names]
        try:
            model.resolve(names)
        except JointNameError as err:
            raise JointNameError(f"{root / INFO_PATH} {k}: {err} (name the model's joint for each column: "
                                 "joints / --joints)") from err
        cols.append((k, names))
    parts = []
    for f in sorted((root / DATA_DIR).rglob("*.parquet")):
        t = pq.read_table(f, columns=["episode_index", "frame_index", "timestamp", *keys])
        parts.append(t)
    reports: dict[str, JointReport] = {}
    if not parts:
        return reports
    import pyarrow as pa

    table = pa.concat_tables(parts)
    ep = np.asarray(table.column("episode_index").to_numpy(), np.int64)
    fi = np.asarray(table.column("frame_index").to_numpy(), np.int64)
    ts = np.asarray(table.column("timestamp").to_numpy(), np.float64)
    arrays = {k: np.stack(table.column(k).to_numpy(zero_copy_only=False)).astype(np.float64).reshape(len(ep), -1)
              for k in keys}
    order = np.lexsort((fi, ep))
    for e in np.unique(ep):
        rows = order[ep[order] == e]
        name = f"episode_{int(e)}"
        report = JointReport()
        if not model.has_velocity_limits:
            report.notes.append(f"{model.path.name}: {NO_VELOCITY_LIMITS}; velocities not checked")
        t = ts[rows]
        for k, names in cols:
            found = validate_joints(model, names, arrays[k][rows], None, t if len(t) > 1 else None,
                                    episode=f"{name} {k}", **kw)
            for fnd in found:  # frames as the dataset numbers them (frame_index), not row positions
                f0 = int(fi[rows][0])
                fnd.frames = [(a + f0, b + f0) for a, b in fnd.frames]
                fnd.worst_frame += f0
            report.findings += found
        reports[name] = report
    return reports
