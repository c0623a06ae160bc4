"""raw_teleop through a real Dagster instance (SQLite), real Ray and the real new_recordings sensor.

One project home for the module, like a day of operations: recordings land, the sensor ingests them once, bad
files fail alone, backfills re-run. The home starts with robot-a's first two recordings ingested (the module
fixture); every test then lands its own files under its own robot, so that each runs alone and in any order.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from robodata.partitions import robot_name
from tests.conftest import project_home
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent
BACKFILL_GUARD_S = 900  # a hang guard: the daemon, a code server and Ray on a busy 2-core machine


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
        project = {"cfg": cfg, "instance": instance, "defs": defs, "home": home, "realdata": realdata}
        project["first"] = _ingest_first(project, tmp_path_factory.mktemp("first"))
        yield project


def _ingest_first(project, tmp: Path) -> dict:
    """Two recordings of robot-a today, landed, taken by the sensor and ingested: what the tests start from."""
    from robodata.sim.recorder import record_session

    rec = record_session(tmp, "teleop_a", n_episodes=2, seed=3, image_hw=(48, 64))
    _land(project, Path(rec["mcap"]), "robot-a/teleop_a.mcap")
    _land(project, project["realdata"] / "rosbag_js" / "example.bag", "robot-a/turtle run.bag")
    requests, _ = _tick(project)
    part = f"{_today()}|robot-a"
    keys = _keys(project, part)
    (outcome,) = _run(project, [part]) if [r.partition_key for r in requests] == [part] else (None,)
    project["good"], project["good_part"] = list(keys.values()), part
    return {"requests": requests, "keys": keys, "outcome": outcome, "part": part}


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


def _today() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).date().isoformat()


def _registry(project):
    from robodata.registry import Registry

    return Registry(project["cfg"].registry_url)


def _keys(project, partition: str) -> dict[str, str]:
    """The recordings of a robot x day partition: landed name -> recording key."""
    return {r.name: r.key for r in _registry(project).in_partition(partition)}


def _latest(project, partition: str):
    import dagster as dg

    recs = project["instance"].fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_teleop"), asset_partitions=[partition]), limit=1).records
    return recs[0].asset_materialization if recs else None


CHECKS_OK = {"frames_in_sync_and_finite": True, "episode_rates_and_lengths": True, "few_frames_out_of_sync": True,
             "within_reference_release_bounds": True, "every_recording_published": True}


def test_sensor_ingests_new_recordings_once(project):
    """Two recordings of one robot on one day (the module's first, :func:`_ingest_first`): one robot x day
    partition, one run, one file each in the store."""
    import dagster as dg

    requests, keys, outcome, part = (project["first"][k] for k in ("requests", "keys", "outcome", "part"))
    assert [r.partition_key for r in requests] == [part]
    assert requests[0].tags["robodata/recordings"] == "2"
    assert "robot-a" in project["instance"].get_dynamic_partitions("robots")
    assert dg.MultiPartitionKey({"date": _today(), "robot": "robot-a"}) == part
    assert set(keys) == {"robot-a/teleop_a.mcap", "robot-a/turtle run.bag"}
    assert keys["robot-a/teleop_a.mcap"].startswith("robot-a-teleop_a-mcap-")
    assert outcome.success, outcome.error
    assert outcome.checks == CHECKS_OK
    assert outcome.metadata["episodes"] == 3 and outcome.metadata["frames"] > 200
    assert outcome.metadata["recordings_published"] == 2 and outcome.metadata["recordings_made_now"] == 2
    assert "robot-a/turtle run.bag" in outcome.metadata["recordings"]  # the per-recording table
    store = Path(project["cfg"].storage_url)
    for k in keys.values():
        assert (store / "raw_teleop" / f"{k}.hdf5").exists()
        assert (store / "raw_teleop" / f"{k}.overview.png").read_bytes()[:4] == b"\x89PNG"
    outputs = _registry(project).outputs("raw_teleop", list(keys.values()))
    assert {o.status for o in outputs.values()} == {"published"}
    assert _latest(project, part).metadata["frames"].value > 0


def test_partition_takes_new_recordings_incrementally(project, tmp_path):
    """A third recording of robot-a's day: the partition's next run ingests only it, and the partition's data
    version changes; a run with nothing new ingests nothing and leaves the data version as it was."""
    from robodata.sim.recorder import record_session

    part = project["good_part"]
    before = _latest(project, part).tags["dagster/data_version"]
    (again,) = _run(project, [part])
    assert again.success, again.error
    assert again.metadata["recordings_made_now"] == 0 and again.metadata["recordings_unchanged"] == 2
    assert _latest(project, part).tags["dagster/data_version"] == before
    rec = record_session(tmp_path, "teleop_c", n_episodes=1, seed=9, image_hw=(48, 64))
    _land(project, Path(rec["mcap"]), "robot-a/teleop_c.mcap")
    requests, _ = _tick(project)
    assert [r.partition_key for r in requests] == [part] and requests[0].tags["robodata/recordings"] == "1"
    from robodata_dagster.runs import run_partitions

    (outcome,) = run_partitions(project["instance"], project["defs"], "ingest_recordings", [part],
                                tags=dict(requests[0].tags))
    assert outcome.success, outcome.error
    assert outcome.metadata["recordings_made_now"] == 1 and outcome.metadata["recordings_unchanged"] == 2
    assert outcome.metadata["recordings_published"] == 3
    assert _latest(project, part).tags["dagster/data_version"] != before


def test_sensor_never_ingests_twice(project, tmp_path):
    from robodata.registry import DUPLICATE

    requests, skip = _tick(project)
    assert requests == [] and "no new recordings" in skip
    # The same bytes landing under another name, in a nested prefix: the tick cannot know (it reads no
    # content), so it registers it; the run hashes it, finds the owner and ingests nothing.
    _land(project, project["realdata"] / "rosbag_js" / "example.bag", "robot-2/2026-12-01/turtle-copy.bag")
    requests, _ = _tick(project)
    assert [r.partition_key for r in requests] == ["2026-12-01|robot-2"]  # the day the path names
    (copy,) = _keys(project, "2026-12-01|robot-2").values()
    outcome = _run(project, [requests[0].partition_key])[0]
    assert outcome.success, outcome.error
    original = next(k for k in project["good"] if k.startswith("robot-a-turtle-run-bag-"))
    assert outcome.metadata == {}  # nothing materialized: no downstream tier sees an update
    assert _latest(project, "2026-12-01|robot-2") is None  # no ghost materialization
    rec = _registry(project).lookup(copy)
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
    # no robot folder above it: landing.default_robot
    assert [r.partition_key for r in requests] == [f"{_today()}|default"]
    assert list(_keys(project, requests[0].partition_key)) == ["teleop_b.mcap"]
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
    """A bad recording alone in its partition fails the run, naming the file."""
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
        good = Path(project["cfg"].landing_url) / "robot-a" / "teleop_a.mcap"
        src.write_bytes(good.read_bytes()[:-5000])
    robot = "bad-" + case.split(".")[0].replace(" ", "")
    landed = _land(project, src, f"{robot}/{case}")
    if case == "truncated.mcap":
        _age(landed, 3600)  # a crashed recorder: no footer, untouched for an hour
    requests, _ = _tick(project)
    assert [r.partition_key.split("|")[1] for r in requests] == [robot_name(robot)]
    outcome = _run(project, [requests[0].partition_key])[0]
    assert not outcome.success
    assert case in outcome.error and expect in outcome.error, outcome.error
    (key,) = _keys(project, requests[0].partition_key).values()
    assert _registry(project).outputs("raw_teleop", [key])[key].status == "failed"
    # Nothing else is lost: the good recordings' outputs and materializations are intact.
    store = Path(project["cfg"].storage_url)
    assert not (store / "raw_teleop" / f"{key}.hdf5").exists()
    for k in project["good"]:
        assert (store / "raw_teleop" / f"{k}.hdf5").exists()
    assert _latest(project, project["good_part"]) is not None


def _slow_hdf5(path: Path) -> Path:
    """An HDF5 recorded at 10 Hz that claims 30 fps: it ingests, and fails the blocking rate check."""
    import numpy as np

    from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec

    schema = EpisodeSchema([FeatureSpec("q", "state", (2,)), FeatureSpec("a", "action", (2,))], fps=30)
    with EpisodeStoreWriter(path, schema) as w:
        d = w.begin_episode()
        d.extend(np.arange(50) / 10.0, {"q": np.zeros((50, 2)), "a": np.zeros((50, 2))})
        d.close(success=True)
    return path


def test_failed_check_blocks(project, tmp_path):
    """Alone in its partition, a recording failing a blocking check is quarantined and fails the run."""
    _land(project, _slow_hdf5(tmp_path / "slow.hdf5"), "robot-slow/slow.hdf5")
    requests, _ = _tick(project)
    outcome = _run(project, [requests[0].partition_key])[0]
    assert outcome.checks["episode_rates_and_lengths"] is False
    assert outcome.checks["frames_in_sync_and_finite"] is True
    assert not outcome.success and "episode_rates_and_lengths" in outcome.error


def test_failed_check_quarantines_one_recording_of_a_partition(project, tmp_path):
    """Beside a good recording, one failing a blocking check is quarantined alone: the partition publishes the
    good one, its every_recording_published check fails and names the other."""
    import json

    from robodata.sim.recorder import record_session

    rec = record_session(tmp_path, "teleop_d", n_episodes=1, seed=11, image_hw=(48, 64))
    _land(project, Path(rec["mcap"]), "robot-mixed/teleop_d.mcap")
    _land(project, _slow_hdf5(tmp_path / "slow2.hdf5"), "robot-mixed/slow2.hdf5")
    requests, _ = _tick(project)
    (outcome,) = _run(project, [requests[0].partition_key])
    assert outcome.success, outcome.error
    assert outcome.checks["episode_rates_and_lengths"] is True  # the partition publishes the good recording
    assert outcome.checks["every_recording_published"] is False
    keys = _keys(project, requests[0].partition_key)
    outputs = _registry(project).outputs("raw_teleop", list(keys.values()))
    assert outputs[keys["robot-mixed/teleop_d.mcap"]].status == "published"
    assert outputs[keys["robot-mixed/slow2.hdf5"]].status == "quarantined"
    mat = _latest(project, requests[0].partition_key)
    assert mat.metadata["recordings_published"].value == 1
    evals = [e for e in project["instance"].all_logs(outcome.run_id)
             if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    failing = {e.dagster_event.event_specific_data.check_name:
               e.dagster_event.event_specific_data.metadata for e in evals}
    assert json.loads(json.dumps(failing["episode_rates_and_lengths"]["recordings_failing"].value)) == [
        keys["robot-mixed/slow2.hdf5"]]


def test_an_earlier_failure_stays_visible_in_its_partition(project, tmp_path):
    """A bad file fails its robot's day alone; a good one landing later in the same day is ingested by the
    sensor's next run (which makes only its own tick's recordings), and the partition still says which of
    its recordings failed."""
    from robodata.sim.recorder import record_session
    from robodata_dagster.runs import run_partitions

    make_mcap(tmp_path / "small_nan.mcap", nan_at=10)
    _land(project, tmp_path / "small_nan.mcap", "robot-late/small_nan.mcap")
    (req,) = _tick(project)[0]
    assert not _run(project, [req.partition_key])[0].success
    rec = record_session(tmp_path, "teleop_e", n_episodes=1, seed=13, image_hw=(48, 64))
    _land(project, Path(rec["mcap"]), "robot-late/teleop_e.mcap")
    (req2,) = _tick(project)[0]
    assert req2.partition_key == req.partition_key and req2.run_key != req.run_key
    (out,) = run_partitions(project["instance"], project["defs"], "ingest_recordings", [req2.partition_key],
                            tags=dict(req2.tags))
    assert out.success, out.error
    assert out.metadata["recordings_made_now"] == 1 and out.metadata["recordings_published"] == 1
    assert out.checks["every_recording_published"] is False
    bad = _keys(project, req.partition_key)["robot-late/small_nan.mcap"]
    table = out.metadata["recordings"]
    assert next(line for line in table.splitlines() if bad in line).split("|")[3].strip() == "failed"


def test_cli_ingest_refuses_what_it_cannot_ingest_before_landing_it(project, tmp_path):
    from robodata.landing import LandingError
    from robodata_dagster.runs import register_and_ingest

    notes = tmp_path / "notes.txt"
    notes.write_text("not a recording")
    with pytest.raises(LandingError, match=r"notes.txt: not something robodata can ingest .* nothing was landed"):
        register_and_ingest(notes)
    with pytest.raises(LandingError, match=r"gone.mcap: no such file or folder"):
        register_and_ingest(tmp_path / "gone.mcap")
    assert not list(Path(project["cfg"].landing_url).rglob("notes.txt"))


@pytest.mark.timeout(2 * BACKFILL_GUARD_S)  # above the backfill's hang guard (and this module's first ingest)
def test_backfill_from_cli(project, capsys):
    """A real Dagster backfill, executed by the dagster-daemon the CLI starts (tests/test_backfill.py has more);
    a recording's key names its partition."""
    from dagster._core.execution.backfill import BulkActionStatus

    from robodata.cli import main

    rc = main(["backfill", project["good"][0], "--timeout", str(BACKFILL_GUARD_S)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert project["good_part"] in out
    bid = out.split()[1].rstrip(":")
    assert project["instance"].get_backfill(bid).status == BulkActionStatus.COMPLETED_SUCCESS
