"""raw_teleop through a real Dagster instance (SQLite), real Ray and the real new_recordings sensor.

One project home for the module; tests run in order and build on each other like a day of operations:
recordings land, the sensor ingests them once, bad files fail alone, backfills re-run.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import project_home
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def project(tmp_path_factory, realdata):
    home = tmp_path_factory.mktemp("home")
    small_map = home / "small_map.yaml"
    small_map.write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
    cfg_file = home / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(home / "proj"),
        "sources": [
            {"pattern": "small_*.mcap", "topic_map": str(small_map)},
            {"pattern": "*.mcap", "topic_map": "robodata/sim/demo_topic_map.yaml"},
            {"pattern": "*.bag", "topic_map": str(HERE / "data" / "turtlesim_topic_map.yaml")},
        ],
        "ray": {"num_cpus": 2},
    }))
    with project_home(cfg_file) as (cfg, instance, defs):
        yield {"cfg": cfg, "instance": instance, "defs": defs, "home": home, "realdata": realdata}


def _age(path: Path, seconds: float = 30) -> None:
    """Make a landed file look settled (untouched for a while), as it would be a few ticks later."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _land(project, src: Path, name: str | None = None) -> Path:
    dst = Path(project["cfg"].landing_url) / (name or src.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name("." + dst.name + ".partial")
    shutil.copy(src, tmp)
    os.replace(tmp, dst)
    _age(dst)
    return dst


def _tick(project, evaluations: int = 2):
    """What the daemon's next ``evaluations`` ticks do (a file is taken once unchanged on two ticks)."""
    from robodata_dagster.runs import tick_sensor

    return tick_sensor(project["instance"], project["defs"], wait_settle=False, evaluations=evaluations)


def _run(project, keys):
    from robodata_dagster.runs import run_partitions

    return run_partitions(project["instance"], project["defs"], "ingest_recordings", keys)


def test_sensor_ingests_new_recordings_once(project, tmp_path):
    from robodata.sim.recorder import record_session

    rec = record_session(tmp_path, "teleop_a", n_episodes=2, seed=3, image_hw=(48, 64))
    _land(project, Path(rec["mcap"]))
    _land(project, project["realdata"] / "rosbag_js" / "example.bag", "turtle run.bag")
    requests, _ = _tick(project)
    keys = sorted(r.partition_key for r in requests)
    assert len(keys) == 2 and all(r.run_key == r.partition_key for r in requests)
    assert set(keys) <= set(project["instance"].get_dynamic_partitions("recordings"))
    assert any(k.startswith("teleop_a-mcap-") for k in keys) and any(k.startswith("turtle-run-bag-") for k in keys)
    outcomes = _run(project, keys)
    for o in outcomes:
        assert o.success, o.error
        assert o.checks == {"frames_in_sync_and_finite": True, "episode_rates_and_lengths": True,
                            "few_frames_out_of_sync": True}
    by = {o.partition.split("-")[0]: o for o in outcomes}
    assert by["teleop_a"].metadata["episodes"] == 2 and by["teleop_a"].metadata["frames"] > 200
    assert by["turtle"].metadata["episodes"] == 1
    store = Path(project["cfg"].storage_url)
    for k in keys:
        assert (store / "raw_teleop" / f"{k}.hdf5").exists()
        assert (store / "raw_teleop" / f"{k}.overview.png").read_bytes()[:4] == b"\x89PNG"
    project["good"] = keys
    # The materialization is in the instance, per partition.
    import dagster as dg

    recs = project["instance"].fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_teleop"), asset_partitions=[keys[0]]), limit=1
    ).records
    assert recs and recs[0].asset_materialization.metadata["frames"].value > 0


def test_sensor_never_ingests_twice(project, tmp_path):
    from robodata.registry import DUPLICATE, Registry

    requests, skip = _tick(project)
    assert requests == [] and "no new recordings" in skip
    # The same bytes landing under another name, in a nested prefix: the tick cannot know (it reads no
    # content), so it registers it; the run hashes it, finds the owner and ingests nothing.
    _land(project, project["realdata"] / "rosbag_js" / "example.bag", "robot-2/2026-12-01/turtle-copy.bag")
    requests, _ = _tick(project)
    assert [r.partition_key.split("-2026")[0] for r in requests] == ["robot-2"]
    copy = requests[0].partition_key
    outcome = _run(project, [copy])[0]
    assert outcome.success, outcome.error
    original = next(k for k in project["good"] if k.startswith("turtle-run-bag-"))
    assert outcome.metadata == {}  # nothing materialized: no downstream tier sees an update
    assert copy not in project["instance"].get_dynamic_partitions("recordings")  # no ghost partition
    rec = Registry(project["cfg"].registry_url).lookup(copy)
    assert rec.status == DUPLICATE and rec.duplicate_of == original
    assert not (Path(project["cfg"].storage_url) / "raw_teleop" / f"{copy}.hdf5").exists()
    # and the next ticks leave it alone
    assert _tick(project)[0] == []


def test_file_still_being_written_waits(project, tmp_path):
    from robodata.sim.recorder import record_session

    rec = record_session(tmp_path, "teleop_b", n_episodes=1, seed=5, image_hw=(48, 64))
    data = Path(rec["mcap"]).read_bytes()
    landing = Path(project["cfg"].landing_url)
    part = landing / "teleop_b.mcap"
    part.write_bytes(data[: len(data) // 2])  # no footer yet: the recorder is still writing
    _age(part)
    requests, skip = _tick(project)
    assert requests == [] and "teleop_b.mcap: still being written" in skip
    part.write_bytes(data)  # the recorder finishes
    _age(part)
    requests, skip = _tick(project, 1)  # the size changed since the last tick: wait one more
    assert requests == [] and "teleop_b.mcap: still being written" in skip
    requests, _ = _tick(project, 1)
    assert [r.partition_key.split("-")[0] for r in requests] == ["teleop_b"]
    assert _run(project, [requests[0].partition_key])[0].success


@pytest.mark.parametrize(
    "case, expect",
    [
        ("empty.bag", "contains no messages"),
        ("small_nan.mcap", "NaN"),
        ("small_backwards.mcap", "timestamp goes backwards"),
        ("no groups ünï..h5", "no /data group"),
        ("truncated.mcap", "truncated"),
    ],
)
def test_bad_input_fails_only_its_partition(project, tmp_path, case, expect):
    import h5py
    import numpy as np

    src = tmp_path / "src"
    if case == "empty.bag":
        shutil.copy(project["realdata"] / "rosbag_js" / "no-messages.bag", src)
    elif case == "small_nan.mcap":
        make_mcap(src, nan_at=10)
    elif case == "small_backwards.mcap":
        make_mcap(src, backwards_at=10)
    elif case.endswith(".h5"):
        with h5py.File(src, "w") as f:
            f.create_dataset("images", data=np.zeros((2, 2)))
    else:
        good = Path(project["cfg"].landing_url) / "teleop_a.mcap"
        src.write_bytes(good.read_bytes()[:-5000])
    landed = _land(project, src, case)
    if case == "truncated.mcap":
        _age(landed, 3600)  # a crashed recorder: no footer, untouched for an hour
    requests, _ = _tick(project)
    assert len(requests) == 1
    outcome = _run(project, [requests[0].partition_key])[0]
    assert not outcome.success
    assert case in outcome.error and expect in outcome.error, outcome.error
    # Nothing else is lost: the good partitions' outputs and materializations are intact.
    store = Path(project["cfg"].storage_url)
    assert not (store / "raw_teleop" / f"{requests[0].partition_key}.hdf5").exists()
    for k in project["good"]:
        assert (store / "raw_teleop" / f"{k}.hdf5").exists()
    assert len(project["instance"].get_dynamic_partitions("recordings")) >= 3


def test_failed_check_blocks(project, tmp_path):
    """An HDF5 recorded at 10 Hz that claims 30 fps: ingest works, the blocking rate check fails the run."""
    import numpy as np

    from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec

    schema = EpisodeSchema([FeatureSpec("q", "state", (2,)), FeatureSpec("a", "action", (2,))], fps=30)
    src = tmp_path / "slow.hdf5"
    with EpisodeStoreWriter(src, schema) as w:
        d = w.begin_episode()
        d.extend(np.arange(50) / 10.0, {"q": np.zeros((50, 2)), "a": np.zeros((50, 2))})
        d.close(success=True)
    _land(project, src)
    requests, _ = _tick(project)
    outcome = _run(project, [requests[0].partition_key])[0]
    assert outcome.checks["episode_rates_and_lengths"] is False
    assert outcome.checks["frames_in_sync_and_finite"] is True
    assert not outcome.success and "episode_rates_and_lengths" in outcome.error


def test_backfill_from_cli(project, capsys):
    """A real Dagster backfill, executed by the dagster-daemon the CLI starts (tests/test_backfill.py has more)."""
    from dagster._core.execution.backfill import BulkActionStatus

    from robodata.cli import main

    rc = main(["backfill", *project["good"], "--timeout", "600"])
    out = capsys.readouterr().out
    assert rc == 0, out
    for k in project["good"]:
        assert k in out
    bid = out.split()[1].rstrip(":")
    assert project["instance"].get_backfill(bid).status == BulkActionStatus.COMPLETED_SUCCESS
