"""Drift of a new release against a reference release, per feature, with thresholds from config.

Both releases are LeRobot datasets (v3.0 or v2.x folders). Compared, each as two samples of values:

- every state and action dimension (and any other vector observation), over the frames of all episodes
  (at most ``max_rows`` frames per release, an even subsample beyond that);
- episode length (frames per episode) and the recording rate (``fps``: LeRobot timestamps are
  ``frame_index / fps``, so the rate of a release is its ``fps``);
- the task mix (share of episodes per task string: task indices differ between releases, strings do not);
- per camera, from ``frames_per_episode`` decoded frames of up to ``image_episodes`` episodes: brightness
  (mean luma, 0-255), the mean of each colour channel, and blur (variance of the Laplacian of the luma:
  lower is blurrier).

Statistics, all three for every numeric feature: PSI (population stability index, 10 quantile bins of the
reference; < 0.1 stable, 0.1-0.25 moderate, > 0.25 a major shift), the two-sample Kolmogorov-Smirnov statistic
(the largest gap between the two CDFs, 0-1) and the Wasserstein-1 distance divided by the reference's standard
deviation (how far the distribution moved, in reference standard deviations). A feature is drifted when the
statistic chosen by ``DriftConfig.statistic`` exceeds its threshold; the task mix uses PSI over tasks and the
rate its relative change. Samples are frames of whole episodes (neighbouring frames are alike), so significance
tests would call every difference significant at this size: the thresholds are on effect sizes.

A reference whose features differ (names, shapes, dtypes of the columns; cameras) raises one
:class:`DriftError` naming both ``info.json`` files and the mismatch. :func:`check_release_drift` gives what a
Dagster asset check needs (passed, severity WARN or ERROR by ``on_drift``, metadata).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from robodata.errors import RobodataError
from robodata.lerobot.errors import LeRobotError
from robodata.lerobot.layout import DEFAULT_FEATURES, INFO_PATH, TASK_ANNOTATION_COLUMN
from robodata.lerobot.metadata import DatasetMeta, read_meta

STATISTICS = ("psi", "ks", "wasserstein")
IMAGE_STATS = ("brightness", "red", "green", "blue", "blur")
_EPS = 1e-4  # PSI: empty bins count as this share


class DriftError(RobodataError):
    """Two releases cannot be compared (the message names the file and the mismatch)."""


class DriftThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    psi: float = Field(0.2, gt=0, description="PSI above this is drift (0.1-0.25: moderate, > 0.25: major)")
    ks: float = Field(0.2, gt=0, le=1, description="KS statistic (largest CDF gap) above this is drift")
    wasserstein: float = Field(0.25, gt=0, description="Wasserstein-1 in reference standard deviations")
    rate: float = Field(0.01, ge=0, description="relative change of fps above this is drift")
    task_psi: float = Field(0.2, gt=0, description="PSI over the task mix above this is drift")


class DriftConfig(BaseModel):
    """Which statistic decides, its thresholds (per feature overrides too) and what drift does to a release."""

    model_config = ConfigDict(extra="forbid")

    statistic: Literal["psi", "ks", "wasserstein"] = "psi"
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    feature_thresholds: dict[str, float] = Field(
        default_factory=dict, description="feature name (e.g. 'observation.state[j2]') -> threshold of `statistic`")
    ignore: list[str] = Field(default_factory=list, description="features never flagged (still reported)")
    on_drift: Literal["warn", "block"] = "warn"
    bins: int = Field(10, ge=2)
    max_rows: int = Field(200_000, ge=100)
    image_episodes: int = Field(40, ge=0, description="episodes whose frames are sampled per camera (0: no images)")
    frames_per_episode: int = Field(4, ge=1)
    seed: int = 0
    plots: bool = True


# -- statistics ---------------------------------------------------------------------------------------------


def psi(reference: np.ndarray, new: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``new`` against ``reference`` over the reference's quantile bins
    (a reference with few distinct values is binned by those values)."""
    ref = np.asarray(reference, np.float64).ravel()
    cur = np.asarray(new, np.float64).ravel()
    if not len(ref) or not len(cur):
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    if len(np.unique(ref)) <= bins:  # few distinct values: one bin each, and one below and above them
        vals = np.unique(ref)
        pad = 1e-9 * (1.0 + np.abs(vals[[0, -1]]))
        edges = np.concatenate([[vals[0] - pad[0]], (vals[:-1] + vals[1:]) / 2, [vals[-1] + pad[1]]])
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    return _psi(p, q)


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.maximum(p, _EPS)
    q = np.maximum(q, _EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_statistic(reference: np.ndarray, new: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a = np.sort(np.asarray(reference, np.float64).ravel())
    b = np.sort(np.asarray(new, np.float64).ravel())
    if not len(a) or not len(b):
        return float("nan")
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, side="right") / len(a)
                               - np.searchsorted(b, grid, side="right") / len(b))))


def wasserstein(reference: np.ndarray, new: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance between two 1-D samples (as ``scipy.stats.wasserstein_distance``)."""
    a = np.sort(np.asarray(reference, np.float64).ravel())
    b = np.sort(np.asarray(new, np.float64).ravel())
    if not len(a) or not len(b):
        return float("nan")
    allv = np.sort(np.concatenate([a, b]))
    deltas = np.diff(allv)
    ca = np.searchsorted(a, allv[:-1], side="right") / len(a)
    cb = np.searchsorted(b, allv[:-1], side="right") / len(b)
    return float(np.sum(np.abs(ca - cb) * deltas))


# -- the report ---------------------------------------------------------------------------------------------


@dataclass
class FeatureDrift:
    """One feature's comparison."""

    name: str
    group: str  # state / action / observation / episode / rate / task / image
    statistic: str  # the statistic that decides (psi / ks / wasserstein / relative_change / task_psi)
    value: float
    threshold: float
    drifted: bool
    psi: float | None = None
    ks: float | None = None
    wasserstein: float | None = None  # in reference standard deviations
    reference_mean: float | None = None
    reference_std: float | None = None
    new_mean: float | None = None
    new_std: float | None = None
    detail: str = ""
    reference_sample: np.ndarray | None = field(default=None, repr=False)
    new_sample: np.ndarray | None = field(default=None, repr=False)

    @property
    def ratio(self) -> float:
        return self.value / self.threshold if self.threshold > 0 else (math.inf if self.value > 0 else 0.0)

    def change(self) -> str:
        """The shift in words: means and the move in reference standard deviations."""
        if self.detail:
            return self.detail
        if self.reference_mean is None or self.new_mean is None:
            return ""
        sd = self.reference_std or 0.0
        if sd <= 0:
            same = self.new_mean == self.reference_mean
            return f"mean {_num(self.reference_mean)} -> {_num(self.new_mean)} (constant in the reference" + \
                (")" if same else f", moved by {_num(self.new_mean - self.reference_mean)})")
        move = (self.new_mean - self.reference_mean) / sd if sd > 0 else math.inf
        spread = (self.new_std or 0.0) / sd if sd > 0 else math.inf
        return (f"mean {_num(self.reference_mean)} -> {_num(self.new_mean)} ({move:+.2f} ref. std), "
                f"std x{spread:.2f}")

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", "group", "statistic", "value", "threshold", "drifted", "psi",
                                              "ks", "wasserstein", "reference_mean", "reference_std", "new_mean",
                                              "new_std", "detail")}


def _num(x: float) -> str:
    return f"{x:.4g}"


@dataclass
class DriftReport:
    new: str
    reference: str
    config: DriftConfig
    features: list[FeatureDrift]
    new_episodes: int
    reference_episodes: int
    plots: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def drifted(self) -> list[FeatureDrift]:
        return sorted((f for f in self.features if f.drifted), key=lambda f: -f.ratio)

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def headline(self) -> str:
        d = self.drifted
        verdict = "no drift" if not d else f"{len(d)} of {len(self.features)} features drifted"
        action = "" if not d else f" (on_drift: {self.config.on_drift})"
        return (f"Drift of {self.new} ({self.new_episodes} episodes) against {self.reference} "
                f"({self.reference_episodes} episodes): {verdict}{action}")

    def to_markdown(self, images: Mapping[str, str] | None = None) -> str:
        """The summary a robotics lead reads: what drifted, by how much, the numbers; then every feature."""
        cfg = self.config
        lines = [f"# {self.headline()}", ""]
        lines.append(f"Decided by **{cfg.statistic}** (threshold {getattr(cfg.thresholds, cfg.statistic)}"
                     f"{', per-feature overrides' if cfg.feature_thresholds else ''}); rate by relative fps change "
                     f"(> {cfg.thresholds.rate}), task mix by PSI over tasks (> {cfg.thresholds.task_psi}). "
                     "PSI < 0.1 stable, 0.1-0.25 moderate, > 0.25 major; KS is the largest CDF gap (0-1); "
                     "Wasserstein is in reference standard deviations.")
        lines.append("")
        d = self.drifted
        if d:
            lines += ["## Drifted", "", "| feature | statistic | value | threshold | change |", "|---|---|---|---|---|"]
            for f in d:
                lines.append(f"| {f.name} | {f.statistic} | {f.value:.3f} | {f.threshold:g} | {f.change()} |")
            lines.append("")
        else:
            lines += ["Nothing drifted beyond its threshold.", ""]
        if images:
            lines += ["## Plots", ""] + [f"![{k}]({v})" for k, v in images.items()] + [""]
        lines += ["## All features", "", "| feature | group | PSI | KS | Wasserstein (std) | drifted | change |",
                  "|---|---|---|---|---|---|---|"]
        for f in self.features:
            lines.append(f"| {f.name} | {f.group} | {_opt(f.psi)} | {_opt(f.ks)} | {_opt(f.wasserstein)} | "
                         f"{'**yes**' if f.drifted else 'no'} | {f.change()} |")
        return "\n".join(lines) + "\n"

    def as_metadata(self) -> dict[str, Any]:
        return {"drifted_features": [f.name for f in self.drifted], "features_compared": len(self.features),
                "statistic": self.config.statistic, "on_drift": self.config.on_drift,
                "worst": {f.name: round(f.value, 4) for f in self.drifted[:10]},
                "reference": self.reference}

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """``drift_report.md`` (with the plots beside it), ``drift_report.json`` and the PNGs; returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name, png in self.plots.items():
            p = out / f"{name}.png"
            p.write_bytes(png)
            paths[name] = p
        md = out / "drift_report.md"
        md.write_text(self.to_markdown({k: p.name for k, p in paths.items()}))
        js = out / "drift_report.json"
        js.write_text(json.dumps({"headline": self.headline(), "new": self.new, "reference": self.reference,
                                  "config": self.config.model_dump(), "features": [f.as_dict() for f in self.features]},
                                 indent=1, default=float))
        return {"markdown": md, "json": js, **paths}


def _opt(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.3f}" if abs(x) < 1000 else f"{x:.3g}"


# -- reading releases ---------------------------------------------------------------------------------------


def _open(root: str | os.PathLike[str]) -> DatasetMeta:
    try:
        return read_meta(root)
    except LeRobotError as err:
        raise DriftError(str(err)) from err


def _vector_keys(meta: DatasetMeta) -> list[str]:
    return [k for k, f in meta.features.items()
            if f.get("dtype") not in ("video", "image", "string") and k not in DEFAULT_FEATURES
            and k != TASK_ANNOTATION_COLUMN]


def _signature(f: Mapping[str, Any]) -> tuple[Any, ...]:
    return (f.get("dtype"), list(f.get("shape") or []), f.get("names") if f.get("dtype") != "video" else None)


def check_same_features(new: DatasetMeta, reference: DatasetMeta) -> None:
    """Raise one :class:`DriftError` naming both ``info.json`` files and what differs."""
    a, b = new.features, reference.features
    missing = sorted(set(b) - set(a))
    extra = sorted(set(a) - set(b))
    changed = []
    for k in sorted(set(a) & set(b)):
        sa_, sb = _signature(a[k]), _signature(b[k])
        if sa_ != sb:
            what = "dtype" if sa_[0] != sb[0] else "shape" if sa_[1] != sb[1] else "names"
            va, vb = (sa_[0], sb[0]) if what == "dtype" else (sa_[1], sb[1]) if what == "shape" else (sa_[2], sb[2])
            changed.append(f"{k} {what} {va} here but {vb} in the reference")
    if missing or extra or changed:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"extra {', '.join(extra)}"] if extra else []) + changed
        raise DriftError(f"{new.root / INFO_PATH}: features differ from the reference {reference.root / INFO_PATH}: "
                         f"{'; '.join(parts)}")


def _dim_names(key: str, f: Mapping[str, Any]) -> list[str]:
    n = int(np.prod(f.get("shape") or [1]))
    names = f.get("names")
    flat: list[str] = []
    if isinstance(names, dict):
        for v in names.values():
            if isinstance(v, list):
                flat += [str(x) for x in v]
    elif isinstance(names, list):
        flat = [str(x) for x in names]
    if len(flat) != n:
        flat = [str(i) for i in range(n)]
    return [f"{key}[{x}]" for x in flat]


def _columns(meta: DatasetMeta, keys: Sequence[str], max_rows: int, seed: int) -> dict[str, np.ndarray]:
    """``(rows, dims)`` of each vector column over every data file (an even subsample beyond ``max_rows``)."""
    files = sorted({meta.data_file(ep) for ep in meta.episodes})
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    total = sum(ep.length for ep in meta.episodes)
    keep = min(1.0, max_rows / max(1, total))
    rng = np.random.default_rng(seed)
    for path in files:
        try:
            t = pq.read_table(path, columns=list(keys))
        except Exception as err:
            raise DriftError(f"{path}: not a readable parquet file with columns {list(keys)} ({err})") from err
        rows = None if keep >= 1.0 else np.flatnonzero(rng.random(t.num_rows) < keep)
        for k in keys:
            arr = t.column(k).combine_chunks()
            n = len(arr)
            vals = arr.flatten() if hasattr(arr, "flatten") else arr
            x = np.asarray(vals.to_numpy(zero_copy_only=False), np.float64).reshape(n, -1)
            parts[k].append(x if rows is None else x[rows])
    return {k: np.concatenate(v) if v else np.zeros((0, 1)) for k, v in parts.items()}


def _image_values(meta: DatasetMeta, key: str, cfg: DriftConfig) -> dict[str, np.ndarray]:
    """Per sampled frame of camera ``key``: brightness, colour means, blur."""
    from robodata.lerobot.source import meta_video
    from robodata.lerobot.video import decode

    eps = meta.episodes
    if cfg.image_episodes < len(eps):
        pick = np.unique(np.linspace(0, len(eps) - 1, cfg.image_episodes).round().astype(int))
        eps = [eps[i] for i in pick]
    out: dict[str, list[float]] = {s: [] for s in IMAGE_STATS}
    for ep in eps:
        path, start, end = meta_video(meta, ep, key)
        k = cfg.frames_per_episode
        times = [start + ((j + 0.5) / k) * (end - start) for j in range(k)]
        try:
            for t in times:
                for _, img in decode(path, t, end):
                    for s, v in image_stats(img).items():
                        out[s].append(v)
                    break
        except LeRobotError as err:
            raise DriftError(str(err)) from err
    return {s: np.asarray(v) for s, v in out.items()}


def image_stats(img: np.ndarray) -> dict[str, float]:
    """Brightness (mean Rec. 601 luma), mean red/green/blue (0-255) and blur (variance of the Laplacian)."""
    x = np.asarray(img, np.float64)[..., :3]
    luma = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    lap = (4 * luma[1:-1, 1:-1] - luma[:-2, 1:-1] - luma[2:, 1:-1] - luma[1:-1, :-2] - luma[1:-1, 2:])
    return {"brightness": float(luma.mean()), "red": float(x[..., 0].mean()), "green": float(x[..., 1].mean()),
            "blue": float(x[..., 2].mean()), "blur": float(lap.var()) if lap.size else 0.0}


# -- comparing ----------------------------------------------------------------------------------------------


def compare(name: str, group: str, reference: np.ndarray, new: np.ndarray, cfg: DriftConfig) -> FeatureDrift:
    """All three statistics of one numeric feature; drifted by the configured one."""
    ref = np.asarray(reference, np.float64).ravel()
    cur = np.asarray(new, np.float64).ravel()
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    rm, rs = (float(ref.mean()), float(ref.std())) if len(ref) else (math.nan, math.nan)
    nm, ns = (float(cur.mean()), float(cur.std())) if len(cur) else (math.nan, math.nan)
    p, k = psi(ref, cur, cfg.bins), ks_statistic(ref, cur)
    w = wasserstein(ref, cur)
    floor = 1e-9 * (1.0 + abs(rm)) if math.isfinite(rm) else 1e-9
    wn = w / max(rs, floor) if math.isfinite(w) else math.nan
    stats = {"psi": p, "ks": k, "wasserstein": wn}
    value = stats[cfg.statistic]
    thr = cfg.feature_thresholds.get(name, getattr(cfg.thresholds, cfg.statistic))
    drifted = bool(math.isfinite(value) and value > thr and name not in cfg.ignore)
    return FeatureDrift(name, group, cfg.statistic, float(value), float(thr), drifted, p, k, wn, rm, rs, nm, ns,
                        reference_sample=_thin(ref), new_sample=_thin(cur))


def _thin(x: np.ndarray, n: int = 20_000) -> np.ndarray:
    return x if len(x) <= n else x[np.linspace(0, len(x) - 1, n).astype(int)]


def _task_mix(new: DatasetMeta, ref: DatasetMeta, cfg: DriftConfig) -> FeatureDrift:
    def shares(m: DatasetMeta) -> dict[str, float]:
        counts: dict[str, int] = {}
        for ep in m.episodes:
            t = ep.tasks[0] if ep.tasks else ""
            counts[t] = counts.get(t, 0) + 1
        total = max(1, sum(counts.values()))
        return {t: c / total for t, c in counts.items()}

    a, b = shares(ref), shares(new)
    tasks = sorted(set(a) | set(b))
    p = np.array([a.get(t, 0.0) for t in tasks])
    q = np.array([b.get(t, 0.0) for t in tasks])
    value = _psi(p, q) if tasks else 0.0
    thr = cfg.feature_thresholds.get("task_mix", cfg.thresholds.task_psi)
    moved = sorted(tasks, key=lambda t: -abs(b.get(t, 0.0) - a.get(t, 0.0)))[:3]
    detail = "; ".join(f"'{t[:60]}' {100 * a.get(t, 0.0):.0f}% -> {100 * b.get(t, 0.0):.0f}%" for t in moved)
    return FeatureDrift("task_mix", "task", "task_psi", value, thr, value > thr and "task_mix" not in cfg.ignore,
                        psi=value, detail=detail)


def _rate(new: DatasetMeta, ref: DatasetMeta, cfg: DriftConfig) -> FeatureDrift:
    rel = abs(new.fps - ref.fps) / ref.fps
    thr = cfg.feature_thresholds.get("fps", cfg.thresholds.rate)
    return FeatureDrift("fps", "rate", "relative_change", rel, thr, rel > thr and "fps" not in cfg.ignore,
                        reference_mean=float(ref.fps), new_mean=float(new.fps),
                        detail=f"{ref.fps} -> {new.fps} fps")


def drift_report(new: str | os.PathLike[str], reference: str | os.PathLike[str],
                 config: DriftConfig | None = None) -> DriftReport:
    """Compare release ``new`` with ``reference`` feature by feature (see the module docstring)."""
    cfg = config or DriftConfig()
    nm, rm = _open(new), _open(reference)
    check_same_features(nm, rm)
    feats: list[FeatureDrift] = []
    keys = _vector_keys(rm)
    if keys:
        rc = _columns(rm, keys, cfg.max_rows, cfg.seed)
        nc = _columns(nm, keys, cfg.max_rows, cfg.seed)
        for key in keys:
            group = "state" if key == "observation.state" else "action" if key == "action" else "observation"
            names = _dim_names(key, rm.features[key])
            r, c = rc[key], nc[key]
            if r.shape[1] != len(names):
                names = [f"{key}[{i}]" for i in range(r.shape[1])]
            for j, name in enumerate(names):
                feats.append(compare(name, group, r[:, j], c[:, j], cfg))
    feats.append(compare("episode_length", "episode", np.array([e.length for e in rm.episodes]),
                         np.array([e.length for e in nm.episodes]), cfg))
    feats.append(_rate(nm, rm, cfg))
    feats.append(_task_mix(nm, rm, cfg))
    if cfg.image_episodes > 0:
        for key in rm.video_keys:
            rv, nv = _image_values(rm, key, cfg), _image_values(nm, key, cfg)
            for s in IMAGE_STATS:
                feats.append(compare(f"{key}:{s}", "image", rv[s], nv[s], cfg))
    rep = DriftReport(str(nm.root), str(rm.root), cfg, feats, len(nm.episodes), len(rm.episodes))
    if cfg.plots:
        rep.plots = drift_plots(rep)
    return rep


# -- plots --------------------------------------------------------------------------------------------------


def drift_plots(rep: DriftReport, max_features: int = 12) -> dict[str, bytes]:
    """``drift_summary``: each feature's statistic over its threshold (bars, 1 = the threshold);
    ``drift_histograms``: reference vs new histograms of the most drifted features."""
    from robodata.plots import _fig, _png

    out: dict[str, bytes] = {}
    feats = [f for f in rep.features if math.isfinite(f.ratio)]
    plt, fig = _fig(8, max(2.5, 0.22 * len(feats) + 1))
    ax = fig.add_subplot(1, 1, 1)
    ys = np.arange(len(feats))
    ax.barh(ys, [min(f.ratio, 10.0) for f in feats], color=["tab:red" if f.drifted else "tab:gray" for f in feats])
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ax.set_yticks(ys, [f.name for f in feats], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("statistic / threshold (1 = threshold; capped at 10)", fontsize=8)
    ax.set_title(rep.headline()[:110], fontsize=8)
    out["drift_summary"] = _png(plt, fig)
    shown = [f for f in rep.drifted if f.reference_sample is not None and f.new_sample is not None][:max_features]
    if shown:
        cols = min(3, len(shown))
        rows = -(-len(shown) // cols)
        plt, fig = _fig(3.2 * cols, 2.4 * rows)
        for i, f in enumerate(shown):
            ax = fig.add_subplot(rows, cols, i + 1)
            assert f.reference_sample is not None and f.new_sample is not None
            both = np.concatenate([f.reference_sample, f.new_sample])
            lo, hi = float(np.min(both)), float(np.max(both))
            bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
            ax.hist(f.reference_sample, bins=bins, density=True, histtype="stepfilled", alpha=0.4, label="reference")
            ax.hist(f.new_sample, bins=bins, density=True, histtype="step", lw=1.5, label="new")
            ax.set_title(f"{f.name}\n{f.statistic} {f.value:.2f} > {f.threshold:g}", fontsize=7)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.legend(fontsize=6)
        out["drift_histograms"] = _png(plt, fig)
    return out


# -- the release check --------------------------------------------------------------------------------------


@dataclass
class DriftCheck:
    """What an asset check reports: ``passed``, ``severity`` ("WARN" or "ERROR"), ``blocking``, metadata."""

    passed: bool
    severity: str
    blocking: bool
    description: str
    metadata: dict[str, Any]
    report: DriftReport


def check_release_drift(new: str | os.PathLike[str], reference: str | os.PathLike[str],
                        config: DriftConfig | None = None, out_dir: str | os.PathLike[str] | None = None) -> DriftCheck:
    """Drift of release ``new`` against ``reference`` as a check: fails when a feature drifted; severity ERROR
    (and ``blocking``) when ``on_drift: block``, else WARN. With ``out_dir`` the report and plots are written."""
    cfg = config or DriftConfig()
    rep = drift_report(new, reference, cfg)
    meta = rep.as_metadata()
    if out_dir is not None:
        paths = rep.write(out_dir)
        meta["report_path"] = str(paths["markdown"])
    d = rep.drifted
    block = cfg.on_drift == "block"
    desc = rep.headline()
    if d:
        desc += ": " + "; ".join(f"{f.name} {f.statistic} {f.value:.2f} > {f.threshold:g}" for f in d[:5])
        if len(d) > 5:
            desc += f"; and {len(d) - 5} more"
    return DriftCheck(not d, "ERROR" if (d and block) else "WARN", bool(d) and block, desc, meta, rep)
