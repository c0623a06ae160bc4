"""Data-quality suites (Great Expectations 1.x) over episode tables; used by every tier's asset checks.

GX is imported lazily (its import costs seconds) and run with an ephemeral context on pandas frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robodata.api.episodes import low_dim
from robodata.formats.isaaclab import EpisodeStore
from robodata.formats.isaaclab_layout import SUCCESS_ATTR


@dataclass
class ExpectationResult:
    expectation: str
    column: str | None
    success: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class QualityReport:
    suite: str
    results: list[ExpectationResult]

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    @property
    def failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]

    def describe_failures(self) -> str:
        return "; ".join(
            f"{r.expectation}({r.column}): {r.details.get('observed', '')}".strip() for r in self.failures
        )

    def failure_lines(self) -> list[str]:
        """One line per failed expectation: ``type(column): observed``."""
        return [f"{r.expectation}({r.column}): {r.details.get('observed', '')}" for r in self.failures]

    def as_metadata(self) -> dict[str, Any]:
        """The suite in a Dagster check's metadata: counts, the failures in a sentence, and GX's own result of
        every failed expectation (type, kwargs, observed value, unexpected count/percent, examples), then passed
        ones up to 20 in all (so the check shows what was asserted)."""
        shown = self.failures + [r for r in self.results if r.success][: max(0, 20 - len(self.failures))]
        return {
            "suite": self.suite,
            "expectations": len(self.results),
            "failed": len(self.failures),
            "failures": self.describe_failures() or "none",
            "gx_results": [{"expectation": r.expectation, "column": r.column, "success": r.success,
                            "kwargs": r.details.get("kwargs", {}), "result": r.details.get("result", {})}
                           for r in shown],
        }


# Columns of the frame tables: the vectors as LeRobot writes them, one column per dimension.
STATE_COL = "observation.state[{i}]"
ACTION_COL = "action[{i}]"
FINITE_BOUND = 1e12  # "a number": NaN is null (not-null fails), +-inf and absurd values fail the range
_CLOCK_GAP = 1.0  # s between episodes on the episode clock (any positive gap keeps it increasing)


def _dim_columns(prefix: str, values: np.ndarray) -> dict[str, np.ndarray]:
    n = len(values)
    flat = values.reshape(n, -1) if n else values.reshape(0, -1)
    return {prefix.format(i=i): flat[:, i].astype(np.float64) for i in range(flat.shape[1])}


def episode_tables(store_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The frame and episode tables of a canonical episode store, what the GX suites run on.

    Frames: ``episode``, ``frame_index``, ``timestamp``, ``dt`` (to the previous frame; null on the first),
    ``episode_clock`` (the timestamp plus the episode's offset on one clock: strictly increasing exactly when
    every episode's timestamps are), one column per dimension of the state vector (``observation.state[i]``),
    of the action (``action[i]``) and of each pose feature (``<name>[i]``). Episodes: ``frames``,
    ``duration_s``, ``rate_hz``, ``median_rate_hz``, ``success``.
    """
    frames, episodes = [], []
    offset = 0.0
    with EpisodeStore(store_path) as store:
        poses = [f.name for f in store.schema.of_role("pose")]
        for name in store.demo_names:
            ts = np.asarray(store.timestamps(name), np.float64)
            n = len(ts)
            dt = np.concatenate([[np.nan], np.diff(ts)]) if n else np.zeros(0)
            cols: dict[str, Any] = {"episode": name, "frame_index": np.arange(n), "timestamp": ts, "dt": dt,
                                    "episode_clock": ts - (ts[0] if n else 0.0) + offset}
            action, state = low_dim(store, name)  # the vectors as LeRobot will write them
            cols |= _dim_columns(STATE_COL, state)
            cols |= _dim_columns(ACTION_COL, action)
            for p in poses:
                if store.has(name, p):
                    cols |= _dim_columns(p + "[{i}]", np.asarray(store.feature(name, p)))
            frames.append(pd.DataFrame(cols))
            span = float(ts[-1] - ts[0]) if n > 1 else 0.0
            offset += (span if np.isfinite(span) and span > 0 else 0.0) + _CLOCK_GAP
            episodes.append(
                {
                    "episode": name,
                    "frames": n,
                    "duration_s": span,
                    "rate_hz": (n - 1) / span if span > 0 else 0.0,
                    "median_rate_hz": 1.0 / float(np.median(np.diff(ts))) if n > 1 else 0.0,
                    "success": store.attrs(name).get(SUCCESS_ATTR),
                }
            )
    fr = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["episode", "timestamp", "dt"])
    return fr, pd.DataFrame(episodes)


def vector_columns(df: pd.DataFrame) -> list[str]:
    """The per-dimension columns of a frame table (state, action, poses)."""
    fixed = {"episode", "episode_index", "frame_index", "timestamp", "dt", "episode_clock", "index"}
    return [c for c in df.columns if c not in fixed and c.endswith("]") and "[" in c]


def _number_expectations(df: pd.DataFrame) -> list[Any]:
    """Every vector dimension is a number: not null (NaN counts as null) and within +-FINITE_BOUND (no inf)."""
    import great_expectations as gx

    out: list[Any] = []
    for c in vector_columns(df):
        out.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=c))
        out.append(gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=-FINITE_BOUND,
                                                                 max_value=FINITE_BOUND))
    return out


class ReferenceBounds(dict[str, tuple[float, float]]):
    """Per-dimension bounds (column -> ``(lo, hi)``) that remember where they were learned (``source``: the
    reference's ``meta/stats.json``) and each vector's width there (``dims``), so that data with other features
    is one clear error instead of bounds compared column by column across different joints."""

    def __init__(self, *args: Any, source: str = "", dims: dict[str, int] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.source, self.dims = source, dict(dims or {})

    def __reduce__(self) -> Any:  # pickles (Ray, Dagster) with its source and widths
        return (ReferenceBounds, (dict(self),), {"source": self.source, "dims": self.dims})


def bounds_from_stats(stats: dict[str, Any], margin: float = 0.1, source: str = "") -> ReferenceBounds:
    """Per-dimension bounds learned from a reference release's ``meta/stats.json``: ``[min, max]`` of
    ``observation.state`` and ``action`` widened by ``margin`` of each dimension's range (at least 1e-6)."""
    from robodata.lerobot.layout import ACTION_KEY, STATE_KEY

    out = ReferenceBounds(source=source)
    for key, col in ((STATE_KEY, STATE_COL), (ACTION_KEY, ACTION_COL)):
        st = stats.get(key) or {}
        lo, hi = st.get("min"), st.get("max")
        if lo is None or hi is None:
            continue
        lo_a = np.asarray(lo, np.float64).reshape(-1)
        hi_a = np.asarray(hi, np.float64).reshape(-1)
        if lo_a.shape != hi_a.shape:
            continue
        out.dims[key] = int(lo_a.size)
        pad = np.maximum((hi_a - lo_a) * margin, 1e-6)
        for i, (a, b, m) in enumerate(zip(lo_a, hi_a, pad, strict=True)):
            if np.isfinite(a) and np.isfinite(b):
                out[col.format(i=i)] = (float(a - m), float(b + m))
    return out


def reference_bounds(release_root: str | Path | None, margin: float = 0.1,
                     data: str | Path | None = None) -> ReferenceBounds:
    """Bounds learned from the release at ``release_root`` (its ``meta/stats.json``); empty without one.

    ``data``: a LeRobot dataset the bounds are for; its state/action features must be the reference's (dtype,
    shape, names), else one :class:`robodata.drift.DriftError` names both ``info.json`` files and what differs.
    """
    import json

    from robodata.lerobot.layout import STATS_PATH

    if release_root is None or not (Path(release_root) / STATS_PATH).exists():
        return ReferenceBounds()
    if data is not None:
        check_bounded_features(data, release_root)
    try:
        return bounds_from_stats(json.loads((Path(release_root) / STATS_PATH).read_text()), margin,
                                 str(Path(release_root) / STATS_PATH))
    except (OSError, ValueError):
        return ReferenceBounds()


def check_bounded_features(data: str | Path, reference: str | Path) -> None:
    """:func:`robodata.drift.check_same_features` on the features bounds are learned for (state and action):
    other cameras or extra columns do not change what the bounds mean; another width, dtype or joint order does."""
    from dataclasses import replace

    from robodata.drift import check_same_features
    from robodata.lerobot.layout import ACTION_KEY, STATE_KEY
    from robodata.lerobot.metadata import read_meta

    def vectors(root: str | Path) -> Any:
        meta = read_meta(Path(root))
        feats = {k: v for k, v in meta.features.items() if k in (STATE_KEY, ACTION_KEY)}
        return replace(meta, info={**meta.info, "features": feats})

    check_same_features(vectors(data), vectors(reference))


def check_frame_dims(df: pd.DataFrame, bounds: dict[str, tuple[float, float]], data: str | Path | None = None) -> None:
    """Raise one :class:`robodata.drift.DriftError` when the frame table's state/action widths are not the ones
    the bounds were learned on (naming the data, the reference's stats file and each width)."""
    from robodata.drift import DriftError
    from robodata.lerobot.layout import ACTION_KEY, STATE_KEY

    dims = getattr(bounds, "dims", None)
    if not dims:
        return
    cols = vector_columns(df)
    have = {key: sum(1 for c in cols if c.startswith(key + "[")) for key in (STATE_KEY, ACTION_KEY)}
    diff = [f"{k} has {have[k]} dimension(s) here but {n} in the reference" for k, n in dims.items()
            if have.get(k, 0) != n and have.get(k, 0)]
    if diff:
        src = getattr(bounds, "source", "") or "the reference release"
        raise DriftError(f"{data or 'the data'}: features differ from the reference {src}: {'; '.join(diff)} "
                         "(bounds are per dimension, so they cannot be compared)")


def validate_within_bounds(df: pd.DataFrame, bounds: dict[str, tuple[float, float]], *, suite: str,
                           mostly: float = 0.95, data: str | Path | None = None) -> QualityReport:
    """GX: each dimension with learned bounds stays within them for at least ``mostly`` of the frames. Bounds
    from :func:`bounds_from_stats` on data of other widths are one error (:func:`check_frame_dims`)."""
    import great_expectations as gx

    check_frame_dims(df, bounds, data)
    cols = [c for c in vector_columns(df) if c in bounds]
    if not cols:
        return QualityReport(suite, [])
    exps = [gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=bounds[c][0], max_value=bounds[c][1],
                                                          mostly=mostly) for c in cols]
    return QualityReport(suite, _run_suite(suite, df, exps))


def store_frame_expectations(frames: pd.DataFrame) -> list[Any]:
    """A store's frame table: rows, timestamps present and strictly increasing in each episode (the episode
    clock), positive frame intervals, and every state/action/pose dimension a finite number."""
    import great_expectations as gx

    return [
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="timestamp"),
        gx.expectations.ExpectColumnValuesToBeIncreasing(column="episode_clock", strictly=True),
        gx.expectations.ExpectColumnValuesToBeBetween(column="dt", min_value=0, strict_min=True),
        *_number_expectations(frames),
    ]


def validate_store_frames(store_path: str | Path, suite: str) -> QualityReport:
    """GX's frame suite (:func:`store_frame_expectations`) on any tier's canonical store."""
    frames, _ = episode_tables(store_path)
    return QualityReport(suite, _run_suite(suite, frames, store_frame_expectations(frames)))


def _run_suite(name: str, df: pd.DataFrame, expectations: list[Any]) -> list[ExpectationResult]:
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:  # no tqdm bars in run logs
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    ds = ctx.data_sources.add_pandas(f"{name}_source")
    asset = ds.add_dataframe_asset(f"{name}_table")
    batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_batch")
    suite = ctx.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        suite.add_expectation(e)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_validation", data=batch_def, suite=suite))
    res = vd.run(batch_parameters={"dataframe": df})
    out = []
    for r in res.results:
        cfg = r.expectation_config
        result = r.result or {}
        observed = result.get("observed_value")
        if observed is None and "unexpected_count" in result:
            observed = f"{result['unexpected_count']} unexpected of {result.get('element_count')}"
            if result.get("partial_unexpected_list"):
                observed += f", e.g. {result['partial_unexpected_list'][:3]}"
        kind, column = (cfg.type, cfg.kwargs.get("column")) if cfg is not None else ("expectation", None)
        gx_result = {k: _plain(result[k]) for k in ("observed_value", "element_count", "unexpected_count",
                                                    "unexpected_percent", "partial_unexpected_list") if k in result}
        kwargs = {k: _plain(v) for k, v in (cfg.kwargs.items() if cfg is not None else ()) if k != "batch_id"}
        out.append(ExpectationResult(kind, column, bool(r.success), {"observed": observed, "kwargs": kwargs,
                                                                      "result": gx_result}))
    return out


def _plain(v: Any) -> Any:
    """A GX result value as JSON (numpy scalars and lists of them included)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v[:10]]
    if isinstance(v, np.generic):
        return _plain(v.item())
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)


def validate_raw_episodes(
    store_path: str | Path,
    *,
    fps: float,
    rate_tolerance: float = 0.1,
    min_frames: int = 1,
    max_frames: int = 10**9,
) -> tuple[QualityReport, QualityReport]:
    """The raw_teleop suites: frames (timestamps strictly increasing, no NaN/inf) and episodes (rate, length)."""
    import great_expectations as gx

    frames, episodes = episode_tables(store_path)
    frame_results = _run_suite("raw_teleop_frames", frames, store_frame_expectations(frames))
    episode_results = _run_suite(
        "raw_teleop_episodes",
        episodes,
        [
            gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="median_rate_hz", min_value=fps * (1 - rate_tolerance), max_value=fps * (1 + rate_tolerance)
            ),
            gx.expectations.ExpectColumnValuesToBeBetween(column="frames", min_value=min_frames, max_value=max_frames),
        ],
    )
    return QualityReport("raw_teleop_frames", frame_results), QualityReport("raw_teleop_episodes", episode_results)


def lerobot_frame_table(root: str | Path, columns: tuple[str, ...] = ("index", "episode_index", "frame_index",
                                                                        "timestamp")) -> tuple[pd.DataFrame, float]:
    """The default columns of every frame of a LeRobot dataset (v2.x or v3.0), plus finiteness of the vectors."""
    import pyarrow.parquet as pq

    from robodata.lerobot.layout import ACTION_KEY, DATA_DIR, STATE_KEY
    from robodata.lerobot.metadata import read_info

    root = Path(root)
    fps = float(read_info(root)["fps"])
    parts = []
    for f in sorted((root / DATA_DIR).rglob("*.parquet")):
        t = pq.read_table(f)
        df = t.select([c for c in columns if c in t.column_names]).to_pandas()
        for vec, col in ((STATE_KEY, STATE_COL), (ACTION_KEY, ACTION_COL)):
            if vec in t.column_names and len(t):
                arr = np.stack(t.column(vec).to_numpy(zero_copy_only=False)).astype(np.float64)
                df = pd.concat([df, pd.DataFrame(_dim_columns(col, arr), index=df.index)], axis=1)
        parts.append(df)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))
    return table.sort_values("index", kind="stable").reset_index(drop=True), fps


def validate_lerobot_frames(root: str | Path, suite: str = "lerobot_frames") -> QualityReport:
    """GX on a LeRobot frame table: the global index is 0..N-1 (unique, strictly increasing, min 0, max N-1),
    each episode's frame_index steps by 1 from 0, timestamps are frame_index / fps within lerobot's 1e-4 s, and
    every dimension of observation.state and action is a finite number."""
    import great_expectations as gx

    df, fps = lerobot_frame_table(root)
    n = len(df)
    if n:
        g = df.groupby("episode_index")["frame_index"]
        df["frame_step"] = g.diff()  # null on each episode's first row
        df["episode_first_frame"] = g.transform("min")
        df["timestamp_error"] = (df["timestamp"] - df["frame_index"] / fps).abs()
    exps = [
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        gx.expectations.ExpectColumnValuesToBeUnique(column="index"),
        gx.expectations.ExpectColumnValuesToBeIncreasing(column="index", strictly=True),
        gx.expectations.ExpectColumnMinToBeBetween(column="index", min_value=0, max_value=0),
        gx.expectations.ExpectColumnMaxToBeBetween(column="index", min_value=max(n - 1, 0), max_value=max(n - 1, 0)),
    ]
    if n:
        exps += [
            gx.expectations.ExpectColumnValuesToBeBetween(column="frame_step", min_value=1, max_value=1),
            gx.expectations.ExpectColumnValuesToBeBetween(column="episode_first_frame", min_value=0, max_value=0),
            gx.expectations.ExpectColumnValuesToBeBetween(column="timestamp_error", min_value=0, max_value=1e-4),
            *_number_expectations(df),
        ]
    return QualityReport(suite, _run_suite(suite, df, exps))


def latest_release_bounds(store: Any, margin: float = 0.25) -> tuple[str | None, dict[str, tuple[float, float]]]:
    """The release ``latest.json`` points at in ``store`` (a :class:`robodata.storage.DataStore`) and the
    bounds learned from its ``meta/stats.json``; ``(None, {})`` before the first release."""
    import json

    from robodata import store_layout as layout
    from robodata.lerobot.layout import STATS_PATH
    from robodata.releases import read_latest

    latest = read_latest(store)
    if not latest or not latest.get("release"):
        return None, {}
    rel = f"{layout.release_path(str(latest['release']))}/{STATS_PATH}"
    if not store.exists(rel):
        return str(latest["release"]), {}
    with store.read_path(rel) as p:
        try:
            return str(latest["release"]), bounds_from_stats(json.loads(Path(p).read_text()), margin,
                                                             f"release {latest['release']} {STATS_PATH}")
        except (OSError, ValueError):
            return str(latest["release"]), {}


def validate_metrics(metrics: dict[str, Any], suite: str) -> QualityReport:
    """GX on a training run's metrics (one row): every metric a finite number; losses and errors (``*loss*``,
    ``*mse*``, ``*mae*``) at least 0; rates (``*rate*``) within [0, 1]."""
    import great_expectations as gx

    row = {k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan)
           for k, v in metrics.items()}
    df = pd.DataFrame([row]) if row else pd.DataFrame({"none": []})
    exps: list[Any] = [gx.expectations.ExpectTableRowCountToBeBetween(min_value=1, max_value=1)]
    for k in row:
        lo, hi = -FINITE_BOUND, FINITE_BOUND
        if any(w in k for w in ("loss", "mse", "mae")):
            lo = 0.0
        if "rate" in k:
            lo, hi = 0.0, 1.0
        exps += [gx.expectations.ExpectColumnValuesToNotBeNull(column=k),
                 gx.expectations.ExpectColumnValuesToBeBetween(column=k, min_value=lo, max_value=hi)]
    return QualityReport(suite, _run_suite(suite, df, exps))

