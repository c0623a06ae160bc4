"""Data-quality suites (Great Expectations 1.x) over episode tables; used by every tier's asset checks.

GX is imported lazily (its import costs seconds) and run with an ephemeral context on pandas frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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

    def as_metadata(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "expectations": len(self.results),
            "failed": len(self.failures),
            "failures": self.describe_failures() or "none",
        }


def episode_tables(store_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A frame table (one row per frame: episode, timestamp, dt, finiteness of state/action) and an episode table."""
    frames, episodes = [], []
    with EpisodeStore(store_path) as store:
        for name in store.demo_names:
            ep = store.read(name, images=False)
            n = len(ep)
            ts = ep.timestamps
            dt = np.concatenate([[np.nan], np.diff(ts)]) if n else np.zeros(0)
            state = ep.states.reshape(n, -1) if ep.states.size else np.zeros((n, 0))
            act = ep.actions.reshape(n, -1) if ep.actions.size else np.zeros((n, 0))
            low = [v.reshape(n, -1) for k, v in ep.obs.items() if np.issubdtype(v.dtype, np.floating)]
            lowdim = np.concatenate(low, axis=1) if low else np.zeros((n, 0))
            frames.append(
                pd.DataFrame(
                    {
                        "episode": name,
                        "frame_index": np.arange(n),
                        "timestamp": ts,
                        "dt": dt,
                        "state_finite": np.isfinite(state).all(axis=1) if state.size else np.ones(n, bool),
                        "action_finite": np.isfinite(act).all(axis=1) if act.size else np.ones(n, bool),
                        "obs_finite": np.isfinite(lowdim).all(axis=1) if lowdim.size else np.ones(n, bool),
                    }
                )
            )
            span = float(ts[-1] - ts[0]) if n > 1 else 0.0
            episodes.append(
                {
                    "episode": name,
                    "frames": n,
                    "duration_s": span,
                    "rate_hz": (n - 1) / span if span > 0 else 0.0,
                    "median_rate_hz": 1.0 / float(np.median(np.diff(ts))) if n > 1 else 0.0,
                    "success": ep.attrs.get(SUCCESS_ATTR),
                }
            )
    fr = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["episode", "timestamp", "dt"])
    return fr, pd.DataFrame(episodes)


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
        out.append(ExpectationResult(kind, column, bool(r.success), {"observed": observed}))
    return out


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
    frame_results = _run_suite(
        "raw_teleop_frames",
        frames,
        [
            gx.expectations.ExpectColumnValuesToBeBetween(column="dt", min_value=0, strict_min=True),
            gx.expectations.ExpectColumnValuesToBeInSet(column="state_finite", value_set=[True]),
            gx.expectations.ExpectColumnValuesToBeInSet(column="action_finite", value_set=[True]),
            gx.expectations.ExpectColumnValuesToBeInSet(column="obs_finite", value_set=[True]),
            gx.expectations.ExpectColumnValuesToNotBeNull(column="timestamp"),
        ],
    )
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
        for vec in (STATE_KEY, ACTION_KEY):
            if vec in t.column_names:
                arr = np.stack(t.column(vec).to_numpy(zero_copy_only=False)) if len(t) else np.zeros((0, 1))
                df[f"{vec}_finite"] = np.isfinite(arr.astype(np.float64)).all(axis=1)
        parts.append(df)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))
    return table.sort_values("index", kind="stable").reset_index(drop=True), fps


def validate_lerobot_frames(root: str | Path) -> QualityReport:
    """GX on a LeRobot frame table: global index contiguous from 0, per-episode frame_index contiguous,
    timestamp == frame_index / fps within lerobot's 1e-4 s, no NaN/inf in observation.state and action."""
    import great_expectations as gx

    df, fps = lerobot_frame_table(root)
    df["index_gap"] = df["index"].diff().fillna(1) if len(df) else []
    df["index_expected"] = np.arange(len(df)) == df["index"].to_numpy() if len(df) else []
    g = df.groupby("episode_index")["frame_index"] if len(df) else None
    df["frame_contiguous"] = (g.diff().fillna(1) == 1) & (g.transform("min") == 0) if g is not None else []
    df["timestamp_error"] = (df["timestamp"] - df["frame_index"] / fps).abs() if len(df) else []
    exps = [
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
        gx.expectations.ExpectColumnValuesToBeInSet(column="index_expected", value_set=[True]),
        gx.expectations.ExpectColumnValuesToBeInSet(column="frame_contiguous", value_set=[True]),
        gx.expectations.ExpectColumnValuesToBeBetween(column="timestamp_error", min_value=0, max_value=1e-4),
    ]
    from robodata.lerobot.layout import ACTION_KEY, STATE_KEY

    for vec in (STATE_KEY, ACTION_KEY):
        if f"{vec}_finite" in df.columns:
            exps.append(gx.expectations.ExpectColumnValuesToBeInSet(column=f"{vec}_finite", value_set=[True]))
    return QualityReport("lerobot_frames", _run_suite("lerobot_frames", df, exps))
