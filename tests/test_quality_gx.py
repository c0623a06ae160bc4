"""Great Expectations suites as real expectations on the data (per-dimension columns, the episode clock, bounds
learned from a reference release), with GX's own results in the metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec
from robodata.quality import (
    bounds_from_stats,
    episode_tables,
    lerobot_frame_table,
    validate_lerobot_frames,
    validate_metrics,
    validate_store_frames,
    validate_within_bounds,
)

SO101 = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "lerobot_v3_so101"


def _store(path: Path, *, nan_at: tuple[int, int] | None = None, backwards_at: int | None = None) -> Path:
    schema = EpisodeSchema([FeatureSpec("joints", "state", (3,)), FeatureSpec("cmd", "action", (4,))], fps=10)
    with EpisodeStoreWriter(path, schema) as w:
        for e in range(2):
            n = 12
            ts = np.arange(n) / 10.0
            if backwards_at is not None and e == 1:
                ts[backwards_at] = ts[backwards_at - 2]
            act = np.tile(np.arange(4, dtype=np.float32), (n, 1)) + e
            if nan_at is not None and e == 1:
                act[nan_at] = np.nan
            d = w.begin_episode()
            d.extend(ts, {"joints": np.full((n, 3), 0.5 * e, np.float32)}, act)
            d.close(success=True)
    return path


def test_store_suite_passes_on_good_data_and_shows_what_it_asserted(tmp_path):
    frames, episodes = episode_tables(_store(tmp_path / "ok.hdf5"))
    assert {"observation.state[2]", "action[3]", "episode_clock"} <= set(frames.columns)
    assert frames["timestamp"].iloc[12] == 0.0 and frames["episode_clock"].is_monotonic_increasing
    report = validate_store_frames(tmp_path / "ok.hdf5", "gx_frames_valid")
    assert report.success and len(report.results) == 4 + 2 * 7
    meta = report.as_metadata()
    assert meta["failed"] == 0 and meta["gx_results"][0]["expectation"] == "expect_table_row_count_to_be_between"


def test_nan_in_one_action_dimension_is_named_with_gx_counts(tmp_path):
    report = validate_store_frames(_store(tmp_path / "nan.hdf5", nan_at=(5, 2)), "gx_frames_valid")
    (failed,) = report.failures
    assert failed.expectation == "expect_column_values_to_not_be_null" and failed.column == "action[2]"
    res = report.as_metadata()["gx_results"][0]
    assert res["column"] == "action[2]" and res["result"]["unexpected_count"] == 1
    assert res["result"]["element_count"] == 24


def test_time_going_backwards_inside_an_episode_fails_restarting_episodes_do_not(tmp_path):
    report = validate_store_frames(_store(tmp_path / "back.hdf5", backwards_at=6), "gx_frames_valid")
    kinds = {(r.expectation, r.column) for r in report.failures}
    assert ("expect_column_values_to_be_increasing", "episode_clock") in kinds
    assert ("expect_column_values_to_be_between", "dt") in kinds


def _copy_so101(dst: Path) -> Path:
    shutil.copytree(SO101, dst, ignore=shutil.ignore_patterns("videos"))
    for p in (dst, *dst.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def test_bounds_learned_from_a_real_release_catch_a_unit_change(tmp_path):
    stats = json.loads((SO101 / "meta/stats.json").read_text())
    bounds = bounds_from_stats(stats, margin=0.25)
    width = len(stats["observation.state"]["min"])
    assert f"observation.state[{width - 1}]" in bounds and "action[0]" in bounds
    frames, _ = lerobot_frame_table(SO101)
    assert validate_within_bounds(frames, bounds, suite="b").success  # the release is within its own range
    # A new release whose shoulder joint is in a unit 100x larger (a sign of mixed-up units)
    new = _copy_so101(tmp_path / "new")
    for f in (new / "data").rglob("*.parquet"):
        t = pq.read_table(f)
        state = np.stack(t.column("observation.state").to_numpy(zero_copy_only=False)).astype(np.float32)
        state[:, 0] *= 100
        col = pa.array(list(state), type=t.schema.field("observation.state").type)
        pq.write_table(t.set_column(t.column_names.index("observation.state"), "observation.state", col), f)
    report = validate_within_bounds(lerobot_frame_table(new)[0], bounds, suite="b")
    assert [r.column for r in report.failures] == ["observation.state[0]"]


def test_lerobot_suite_on_a_real_release_and_on_a_gap(tmp_path):
    assert validate_lerobot_frames(SO101).success
    gap = _copy_so101(tmp_path / "gap")
    f = sorted((gap / "data").rglob("*.parquet"))[0]
    t = pq.read_table(f)
    fi = t.column("frame_index").to_numpy().copy()
    fi[10:] += 1  # one frame missing in the first episode
    pq.write_table(t.set_column(t.column_names.index("frame_index"), "frame_index", pa.array(fi)), f)
    failed = {r.column for r in validate_lerobot_frames(gap).failures}
    assert "frame_step" in failed and "timestamp_error" in failed


@pytest.mark.parametrize(("metrics", "bad"), [({"final_loss": 0.2, "eval_rollout_success_rate": 0.5}, set()),
                                              ({"final_loss": float("nan")}, {"final_loss"}),
                                              ({"eval_rollout_success_rate": 1.5, "eval_action_mse": -1.0},
                                               {"eval_rollout_success_rate", "eval_action_mse"})])
def test_training_metrics_suite(metrics, bad):
    assert {r.column for r in validate_metrics(metrics, "m").failures} == bad


def test_a_reference_with_other_features_is_one_error_not_column_by_column_warnings(tmp_path, capsys):
    from robodata.cli import main
    from robodata.drift import DriftError
    from robodata.quality import reference_bounds
    from robodata.stages.base import run_validators
    from robodata.stages.tiers import WithinReferenceBounds

    # a store (3 state, 4 action dims) against the real SO-101 release (6 and 6): widths differ
    store = _store(tmp_path / "s.hdf5")
    bounds = bounds_from_stats(json.loads((SO101 / "meta/stats.json").read_text()), 0.25, str(SO101 / "meta/stats.json"))
    with pytest.raises(DriftError, match=r"s\.hdf5: features differ from the reference .*lerobot_v3_so101/meta/stats"
                                         r"\.json: observation\.state has 3 dimension\(s\) here but 6 in the reference; "
                                         r"action has 4 dimension\(s\) here but 6"):
        validate_within_bounds(episode_tables(store)[0], bounds, suite="b", data=store)
    # the platform's validator (raw_teleop, the release): one failed check saying so, not a warning per column
    (check,) = run_validators(store, [WithinReferenceBounds(("r1", bounds))])
    assert not check.passed and len(check.findings) == 1 and "features differ" in check.findings[0].message
    # a LeRobot dataset whose joints are others (names renamed in info.json): both info.json files named
    other = _copy_so101(tmp_path / "other")
    info = json.loads((other / "meta/info.json").read_text())
    info["features"]["observation.state"]["names"] = {"motors": [f"m{i}" for i in range(6)]}
    (other / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DriftError, match=r"other/meta/info\.json: features differ from the reference "
                                         r".*lerobot_v3_so101/meta/info\.json: observation\.state names"):
        reference_bounds(SO101, data=other)
    assert reference_bounds(SO101, data=_copy_so101(tmp_path / "same"))  # the same features: bounds
    rc = main(["quality", str(store), "--reference", str(SO101)])
    err = capsys.readouterr().err
    assert rc == 2 and "features differ from the reference" in err and "unexpected" not in err
