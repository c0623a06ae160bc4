"""The simulator, the scripted teleoperator and the session recorder: record a tiny session, read it back."""

from __future__ import annotations

import io
import os
from collections import defaultdict

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from mcap.reader import make_reader
from mcap_ros2._dynamic import serialize_dynamic
from mcap_ros2.decoder import DecoderFactory

from robodata.formats.isaaclab import EpisodeStore
from robodata.ros2 import msgdefs
from robodata.sim import recorder
from robodata.sim.fetch import ARM_JOINTS, FINGER_JOINTS, FetchPickPlace
from robodata.sim.teleop import ScriptedTeleop

HW = (48, 64)
RATES = {
    recorder.FRONT_TOPIC: 30,
    recorder.WRIST_TOPIC: 30,
    recorder.JOINT_STATES_TOPIC: 100,
    recorder.EEF_POSE_TOPIC: 100,
    recorder.OBJECT_POSE_TOPIC: 50,
    recorder.GOAL_TOPIC: 10,
    recorder.ACTION_TOPIC: 30,
    recorder.GRASP_TOPIC: 30,
}


@pytest.fixture(scope="module")
def sim():
    with FetchPickPlace(image_hw=HW) as s:
        yield s


@pytest.fixture(scope="module")
def session(tmp_path_factory, sim):
    out = tmp_path_factory.mktemp("session")
    calls = []
    r = recorder.record_session(
        out, "demo", n_episodes=2, seed=7, image_hw=HW, sim=sim, progress=lambda d, t: calls.append((d, t))
    )
    r["progress_calls"] = calls
    return r


def read_mcap(path):
    by_topic = defaultdict(list)
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        for schema, channel, msg, decoded in reader.iter_decoded_messages(log_time_order=False):
            by_topic[channel.topic].append((msg, decoded, schema.name))
    return summary, by_topic


def test_session_writes_both_files(session):
    assert session["mcap"].exists() and session["hdf5"].exists()
    assert session["episodes"] == 2 and len(session["success"]) == 2
    assert session["successes"] >= 1
    assert session["progress_calls"] == [(1, 2), (2, 2)]
    assert session["frames"] == sum(session["frames_per_episode"]) > 0


def test_mcap_topics_rates_and_stamps(session):
    summary, by_topic = read_mcap(session["mcap"])
    assert {c.compression for c in summary.chunk_indexes} == {"zstd"}
    assert set(by_topic) == set(RATES) | {recorder.MARKER_TOPIC, recorder.SUCCESS_TOPIC}
    duration = sum(session["durations_s"])
    for topic, hz in RATES.items():
        assert abs(len(by_topic[topic]) - duration * hz) <= 0.1 * duration * hz + 1, topic
    assert len(by_topic[recorder.FRONT_TOPIC]) == session["frames"]
    for topic, msgs in by_topic.items():
        times = np.array([m.log_time for m, _, _ in msgs])
        assert (np.diff(times) > 0).all(), f"{topic} is not monotonic"
        for m, dec, _ in msgs:
            assert m.publish_time == m.log_time
            if hasattr(dec, "header"):
                assert dec.header.stamp.sec * 1_000_000_000 + dec.header.stamp.nanosec == m.log_time
    assert [d.data for _, d, _ in by_topic[recorder.MARKER_TOPIC]] == ["start", "end"] * 2
    assert [d.data for _, d, _ in by_topic[recorder.SUCCESS_TOPIC]] == session["success"]
    js = by_topic[recorder.JOINT_STATES_TOPIC][0][1]
    assert list(js.name) == list(ARM_JOINTS) + list(FINGER_JOINTS) and len(js.velocity) == len(js.name)
    img = by_topic[recorder.FRONT_TOPIC][0][1]
    assert (img.height, img.width, img.encoding, img.step) == (*HW, "rgb8", HW[1] * 3)
    pixels = np.frombuffer(img.data, np.uint8).reshape(*HW, 3)
    assert pixels.std() > 5  # a real picture, not a blank frame
    # Idle gap between episodes: no camera frame between an "end" and the next "start".
    markers = [m.log_time for m, _, _ in by_topic[recorder.MARKER_TOPIC]]
    cam = np.array([m.log_time for m, _, _ in by_topic[recorder.FRONT_TOPIC]])
    assert markers[2] - markers[1] >= 0.5e9
    assert not ((cam > markers[1]) & (cam < markers[2])).any()


def test_hdf5_layout_and_success(session):
    with EpisodeStore(session["hdf5"]) as store:
        assert len(store) == 2
        schema = store.schema
        assert [f.name for f in schema.features] == [
            "front", "wrist", "joint_pos", "gripper", "eef_pose", "object_pose", "goal", "action",
        ]  # fmt: skip
        assert schema.fps == 30 and schema.robot_type == "fetch" and schema.task == recorder.TASK
        assert store.env_args["env_kwargs"]["camera_names"] == ["front", "wrist"]
        for i, name in enumerate(store.demo_names):
            ep = store.read(name)
            n = len(ep)
            assert n == session["frames_per_episode"][i]
            assert ep.obs["front"].shape == (n, *HW, 3) and ep.obs["front"].dtype == np.uint8
            assert ep.obs["wrist"].shape == (n, *HW, 3)
            assert ep.obs["joint_pos"].shape == (n, 7) and ep.obs["gripper"].shape == (n, 2)
            assert ep.obs["eef_pose"].shape == (n, 7) and ep.obs["object_pose"].shape == (n, 7)
            assert ep.obs["goal"].shape == (n, 3) and ep.actions.shape == (n, 4)
            assert ep.states.shape == (n, 43)  # Fetch qpos (22) + qvel (21)
            np.testing.assert_allclose(np.diff(ep.timestamps), 1 / 30, atol=1e-9)
            for kind, key in [("object_pose", "cube"), ("eef_pose", "gripper"), ("target_eef_pose", "gripper")]:
                assert ep.datagen[kind][key].shape == (n, 4, 4)
            cube = ep.datagen["object_pose"]["cube"]
            np.testing.assert_allclose(cube[:, :3, 3], ep.obs["object_pose"][:, :3], atol=1e-6)
            signals = ep.datagen["subtask_term_signals"]
            assert signals["grasp"].dtype == bool and signals["place"].shape == (n,)
            assert ep.attrs["success"] == session["success"][i]
            assert ep.attrs["seed"] == session["episode_seeds"][i] and ep.attrs["source"] == "robodata-sim"
            assert "gain" in ep.attrs["operator"]
            if ep.attrs["success"]:
                assert signals["grasp"].any() and signals["place"][-1]
            final = np.linalg.norm(ep.obs["object_pose"][-1, :3] - ep.obs["goal"][-1])
            if abs(final - 0.05) > 0.01:  # the last frame precedes the last action by one step
                assert (final < 0.05) == ep.attrs["success"]


def test_same_seed_same_episodes_and_compressed_wrist(tmp_path, session, sim):
    again = recorder.record_session(
        tmp_path, "again", n_episodes=2, seed=7, image_hw=HW, sim=sim, compressed_wrist=True
    )
    with EpisodeStore(session["hdf5"]) as a, EpisodeStore(again["hdf5"]) as b:
        assert a.demo_names == b.demo_names
        for name in a.demo_names:
            ea, eb = a.read(name), b.read(name)
            for k in ea.obs:
                np.testing.assert_array_equal(ea.obs[k], eb.obs[k], err_msg=k)
            np.testing.assert_array_equal(ea.actions, eb.actions)
            np.testing.assert_array_equal(ea.states, eb.states)
    from PIL import Image

    _, by_topic = read_mcap(again["mcap"])
    msg, dec, schema_name = by_topic[recorder.WRIST_TOPIC][0]
    assert schema_name == msgdefs.COMPRESSED_IMAGE and "jpeg" in dec.format
    assert Image.open(io.BytesIO(bytes(dec.data))).size == (HW[1], HW[0])


def test_teleop_succeeds_mostly_but_not_identically(sim):
    lengths, successes = [], 0
    for seed in range(4):
        sim.reset(seed)
        op = ScriptedTeleop(seed)
        op.begin_episode(sim)
        n = 0
        while True:
            cmd = op.act(sim)
            if op.done:
                break
            sim.step(cmd.action)
            n += 1
        lengths.append(n)
        successes += sim.is_success()
    assert successes >= 3
    assert len(set(lengths)) > 1


def test_sim_state_poses_and_cameras(sim):
    sim.reset(3)
    state = sim.get_state()
    sim.set_object_pose([1.3, 0.7, sim.table_height], [0, 0, 0.3826834, 0.9238795])
    sim.set_goal([1.3, 0.7, sim.table_height])
    assert sim.is_success()
    np.testing.assert_allclose(sim.object_pose()[:3], [1.3, 0.7, sim.table_height])
    np.testing.assert_allclose(np.abs(sim.object_pose()[3:]), [0, 0, 0.3826834, 0.9238795], atol=1e-6)
    sim.set_state(state)
    np.testing.assert_array_equal(sim.get_state(), state)
    depth = sim.render_depth("front")
    semantic = sim.render_semantic("front")
    assert depth.shape == HW and np.isfinite(depth).all() and depth.min() > 0.1
    assert semantic.shape == HW and {2, 3} <= set(np.unique(semantic).tolist())  # table and robot in view
    js = sim.joint_state()
    assert js.names == list(ARM_JOINTS) + list(FINGER_JOINTS) and js.position.shape == (9,)


def test_msgdefs_parse_and_roundtrip():
    for msgtype in [
        msgdefs.IMAGE, msgdefs.COMPRESSED_IMAGE, msgdefs.JOINT_STATE, msgdefs.POSE_STAMPED,
        msgdefs.POINT_STAMPED, msgdefs.FLOAT32_MULTI_ARRAY, msgdefs.STRING, msgdefs.BOOL,
    ]:  # fmt: skip
        text = msgdefs.msgdef(msgtype)
        assert msgtype in serialize_dynamic(msgtype, text)
        if "Header" in text:
            assert "MSG: std_msgs/Header" in text and "MSG: builtin_interfaces/Time" in text
    with pytest.raises(msgdefs.MsgDefError):
        msgdefs.msgdef("nav_msgs/msg/Odometry")


def test_synthetic_mcap(tmp_path):
    r = recorder.write_synthetic_mcap(tmp_path / "syn.mcap", seconds=3, image_hw=(48, 64), episode_s=0.8)
    _, by_topic = read_mcap(r["path"])
    assert r["episodes"] == 3
    assert [d.data for _, d, _ in by_topic[recorder.MARKER_TOPIC]] == ["start", "end"] * 3
    frames = [np.frombuffer(d.data, np.uint8) for _, d, _ in by_topic[recorder.FRONT_TOPIC][:2]]
    assert not np.array_equal(frames[0], frames[1])
    for topic, msgs in by_topic.items():
        assert (np.diff([m.log_time for m, _, _ in msgs]) > 0).all(), topic
