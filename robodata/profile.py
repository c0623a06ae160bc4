"""The profiling report of a recording (a canonical episode store) or a release (a LeRobot dataset).

What a robotics lead asks of a dataset before training on it, answered on one page:

- how much is there (episodes, frames, hours) and how much of it succeeded, per task;
- is the clock sound: frame rate and timestamp jitter (per topic, for a recording whose ingest report is at
  hand), gaps in the frame clock, frames dropped at ingest as out of sync;
- does the robot move: idle stretches (speed at or below a threshold for longer than N s: how many, how long,
  where), dimensions of the state or action that never change;
- is the teleoperation smooth: RMS jerk (third time derivative) of the action and of the end effector per
  episode, with outliers flagged;
- what the values look like: per-dimension distributions (histogram, mean, std, min, max, quantiles) of state
  and action, with the dimension names;
- can the cameras see: per camera, mean brightness, clipped-dark and clipped-bright pixels, blur (variance of
  the Laplacian), from sampled frames, with a strip of those frames.

:func:`profile_store` and :func:`profile_lerobot` build a :class:`Profile`; :meth:`Profile.to_html` renders
one self-contained HTML page (inline CSS, plots as inline PNG, no script, no external URL),
:meth:`Profile.summary` gives the small numbers for an asset's metadata, :meth:`Profile.write` both files.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from robodata.errors import RobodataError
from robodata.trajectory import GRIPPER_WORDS, TrajectoryConfig, find_idle, idle_threshold, speed

IDLE_WARN_FRACTION = 0.40  # an episode idle longer than this share of its time is named in the headline
CLIPPED_WARN_FRACTION = 0.05  # a camera with more clipped pixels than this is named
DARK_LEVEL, BRIGHT_LEVEL = 5, 250  # luma at or below / at or above which a pixel is clipped
BLUR_RELATIVE = 0.25  # a frame whose Laplacian variance is below this share of its camera's median is blurred
JERK_OUTLIER_Z = 3.5  # robust z-score (median, MAD) above which an episode's jerk is an outlier
SHORT_EPISODE_RELATIVE = 0.3  # an episode shorter than this share of the median length is named
MAX_ROWS_PER_EPISODE = 2000  # low-dim rows per episode kept for quantiles and histograms (moments use all)
HIST_BINS = 40
MAX_PLOTTED_EPISODES = 60


class ProfileError(RobodataError):
    """A dataset cannot be profiled (no episodes, no such path)."""


# ---- what a profile holds ------------------------------------------------------------------------------------


@dataclass
class DimStats:
    """One dimension of a low-dim feature over the whole dataset."""

    feature: str
    name: str
    count: int
    mean: float
    std: float
    min: float
    max: float
    q01: float
    q10: float
    q50: float
    q90: float
    q99: float
    hist: list[int] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)

    @property
    def constant(self) -> bool:
        return self.max - self.min <= 1e-9 * max(1.0, abs(self.max))


@dataclass
class EpisodeProfile:
    name: str
    task: str
    frames: int
    duration_s: float
    success: bool | None
    rate_hz: float = 0.0
    jitter_ms: float = 0.0
    max_gap_ms: float = 0.0
    clock_gaps: int = 0  # frames missing from the frame clock (gaps of more than 1.5 periods)
    dropped_frames: int | None = None  # frames the ingest dropped as out of sync (recordings with a report)
    idle: list[tuple[float, float]] = field(default_factory=list)  # (start_s, end_s)
    idle_s: float = 0.0
    action_jerk_rms: float = 0.0
    eef_jerk_rms: float | None = None
    jerk_outlier: bool = False

    @property
    def idle_fraction(self) -> float:
        return self.idle_s / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class TopicTiming:
    """Rate and jitter of one stream: a recording's topic, or the episodes' frame clock."""

    topic: str
    count: int
    rate_hz: float
    jitter_ms: float
    max_gap_ms: float
    gaps: list[float] = field(default_factory=list)  # a sample of inter-arrival times (s), for the histogram


@dataclass
class CameraExposure:
    name: str
    frames_sampled: int
    height: int
    width: int
    brightness: float  # mean luma, 0-255
    dark_fraction: float
    bright_fraction: float
    blur: float  # median variance of the Laplacian of luma (higher: sharper)
    blurred_fraction: float
    brightness_hist: list[int] = field(default_factory=list)  # 32 bins over 0-255
    strip: bytes = b""  # PNG of a few sampled frames (not in the JSON)

    @property
    def clipped_fraction(self) -> float:
        return self.dark_fraction + self.bright_fraction


@dataclass
class Profile:
    """Everything the report shows; :meth:`to_html`, :meth:`summary`, :meth:`to_json`, :meth:`write`."""

    kind: str  # "recording" or "release"
    source: str
    fps: float
    robot_type: str
    episodes: list[EpisodeProfile]
    state: list[DimStats]
    action: list[DimStats]
    topics: list[TopicTiming]
    cameras: list[CameraExposure]
    idle_speed: float
    speed_signal: str
    jerk_signal: str
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    mix: dict[str, Any] | None = None  # a mixed release's mixture.json (robodata.mix): layers, weights, datasets

    # -- headline numbers

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.episodes)

    @property
    def duration_s(self) -> float:
        return sum(e.duration_s for e in self.episodes)

    @property
    def hours(self) -> float:
        return self.duration_s / 3600.0

    @property
    def success_known(self) -> list[EpisodeProfile]:
        return [e for e in self.episodes if e.success is not None]

    @property
    def success_rate(self) -> float | None:
        known = self.success_known
        return sum(1 for e in known if e.success) / len(known) if known else None

    @property
    def idle_s(self) -> float:
        return sum(e.idle_s for e in self.episodes)

    @property
    def idle_fraction(self) -> float:
        return self.idle_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def idle_heavy(self) -> list[EpisodeProfile]:
        return [e for e in self.episodes if e.idle_fraction > IDLE_WARN_FRACTION]

    @property
    def frame_clock(self) -> TopicTiming | None:
        return next((t for t in self.topics if t.topic == FRAME_CLOCK), None)

    @property
    def tasks(self) -> dict[str, list[EpisodeProfile]]:
        out: dict[str, list[EpisodeProfile]] = {}
        for e in self.episodes:
            out.setdefault(e.task or "(no task)", []).append(e)
        return out

    @property
    def warnings(self) -> list[str]:
        """What a reader should look at first, most important first."""
        w: list[str] = []
        n = len(self.episodes)
        known = self.success_known
        failed = [e for e in known if not e.success]
        if failed:
            w.append(f"{len(failed)} of {len(known)} episodes failed ({_names(failed)})")
        heavy = self.idle_heavy
        if heavy:
            w.append(f"{len(heavy)} episode{_s(len(heavy))} idle > {IDLE_WARN_FRACTION:.0%} of the time "
                     f"({_names(heavy)})")
        for role, dims in (("state", self.state), ("action", self.action)):
            const = [d for d in dims if d.constant]
            if const and dims:
                w.append(f"{role}: {len(const)} of {len(dims)} dimension{_s(len(dims))} never change "
                         f"({', '.join(d.name for d in const[:8])}{', ...' if len(const) > 8 else ''})")
        for c in self.cameras:
            if c.clipped_fraction > CLIPPED_WARN_FRACTION:
                w.append(f"camera {c.name}: {c.clipped_fraction:.0%} of pixels clipped "
                         f"({c.dark_fraction:.0%} dark, {c.bright_fraction:.0%} bright)")
            if c.brightness < 50 or c.brightness > 205:
                w.append(f"camera {c.name}: {'under' if c.brightness < 50 else 'over'}exposed "
                         f"(mean brightness {c.brightness:.0f}/255)")
            if c.blurred_fraction > 0.10:
                w.append(f"camera {c.name}: {c.blurred_fraction:.0%} of sampled frames blurred")
        jerky = [e for e in self.episodes if e.jerk_outlier]
        if jerky:
            w.append(f"{len(jerky)} episode{_s(len(jerky))} with jerky actions ({_names(jerky)})")
        dropped = sum(e.dropped_frames or 0 for e in self.episodes)
        if dropped:
            k = sum(1 for e in self.episodes if e.dropped_frames)
            w.append(f"{dropped} frame{_s(dropped)} dropped at ingest as out of sync, in {k} episode{_s(k)}")
        gaps = sum(e.clock_gaps for e in self.episodes)
        if gaps:
            k = sum(1 for e in self.episodes if e.clock_gaps)
            w.append(f"{gaps} frame{_s(gaps)} missing from the frame clock, in {k} episode{_s(k)}")
        clock = self.frame_clock
        if clock and self.fps and clock.rate_hz and abs(clock.rate_hz - self.fps) > 0.02 * self.fps:
            w.append(f"frames arrive at {clock.rate_hz:.1f} Hz, the dataset says {self.fps:g} fps")
        for t in self.topics:
            if t.topic != FRAME_CLOCK and t.rate_hz >= 1 and t.count >= 20 and t.jitter_ms > 200.0 / t.rate_hz:
                w.append(f"topic {t.topic}: jitter {t.jitter_ms:.1f} ms is {t.jitter_ms * t.rate_hz / 10:.0f} % "
                         f"of its period")
        if n >= 3:
            med = float(np.median([e.frames for e in self.episodes]))
            short = [e for e in self.episodes if e.frames < SHORT_EPISODE_RELATIVE * med]
            if short:
                w.append(f"{len(short)} episode{_s(len(short))} much shorter than the median of {med:.0f} frames "
                         f"({', '.join(f'{e.name}: {e.frames}' for e in short[:5])})")
        return w

    # -- outputs

    def summary(self) -> dict[str, Any]:
        """Small JSON-able numbers for an asset's metadata (keys stable; absent when unknown)."""
        lengths = [e.frames for e in self.episodes] or [0]
        jerks = [e.action_jerk_rms for e in self.episodes] or [0.0]
        out: dict[str, Any] = {
            "episodes": len(self.episodes),
            "frames": self.frames,
            "hours": round(self.hours, 4),
            "duration_s": round(self.duration_s, 2),
            "fps": self.fps,
            "episode_frames_min": int(min(lengths)),
            "episode_frames_median": float(np.median(lengths)),
            "episode_frames_max": int(max(lengths)),
            "tasks": len(self.tasks),
            "idle_s": round(self.idle_s, 2),
            "idle_fraction": round(self.idle_fraction, 4),
            "episodes_idle_over_40pct": len(self.idle_heavy),
            "action_jerk_rms_median": _round(float(np.median(jerks))),
            "jerk_outliers": sum(1 for e in self.episodes if e.jerk_outlier),
            "clock_gap_frames": sum(e.clock_gaps for e in self.episodes),
            "constant_dims": sum(1 for d in self.state + self.action if d.constant),
        }
        rate = self.success_rate
        if rate is not None:
            out["success_rate"] = round(rate, 4)
            out["successes"] = sum(1 for e in self.success_known if e.success)
        if any(e.dropped_frames is not None for e in self.episodes):
            out["dropped_frames"] = sum(e.dropped_frames or 0 for e in self.episodes)
        clock = self.frame_clock
        if clock:
            out["frame_rate_hz"] = round(clock.rate_hz, 3)
            out["frame_jitter_ms"] = round(clock.jitter_ms, 3)
        topics = {t.topic: round(t.rate_hz, 2) for t in self.topics if t.topic != FRAME_CLOCK}
        if topics:
            out["topic_rate_hz"] = topics
            out["topic_jitter_ms"] = {t.topic: round(t.jitter_ms, 2) for t in self.topics if t.topic != FRAME_CLOCK}
        for c in self.cameras:
            out[f"camera_{c.name}_brightness"] = round(c.brightness, 1)
            out[f"camera_{c.name}_clipped_pct"] = round(100 * c.clipped_fraction, 2)
            out[f"camera_{c.name}_blur"] = round(c.blur, 1)
        if self.mix:
            out["mix"] = {name: {k: layer.get(k) for k in ("weight", "episodes", "frames", "hours")}
                          for name, layer in (self.mix.get("layers") or {}).items()}
        warnings = self.warnings
        out["warning_count"] = len(warnings)
        out["warnings"] = warnings
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything but the pictures (``profile.json``)."""
        cams = []
        for c in self.cameras:
            d = asdict(c)
            d.pop("strip")
            d["clipped_fraction"] = c.clipped_fraction
            cams.append(d)
        eps = [asdict(e) | {"idle_fraction": round(e.idle_fraction, 4)} for e in self.episodes]
        return _jsonable({
            "kind": self.kind, "source": self.source, "created": self.created, "fps": self.fps,
            "robot_type": self.robot_type, "summary": self.summary(), "episodes": eps,
            "state": [asdict(d) for d in self.state], "action": [asdict(d) for d in self.action],
            "topics": [asdict(t) | {"gaps": t.gaps[:200]} for t in self.topics], "cameras": cams,
            "idle_speed": self.idle_speed, "speed_signal": self.speed_signal, "jerk_signal": self.jerk_signal,
            "settings": self.settings, "notes": self.notes,
            **({"mix": {k: v for k, v in self.mix.items() if k != "episodes"}} if self.mix else {}),
        })

    def to_html(self) -> str:
        """One self-contained HTML page (inline CSS and PNGs; no script, no external URL)."""
        return render_html(self)

    def write(self, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
        """``profile.html`` and ``profile.json`` in ``folder`` (each written atomically); returns both paths."""
        from robodata.atomic import atomic_write_json, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        page = atomic_write_text(folder / "profile.html", self.to_html())
        data = atomic_write_json(folder / "profile.json", self.to_json())
        return page, data


FRAME_CLOCK = "frames (episode clock)"


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _names(eps: Sequence[EpisodeProfile], k: int = 5) -> str:
    return ", ".join(e.name for e in eps[:k]) + (f" and {len(eps) - k} more" if len(eps) > k else "")


def _round(x: float, digits: int = 4) -> float:
    if not math.isfinite(x) or x == 0:
        return 0.0 if not math.isfinite(x) else x
    return round(x, max(0, digits - int(math.floor(math.log10(abs(x)))) - 1))


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


# ---- the computation, shared by both kinds --------------------------------------------------------------------


@dataclass
class EpisodeArrays:
    """One episode's low-dim arrays, as either source reads them."""

    name: str
    timestamps: np.ndarray
    state: np.ndarray  # (T, S)
    action: np.ndarray  # (T, A)
    motion: np.ndarray  # (T, D) positions whose speed says whether the robot moves
    eef: np.ndarray | None  # (T, 3) end-effector positions, where known
    success: bool | None
    task: str
    dropped_frames: int | None = None


class _Moments:
    """Exact per-column count, mean, M2, min and max over every row (Chan's parallel update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        if not len(x):
            return
        n, mean, m2 = len(x), x.mean(0), ((x - x.mean(0)) ** 2).sum(0)
        if self.mean is None or self.m2 is None or self.lo is None or self.hi is None:
            self.n, self.mean, self.m2, self.lo, self.hi = n, mean, m2, x.min(0), x.max(0)
            return
        tot = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / tot
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / tot
        self.lo, self.hi, self.n = np.minimum(self.lo, x.min(0)), np.maximum(self.hi, x.max(0)), tot


class _Builder:
    def __init__(self, state_names: list[tuple[str, str]], action_names: list[tuple[str, str]],
                 cfg: TrajectoryConfig, gripper_cols: Sequence[int] = ()):
        self.state_names, self.action_names = state_names, action_names
        self.cfg = cfg
        self.gripper_cols = list(gripper_cols)
        self.moments = {"state": _Moments(), "action": _Moments()}
        self.samples: dict[str, list[np.ndarray]] = {"state": [], "action": []}
        self.eps: list[EpisodeProfile] = []
        self.speeds: list[np.ndarray] = []
        self.stamps: list[np.ndarray] = []
        self.gaps: list[np.ndarray] = []

    def add(self, ep: EpisodeArrays) -> None:
        ts = np.asarray(ep.timestamps, np.float64)
        n = len(ts)
        for role, x in (("state", ep.state), ("action", ep.action)):
            x = np.asarray(x, np.float64).reshape(n, -1)
            self.moments[role].add(x)
            step = max(1, int(math.ceil(n / MAX_ROWS_PER_EPISODE)))
            self.samples[role].append(x[::step])
        dt = np.diff(ts)
        period = float(np.median(dt[dt > 0])) if (dt > 0).any() else 0.0
        gaps = int(np.sum(np.maximum(0, np.round(dt[dt > 1.5 * period] / period) - 1))) if period else 0
        duration = float(ts[-1] - ts[0]) + period if n else 0.0
        motion = [c for c in range(ep.action.shape[1] if ep.action.ndim == 2 else 0) if c not in self.gripper_cols]
        ajerk = _jerk_rms(np.asarray(ep.action, np.float64).reshape(n, -1)[:, motion], period)
        ejerk = _jerk_rms(np.asarray(ep.eef, np.float64), period) if ep.eef is not None else None
        self.eps.append(EpisodeProfile(
            ep.name, ep.task, n, duration, ep.success,
            rate_hz=1.0 / period if period else 0.0, jitter_ms=float(dt.std() * 1e3) if len(dt) > 1 else 0.0,
            max_gap_ms=float(dt.max() * 1e3) if len(dt) else 0.0, clock_gaps=gaps, dropped_frames=ep.dropped_frames,
            action_jerk_rms=ajerk, eef_jerk_rms=ejerk,
        ))
        self.speeds.append(speed(ep.motion, ts))
        self.stamps.append(ts)
        if len(dt):
            self.gaps.append(dt[: max(1, 20_000 // max(1, len(self.eps)))])

    def finish(self) -> tuple[list[EpisodeProfile], list[DimStats], list[DimStats], float, TopicTiming | None]:
        thr = idle_threshold(self.speeds, self.cfg)
        for e, v, ts in zip(self.eps, self.speeds, self.stamps, strict=True):
            spans = find_idle(v, ts, thr, self.cfg.min_idle_s)
            t0 = float(ts[0]) if len(ts) else 0.0
            e.idle = [(float(ts[s.start]) - t0, float(ts[s.stop - 1]) - t0 + _period_of(ts)) for s in spans]
            e.idle_s = sum(s.seconds(ts) for s in spans)
        _flag_jerk(self.eps)
        clock = None
        if self.gaps:
            g = np.concatenate(self.gaps)
            pos = g[g > 0]
            clock = TopicTiming(FRAME_CLOCK, sum(e.frames for e in self.eps),
                                1.0 / float(np.median(pos)) if len(pos) else 0.0,
                                float(np.concatenate([np.diff(t) for t in self.stamps]).std() * 1e3),
                                float(max(e.max_gap_ms for e in self.eps)), g[:2000].tolist())
        return (self.eps, self._dims("state", self.state_names), self._dims("action", self.action_names), thr,
                clock)

    def _dims(self, role: str, names: list[tuple[str, str]]) -> list[DimStats]:
        m = self.moments[role]
        if m.mean is None or m.m2 is None or m.lo is None or m.hi is None or not self.samples[role]:
            return []
        sample = np.concatenate(self.samples[role])
        qs = np.quantile(sample, [0.01, 0.10, 0.50, 0.90, 0.99], axis=0) if len(sample) else None
        out = []
        for j in range(sample.shape[1]):
            feat, name = names[j] if j < len(names) else (role, f"{role}[{j}]")
            lo, hi = float(m.lo[j]), float(m.hi[j])
            counts, edges = np.histogram(sample[:, j], bins=HIST_BINS, range=_hist_range(lo, hi))
            q = [float(qs[i, j]) if qs is not None else math.nan for i in range(5)]
            std = float(math.sqrt(max(0.0, m.m2[j] / max(1, m.n))))
            out.append(DimStats(feat, name, m.n, float(m.mean[j]), std, lo, hi, q[0], q[1], q[2], q[3], q[4],
                                [int(c) for c in counts], [float(e) for e in edges]))
        return out


def _period_of(ts: np.ndarray) -> float:
    d = np.diff(ts)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 0.0


def _jerk_rms(x: np.ndarray, period: float) -> float:
    """RMS over frames of the norm of the third time derivative of ``(T, D)`` values (units per s^3)."""
    if x.ndim != 2 or len(x) < 4 or x.shape[1] == 0 or not period:
        return 0.0
    j = np.diff(x, n=3, axis=0) / period**3
    return float(np.sqrt(np.mean(np.sum(j * j, axis=1))))


def _flag_jerk(eps: list[EpisodeProfile]) -> None:
    """Flag episodes whose action jerk is an outlier: robust z-score above JERK_OUTLIER_Z and twice the median."""
    if len(eps) < 3:
        return
    x = np.array([e.action_jerk_rms for e in eps])
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    for e in eps:
        z = (e.action_jerk_rms - med) / mad if mad > 0 else (math.inf if e.action_jerk_rms > med else 0.0)
        e.jerk_outlier = bool(z > JERK_OUTLIER_Z and e.action_jerk_rms > 2 * med)


def jerk_threshold(eps: Sequence[EpisodeProfile]) -> float | None:
    """The action jerk above which an episode is flagged (for the plot), or None with fewer than 3 episodes."""
    if len(eps) < 3:
        return None
    x = np.array([e.action_jerk_rms for e in eps])
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    return max(med + JERK_OUTLIER_Z * mad, 2 * med)


# ---- camera exposure ------------------------------------------------------------------------------------------


def _luma(rgb: np.ndarray) -> np.ndarray:
    x = np.asarray(rgb, np.float32)
    if x.ndim == 2:
        return x
    if x.shape[-1] == 1:
        return x[..., 0]
    return np.asarray(0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian (a standard focus measure: low means blurred)."""
    g = np.asarray(gray, np.float64)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


class _Exposure:
    """Accumulates sampled frames of one camera."""

    def __init__(self, name: str, strip_frames: int = 6):
        self.name = name
        self.n = 0
        self.sum = 0.0
        self.pixels = 0
        self.dark = 0
        self.bright = 0
        self.blurs: list[float] = []
        self.hist = np.zeros(32, np.int64)
        self.thumbs: list[np.ndarray] = []
        self.strip_frames = strip_frames
        self.hw = (0, 0)

    def add(self, frame: np.ndarray) -> None:
        y = _luma(frame)
        self.hw = (int(y.shape[0]), int(y.shape[1]))
        self.n += 1
        self.sum += float(y.sum())
        self.pixels += y.size
        self.dark += int((y <= DARK_LEVEL).sum())
        self.bright += int((y >= BRIGHT_LEVEL).sum())
        self.blurs.append(laplacian_variance(y))
        self.hist += np.histogram(y, bins=32, range=(0, 256))[0]
        self.thumbs.append(_thumb(np.asarray(frame)))

    def result(self) -> CameraExposure | None:
        if not self.n:
            return None
        blurs = np.array(self.blurs)
        med = float(np.median(blurs))
        blurred = float(np.mean(blurs < BLUR_RELATIVE * med)) if med > 0 else 0.0
        pick = np.unique(np.round(np.linspace(0, len(self.thumbs) - 1, min(self.strip_frames, len(self.thumbs)))))
        strip = _strip_png([self.thumbs[int(i)] for i in pick])
        return CameraExposure(self.name, self.n, self.hw[0], self.hw[1], self.sum / self.pixels,
                              self.dark / self.pixels, self.bright / self.pixels, med, blurred,
                              self.hist.tolist(), strip)


def _thumb(frame: np.ndarray, height: int = 120) -> np.ndarray:
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    step = max(1, int(math.ceil(frame.shape[0] / height)))
    return np.ascontiguousarray(frame[::step, ::step, :3]).astype(np.uint8)


def _strip_png(frames: list[np.ndarray]) -> bytes:
    if not frames:
        return b""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = max(f.shape[0] for f in frames)
    pad = [np.pad(f, ((0, h - f.shape[0]), (0, 4), (0, 0)), constant_values=255) for f in frames]
    strip = np.concatenate(pad, axis=1)
    buf = io.BytesIO()
    plt.imsave(buf, strip, format="png")
    return buf.getvalue()


def sample_indices(n: int, per_episode: int) -> list[int]:
    if n <= 0 or per_episode <= 0:
        return []
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, min(n, per_episode) + 2)[1:-1]})


# ---- a recording: a canonical episode store ------------------------------------------------------------------


def _names_of(spec: Any) -> list[str]:
    width = int(np.prod(spec.shape)) if spec.shape else 1
    names = [str(n) for n in (spec.names or [])]
    if len(names) == width:
        return names if width > 1 or names[0] != spec.name else [spec.name]
    return [spec.name] if width == 1 else [f"{spec.name}[{i}]" for i in range(width)]


def _ingest_parts(ingest: Any) -> tuple[dict[str, dict[str, float]], dict[str, list[float]], dict[str, int]]:
    """``(topics, topic_gaps, dropped frames per episode)`` of an IngestReport or its dict."""
    if ingest is None:
        return {}, {}, {}
    get = ingest.get if isinstance(ingest, Mapping) else lambda k, d=None: getattr(ingest, k, d)
    topics = dict(get("topics", {}) or {})
    gaps = {k: list(v) for k, v in dict(get("topic_gaps", {}) or {}).items()}
    dropped: dict[str, int] = {}
    for e in get("episodes", []) or []:
        name = e.get("name") if isinstance(e, Mapping) else getattr(e, "name", None)
        d = e.get("dropped_frames") if isinstance(e, Mapping) else getattr(e, "dropped_frames", None)
        if name is not None:
            dropped[str(name)] = int(d or 0)
    return topics, gaps, dropped


def profile_store(path: str | os.PathLike[str], ingest: Any = None, *, config: TrajectoryConfig | None = None,
                  frames_per_episode: int = 4, max_frames_per_camera: int = 240) -> Profile:
    """Profile a canonical episode store (a recording). ``ingest``: its :class:`robodata.ingest.IngestReport`
    (or that as a dict), for per-topic rate and jitter and the frames dropped at ingest."""
    from robodata.formats.isaaclab import EpisodeStore
    from robodata.trajectory import find_gripper, speed_signal

    cfg = config or TrajectoryConfig()
    topics, topic_gaps, dropped = _ingest_parts(ingest)
    with EpisodeStore(path) as es:
        if not es.demo_names:
            raise ProfileError(f"{es.path}: the store has no demos to profile")
        schema = es.schema
        states = schema.of_role("state")
        state_names = [(f.name, n) for f in states for n in _names_of(f)]
        action_names = [(f.name, n) for f in schema.of_role("action") for n in _names_of(f)]
        grip = find_gripper(es, cfg.model_copy(update={"gripper_feature": None, "gripper_dim": None}))
        grip_cols: list[int] = []
        if grip and es.spec(grip[0]).role == "action":
            grip_cols = [schema.slices("action")[grip[0]][0] + grip[1]]
        else:
            grip_cols = [i for i, (_, n) in enumerate(action_names) if any(w in n.lower() for w in GRIPPER_WORDS)]
        b = _Builder(state_names, action_names, cfg, grip_cols)
        exposure = {c.name: _Exposure(c.name) for c in schema.cameras}
        per_ep = max(1, min(frames_per_episode, max_frames_per_camera // max(1, len(es.demo_names))))
        what = ""
        for demo in es.demo_names:
            n = es.num_samples(demo)
            attrs = es.attrs(demo)
            present = [f for f in states if es.has(demo, f.name)]
            if present and len(present) == len(states):
                state = np.concatenate([es.feature(demo, f.name).reshape(n, -1) for f in states], axis=1)
            else:
                state = es.state_vector(demo)
            motion, what = speed_signal(es, demo, cfg.speed_feature)
            eef = motion if what.endswith("position") else None
            success = attrs.get("success")
            b.add(EpisodeArrays(demo, es.timestamps(demo), state, es.group(demo)["actions"][()], motion, eef,
                                None if success is None else bool(success),
                                str(attrs.get("task") or schema.task or ""), dropped.get(demo) if ingest is not None else None))
            for cam, acc in exposure.items():
                if es.has(demo, cam):
                    for i in sample_indices(n, per_ep):
                        acc.add(es.feature(demo, cam, i, i + 1)[0])
        eps, sdims, adims, thr, clock = b.finish()
        timings = [TopicTiming(t, int(v.get("count", 0)), float(v.get("rate_hz", 0.0)),
                               _steady_jitter_ms(topic_gaps.get(t), float(v.get("jitter_ms", 0.0))),
                               float(v.get("max_gap_ms", 0.0)), [float(g) for g in topic_gaps.get(t, [])[:2000]])
                   for t, v in sorted(topics.items())]
        if clock:
            timings.append(clock)
        notes = []
        if es.timestamps_inferred:
            notes.append("the store has no timestamps: frame times are frame / fps")
        return Profile(
            "recording", str(es.path), float(schema.fps), schema.robot_type, eps, sdims, adims, timings,
            [r for r in (acc.result() for acc in exposure.values()) if r is not None], thr, what,
            "action (" + ", ".join(n for i, (_, n) in enumerate(action_names) if i not in grip_cols) + ")",
            settings=_settings(cfg, thr, per_ep), notes=notes,
        )


def _steady_jitter_ms(gaps: Sequence[float] | None, fallback: float) -> float:
    """Std of a topic's inter-arrival times without its pauses (gaps over 3x the median: between episodes),
    which the ingest's whole-recording jitter counts in."""
    g = np.asarray(gaps if gaps is not None else [], np.float64)
    g = g[g > 0]
    if len(g) < 3:
        return fallback
    steady = g[g <= 3 * float(np.median(g))]
    return float(steady.std() * 1e3) if len(steady) > 1 else fallback


def _settings(cfg: TrajectoryConfig, thr: float, per_ep: int) -> dict[str, Any]:
    return {
        "idle_speed": thr, "idle_speed_given": cfg.idle_speed, "idle_speed_relative": cfg.idle_speed_relative,
        "min_idle_s": cfg.min_idle_s, "idle_warn_fraction": IDLE_WARN_FRACTION,
        "clipped_levels": [DARK_LEVEL, BRIGHT_LEVEL], "clipped_warn_fraction": CLIPPED_WARN_FRACTION,
        "blur_relative": BLUR_RELATIVE, "jerk_outlier_z": JERK_OUTLIER_Z, "frames_per_episode": per_ep,
    }


# ---- a release: a LeRobot dataset -------------------------------------------------------------------------------


def _lerobot_names(key: str, feat: Mapping[str, Any]) -> list[tuple[str, str]]:
    shape = feat.get("shape") or [1]
    width = int(np.prod(shape))
    names = feat.get("names")
    flat: list[str] = []
    if isinstance(names, Mapping):
        for v in names.values():
            flat += [str(x) for x in (v if isinstance(v, list) else [v])]
    elif isinstance(names, list):
        flat = [str(x) for x in names]
    if len(flat) != width:
        flat = [key] if width == 1 else [f"{key}[{i}]" for i in range(width)]
    return [(key, n) for n in flat]


def profile_lerobot(path: str | os.PathLike[str], *, config: TrajectoryConfig | None = None,
                    frames_per_episode: int = 4, max_frames_per_camera: int = 240) -> Profile:
    """Profile a LeRobot dataset (a release; v3.0, v2.1 or v2.0), cameras from frames sampled from its videos."""
    from robodata.lerobot.layout import ACTION_KEY, DEFAULT_FEATURES, STATE_KEY
    from robodata.lerobot.metadata import read_meta
    from robodata.lerobot.source import FileCache, episode_rows_raw, to_numpy

    cfg = config or TrajectoryConfig()
    meta = read_meta(path)
    if not meta.episodes:
        raise ProfileError(f"{meta.root}: the dataset has no episodes to profile")
    feats = meta.features
    skip = set(DEFAULT_FEATURES) | {"next.success", "next.done", "next.reward", "success"}
    low = [k for k, f in feats.items() if f.get("dtype") in ("float32", "float64") and k not in skip]
    state_keys = [k for k in low if k != ACTION_KEY and not k.startswith(ACTION_KEY)]
    if STATE_KEY in state_keys:
        state_keys.remove(STATE_KEY)
        state_keys.insert(0, STATE_KEY)
    action_keys = [k for k in low if k == ACTION_KEY or k.startswith(ACTION_KEY + ".")]
    state_names = [n for k in state_keys for n in _lerobot_names(k, feats[k])]
    action_names = [n for k in action_keys for n in _lerobot_names(k, feats[k])]
    grip_cols = [i for i, (_, n) in enumerate(action_names) if any(w in n.lower() for w in GRIPPER_WORDS)]
    fallback = STATE_KEY if STATE_KEY in state_keys else (state_keys[0] if state_keys else None)
    motion_key = cfg.speed_feature or next((k for k in state_keys if any(w in k.lower() for w in ("eef", "ee_pos"))),
                                           fallback)
    if motion_key is not None and motion_key not in feats:
        raise ProfileError(f"{meta.root}: speed_feature {motion_key!r} is not a feature of the dataset")
    b = _Builder(state_names, action_names, cfg, grip_cols)
    cache = FileCache()
    success_col = next((c for c in ("next.success", "success") if c in feats), None)
    for ep in meta.episodes:
        t = episode_rows_raw(meta, ep, cache)
        n = t.num_rows
        ts = to_numpy(t.column("timestamp")).astype(np.float64).reshape(-1) if "timestamp" in t.column_names \
            else np.arange(n) / meta.fps

        def cols(keys: list[str], table: Any = t, rows: int = n) -> np.ndarray:
            parts = [to_numpy(table.column(k)).astype(np.float64).reshape(rows, -1) for k in keys
                     if k in table.column_names]
            return np.concatenate(parts, axis=1) if parts else np.zeros((rows, 0))

        state, action = cols(state_keys), cols(action_keys)
        motion = cols([motion_key]) if motion_key else state
        success: bool | None = None
        if success_col and success_col in t.column_names:
            success = bool(np.asarray(to_numpy(t.column(success_col))).reshape(-1).any())
        eef = motion[:, :3] if motion_key and any(w in motion_key.lower() for w in ("eef", "ee_pos")) else None
        b.add(EpisodeArrays(f"episode_{ep.index}", ts, state, action, motion, eef, success,
                            (ep.tasks or [""])[0]))
    eps, sdims, adims, thr, clock = b.finish()
    per_ep = max(1, min(frames_per_episode, max_frames_per_camera // len(meta.episodes)))
    cams = []
    for key in meta.video_keys:
        acc = _Exposure(key.removeprefix("observation.images."))
        for ep in meta.episodes:
            vpath, start, end = meta.video_file(ep, key)
            times = [start + (i + 0.5) / meta.fps for i in sample_indices(ep.length, per_ep)]
            for frame in sample_video_frames(vpath, [x for x in times if x < end]):
                acc.add(frame)
        r = acc.result()
        if r is not None:
            cams.append(r)
    return Profile(
        "release", str(meta.root), float(meta.fps), str(meta.info.get("robot_type") or "unknown"), eps, sdims, adims,
        [clock] if clock else [], cams, thr, motion_key or "", f"{', '.join(action_keys)}",
        settings=_settings(cfg, thr, per_ep),
        notes=[f"LeRobot {meta.version}; success unknown (no next.success column)"] if success_col is None else
        [f"LeRobot {meta.version}"],
    )


def sample_video_frames(path: str | os.PathLike[str], times: Iterable[float]) -> Iterator[np.ndarray]:
    """RGB frames at (just before or at) each of ``times`` seconds, by seeking to the keyframe before each and
    decoding forward (cheap with LeRobot's short GOPs; converts only the frames asked for)."""
    import av

    from robodata.lerobot.errors import LeRobotError

    want = sorted(times)
    if not want:
        return
    p = Path(path)
    if not p.exists():
        raise LeRobotError(f"{p}: video file is missing")
    try:
        c = av.open(str(p))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise LeRobotError(f"{p}: not a readable MP4 video ({err})") from err
    try:
        if not c.streams.video:
            raise LeRobotError(f"{p}: has no video stream")
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        tb = float(s.time_base or 0) or 1.0
        for t in want:
            c.seek(max(0, int(t / tb)), backward=True, any_frame=False, stream=s)
            last = None
            for frame in c.decode(s):
                if frame.pts is None:
                    continue
                if frame.pts * tb > t + 1e-6:
                    break
                last = frame
            if last is None:
                continue
            yield last.to_ndarray(format="rgb24")
    except av.error.FFmpegError as err:
        raise LeRobotError(f"{p}: cannot decode video ({err})") from err
    finally:
        c.close()


def profile_path(path: str | os.PathLike[str], ingest: Any = None, **kw: Any) -> Profile:
    """A store (file) or a LeRobot dataset (folder with meta/info.json), profiled by what it is."""
    p = Path(path)
    if p.is_dir():
        return profile_lerobot(p, **kw)
    if not p.exists():
        raise ProfileError(f"{p}: no such file or folder")
    return profile_store(p, ingest, **kw)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


# ---- the HTML page ------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 10px;border-bottom:1px solid #dde1e7;padding-bottom:6px}
h3{font-size:15px;margin:14px 0 6px}
.sub{color:#5b6473;margin:0 0 16px;word-break:break-all}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:16px 20px;margin:16px 0}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px}
.tile{flex:1 1 130px;border:1px solid #dde1e7;border-radius:6px;padding:10px 14px;background:#fafbfc}
.tile .v{font-size:24px;font-weight:600}.tile .k{color:#5b6473;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
ul.warnings{margin:6px 0 0;padding:0;list-style:none}
ul.warnings li{background:#fff4e5;border-left:4px solid #e8890c;padding:6px 10px;margin:4px 0;border-radius:3px}
p.ok{background:#e9f7ef;border-left:4px solid #2e9d5b;padding:6px 10px;border-radius:3px}
nav{font-size:13px;margin:0 0 4px}nav a{margin-right:12px;color:#2857b8;text-decoration:none}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 10px}
th,td{text-align:right;padding:3px 8px;border-bottom:1px solid #eceff3;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}th:first-child,td:first-child,td.l,th.l{text-align:left}
tr.bad td{background:#fdecec}td.bad{color:#b42318;font-weight:600}td.good{color:#1e7b45}
.scroll{max-height:420px;overflow:auto;border:1px solid #eceff3}
img.plot{max-width:100%;display:block;margin:6px 0}
.cams{display:flex;flex-wrap:wrap;gap:16px}.cam{flex:1 1 480px;border:1px solid #dde1e7;border-radius:6px;padding:10px}
.muted{color:#5b6473;font-size:12.5px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:0}
dt{color:#5b6473}dd{margin:0}
"""


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if ax >= 1 else f"{x:.{digits}f}".rstrip("0").rstrip(".") or "0"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _img(png: bytes, alt: str) -> str:
    return f'<img class="plot" alt="{esc(alt)}" src="{png_data_uri(png)}">' if png else ""


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], *, bad_rows: Sequence[bool] = (), scroll: bool = False,
           left: int = 1) -> str:
    th = "".join(f'<th class="l">{esc(h)}</th>' if i < left else f"<th>{esc(h)}</th>" for i, h in enumerate(head))
    body = []
    for i, r in enumerate(rows):
        cls = ' class="bad"' if i < len(bad_rows) and bad_rows[i] else ""
        tds = "".join(f'<td class="l">{c}</td>' if j < left else f"<td>{c}</td>" for j, c in enumerate(r))
        body.append(f"<tr{cls}>{tds}</tr>")
    t = f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{t}</div>' if scroll else t


def _plot_timeline(p: Profile) -> bytes:
    from robodata.plots import _fig, _png

    eps = p.episodes[:MAX_PLOTTED_EPISODES]
    plt, fig = _fig(9, max(1.6, 0.22 * len(eps) + 0.9))
    ax = fig.add_subplot(1, 1, 1)
    colors = {True: "#2e9d5b", False: "#d0453a", None: "#8a94a6"}
    for i, e in enumerate(eps):
        ax.barh(i, e.duration_s, color=colors[e.success], height=0.7)
        for a, b in e.idle:
            ax.barh(i, b - a, left=a, color="#f2b134", height=0.7, alpha=0.9)
    ax.set_yticks(range(len(eps)), [e.name for e in eps], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (green: success, red: failure, grey: unknown; orange: idle)", fontsize=8)
    ax.set_title("episodes over time, idle stretches marked", fontsize=9)
    return _png(plt, fig)


def _hist_range(lo: float, hi: float) -> tuple[float, float]:
    """A histogram range numpy can cut into bins: a constant (or float-noise wide) column gets +-0.5."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        mid = lo if math.isfinite(lo) else 0.0
        return mid - 0.5, mid + 0.5
    return lo, hi


def _plot_timing(p: Profile) -> bytes:
    from robodata.plots import _fig, _png

    plt, fig = _fig(8, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    drawn = False
    for t in p.topics:
        g = np.asarray(t.gaps, float) * 1e3
        if len(g):
            ax.hist(g, bins=60, range=_hist_range(float(g.min()), float(g.max())), histtype="step",
                    label=f"{t.topic} ({t.rate_hz:.1f} Hz)")
            drawn = True
    if not drawn:
        plt.close(fig)
        return b""
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.set_xlabel("inter-arrival time (ms)", fontsize=8)
    ax.set_title("message timing per stream", fontsize=9)
    ax.legend(fontsize=6)
    return _png(plt, fig)


def _plot_jerk(p: Profile) -> bytes:
    from robodata.plots import _fig, _png

    eps = p.episodes[:MAX_PLOTTED_EPISODES]
    if not eps:
        return b""
    plt, fig = _fig(9, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(range(len(eps)), [e.action_jerk_rms for e in eps],
           color=["#d0453a" if e.jerk_outlier else "#4c78a8" for e in eps])
    thr = jerk_threshold(p.episodes)
    if thr is not None and math.isfinite(thr):
        ax.axhline(thr, color="#d0453a", lw=1, ls="--", label="outlier above")
        ax.legend(fontsize=7)
    ax.set_xticks(range(len(eps)), [e.name for e in eps], rotation=90, fontsize=6)
    ax.set_ylabel("RMS jerk (units/s³)", fontsize=8)
    ax.set_title("action jerk per episode (red: outlier)", fontsize=9)
    return _png(plt, fig)


def _plot_dims(dims: list[DimStats], title: str) -> bytes:
    from robodata.plots import _fig, _png

    dims = dims[:48]
    if not dims:
        return b""
    cols = min(4, len(dims))
    rows = int(math.ceil(len(dims) / cols))
    plt, fig = _fig(2.3 * cols, 1.55 * rows + 0.4)
    for i, d in enumerate(dims):
        ax = fig.add_subplot(rows, cols, i + 1)
        edges = np.asarray(d.edges)
        if len(edges) > 1:
            ax.stairs(d.hist, edges, fill=True, color="#c23b3b" if d.constant else "#4c78a8")
        ax.set_title(d.name + (" (constant)" if d.constant else ""), fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return _png(plt, fig)


def _plot_brightness(c: CameraExposure) -> bytes:
    from robodata.plots import _fig, _png

    plt, fig = _fig(4.2, 2.0)
    ax = fig.add_subplot(1, 1, 1)
    edges = np.linspace(0, 256, len(c.brightness_hist) + 1)
    ax.stairs(c.brightness_hist, edges, fill=True, color="#4c78a8")
    ax.axvspan(0, DARK_LEVEL + 1, color="#333", alpha=0.25)
    ax.axvspan(BRIGHT_LEVEL, 256, color="#f2b134", alpha=0.35)
    ax.set_xlim(0, 256)
    ax.set_yticks([])
    ax.tick_params(labelsize=6)
    ax.set_title(f"{c.name}: brightness of sampled frames", fontsize=8)
    return _png(plt, fig)


def _dims_table(dims: list[DimStats]) -> str:
    rows = [[f"{esc(d.name)}", esc(d.feature), _fmt(d.mean), _fmt(d.std), _fmt(d.min), _fmt(d.q01), _fmt(d.q10),
             _fmt(d.q50), _fmt(d.q90), _fmt(d.q99), _fmt(d.max)] for d in dims]
    return _table(["dimension", "feature", "mean", "std", "min", "q01", "q10", "median", "q90", "q99", "max"], rows,
                  bad_rows=[d.constant for d in dims], scroll=len(dims) > 16, left=2)


def _mix_html(mix: Mapping[str, Any]) -> str:
    """The mix of a release: per layer its weight, datasets, episodes, frames and hours; per dataset its layers and
    sampling weight."""
    layers = mix.get("layers") or {}
    rows = [[esc(name), f"{float(lay.get('weight') or 0):.3f}", f"{float(lay.get('effective_weight') or 0):.3f}",
             esc(", ".join(lay.get("datasets") or []) or "-"), f"{int(lay.get('episodes') or 0):,}",
             f"{int(lay.get('frames') or 0):,}", f"{float(lay.get('hours') or 0):.4f}", esc(lay.get("kind", ""))]
            for name, lay in layers.items()]
    bad = [not int(lay.get("episodes") or 0) for lay in layers.values()]
    ds_rows = [[esc(name), esc(", ".join(d.get("layers") or [])), f"{float(d.get('weight') or 0):.3f}",
                "yes" if d.get("observation_only") else "no", f"{int(d.get('episodes') or 0):,}",
                f"{int(d.get('frames') or 0):,}", f"{float(d.get('hours') or 0):.4f}"]
               for name, d in (mix.get("datasets") or {}).items()]
    notes = "".join(f"<li>{esc(n)}</li>" for n in mix.get("notes") or [])
    return ('<section id="mix"><h2>Mix</h2>'
            f"<p>{len(layers)} layer{_s(len(layers))} in {len(ds_rows)} dataset{_s(len(ds_rows))}; weights are the "
            "share of training samples each layer gets (effective: renormalised over the layers that have data).</p>"
            + _table(["layer", "weight", "effective weight", "datasets", "episodes", "frames", "hours", "kind"], rows,
                     bad_rows=bad)
            + "<h3>Datasets</h3>"
            + _table(["dataset", "layers", "sampling weight", "observation only", "episodes", "frames", "hours"],
                     ds_rows)
            + (f'<ul class="warnings">{notes}</ul>' if notes else "") + "</section>")


def render_html(p: Profile) -> str:
    """The report page of ``p`` (see :meth:`Profile.to_html`)."""
    title = Path(p.source).name or p.source
    rate = p.success_rate
    clock = p.frame_clock
    tiles = [("Episodes", f"{len(p.episodes)}"), ("Frames", f"{p.frames:,}"), ("Hours", f"{p.hours:.2f}" if p.hours >= 0.1 else f"{p.hours:.3f}"),
             ("Success rate", "unknown" if rate is None else f"{100 * rate:.0f} %"),
             ("Idle", f"{100 * p.idle_fraction:.0f} %"),
             ("Frame rate", f"{clock.rate_hz:.1f} Hz" if clock else f"{p.fps:g} fps")]
    minutes = p.duration_s / 60
    extra = {"Hours": f"{minutes:.1f} min" if minutes >= 1 else f"{p.duration_s:.1f} s",
             "Success rate": f"{sum(1 for e in p.success_known if e.success)} of {len(p.success_known)} known"
             if rate is not None else "no success flags",
             "Idle": f"{p.idle_s:.1f} s", "Frames": f"{p.fps:g} fps",
             "Frame rate": f"jitter {clock.jitter_ms:.2f} ms" if clock else ""}
    tiles_html = "".join(f'<div class="tile" data-key="{esc(k)}"><div class="k">{esc(k)}</div>'
                         f'<div class="v">{esc(v)}</div><div class="muted">{esc(extra.get(k, ""))}</div></div>'
                         for k, v in tiles)
    warnings = p.warnings
    warn_html = ('<ul class="warnings">' + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>") if warnings \
        else '<p class="ok">No warnings: the clock, motion, smoothness and cameras are within the thresholds.</p>'
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>Profile: {esc(title)}</title><style>{_CSS}</style></head><body><main>",
           f"<h1>Profile: {esc(title)}</h1>",
           f'<p class="sub">{esc(p.kind)} &middot; {esc(p.source)} &middot; robot {esc(p.robot_type)} &middot; '
           f"{p.fps:g} fps &middot; {esc(p.created)}</p>",
           '<nav><a href="#episodes">Episodes</a><a href="#timing">Rate and jitter</a><a href="#idle">Idle</a>'
           '<a href="#smoothness">Smoothness</a><a href="#state">State</a><a href="#action">Action</a>'
           '<a href="#cameras">Cameras</a><a href="#method">Method</a></nav>',
           f'<section id="headline"><h2>Headline</h2><div class="tiles">{tiles_html}</div>{warn_html}</section>']
    if p.mix:
        nav = next(i for i, part in enumerate(out) if part.startswith("<nav>"))
        out[nav] = out[nav].replace('<a href="#episodes">', '<a href="#mix">Mix</a><a href="#episodes">', 1)
        out.append(_mix_html(p.mix))

    # episodes
    task_rows = []
    for task, eps in p.tasks.items():
        known = [e for e in eps if e.success is not None]
        sr = sum(1 for e in known if e.success) / len(known) if known else None
        task_rows.append([esc(task), len(eps), f"{sum(e.frames for e in eps):,}",
                          f"{np.mean([e.duration_s for e in eps]):.1f}", _pct(sr)])
    ep_rows, bad = [], []
    has_drop = any(e.dropped_frames is not None for e in p.episodes)
    for e in p.episodes:
        ok = "-" if e.success is None else ('<span class="good">yes</span>' if e.success else
                                             '<span class="bad">no</span>')
        row = [esc(e.name), esc(e.task), e.frames, f"{e.duration_s:.2f}", ok, f"{e.rate_hz:.2f}",
               f"{e.jitter_ms:.2f}", e.clock_gaps]
        if has_drop:
            row.append(e.dropped_frames if e.dropped_frames is not None else "-")
        row += [_pct(e.idle_fraction), _fmt(e.action_jerk_rms), _fmt(e.eef_jerk_rms)]
        ep_rows.append(row)
        bad.append(e.success is False or e.jerk_outlier or e.idle_fraction > IDLE_WARN_FRACTION)
    head = ["episode", "task", "frames", "seconds", "success", "rate Hz", "jitter ms", "clock gaps"]
    head += (["dropped (ingest)"] if has_drop else []) + ["idle", "action jerk RMS", "EE jerk RMS"]
    lengths = [e.frames for e in p.episodes]
    out.append(
        '<section id="episodes"><h2>Episodes</h2>'
        f'<p>{len(p.episodes)} episodes, {min(lengths)}&ndash;{max(lengths)} frames (median '
        f'{np.median(lengths):.0f}), {p.duration_s:.1f} s in all.</p><h3>Per task</h3>'
        + _table(["task", "episodes", "frames", "mean seconds", "success rate"], task_rows, left=1)
        + _img(_plot_timeline(p), "episode timeline") + "<h3>Per episode</h3>"
        + _table(head, ep_rows, bad_rows=bad, scroll=len(ep_rows) > 14, left=2) + "</section>")

    # timing
    t_rows = [[esc(t.topic), f"{t.count:,}", f"{t.rate_hz:.2f}", f"{t.jitter_ms:.2f}", f"{t.max_gap_ms:.1f}",
               f"{100 * t.jitter_ms * t.rate_hz / 1000:.1f} %" if t.rate_hz else "-"] for t in p.topics]
    per_topic = "" if p.kind == "release" or len(p.topics) > 1 else (
        '<p class="muted">Per-topic rates come from the ingest report; none was given, so only the frame clock '
        "of the episodes is shown.</p>")
    out.append('<section id="timing"><h2>Rate and jitter</h2>' + per_topic
               + _table(["stream", "messages", "rate Hz (median)", "jitter ms (std)", "max gap ms", "jitter / period"],
                        t_rows) + _img(_plot_timing(p), "message timing") + "</section>")

    # idle
    spans = [(e.name, a, b) for e in p.episodes for a, b in e.idle]
    idle_rows = [[esc(n), f"{a:.2f}", f"{b:.2f}", f"{b - a:.2f}"] for n, a, b in spans[:500]]
    out.append(
        '<section id="idle"><h2>Idle segments</h2>'
        f"<p>{len(spans)} idle segment{_s(len(spans))} (speed of {esc(p.speed_signal or 'the state')} at or below "
        f"{_fmt(p.idle_speed)}/s for at least {p.settings.get('min_idle_s', 0):g} s), {p.idle_s:.1f} s in all "
        f"({100 * p.idle_fraction:.0f} % of the time); {len(p.idle_heavy)} episode{_s(len(p.idle_heavy))} idle more "
        f"than {IDLE_WARN_FRACTION:.0%} of the time.</p>"
        + (_table(["episode", "from s", "to s", "seconds"], idle_rows, scroll=len(idle_rows) > 14) if idle_rows else "")
        + "</section>")

    # smoothness
    jerks = [e.action_jerk_rms for e in p.episodes]
    thr = jerk_threshold(p.episodes)
    out.append(
        '<section id="smoothness"><h2>Action smoothness</h2>'
        f"<p>RMS jerk (third time derivative) of {esc(p.jerk_signal)}: median {_fmt(float(np.median(jerks)))}, "
        f"max {_fmt(float(np.max(jerks)))}; {sum(1 for e in p.episodes if e.jerk_outlier)} outlier episode(s)"
        + (f" above {_fmt(thr)}" if thr is not None else " (outliers need at least 3 episodes)") + ".</p>"
        + _img(_plot_jerk(p), "action jerk per episode") + "</section>")

    # distributions
    for sid, name, dims in (("state", "State", p.state), ("action", "Action", p.action)):
        const = sum(1 for d in dims if d.constant)
        out.append(f'<section id="{sid}"><h2>{name} distributions</h2>'
                   f"<p>{len(dims)} dimension{_s(len(dims))}" + (f", {const} constant (red)" if const else "")
                   + ".</p>" + (_dims_table(dims) + _img(_plot_dims(dims, f"{name.lower()} per dimension"),
                                                           f"{name.lower()} histograms") if dims else "")
                   + "</section>")

    # cameras
    cards = []
    for c in p.cameras:
        cards.append(
            f'<div class="cam" data-camera="{esc(c.name)}"><h3>{esc(c.name)}</h3><dl>'
            f"<dt>resolution</dt><dd>{c.width}&times;{c.height}</dd>"
            f"<dt>frames sampled</dt><dd>{c.frames_sampled}</dd>"
            f"<dt>mean brightness</dt><dd>{c.brightness:.0f} / 255</dd>"
            f"<dt>clipped dark</dt><dd>{_pct(c.dark_fraction)}</dd>"
            f"<dt>clipped bright</dt><dd>{_pct(c.bright_fraction)}</dd>"
            f"<dt>sharpness</dt><dd>{c.blur:.0f} (variance of the Laplacian, median)</dd>"
            f"<dt>blurred frames</dt><dd>{_pct(c.blurred_fraction)}</dd></dl>"
            + _img(c.strip, f"{c.name} sampled frames") + _img(_plot_brightness(c), f"{c.name} brightness")
            + "</div>")
    out.append('<section id="cameras"><h2>Camera exposure</h2>'
               + (f'<div class="cams">{"".join(cards)}</div>' if cards else "<p>No cameras.</p>") + "</section>")

    # method
    s = p.settings
    items = [
        ("idle", f"speed of {esc(p.speed_signal)} &le; {_fmt(p.idle_speed)}/s "
                 + ("(given)" if s.get("idle_speed_given") is not None else
                    f"({s.get('idle_speed_relative', 0):g} &times; the 95th percentile speed)")
                 + f" for &ge; {s.get('min_idle_s', 0):g} s"),
        ("jerk", f"third difference / period&sup3;, RMS per episode; outlier: robust z &gt; {JERK_OUTLIER_Z:g} "
                 "and more than twice the median"),
        ("clipped pixels", f"luma &le; {DARK_LEVEL} or &ge; {BRIGHT_LEVEL}"),
        ("blurred frame", f"Laplacian variance below {BLUR_RELATIVE:g} &times; the camera's median"),
        ("jitter", "std of the inter-arrival times, pauses over 3 &times; the median (between episodes) left out"),
        ("frames per episode", f"{s.get('frames_per_episode', 0)} sampled per camera"),
        ("distributions", f"moments over every frame; quantiles and histograms over at most "
                          f"{MAX_ROWS_PER_EPISODE} frames per episode"),
    ] + [("note", esc(n)) for n in p.notes]
    out.append('<section id="method"><h2>How this was measured</h2><dl>'
               + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl></section>")
    out.append("</main></body></html>")
    return "\n".join(out)
