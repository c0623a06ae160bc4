"""Trajectory extraction: find idle stretches, trim them off an episode's ends, cut episodes into segments.

An operator who waits before starting, or lets go of the controls before the recorder stops, leaves frames in
which nothing moves: a policy trained on them learns to stand still. This module finds them from the speed of
the end effector (or of the joints, or of any feature), trims them off the start and/or end of an episode, and
optionally cuts an episode into segments at gripper events (grasp, release) or at pauses in the motion.

Everything works on one episode's arrays (:func:`find_idle`, :func:`trim_idle`, :func:`segment`,
:func:`plan_episode`) and on a canonical episode store (:func:`extract_store`), which writes a new store
atomically: each segment becomes a demo with provenance attrs ``segment_of`` (the source demo),
``segment_index`` and ``segment_frames`` (its ``[start, stop)`` frames in the source), and the
:class:`TrajectoryReport` says, per demo, how many frames were trimmed and where and why it was cut.

Speeds are in the units of the signal per second (m/s for an end-effector position, rad/s or deg/s for joints).
Without an absolute ``idle_speed`` the threshold is ``idle_speed_relative`` times the 95th percentile of the
speed over the whole store (over the one episode, when only one is at hand), so one config fits robots of any
scale; a store in which nothing ever moves is idle throughout.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from robodata.errors import RobodataError

GRIPPER_WORDS = ("gripper", "finger", "grip", "claw", "jaw")
EEF_WORDS = ("eef", "ee_", "end_effector", "tcp", "tool")


class TrajectoryError(RobodataError):
    """Trajectory extraction cannot run as configured (a feature that is not there, an empty store)."""


class TrajectoryConfig(BaseModel):
    """How idle stretches are found and trimmed, and how episodes are cut into segments."""

    model_config = ConfigDict(extra="forbid")

    speed_feature: str | None = Field(
        None, description="feature whose rate of change is the speed (default: the end-effector pose's position, "
                          "else the state features)")
    idle_speed: float | None = Field(
        None, ge=0, description="absolute idle speed (signal units per second); default: relative, see below")
    idle_speed_relative: float = Field(
        0.05, ge=0, le=1, description="idle speed as a fraction of the 95th percentile speed of the store")
    min_idle_s: float = Field(1.0, ge=0, description="a still stretch is idle when it lasts at least this long")
    trim_idle: Literal["start", "end", "both", "none"] = "both"
    keep_idle_s: float = Field(0.2, ge=0, description="idle kept next to the motion when trimming")
    drop_idle_episodes: bool = Field(True, description="drop an episode that is idle from start to end")
    segment_by: Literal["none", "gripper", "velocity"] = "none"
    gripper_feature: str | None = Field(
        None, description="feature holding the gripper command or opening (default: an action or state feature, "
                          "or a dimension of one, named like a gripper)")
    gripper_dim: int | None = Field(None, ge=0, description="column of gripper_feature (default: its only or "
                                                              "gripper-named column)")
    gripper_threshold: float | None = Field(None, description="open/closed boundary (default: mid-range)")
    gripper_closed: Literal["low", "high"] = Field("low", description="which side of the threshold is closed")
    velocity_threshold: float | None = Field(None, ge=0, description="pause speed for segment_by=velocity "
                                                                     "(default: the idle speed)")
    min_pause_s: float = Field(0.3, ge=0, description="segment_by=velocity cuts at pauses at least this long")
    min_segment_frames: int = Field(10, ge=1, description="shorter segments merge into their neighbour")

    @model_validator(mode="after")
    def _dim_needs_feature(self) -> TrajectoryConfig:
        if self.gripper_dim is not None and self.gripper_feature is None:
            raise ValueError("gripper_dim needs gripper_feature (the feature the column is of)")
        return self


@dataclass(frozen=True)
class Span:
    """Frames ``[start, stop)`` of an episode and why they are what they are."""

    start: int
    stop: int
    reason: str = ""

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def seconds(self, timestamps: np.ndarray) -> float:
        """Duration, one frame period included (a span of one frame lasts one period)."""
        if self.frames <= 0:
            return 0.0
        return float(timestamps[self.stop - 1] - timestamps[self.start]) + _period(timestamps)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "stop": self.stop, "reason": self.reason}


def _period(timestamps: np.ndarray) -> float:
    d = np.diff(np.asarray(timestamps, np.float64))
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 0.0


# ---- signals ------------------------------------------------------------------------------------------------


def speed(positions: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """``(T,)`` speed: the norm of the time derivative of ``(T, D)`` positions (central differences)."""
    x = np.asarray(positions, np.float64).reshape(len(positions), -1)
    t = np.asarray(timestamps, np.float64)
    if len(x) < 2 or x.shape[1] == 0:
        return np.zeros(len(x))
    if np.any(np.diff(t) <= 0):  # repeated or backwards stamps: fall back to the median frame period
        t = np.arange(len(x), dtype=np.float64) * (_period(t) or 1.0)
    # d(position)/d(frame) over d(time)/d(frame): a still signal gives exactly 0 whatever the clock's rounding
    v = np.gradient(x, axis=0) / np.gradient(t)[:, None]
    return np.asarray(np.linalg.norm(v, axis=1))


def idle_threshold(speeds: Sequence[np.ndarray], cfg: TrajectoryConfig) -> float:
    """The idle speed: ``cfg.idle_speed``, else ``idle_speed_relative`` x the 95th percentile of ``speeds``."""
    if cfg.idle_speed is not None:
        return float(cfg.idle_speed)
    allv = np.concatenate([np.asarray(s, np.float64) for s in speeds]) if speeds else np.zeros(0)
    allv = allv[np.isfinite(allv)]
    return float(cfg.idle_speed_relative * np.percentile(allv, 95)) if len(allv) else 0.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of true values."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(d[::2], d[1::2], strict=True)]


def find_idle(speeds: np.ndarray, timestamps: np.ndarray, threshold: float, min_idle_s: float) -> list[Span]:
    """Stretches where the speed stays at or below ``threshold`` for at least ``min_idle_s`` seconds."""
    out = []
    for a, b in _runs(np.asarray(speeds) <= threshold):
        span = Span(a, b)
        secs = span.seconds(timestamps)
        if secs + 1e-9 >= min_idle_s:
            out.append(Span(a, b, f"speed <= {threshold:.3g}/s for {secs:.2f} s"))
    return out


def trim_idle(speeds: np.ndarray, timestamps: np.ndarray, cfg: TrajectoryConfig, threshold: float,
              idle: list[Span] | None = None) -> Span:
    """The frames kept after trimming idle stretches off the start and/or end (``cfg.trim_idle``); the span's
    reason says what was trimmed. An episode idle throughout keeps no frames (an empty span)."""
    n = len(speeds)
    idle = find_idle(speeds, timestamps, threshold, cfg.min_idle_s) if idle is None else idle
    if n == 0:
        return Span(0, 0, "empty")
    if len(idle) == 1 and idle[0].start == 0 and idle[0].stop == n and cfg.trim_idle != "none":
        return Span(0, 0, "idle from start to end")
    keep = max(0, int(round(cfg.keep_idle_s / (_period(timestamps) or 1.0))))
    start, stop, why = 0, n, []
    if idle and cfg.trim_idle in ("start", "both") and idle[0].start == 0:
        start = max(0, idle[0].stop - keep)
        if start:
            why.append(f"{start} idle frames at the start")
    if idle and cfg.trim_idle in ("end", "both") and idle[-1].stop == n:
        stop = min(n, idle[-1].start + keep)
        if stop < n:
            why.append(f"{n - stop} idle frames at the end")
    return Span(start, stop, "; ".join(why) or "nothing trimmed")


def gripper_events(signal: np.ndarray, threshold: float | None = None,
                   closed: Literal["low", "high"] = "low") -> list[tuple[int, str]]:
    """``(frame, "closes" | "opens")`` where a gripper signal crosses ``threshold`` (default: mid-range), with a
    hysteresis band of 10 % of its range so that noise around the threshold is not a stream of events."""
    g = np.asarray(signal, np.float64).reshape(-1)
    if len(g) < 2:
        return []
    lo, hi = float(np.nanmin(g)), float(np.nanmax(g))
    if hi - lo <= 1e-9:
        return []
    thr = (lo + hi) / 2 if threshold is None else float(threshold)
    band = 0.1 * (hi - lo)
    state = g[0] > thr  # True: on the high side
    events: list[tuple[int, str]] = []
    for i in range(1, len(g)):
        if state and g[i] < thr - band:
            state = False
        elif not state and g[i] > thr + band:
            state = True
        else:
            continue
        closing = (not state) if closed == "low" else state
        events.append((i, "closes" if closing else "opens"))
    return events


def segment(speeds: np.ndarray, timestamps: np.ndarray, cfg: TrajectoryConfig, *, threshold: float = 0.0,
            gripper: np.ndarray | None = None, keep: Span | None = None) -> list[Span]:
    """Cut the kept frames (``keep``, default all) into segments by ``cfg.segment_by``; each says why it ends
    where it does. Segments shorter than ``cfg.min_segment_frames`` merge into the one before (or after)."""
    n = len(speeds)
    keep = keep or Span(0, n)
    if keep.frames <= 0:
        return []
    cuts: list[tuple[int, str]] = []  # (frame a new segment starts at, why)
    if cfg.segment_by == "gripper":
        if gripper is None:
            raise TrajectoryError("segment_by=gripper needs a gripper signal (set gripper_feature)")
        g = np.asarray(gripper).reshape(-1)
        cuts = [(f, f"gripper {what} at frame {f}") for f, what in
                _debounced(gripper_events(g[keep.start:keep.stop], cfg.gripper_threshold, cfg.gripper_closed),
                           cfg.min_segment_frames)]
        cuts = [(f + keep.start, why.replace(f"frame {f}", f"frame {f + keep.start}")) for f, why in cuts]
    elif cfg.segment_by == "velocity":
        vthr = threshold if cfg.velocity_threshold is None else cfg.velocity_threshold
        sub = np.asarray(speeds)[keep.start:keep.stop]
        ts = np.asarray(timestamps)[keep.start:keep.stop]
        for p in find_idle(sub, ts, vthr, cfg.min_pause_s):
            if p.start == 0 or p.stop == len(sub):
                continue  # a pause at an end is not between two motions
            mid = keep.start + (p.start + p.stop) // 2
            cuts.append((mid, f"pause of {p.seconds(ts):.2f} s at frames {keep.start + p.start}-"
                              f"{keep.start + p.stop - 1}"))
    bounds = [keep.start] + [c for c, _ in cuts] + [keep.stop]
    whys = [why for _, why in cuts]
    spans = []
    for i in range(len(bounds) - 1):
        ends = whys[i] if i < len(whys) else "end of the episode"
        begins = "start of the episode" if i == 0 else whys[i - 1]
        spans.append(Span(bounds[i], bounds[i + 1], f"{begins} -> {ends}"))
    return _merge_short(spans, cfg.min_segment_frames)


def _debounced(events: list[tuple[int, str]], min_frames: int) -> list[tuple[int, str]]:
    """Drop a gripper blip: an event undone fewer than ``min_frames`` frames later (both events go)."""
    out: list[tuple[int, str]] = []
    for ev in events:
        if out and ev[0] - out[-1][0] < min_frames and ev[1] != out[-1][1]:
            out.pop()
        else:
            out.append(ev)
    return out


def _merge_short(spans: list[Span], min_frames: int) -> list[Span]:
    out = list(spans)
    changed = True
    while changed and len(out) > 1:
        changed = False
        for i, s in enumerate(out):
            if s.frames < min_frames:
                if i > 0:
                    a, b = out[i - 1], s
                    out[i - 1 : i + 1] = [Span(a.start, b.stop, _join_reason(a.reason, b.reason))]
                else:
                    a, b = s, out[1]
                    out[0:2] = [Span(a.start, b.stop, _join_reason(a.reason, b.reason))]
                changed = True
                break
    return out


def _join_reason(first: str, second: str) -> str:
    return f"{first.split(' -> ')[0]} -> {second.split(' -> ')[-1]}"


# ---- one episode --------------------------------------------------------------------------------------------


@dataclass
class EpisodePlan:
    """What extraction does to one episode: its idle stretches, the frames kept, and the segments."""

    demo: str
    frames: int
    idle: list[Span]
    kept: Span
    segments: list[Span]
    idle_s: float = 0.0
    seconds: float = 0.0

    @property
    def trimmed_start(self) -> int:
        return self.kept.start if self.kept.frames else 0

    @property
    def trimmed_end(self) -> int:
        return self.frames - self.kept.stop if self.kept.frames else 0

    @property
    def dropped(self) -> bool:
        return not self.segments

    @property
    def idle_fraction(self) -> float:
        return self.idle_s / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "demo": self.demo, "frames": self.frames, "idle_s": round(self.idle_s, 3),
            "idle_fraction": round(self.idle_fraction, 4), "idle": [s.to_json() for s in self.idle],
            "kept": self.kept.to_json(), "trimmed_start": self.trimmed_start, "trimmed_end": self.trimmed_end,
            "dropped": self.dropped, "segments": [s.to_json() for s in self.segments],
        }


def plan_episode(demo: str, speeds: np.ndarray, timestamps: np.ndarray, cfg: TrajectoryConfig, threshold: float,
                 gripper: np.ndarray | None = None) -> EpisodePlan:
    """Idle stretches, the frames kept after trimming, and the segments of one episode."""
    n = len(speeds)
    idle = find_idle(speeds, timestamps, threshold, cfg.min_idle_s)
    kept = trim_idle(speeds, timestamps, cfg, threshold, idle) if cfg.trim_idle != "none" else Span(0, n, "not trimmed")
    if kept.frames == 0 and not cfg.drop_idle_episodes:
        kept = Span(0, n, "idle from start to end (kept)")
    segs = segment(speeds, timestamps, cfg, threshold=threshold, gripper=gripper, keep=kept) if kept.frames else []
    return EpisodePlan(demo, n, idle, kept, segs, sum(s.seconds(timestamps) for s in idle),
                       Span(0, n).seconds(timestamps))


# ---- signals of a canonical store ---------------------------------------------------------------------------


def _eef_feature(es: Any) -> Any | None:
    for f in es.schema.of_role("pose"):
        if any(w in f.name.lower() for w in EEF_WORDS):
            return f
    return None


def speed_signal(es: Any, demo: str, feature: str | None = None) -> tuple[np.ndarray, str]:
    """The ``(T, D)`` positions whose speed is the episode's speed, and what they are (for reports): ``feature``,
    else the end-effector pose's xyz, else the concatenated state features."""
    n = es.num_samples(demo)
    if feature is not None:
        spec = es.spec(feature)
        x = np.asarray(es.feature(demo, feature), np.float64).reshape(n, -1)
        return (x[:, :3], f"{feature} position") if spec.role == "pose" else (x, feature)
    eef = _eef_feature(es)
    if eef is not None and es.has(demo, eef.name):
        return np.asarray(es.feature(demo, eef.name), np.float64).reshape(n, -1)[:, :3], f"{eef.name} position"
    states = [f for f in es.schema.of_role("state") if es.has(demo, f.name)]
    if states:
        parts = [np.asarray(es.feature(demo, f.name), np.float64).reshape(n, -1) for f in states]
        return np.concatenate(parts, axis=1), "state (" + ", ".join(f.name for f in states) + ")"
    return np.asarray(es.state_vector(demo), np.float64).reshape(n, -1), "states"


def find_gripper(es: Any, cfg: TrajectoryConfig) -> tuple[str, int] | None:
    """``(feature, column)`` of the gripper signal: the configured one, else the first action (then state)
    feature, or named column of one, that is named like a gripper."""
    if cfg.gripper_feature is not None:
        spec = es.spec(cfg.gripper_feature)
        width = int(np.prod(spec.shape)) if spec.shape else 1
        col = cfg.gripper_dim if cfg.gripper_dim is not None else _named_column(spec.names, width)
        if col is None:
            raise TrajectoryError(f"{es.path}: feature {spec.name!r} has {width} columns; set gripper_dim")
        if col >= width:
            raise TrajectoryError(f"{es.path}: gripper_dim {col} is outside feature {spec.name!r} ({width} columns)")
        return spec.name, col
    for role in ("action", "state"):
        for f in es.schema.of_role(role):
            width = int(np.prod(f.shape)) if f.shape else 1
            if any(w in f.name.lower() for w in GRIPPER_WORDS):
                return f.name, _named_column(f.names, width) or 0
            for i, name in enumerate(f.names or []):
                if any(w in str(name).lower() for w in GRIPPER_WORDS):
                    return f.name, i
    return None


def _named_column(names: list[str] | None, width: int) -> int | None:
    if width == 1:
        return 0
    for i, name in enumerate(names or []):
        if any(w in str(name).lower() for w in GRIPPER_WORDS):
            return i
    return None


def gripper_signal(es: Any, demo: str, where: tuple[str, int]) -> np.ndarray:
    name, col = where
    spec = es.spec(name)
    n = es.num_samples(demo)
    if spec.role == "action":  # action features are columns of the concatenated actions
        start, _ = es.schema.slices("action")[name]
        return np.asarray(es.group(demo)["actions"][:, start + col], np.float64)
    return np.asarray(es.feature(demo, name), np.float64).reshape(n, -1)[:, col]


# ---- a whole store ------------------------------------------------------------------------------------------


@dataclass
class TrajectoryReport:
    """What :func:`extract_store` did: the plan of every source demo and the demos written for it."""

    source: str
    output: str
    config: dict[str, Any]
    speed_signal: str
    idle_speed: float
    gripper: str | None
    plans: list[EpisodePlan] = field(default_factory=list)
    written: dict[str, list[str]] = field(default_factory=dict)  # source demo -> demos written

    @property
    def frames_in(self) -> int:
        return sum(p.frames for p in self.plans)

    @property
    def frames_out(self) -> int:
        return sum(s.frames for p in self.plans for s in p.segments)

    def as_metadata(self) -> dict[str, Any]:
        """Small numbers for asset metadata."""
        return {
            "episodes_in": len(self.plans), "episodes_out": sum(len(v) for v in self.written.values()),
            "episodes_dropped_idle": sum(1 for p in self.plans if p.dropped),
            "frames_in": self.frames_in, "frames_out": self.frames_out,
            "frames_trimmed": sum(p.trimmed_start + p.trimmed_end for p in self.plans),
            "idle_speed": round(self.idle_speed, 6), "speed_signal": self.speed_signal,
            "segment_by": self.config.get("segment_by", "none"),
        }

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "output": self.output, "config": self.config,
                "speed_signal": self.speed_signal, "idle_speed": self.idle_speed, "gripper": self.gripper,
                **self.as_metadata(),
                "demos": [p.to_json() | {"written": self.written.get(p.demo, [])} for p in self.plans]}

    def lines(self) -> list[str]:
        """One line per source demo, for a terminal or a log."""
        out = []
        for p in self.plans:
            if p.dropped:
                out.append(f"{p.demo}: {p.frames} frames, idle from start to end: dropped")
                continue
            cut = "; ".join(f"{d} [{s.start}, {s.stop}) {s.reason}"
                            for d, s in zip(self.written.get(p.demo, []), p.segments, strict=False))
            out.append(f"{p.demo}: {p.frames} frames, trimmed {p.trimmed_start} at the start and {p.trimmed_end} "
                       f"at the end; {len(p.segments)} segment(s): {cut}")
        return out


def plan_store(es: Any, cfg: TrajectoryConfig) -> tuple[list[EpisodePlan], str, float, str | None]:
    """Plans for every demo of an open store: ``(plans, speed signal, idle speed, gripper)``."""
    speeds: dict[str, np.ndarray] = {}
    what = ""
    for demo in es.demo_names:
        x, what = speed_signal(es, demo, cfg.speed_feature)
        speeds[demo] = speed(x, es.timestamps(demo))
    thr = idle_threshold(list(speeds.values()), cfg)
    grip = find_gripper(es, cfg) if cfg.segment_by == "gripper" else None
    if cfg.segment_by == "gripper" and grip is None:
        raise TrajectoryError(f"{es.path}: segment_by=gripper, but no feature is named like a gripper "
                              f"(set gripper_feature; features: {[f.name for f in es.schema.features]})")
    plans = []
    for demo in es.demo_names:
        g = gripper_signal(es, demo, grip) if grip else None
        plans.append(plan_episode(demo, speeds[demo], es.timestamps(demo), cfg, thr, g))
    return plans, what, thr, (f"{grip[0]}[{grip[1]}]" if grip else None)


def extract_store(src: str | os.PathLike[str], out: str | os.PathLike[str], cfg: TrajectoryConfig | None = None,
                  *, batch: int = 256) -> TrajectoryReport:
    """Write ``out`` (atomically): every demo of ``src`` trimmed of idle ends and cut into segments, one demo per
    segment, with provenance attrs; returns the report."""
    from robodata.formats.isaaclab import EpisodeStore, EpisodeStoreWriter
    from robodata.formats.isaaclab_layout import ENV_KWARGS_KEY, ENV_NAME_KEY

    cfg = cfg or TrajectoryConfig()
    with EpisodeStore(src) as es:
        if not es.demo_names:
            raise TrajectoryError(f"{es.path}: the store has no demos to extract trajectories from")
        plans, what, thr, grip = plan_store(es, cfg)
        report = TrajectoryReport(str(src), str(out), cfg.model_dump(), what, thr, grip, plans)
        env_kwargs = dict(es.env_args.get(ENV_KWARGS_KEY) or {})
        env_kwargs["trajectory"] = {"idle_speed": thr, "speed_signal": what, **cfg.model_dump()}
        with EpisodeStoreWriter(out, es.schema, env_name=es.env_args.get(ENV_NAME_KEY, "robodata"),
                                env_kwargs=env_kwargs) as w:
            for plan in plans:
                names = []
                for i, seg in enumerate(plan.segments):
                    names.append(_copy_span(es, w, plan, i, seg, batch))
                report.written[plan.demo] = names
    return report


def _copy_span(es: Any, w: Any, plan: EpisodePlan, index: int, seg: Span, batch: int) -> str:
    from robodata.formats.isaaclab_layout import INITIAL_STATE, NUM_SAMPLES_ATTR, STATES, SUCCESS_ATTR

    src_attrs = es.attrs(plan.demo)
    attrs = {k: v for k, v in src_attrs.items() if k not in (NUM_SAMPLES_ATTR, SUCCESS_ATTR)}
    attrs.update({"segment_of": plan.demo, "segment_index": index, "segment_frames": [seg.start, seg.stop],
                  "segment_reason": seg.reason, "segment_count": len(plan.segments),
                  "trimmed_start": plan.trimmed_start, "trimmed_end": plan.trimmed_end})
    d = w.begin_episode(attrs=attrs)
    t0 = None
    first_rows: dict[str, np.ndarray] = {}
    for b in _sliced(es, plan.demo, seg, batch):
        t0 = b.timestamps[0] if t0 is None else t0
        if not first_rows:
            first_rows = {p: v[0] for p, v in b.passthrough.items() if p.startswith(STATES + "/")}
        d.extend(b.timestamps - t0, b.obs, b.actions, states=b.states, datagen=b.datagen or None,
                 passthrough=b.passthrough)
    for path, value in es.statics(plan.demo).items():
        # a nested initial state is the sim state at the segment's first frame
        twin = STATES + path[len(INITIAL_STATE):] if path.startswith(INITIAL_STATE + "/") else None
        d.put_static(path, first_rows[twin] if twin in first_rows else value)
    success = src_attrs.get(SUCCESS_ATTR)
    d.close(success=None if success is None else bool(success))
    return str(d.name)


def _sliced(es: Any, demo: str, seg: Span, batch: int) -> Iterator[Any]:
    """The demo's batches cut to ``seg`` (every per-frame array, datagen and passthrough included)."""
    from dataclasses import replace

    for b in es.batches(demo, batch):
        s, e = max(b.s, seg.start), min(b.e, seg.stop)
        if s >= e:
            continue
        i, j = s - b.s, e - b.s
        yield replace(
            b, s=s, e=e, timestamps=b.timestamps[i:j], obs={k: v[i:j] for k, v in b.obs.items()},
            actions=b.actions[i:j], states=None if b.states is None else b.states[i:j],
            datagen={k: {n: a[i:j] for n, a in items.items()} for k, items in b.datagen.items()},
            passthrough={p: v[i:j] for p, v in b.passthrough.items()},
        )


def write_report(report: TrajectoryReport, path: str | os.PathLike[str]) -> Path:
    """The report as JSON at ``path`` (atomically)."""
    from robodata.atomic import atomic_write_json

    return atomic_write_json(path, report.to_json())
