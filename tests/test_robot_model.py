"""Robot models (pinocchio): joint-limit validation on real robot descriptions, FK/IK on the simulator's
recordings (where the true end-effector pose is known), delta/absolute actions and action normalisation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from robodata.formats.isaaclab import EpisodeStore
from robodata.robot.actions import (
    ACTION_NORM_PATH,
    ActionNormalizer,
    ActionSpaceError,
    delta_to_pose,
    pose_to_delta,
    to_absolute,
    to_delta,
)
from robodata.robot.api import AbsoluteActions, DeltaActions, EndEffectorActions, JointActions, JointLimits
from robodata.robot.kinematics import Kinematics, pose_errors
from robodata.robot.model import (
    NO_VELOCITY_LIMITS,
    JointNameError,
    RobotModel,
    RobotModelError,
    gymnasium_robotics_mjcf,
    packaged_urdf,
)
from robodata.robot.validate import validate_episode_store, validate_joints
from robodata.sim.fetch import ARM_JOINTS

PANDA = "panda_description/urdf/panda.urdf"
PANDA_ARM = [f"panda_joint{i}" for i in range(1, 8)]
# The Fetch arm hangs off a torso lift joint that the scene leaves passive: it slides ~1 cm during an episode,
# so FK needs its position too (from the recorded simulator state); the base slides stay put.
FETCH_JOINTS = ["torso_lift_joint", *ARM_JOINTS]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A one-episode simulator recording (HDF5 only, tiny cameras): joint states and the true gripper pose."""
    from robodata.sim.recorder import record_session

    out = tmp_path_factory.mktemp("robot_sim")
    return record_session(out, "sess", n_episodes=1, seed=3, image_hw=(16, 16), formats=["hdf5"])["hdf5"]


def _fetch_episode(path: Path) -> dict[str, np.ndarray]:
    """Joint positions (torso + arm), the recorded gripper pose, and the base pose, from the recorded state."""
    import mujoco

    mj = mujoco.MjModel.from_xml_path(str(gymnasium_robotics_mjcf()))

    def qpos(state: np.ndarray, name: str) -> np.ndarray:
        return state[:, mj.jnt_qposadr[mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_JOINT, "robot0:" + name)]]

    with EpisodeStore(path) as es:
        demo = es.demo_names[0]
        arm, eef, state = es.feature(demo, "joint_pos"), es.feature(demo, "eef_pose"), es.state_vector(demo)
        t = es.timestamps(demo)
    q = np.concatenate([qpos(state, "torso_lift_joint")[:, None], arm], axis=1).astype(np.float64)
    base = [float(qpos(state, f"slide{i}")[0]) for i in range(3)]
    return {"q": q, "eef": eef.astype(np.float64), "base": np.array(base), "t": t}


def _fetch_model(base: np.ndarray) -> RobotModel:
    return RobotModel.load(gymnasium_robotics_mjcf(), ee_frame="grip", joint_names=FETCH_JOINTS,
                           name_prefix="robot0:", locked={"slide0": base})


# ---- kinematics on the simulator's recordings ---------------------------------------------------------------


def test_fetch_forward_kinematics_matches_the_recorded_gripper_pose(session):
    ep = _fetch_episode(session)
    kin = Kinematics(_fetch_model(ep["base"]))
    pos, rot = pose_errors(kin.fk_pose(ep["q"]), ep["eef"])
    print(f"FK error over {len(pos)} frames: max {pos.max() * 1000:.3f} mm, mean {pos.mean() * 1000:.3f} mm, "
          f"rotation max {np.degrees(rot.max()):.4f} deg")
    # MuJoCo's site pose lags qpos by one physics sub-step (1/600 s) after mj_step: well under a millimetre here.
    assert pos.max() < 3e-3
    assert np.degrees(rot.max()) < 0.5


def test_fetch_inverse_kinematics_reproduces_the_forward_pose_within_a_millimetre(session):
    ep = _fetch_episode(session)
    kin = Kinematics(_fetch_model(ep["base"]))
    target = kin.fk_pose(ep["q"])
    res = kin.ik(target)  # frame 0 from the reference configuration, then each from the previous solution
    print("IK residuals:", res.summary())
    assert res.converged.all()
    assert res.position_error.max() < 1e-3
    assert np.degrees(res.rotation_error.max()) < 0.1
    pos, _ = pose_errors(kin.fk_pose(res.q), target)
    assert pos.max() < 1e-3
    lim = kin.robot.limits()
    assert (res.q >= lim["lower"] - 1e-9).all() and (res.q <= lim["upper"] + 1e-9).all()


def test_end_effector_and_joint_action_stages_round_trip(session):
    ep = _fetch_episode(session)
    cfg = {"model": str(gymnasium_robotics_mjcf()), "joints": FETCH_JOINTS, "ee_frame": "grip",
           "name_prefix": "robot0:", "locked": {"slide0": ep["base"].tolist()}}
    gripper = np.linspace(-1, 1, len(ep["q"]))[:, None]
    row = {"episode_id": "sess/demo_0", "num_frames": len(ep["q"]), "fps": 30.0,
           "action": np.concatenate([ep["q"], gripper], axis=1).astype(np.float32),
           "observation.state": ep["q"].astype(np.float32)}
    ee = EndEffectorActions(**cfg).process_episode(row)
    assert ee is not None and ee["action"].shape == (len(ep["q"]), 8)
    assert np.allclose(ee["action"][:, 7], gripper[:, 0])
    pos, _ = pose_errors(ee["action"][:, :7], ep["eef"])
    assert pos.max() < 3e-3
    back = JointActions(**cfg, state_start=0).process_episode(ee)
    assert back is not None and back["action"].shape == row["action"].shape
    again = EndEffectorActions(**cfg).process_episode(back)
    assert again is not None
    pos, _ = pose_errors(again["action"][:, :7], ee["action"][:, :7])
    assert pos.max() < 1e-3



def test_panda_inverse_kinematics_leaves_the_local_minimum_of_its_reference_configuration():
    """Panda's reference configuration (all zeros, elbow clipped to its limit: straight and singular) is a local
    minimum for most targets; IK restarts from other seeds there and reaches every pose within the limits."""
    robot = RobotModel.load(packaged_urdf(PANDA), ee_frame="panda_hand_tcp", joint_names=PANDA_ARM)
    kin = Kinematics(robot)
    q = kin.lower + (kin.upper - kin.lower) * np.random.default_rng(3).uniform(0.15, 0.85, size=(12, 7))
    target = kin.fk_pose(q)
    res = kin.ik(target, restarts=0)  # the plain local solve: stuck for most poses
    assert not res.converged.all()
    res = kin.ik(target)
    assert res.converged.all() and res.position_error.max() < 1e-3
    pos, rot = pose_errors(kin.fk_pose(res.q), target)
    assert pos.max() < 1e-3 and np.degrees(rot.max()) < 0.1
    assert (res.q >= kin.lower - 1e-9).all() and (res.q <= kin.upper + 1e-9).all()

# ---- models: loading, names, bad input ----------------------------------------------------------------------


def test_panda_urdf_from_example_robot_data_has_limits_and_frames():
    robot = RobotModel.load(packaged_urdf(PANDA), ee_frame="panda_hand_tcp")
    assert robot.format == "urdf" and robot.joint_names[:7] == PANDA_ARM
    j4 = robot.joints["panda_joint4"]
    assert (j4.lower, j4.upper, j4.velocity, j4.unit) == (-3.0718, -0.0698, 2.175, "rad")
    assert robot.joints["panda_finger_joint1"].unit == "m"
    assert robot.has_velocity_limits and "panda_hand_tcp" in robot.frames
    assert robot.describe()["velocity_limits"] is None


def test_fetch_mjcf_says_it_has_no_velocity_limits():
    robot = RobotModel.load(gymnasium_robotics_mjcf(), ee_frame="grip", name_prefix="robot0:")
    assert robot.format == "mjcf"
    assert set(ARM_JOINTS) <= set(robot.joints)
    assert robot.joints["shoulder_pan_joint"].lower == pytest.approx(-1.6056)
    assert not robot.has_velocity_limits
    assert robot.describe()["velocity_limits"] == NO_VELOCITY_LIMITS
    notes: list[str] = []
    q = np.zeros((5, len(ARM_JOINTS)))
    assert validate_joints(robot, list(ARM_JOINTS), q, None, np.arange(5) / 30, notes=notes) == []
    assert NO_VELOCITY_LIMITS in notes[0]


def test_a_urdf_that_does_not_parse_is_one_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.urdf"
    bad.write_text('<robot name="x"><link name="a"/><joint name="j" type="revolute"><parent link="a"/>')
    with pytest.raises(RobotModelError) as err:
        RobotModel.load(bad)
    msg = str(err.value)
    assert str(bad) in msg and "not a valid URDF" in msg and "\n" not in msg
    with pytest.raises(RobotModelError, match="no such robot model file"):
        RobotModel.load(tmp_path / "missing.urdf")
    bad_xml = tmp_path / "broken.xml"
    bad_xml.write_text("<mujoco><worldbody><body><joint type='hinge'/></worldbody></mujoco>")
    with pytest.raises(RobotModelError, match=r"broken\.xml: not a valid MJCF"):
        RobotModel.load(bad_xml)


def test_joint_names_that_do_not_match_are_one_error_naming_them_and_the_models_joints():
    robot = RobotModel.load(packaged_urdf(PANDA))
    names = [*PANDA_ARM[:6], "panda_joint_7", "gripper"]
    with pytest.raises(JointNameError) as err:
        validate_joints(robot, names, np.zeros((3, 8)))
    msg = str(err.value)
    assert "panda.urdf" in msg and "'panda_joint_7' (did you mean 'panda_joint7'" in msg and "'gripper'" in msg
    assert "the model's joints are ['panda_joint1'" in msg
    with pytest.raises(RobotModelError, match=r"no frame 'panda_hand_tpc' in the model \(did you mean 'panda_hand_tcp'"):
        RobotModel.load(packaged_urdf(PANDA), ee_frame="panda_hand_tpc")


# ---- joint-limit findings -----------------------------------------------------------------------------------


def _panda_trajectory(n: int = 300) -> tuple[RobotModel, np.ndarray, np.ndarray, np.ndarray]:
    robot = RobotModel.load(packaged_urdf(PANDA), joint_names=PANDA_ARM)
    lim = robot.limits()
    t = np.arange(n) / 30.0
    mid, half = (lim["lower"] + lim["upper"]) / 2, (lim["upper"] - lim["lower"]) / 2
    q = mid + 0.5 * half * np.sin(2 * np.pi * 0.2 * t)[:, None]
    return robot, q, np.gradient(q, t, axis=0), t


def test_planted_out_of_limit_positions_and_velocities_are_named_by_joint_and_frame_range():
    robot, q, v, t = _panda_trajectory()
    q[120:165, 3] = -0.02  # panda_joint4's upper limit is -0.0698 rad
    q[200:203, 5] = -0.5  # panda_joint6's lower limit is -0.0175 rad
    v[30:35, 0] = -3.0  # panda_joint1's velocity limit is 2.175 rad/s
    v[250, 0] = 2.5
    found = validate_joints(robot, PANDA_ARM, q, v, t)
    by = {(f.joint, f.kind): f for f in found}
    assert set(by) == {("panda_joint4", "above upper limit"), ("panda_joint6", "below lower limit"),
                       ("panda_joint1", "over velocity limit")}
    up = by["panda_joint4", "above upper limit"]
    assert up.frames == [(120, 164)] and up.frame_ranges == "frames 120-164" and up.count == 45
    assert up.worst == pytest.approx(-0.02) and up.limit == pytest.approx(-0.0698)
    assert "joint panda_joint4: above upper limit -0.0698 rad in frames 120-164" in up.message
    assert up.seconds == pytest.approx((4.0, 164 / 30))
    vel = by["panda_joint1", "over velocity limit"]
    assert vel.frames == [(30, 34), (250, 250)] and vel.frame_ranges == "frames 30-34, 250"
    assert vel.worst == pytest.approx(-3.0) and vel.limit == 2.175 and vel.unit == "rad/s"
    assert json.loads(json.dumps(vel.to_json()))["message"] == vel.message


def test_velocities_are_computed_from_positions_when_not_recorded():
    robot, q, _, t = _panda_trajectory()
    q[100:, 1] += 0.2  # a 0.2 rad jump in one frame: 6 rad/s against panda_joint2's 2.175 rad/s
    found = validate_joints(robot, PANDA_ARM, q, None, t)
    assert [(f.joint, f.kind, f.frames) for f in found] == [("panda_joint2", "over velocity limit", [(100, 100)])]
    assert found[0].worst == pytest.approx((q[100, 1] - q[99, 1]) * 30) and found[0].worst > 5.0


def test_every_demo_of_an_episode_store_is_validated(session, tmp_path):
    robot = RobotModel.load(gymnasium_robotics_mjcf(), name_prefix="robot0:")
    with EpisodeStore(session) as es:
        clean = validate_episode_store(es, robot, ["joint_pos"])
        fingers = validate_episode_store(es, robot, ["gripper"])
    assert all(r.ok for r in clean.values()) and NO_VELOCITY_LIMITS in clean["demo_0"].notes[0]
    # MuJoCo's joint limits are soft: the fingers may overshoot 0.05 m by millimetres when they open; if so,
    # that is what the findings say.
    assert all(f.kind == "above upper limit" and f.joint.endswith("gripper_finger_joint")
               for r in fingers.values() for f in r.findings)
    planted = tmp_path / "planted.hdf5"
    shutil.copy(session, planted)
    with h5py.File(planted, "r+") as f:
        f["data/demo_0/obs/joint_pos"][10:20, 3] = 2.5  # elbow_flex_joint's range is +-2.251 rad
    with EpisodeStore(planted) as es:
        reports = validate_episode_store(es, robot, ["joint_pos"])
        assert [str(f).split(";")[0] for f in reports["demo_0"].findings] == [
            "demo_0: joint elbow_flex_joint: above upper limit 2.251 rad in frames 10-19 (t=0.333-0.633 s)"]
        with pytest.raises(JointNameError, match="'shoulder_pan' .*did you mean 'shoulder_pan_joint'"):
            validate_episode_store(es, robot, ["joint_pos"], joint_map={"shoulder_pan_joint": "shoulder_pan"})


def test_joint_limits_validator_on_rows():
    robot, q, _, _ = _panda_trajectory(90)
    q[40:50, 3] = 0.1
    v = JointLimits(str(robot.path), PANDA_ARM, state_start=2)
    state = np.concatenate([np.zeros((90, 2)), q], axis=1)
    row = {"episode_id": "r/demo_0", "fps": 30.0, "observation.state": state, "action": state}
    found = list(v.validate_episode(row))
    assert all(f.severity == "error" and f.where == "r/demo_0" for f in found)
    assert [f.message.split(" (t=")[0] for f in found] == [
        "joint panda_joint4: above upper limit -0.0698 rad in frames 40-49",
        "joint panda_joint4: over velocity limit 2.175 rad/s in frames 40, 50",  # the jumps in and out, from fps
    ]
    with pytest.raises(JointNameError):
        JointLimits(str(robot.path), ["panda_joint1", "elbow"])


# ---- delta <-> absolute, normalisation -----------------------------------------------------------------------


def test_delta_and_absolute_actions_round_trip(session):
    ep = _fetch_episode(session)
    q = ep["q"][:, 1:]
    absolute = np.concatenate([q[1:], np.ones((len(q) - 1, 1))], axis=1)  # next joints + a gripper command
    state = q[:-1]
    d = to_delta(absolute, state, dims=range(7))
    assert np.allclose(d[:, :7], q[1:] - q[:-1]) and np.allclose(d[:, 7], 1.0)
    assert np.allclose(to_absolute(d, state, dims=range(7)), absolute)
    poses = ep["eef"]
    pd = pose_to_delta(poses[1:], poses[:-1])
    assert np.allclose(delta_to_pose(pd, poses[:-1])[:, :3], poses[1:, :3])
    _, rot = pose_errors(delta_to_pose(pd, poses[:-1]), poses[1:])
    assert rot.max() < 1e-6
    row = {"episode_id": "e", "action": absolute.astype(np.float32), "observation.state": state.astype(np.float32)}
    cfg = {"dims": list(range(7)), "state_dims": list(range(7))}
    there = DeltaActions(**cfg).process_episode(row)
    assert there is not None
    back = AbsoluteActions(**cfg).process_episode(there)
    assert back is not None and np.allclose(back["action"], absolute, atol=1e-6)
    with pytest.raises(ActionSpaceError, match="reference must be"):
        to_delta(absolute, state[:, :3], dims=range(7))


def test_action_normaliser_streams_fits_inverts_and_is_stored_with_the_dataset(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [rng.normal([0, 5, -2], [1, 0.1, 3], size=(int(n), 3)) for n in rng.integers(20, 80, 12)]
    allrows = np.concatenate(episodes)
    for mode in ("mean_std", "min_max", "quantile"):
        norm = ActionNormalizer(mode, names=["a", "b", "c"]).fit(episodes)
        s = norm.stats
        assert np.allclose(s["mean"], allrows.mean(0)) and np.allclose(s["std"], allrows.std(0))
        assert np.allclose(s["q01"], np.quantile(allrows, 0.01, axis=0)) and norm.quantiles_exact
        out = norm.apply(allrows)
        if mode == "mean_std":
            assert np.allclose(out.mean(0), 0, atol=1e-9) and np.allclose(out.std(0), 1, atol=1e-6)
        elif mode == "min_max":
            assert np.allclose(out.min(0), -1) and np.allclose(out.max(0), 1)
        else:
            assert np.allclose(np.quantile(out, [0.01, 0.99], axis=0), [[-1] * 3, [1] * 3], atol=1e-6)
        assert np.allclose(norm.invert(out), allrows)
    root = tmp_path / "dataset"
    path = norm.save(root)
    assert path == root / ACTION_NORM_PATH
    doc = json.loads(path.read_text())
    assert doc["mode"] == "quantile" and set(doc["stats"]["action"]) >= {"min", "max", "mean", "std", "count", "q01", "q99"}
    assert doc["stats"]["action"]["count"] == [len(allrows)]
    again = ActionNormalizer.load(root)
    assert np.allclose(again.apply(allrows), norm.apply(allrows))
    small = ActionNormalizer("quantile", reservoir=100, seed=1).fit(episodes)  # approximate quantiles, bounded memory
    assert not small.quantiles_exact
    assert np.allclose(small.stats["q50"], np.median(allrows, 0), atol=0.5)
    with pytest.raises(ActionSpaceError, match="not robodata action normalisation"):
        ActionNormalizer.from_json({"format": "x"})


SO101 = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "lerobot_v3_so101"
SO101_JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def _so101_copy(dst: Path, plant: tuple[int, slice, int, float] | None = None) -> Path:
    """The real SO-101 v3.0 dataset (not written by robodata); ``plant`` = (episode, frames,
    state column, value) writes an out-of-limit joint position into observation.state with pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(SO101, dst)  # with its video: robodata quality decodes frames for duplicates
    for p in (dst, *dst.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    if plant:
        ep, frames, col, value = plant
        for f in (dst / "data").rglob("*.parquet"):
            t = pq.read_table(f)
            state = np.stack(t.column("observation.state").to_numpy(zero_copy_only=False)).astype(np.float32)
            rows = np.flatnonzero(t.column("episode_index").to_numpy() == ep)
            fi = t.column("frame_index").to_numpy()[rows]
            state[rows[(fi >= frames.start) & (fi < frames.stop)], col] = value
            arr = pa.array(list(state), type=t.schema.field("observation.state").type)
            pq.write_table(t.set_column(t.column_names.index("observation.state"), "observation.state", arr), f)
    return dst


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from robodata.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_quality_checks_a_real_lerobot_dataset_against_the_so101_urdf_per_joint_and_frame_range(tmp_path, capsys):
    urdf = str(packaged_urdf("so_arm_description/urdf/so101.urdf"))
    root = _so101_copy(tmp_path / "so101", plant=(2, slice(10, 20), 2, 2.5))  # elbow_flex limit is 1.69 rad
    rc, out, _ = _cli(["quality", str(root), "--robot-model", urdf, "--json", "--joints", *SO101_JOINTS], capsys)
    assert rc == 0  # the robot-model check warns unless quality.robot_model.blocking
    (line,) = [c for c in json.loads(out) if c["check"] == "joints_within_robot_model_limits"]
    assert not line["passed"] and "so101.urdf" in line["note"] and "6 episodes" in line["note"]
    planted = [f for f in line["findings"] if f.startswith("episode_2 observation.state: joint elbow_flex")]
    assert len(planted) == 2, line["findings"]  # above the limit, and the jumps in and out are over 10 rad/s
    assert "above upper limit 1.69 rad in frames 10-19" in planted[0] and "worst 2.5 rad" in planted[0]
    assert "over velocity limit" in planted[1] and "frames 10, 20" in planted[1]
    # the real action (joint targets: same names as the state) goes past two of the URDF's limits in every
    # episode; the state does not anywhere else
    assert not [f for f in line["findings"] if "observation.state" in f and not f.startswith("episode_2 ")]
    assert {f.split(":")[1].strip() for f in line["findings"] if " action: " in f} == {
        "joint shoulder_lift", "joint elbow_flex"}
    # DATA=MODEL pairs name the same columns
    pairs = [f"j{i}={j}" for i, j in enumerate(SO101_JOINTS)]
    rc, out2, _ = _cli(["quality", str(root), "--robot-model", urdf, "--json", "--joints", *pairs], capsys)
    (line2,) = [c for c in json.loads(out2) if c["check"] == "joints_within_robot_model_limits"]
    assert line2["findings"] == line["findings"]


def test_lerobot_joint_names_that_are_not_the_models_are_one_error_naming_info_json(tmp_path, capsys):
    urdf = str(packaged_urdf("so_arm_description/urdf/so101.urdf"))
    rc, out, err = _cli(["quality", str(SO101), "--robot-model", urdf], capsys)
    assert rc == 2 and not out
    assert "lerobot_v3_so101/meta/info.json observation.state" in err and "'j0'" in err and "shoulder_pan" in err
    assert len(err.strip().splitlines()) == 1
    rc, _, err = _cli(["quality", str(SO101), "--robot-model", urdf, "--joints", "shoulder_pan"], capsys)
    assert rc == 2 and "6 dimension(s) but 1 joint name(s)" in err


def test_a_robot_model_that_does_not_parse_stops_the_command_and_urdfdom_says_nothing_on_stderr(tmp_path, capfd):
    from robodata.cli import main

    bad = tmp_path / "broken.urdf"
    bad.write_text('<robot name="x"><link name="a"/><joint name="j" type="revolute"><parent link="a"/>')
    rc = main(["quality", str(SO101), "--robot-model", str(bad)])
    out = capfd.readouterr()  # the C-level stderr too: urdfdom writes "Error: ..." lines there
    assert rc == 2 and "ok " not in out.out and "warn" not in out.out
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: not a valid URDF"), out.err
    assert "the parser said: Error:" in lines[0] and "XML_ERROR_PARSING" in lines[0]


def test_the_code_location_does_not_build_with_a_robot_model_that_does_not_parse(tmp_path):
    from robodata.config import DEFAULTS_FILE, load_config
    from robodata_dagster.definitions import build_definitions

    bad = tmp_path / "arm.urdf"
    bad.write_text("<robot name='x'><joint name='j' type='revolute'/></robot>")
    cfg = load_config(DEFAULTS_FILE, {"home": str(tmp_path), "quality": {"robot_model": {"path": str(bad)}}})
    with pytest.raises(RobotModelError, match=r"arm\.urdf: not a valid URDF"):
        build_definitions(cfg)
    cfg = load_config(DEFAULTS_FILE, {"home": str(tmp_path), "quality": {"robot_model": {
        "path": str(packaged_urdf("so_arm_description/urdf/so101.urdf"))}}})
    assert build_definitions(cfg).get_assets_def("raw_teleop")
