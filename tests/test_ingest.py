"""raw_teleop's library: recordings (simulator MCAP/HDF5, real ROS 1 bags) -> time-synced canonical episodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from robodata.formats.isaaclab import EpisodeStore
from robodata.ingest import IngestError, ingest_recording
from robodata.topicmap import DEMO_TOPIC_MAP, load_topic_map
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

TURTLE_MAP = Path(__file__).parent / "data" / "turtlesim_topic_map.yaml"


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory):
    from robodata.sim.recorder import record_session

    out = tmp_path_factory.mktemp("sim")
    return record_session(out, "session", n_episodes=2, seed=7, image_hw=(48, 64))


def test_sim_mcap_to_episodes(sim_session, tmp_path):
    tm = load_topic_map(DEMO_TOPIC_MAP)
    out = tmp_path / "raw.hdf5"
    rep = ingest_recording(sim_session["mcap"], out, tm)
    assert len(rep.episodes) == 2
    with EpisodeStore(out) as es, EpisodeStore(sim_session["hdf5"]) as truth:
        assert es.schema.fps == 30 and es.schema.task == tm.task
        assert [f.name for f in es.schema.cameras] == ["front", "wrist"]
        for name, src_name in zip(es.demo_names, truth.demo_names, strict=True):
            ep, gt = es.read(name), truth.read(src_name)
            n = len(ep)
            # Each camera frame at 30 Hz becomes one frame; frames out of tolerance are dropped and reported.
            assert abs(n - len(gt)) <= 3
            assert ep.obs["front"].shape[1:] == (48, 64, 3) and ep.obs["front"].dtype == np.uint8
            assert ep.obs["joint_pos"].shape == (n, 7) and ep.obs["eef_pose"].shape == (n, 7)
            assert np.all(np.diff(ep.timestamps) > 0)
            assert np.allclose(np.median(np.diff(ep.timestamps)), 1 / 30, rtol=0.05)
            # The synced action equals what the simulator commanded, frame for frame (same camera instants).
            # The first frame(s) may be dropped (the 10 Hz goal has no sample yet): find that shift first.
            shift = int(np.argmin([np.abs(ep.actions[0] - gt.actions[s]).sum() for s in range(4)]))
            k = min(n, len(gt) - shift)
            close = np.isclose(ep.actions[:k], gt.actions[shift : shift + k], atol=1e-5).all(axis=1).mean()
            assert close > 0.9, close
            assert np.isclose(ep.obs["front"][:k].astype(float), gt.obs["front"][shift : shift + k]).mean() > 0.9
            # The success flag arrives after the last frame and still lands on its episode.
            assert ep.attrs["success"] == gt.attrs["success"]
            # MimicGen annotations: object and eef poses as 4x4, grasp signal.
            assert ep.datagen["object_pose"]["cube"].shape == (n, 4, 4)
            assert np.allclose(ep.datagen["eef_pose"]["gripper"][:, :3, 3], ep.obs["eef_pose"][:, :3], atol=1e-5)
            assert ep.datagen["subtask_term_signals"]["grasp"].dtype == bool
    for m in rep.misaligned.values():
        assert m["worst_offset_ms"] < 1e9
    assert rep.topics["/joint_states"]["rate_hz"] == pytest.approx(100, rel=0.05)
    assert rep.topics["/camera/front/image_raw"]["jitter_ms"] > 0  # driver jitter is measured


def test_sim_hdf5_passes_through(sim_session, tmp_path):
    out = tmp_path / "raw.hdf5"
    rep = ingest_recording(sim_session["hdf5"], out)
    assert len(rep.episodes) == 2
    with EpisodeStore(out) as es, EpisodeStore(sim_session["hdf5"]) as src:
        for a, b in zip(es.demo_names, src.demo_names, strict=True):
            ea, eb = es.read(a), src.read(b)
            assert np.array_equal(ea.obs["front"], eb.obs["front"])
            assert np.array_equal(ea.actions, eb.actions)
            assert np.array_equal(ea.datagen["object_pose"]["cube"], eb.datagen["object_pose"]["cube"])


@pytest.mark.parametrize("bag", ["example.bag", "example-lz4.bag", "example-bz2.bag"])
def test_real_turtlesim_bags(realdata, tmp_path, bag):
    out = tmp_path / "turtle.hdf5"
    rep = ingest_recording(realdata / "rosbag_js" / bag, out, load_topic_map(TURTLE_MAP))
    assert len(rep.episodes) == 1
    with EpisodeStore(out) as es:
        ep = es.read(es.demo_names[0])
        assert ep.obs["pose"].shape[1] == 3
        # turtlesim's world is 11 x 11 m
        assert np.all((ep.obs["pose"][:, :2] >= 0) & (ep.obs["pose"][:, :2] <= 11.1))
        assert ep.actions.shape == (len(ep), 2)
        assert np.isfinite(ep.actions).all()
    assert rep.topics["/turtle1/pose"]["count"] > 100


def test_unsorted_chunks_bag(realdata, tmp_path):
    """The 3-message unsorted-chunk bag reads in time order; its single pose is too short for an episode."""
    tm = load_topic_map({**load_topic_map(TURTLE_MAP).model_dump(), "features": [
        {"name": "pose", "topic": "/turtle1/pose", "fields": ["x", "y", "theta"], "role": "state"},
        {"name": "vel", "topic": "/turtle1/pose", "fields": ["linear_velocity", "angular_velocity"],
         "role": "action"}]})
    from robodata.readers import open_recording

    with open_recording(realdata / "rosbag_js" / "example-unsorted-chunks.bag") as r:
        times = [m.log_time_ns for m in r.messages()]
    assert times == sorted(times) and len(times) == 3
    with pytest.raises(IngestError, match="example-unsorted-chunks.bag"):
        ingest_recording(realdata / "rosbag_js" / "example-unsorted-chunks.bag", tmp_path / "o.hdf5", tm)


# ---- bad input: one clear error naming the file and the problem, and no output left behind -------------


def test_a_topic_map_without_state_or_action_is_one_sentence():
    from robodata.topicmap import TopicMapError

    base = load_topic_map(TURTLE_MAP).model_dump()
    for role in ("state", "action"):
        kept = [f for f in base["features"] if f["role"] != role]
        with pytest.raises(TopicMapError, match=rf"no feature with role '{role}' \(the episodes need one"):
            load_topic_map({**base, "features": kept})


def _fails(src, tm, tmp_path, *patterns):
    out = tmp_path / "out.hdf5"
    with pytest.raises(IngestError) as e:
        ingest_recording(src, out, tm)
    msg = str(e.value)
    assert str(src) in msg or Path(src).name in msg, msg
    for p in patterns:
        assert p in msg, msg
    assert not out.exists()
    assert not list(tmp_path.glob(".out.hdf5.partial*"))  # the temporary file is gone too
    return msg


def test_empty_bag(realdata, tmp_path):
    _fails(realdata / "rosbag_js" / "no-messages.bag", load_topic_map(TURTLE_MAP), tmp_path, "no messages")


def test_bag_missing_mapped_topic(realdata, tmp_path):
    d = load_topic_map(TURTLE_MAP).model_dump()
    d["features"].append({"name": "gripper", "topic": "/gripper/state", "field": "data", "role": "state"})
    _fails(realdata / "rosbag_js" / "example.bag", load_topic_map(d), tmp_path, "/gripper/state", "gripper",
           "/turtle1/pose")  # the topics present are listed


def test_truncated_mcap(sim_session, tmp_path):
    src = tmp_path / "truncated.mcap"
    data = Path(sim_session["mcap"]).read_bytes()
    src.write_bytes(data[: len(data) * 6 // 10])
    _fails(src, load_topic_map(DEMO_TOPIC_MAP), tmp_path, "truncated")


def test_corrupt_chunk(sim_session, tmp_path):
    src = tmp_path / "corrupt.mcap"
    data = bytearray(Path(sim_session["mcap"]).read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    src.write_bytes(bytes(data))
    _fails(src, load_topic_map(DEMO_TOPIC_MAP), tmp_path)


def test_timestamps_backwards_and_duplicate(tmp_path):
    tm = load_topic_map(SMALL_TOPIC_MAP)
    msg = _fails(make_mcap(tmp_path / "back.mcap", backwards_at=20), tm, tmp_path, "/cam/image_raw", "backwards")
    assert "strictly increasing" in msg
    _fails(make_mcap(tmp_path / "dup.mcap", duplicate_at=20), tm, tmp_path, "/cam/image_raw", "repeats")


def test_nan_values(tmp_path):
    _fails(make_mcap(tmp_path / "nan.mcap", nan_at=15), load_topic_map(SMALL_TOPIC_MAP), tmp_path,
           "/cmd", "NaN")


def test_hdf5_without_expected_groups(tmp_path):
    bad = tmp_path / "not_isaac.hdf5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("images", data=np.zeros((3, 4)))
    _fails(bad, None, tmp_path, "/data")
    bad2 = tmp_path / "no_actions.hdf5"
    with h5py.File(bad2, "w") as f:
        f.create_group("data/demo_0/obs").create_dataset("q", data=np.zeros((3, 2)))
    _fails(bad2, None, tmp_path, "demo_0", "actions")
    noth5 = tmp_path / "text.hdf5"
    noth5.write_text("hello")
    _fails(noth5, None, tmp_path, "HDF5")


def test_awkward_file_names(tmp_path):
    src = make_mcap(tmp_path / "x.mcap")
    for name in ["my run (2).mcap", "ünïcødé ロボ.mcap", "a..b...c.mcap"]:
        dst = tmp_path / name
        shutil.copy(src, dst)
        rep = ingest_recording(dst, tmp_path / "o.hdf5", load_topic_map(SMALL_TOPIC_MAP))
        assert rep.frames > 50


# ---- sync behaviour on controlled recordings -------------------------------------------------------------


def test_out_of_tolerance_frames_are_dropped_and_reported(tmp_path):
    # Joint states lag 25 ms behind the camera clock for the whole recording: beyond the 20 ms tolerance the
    # nearest sample is still 5 ms away (100 Hz), so nothing is dropped; with a 3 ms tolerance most frames go.
    src = make_mcap(tmp_path / "lag.mcap", frames=90, joint_lag_ms=25.0, jitter_ms=0.0)
    rep = ingest_recording(src, tmp_path / "a.hdf5", load_topic_map(SMALL_TOPIC_MAP))
    assert rep.dropped_frames == 0
    d = dict(SMALL_TOPIC_MAP)
    d["features"] = [dict(f) for f in SMALL_TOPIC_MAP["features"]]
    d["features"][1]["sync"] = {"method": "nearest", "tolerance_s": 0.003}
    rep2 = ingest_recording(src, tmp_path / "b.hdf5", load_topic_map(d))
    assert rep2.misaligned["joints"]["count"] > 0
    assert rep2.misaligned["joints"]["worst_offset_ms"] > 3
    assert rep2.dropped_frames == rep2.misaligned["joints"]["count"]
    with EpisodeStore(tmp_path / "b.hdf5") as es:
        ts = np.concatenate([es.timestamps(n) for n in es.demo_names]) if es.demo_names else np.zeros(0)
        assert len(ts) == rep2.frames


def test_linear_sync_interpolates_joint_states(tmp_path):
    src = make_mcap(tmp_path / "lin.mcap", frames=60, jitter_ms=0.0)
    d = dict(SMALL_TOPIC_MAP)
    d["features"] = [dict(f) for f in SMALL_TOPIC_MAP["features"]]
    d["features"][1]["sync"] = {"method": "linear", "tolerance_s": 0.02}
    ingest_recording(src, tmp_path / "l.hdf5", load_topic_map(d))
    with EpisodeStore(tmp_path / "l.hdf5") as es:
        name = es.demo_names[0]
        ep = es.read(name)
        t_abs = ep.timestamps + es.attrs(name)["t0_s"] - 1_700_000_000
        # Joint positions are sin/cos of their own stamp: interpolated values match the reference time.
        assert np.allclose(ep.obs["joints"][:, 0], np.sin(t_abs), atol=2e-4)


def test_gap_split_makes_two_episodes(tmp_path):
    src = make_mcap(tmp_path / "gap.mcap", frames=80, gap_after=40)
    rep = ingest_recording(src, tmp_path / "g.hdf5", load_topic_map(SMALL_TOPIC_MAP))
    assert [e.frames for e in rep.episodes] == [40, 40]
