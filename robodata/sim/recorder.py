"""Records scripted teleoperation sessions in the simulator as a real rig would: a ROS 2 MCAP bag and an HDF5 store.

The MCAP is what the robot's drivers would have logged (cameras at 30 Hz, joint states and end-effector pose at
100 Hz, object pose at 50 Hz, goal at 10 Hz, the operator's commands and episode markers), stamped by a fake wall
clock with per-topic driver jitter and idle gaps between episodes. The HDF5 holds the same episodes as the
simulator saw them, frame-exact at 30 Hz, in the canonical Isaac Lab layout with MimicGen annotations.
:data:`TOPIC_MAP_PATH` maps the MCAP's topics back to the HDF5's features.
"""

from __future__ import annotations

import heapq
import io
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata.atomic import AtomicPath, atomic_path
from robodata.errors import RobodataError
from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec
from robodata.formats.isaaclab_layout import (
    EEF_POSE,
    OBJECT_POSE,
    SEED_ATTR,
    SUBTASK_TERM_SIGNALS,
    TARGET_EEF_POSE,
)
from robodata.ros2 import msgdefs as M
from robodata.ros2.mcap_writer import McapRos2Writer, header, image_message
from robodata.sim.fetch import (
    ARM_JOINTS,
    CONTROL_HZ,
    DEFAULT_IMAGE_HW,
    ENV_ID,
    FINGER_JOINTS,
    FetchPickPlace,
    pose_to_matrix,
)
from robodata.sim.teleop import ScriptedTeleop

TASK = "pick up the cube and place it at the goal"
ROBOT_TYPE = "fetch"
SOURCE = "robodata-sim"
ACTION_NAMES = ["dx", "dy", "dz", "gripper"]
ACTION_LABEL = ",".join(ACTION_NAMES)  # the Float32MultiArray dimension label of /teleop/action
FORMATS = ("mcap", "hdf5")
# ``mp4``: each episode's front camera as a clip with a ``.txt`` caption beside it and no robot state or action,
# the shape of web and human video (the video source tier's input). Not part of the default formats.
CLIP_FORMAT = "mp4"
CLIP_FPS = 30
TOPIC_MAP_PATH = Path(__file__).with_name("demo_topic_map.yaml")
WALL_CLOCK_EPOCH_S = 1_700_000_000
WORLD_FRAME = "world"

FRONT_TOPIC = "/camera/front/image_raw"
WRIST_TOPIC = "/camera/wrist/image_raw"
JOINT_STATES_TOPIC = "/joint_states"
EEF_POSE_TOPIC = "/eef_pose"
OBJECT_POSE_TOPIC = "/object_pose"
GOAL_TOPIC = "/goal"
ACTION_TOPIC = "/teleop/action"
GRASP_TOPIC = "/subtask/grasp"
MARKER_TOPIC = "/episode/marker"
SUCCESS_TOPIC = "/episode/success"
CAMERA_TOPICS = {"front": FRONT_TOPIC, "wrist": WRIST_TOPIC}

JOINT_RATE_HZ = 100
EEF_RATE_HZ = 100
OBJECT_RATE_HZ = 50
GOAL_RATE_HZ = 10
_NS = 1_000_000_000


class RecorderError(RobodataError):
    """A recording session was asked for something it cannot do."""


def session_schema(image_hw: tuple[int, int] = DEFAULT_IMAGE_HW) -> EpisodeSchema:
    """The features of a simulated teleop episode (the HDF5 side of :data:`TOPIC_MAP_PATH`)."""
    h, w = image_hw
    return EpisodeSchema(
        [
            FeatureSpec("front", "image", (h, w, 3), "uint8"),
            FeatureSpec("wrist", "image", (h, w, 3), "uint8"),
            FeatureSpec("joint_pos", "state", (len(ARM_JOINTS),), names=list(ARM_JOINTS)),
            FeatureSpec("gripper", "state", (len(FINGER_JOINTS),), names=list(FINGER_JOINTS)),
            FeatureSpec("eef_pose", "pose", (7,), names=["x", "y", "z", "qx", "qy", "qz", "qw"]),
            FeatureSpec("object_pose", "pose", (7,), names=["x", "y", "z", "qx", "qy", "qz", "qw"]),
            FeatureSpec("goal", "state", (3,), names=["goal_x", "goal_y", "goal_z"]),
            FeatureSpec("action", "action", (4,), names=list(ACTION_NAMES)),
        ],
        fps=CONTROL_HZ,
        task=TASK,
        robot_type=ROBOT_TYPE,
    )


# -- the MCAP side ------------------------------------------------------------------------------------


@dataclass(order=True)
class _Pending:
    t_ns: int
    seq: int
    topic: str = field(compare=False)
    msgtype: str = field(compare=False)
    msg: dict[str, Any] = field(compare=False)


_EXACT = {MARKER_TOPIC: 0.0, SUCCESS_TOPIC: 0.0}  # operator UI events: stamped when they happen


class _DriverClock:
    """Per-topic stamps with driver jitter (gaussian, clipped to +-3 ms), strictly increasing per topic."""

    def __init__(self, rng: np.random.Generator, sigma_ms: dict[str, float]):
        self._rng = rng
        self._sigma = sigma_ms
        self._last: dict[str, int] = {}

    def stamp(self, topic: str, t_ns: int) -> int:
        sigma = self._sigma.get(topic, 1.0)
        jitter_ns = int(np.clip(self._rng.normal(0.0, sigma), -3.0, 3.0) * 1e6) if sigma > 0 else 0
        s = max(t_ns + jitter_ns, self._last.get(topic, -1) + 1)
        self._last[topic] = s
        return s


class _BagWriter:
    """Buffers messages a short while and writes them in log-time order, as a recorder's queue would."""

    def __init__(self, writer: McapRos2Writer, clock: _DriverClock):
        self._w = writer
        self._clock = clock
        self._heap: list[_Pending] = []
        self._seq = itertools.count()

    def publish(self, topic: str, msgtype: str, t_ns: int, body: dict[str, Any], frame_id: str | None = None) -> None:
        """Queue a message stamped near ``t_ns``; headered types get ``header.stamp`` = the log time."""
        stamp = self._clock.stamp(topic, t_ns)
        msg = dict(body)
        if frame_id is not None:
            msg["header"] = header(stamp, frame_id)
        heapq.heappush(self._heap, _Pending(stamp, next(self._seq), topic, msgtype, msg))

    def flush(self, before_ns: int | None = None) -> None:
        while self._heap and (before_ns is None or self._heap[0].t_ns < before_ns):
            p = heapq.heappop(self._heap)
            self._w.write(p.topic, p.msgtype, p.msg, log_time_ns=p.t_ns)


def _pose_msg(pose: np.ndarray) -> dict[str, Any]:
    p = [float(v) for v in pose]
    return {
        "pose": {
            "position": {"x": p[0], "y": p[1], "z": p[2]},
            "orientation": {"x": p[3], "y": p[4], "z": p[5], "w": p[6]},
        }
    }


def _point_msg(xyz: Sequence[float] | np.ndarray) -> dict[str, Any]:
    return {"point": {"x": float(xyz[0]), "y": float(xyz[1]), "z": float(xyz[2])}}


def _joint_msg(names: list[str], position: np.ndarray, velocity: np.ndarray) -> dict[str, Any]:
    return {"name": list(names), "position": position.tolist(), "velocity": velocity.tolist(), "effort": []}


def _array_msg(values: Sequence[float] | np.ndarray, label: str = "") -> dict[str, Any]:
    vals = [float(v) for v in values]
    dim = {"label": label, "size": len(vals), "stride": len(vals)}
    return {"layout": {"dim": [dim], "data_offset": 0}, "data": vals}


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _camera_body(camera: str, rgb: np.ndarray, compressed: bool) -> tuple[str, dict[str, Any]]:
    """Message type and header-less body of one camera frame (raw rgb8, or JPEG when ``compressed``)."""
    if compressed:
        return M.COMPRESSED_IMAGE, {"format": "rgb8; jpeg compressed bgr8", "data": _jpeg(rgb)}
    msg = image_message(0, "", rgb)
    del msg["header"]
    return M.IMAGE, msg


# -- the session --------------------------------------------------------------------------------------


@dataclass
class _EpisodeFrames:
    """One episode's 30 Hz frames, accumulated for the HDF5 store."""

    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **values: Any) -> None:
        for k, v in values.items():
            self.rows.setdefault(k, []).append(np.asarray(v))

    def take(self) -> dict[str, np.ndarray]:
        out = {k: np.stack(v) for k, v in self.rows.items()}
        self.rows = {}
        return out


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    fmts = tuple(formats)
    bad = [f for f in fmts if f not in (*FORMATS, CLIP_FORMAT)]
    if bad or not fmts:
        raise RecorderError(f"unknown recording formats {bad or list(fmts)} (choose from {[*FORMATS, CLIP_FORMAT]})")
    return fmts


def record_session(
    out_dir: str | Path,
    name: str,
    *,
    n_episodes: int = 3,
    seed: int = 0,
    image_hw: tuple[int, int] = DEFAULT_IMAGE_HW,
    formats: Sequence[str] = FORMATS,
    progress: Callable[[int, int], None] | None = None,
    compressed_wrist: bool = False,
    sim: FetchPickPlace | None = None,
    chunk_size: int = 4 * 1024 * 1024,
) -> dict[str, Any]:
    """Record one scripted teleop session of ``n_episodes`` pick-and-place episodes.

    Writes ``<out_dir>/<name>.mcap`` (ROS 2, zstd chunks) and/or ``<out_dir>/<name>.hdf5`` (Isaac Lab layout),
    and with ``mp4`` in ``formats`` ``<out_dir>/<name>_epNN.mp4`` per episode (the front camera; a ``.txt``
    caption beside it, no robot state).
    The HDF5 depends only on ``seed`` (not on the formats or the MCAP's clock): same seed, same arrays.

    Args:
        progress: called as ``progress(done_episodes, n_episodes)`` after each episode.
        compressed_wrist: publish the wrist camera as ``sensor_msgs/msg/CompressedImage`` (JPEG) on the same
            topic, instead of a raw ``Image``.
        sim: a simulator to reuse (one is created, and closed afterwards, when omitted).

    Returns:
        ``mcap``/``hdf5`` paths (None when not written), ``episodes``, ``successes``, ``success`` (per
        episode), ``frames``, ``frames_per_episode``, ``durations_s`` (simulated), ``episode_seeds``,
        ``topics`` (message counts), ``start_ns``/``end_ns`` (wall clock of the bag), ``wall_time_s``.
    """
    fmts = _check_formats(formats)
    if n_episodes < 1:
        raise RecorderError(f"a session needs at least one episode, got n_episodes={n_episodes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hw = (int(image_hw[0]), int(image_hw[1]))
    t_start = time.perf_counter()

    session_rng = np.random.default_rng(np.random.SeedSequence(seed))
    episode_seeds = [int(s) for s in session_rng.integers(0, 2**31 - 1, size=n_episodes)]
    clock_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))  # MCAP timing only
    start_ns = WALL_CLOCK_EPOCH_S * _NS + int(clock_rng.integers(0, 86_400)) * _NS + int(clock_rng.integers(0, _NS))

    own_sim = sim is None
    sim = sim or FetchPickPlace(image_hw=hw)
    schema = session_schema(hw)
    mcap_path = out / f"{name}.mcap" if "mcap" in fmts else None
    hdf5_path = out / f"{name}.hdf5" if "hdf5" in fmts else None
    env_kwargs = {
        **sim.env_kwargs(),
        "image_hw": list(hw),
        "camera_names": list(CAMERA_TOPICS),
        "topic_map": TOPIC_MAP_PATH.name,
    }
    # The MCAP is written under a hidden .partial- name and renamed at the end (robodata.atomic): a landing
    # sensor never sees a half-written recording.
    mcap_publish = AtomicPath(mcap_path, kind="file") if mcap_path else None
    mcap = McapRos2Writer(mcap_publish.tmp, chunk_size=chunk_size) if mcap_publish else None
    store = EpisodeStoreWriter(hdf5_path, schema, env_name=ENV_ID, env_kwargs=env_kwargs) if hdf5_path else None
    bag = None
    if mcap is not None:
        sigma = {FRONT_TOPIC: 1.5, WRIST_TOPIC: 1.5, JOINT_STATES_TOPIC: 0.8, EEF_POSE_TOPIC: 0.8, **_EXACT}
        bag = _BagWriter(mcap, _DriverClock(clock_rng, sigma))
        mcap.add_metadata(
            "robodata", {"source": SOURCE, "task": TASK, "robot_type": ROBOT_TYPE, "seed": str(seed), "env_id": ENV_ID}
        )
    wrist_phase_ns = int(clock_rng.uniform(3, 7) * 1e6)

    successes: list[bool] = []
    clips: list[Path] = []
    frames_per_episode: list[int] = []
    durations: list[float] = []
    cursor_ns = end_ns = start_ns
    try:
        for i, ep_seed in enumerate(episode_seeds):
            ep = _record_episode(sim, ep_seed, hw, bag, cursor_ns, wrist_phase_ns, compressed_wrist, clock_rng)
            successes.append(ep["success"])
            frames_per_episode.append(ep["frames"])
            durations.append(ep["frames"] / CONTROL_HZ)
            if CLIP_FORMAT in fmts:
                clips.append(_write_clip(out / f"{name}_ep{i:02d}.mp4", ep["hdf5"]["obs"]["front"]))
            if store is not None:
                attrs = {SEED_ATTR: ep_seed, "source": SOURCE, "operator": ep["operator"],
                         "mcap_start_ns": ep["start_ns"]}  # fmt: skip
                demo = store.begin_episode(attrs=attrs)
                demo.extend(**ep["hdf5"])
                demo.close(success=ep["success"])
            end_ns = ep["end_ns"]
            cursor_ns = end_ns + int(clock_rng.uniform(0.5, 1.0) * _NS)  # the operator resets the scene
            if progress is not None:
                progress(i + 1, n_episodes)
        if bag is not None:
            bag.flush()
    except BaseException:
        if store is not None:
            store.abort()
        if mcap is not None:
            mcap.close()
        if mcap_publish is not None:
            mcap_publish.abort()
        raise
    finally:
        if own_sim:
            sim.close()
    if store is not None:
        store.commit()
    topics = dict(mcap.counts) if mcap is not None else {}
    if mcap is not None and mcap_publish is not None:
        mcap.close()
        mcap_publish.commit()
    return {
        "name": name,
        "mcap": mcap_path,
        "hdf5": hdf5_path,
        "clips": clips,
        "topic_map": TOPIC_MAP_PATH,
        "episodes": n_episodes,
        "successes": int(sum(successes)),
        "success": successes,
        "frames": int(sum(frames_per_episode)),
        "frames_per_episode": frames_per_episode,
        "durations_s": durations,
        "episode_seeds": episode_seeds,
        "topics": topics,
        "compressed_wrist": compressed_wrist,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "wall_time_s": time.perf_counter() - t_start,
    }


def _write_clip(path: Path, frames: np.ndarray) -> Path:
    """``frames`` (RGB, N x H x W x 3) as an H.264 MP4 at the control rate, published atomically, with the task as
    its caption (``<clip>.txt``)."""
    from fractions import Fraction

    import av

    with atomic_path(path, kind="file") as tmp, av.open(str(tmp), "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=Fraction(CLIP_FPS))
        st.height, st.width = int(frames.shape[1]) // 2 * 2, int(frames.shape[2]) // 2 * 2
        st.pix_fmt = "yuv420p"
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[: st.height, : st.width]), format="rgb24")
            c.mux(st.encode(frame))
        c.mux(st.encode())
    path.with_suffix(".txt").write_text(TASK + "\n")
    return path


def _record_episode(
    sim: FetchPickPlace,
    ep_seed: int,
    hw: tuple[int, int],
    bag: _BagWriter | None,
    start_ns: int,
    wrist_phase_ns: int,
    compressed_wrist: bool,
    clock_rng: np.random.Generator,
) -> dict[str, Any]:
    """Run one episode; queue its MCAP messages on ``bag`` and return its HDF5 frames."""
    sim.reset(seed=ep_seed)
    operator = ScriptedTeleop(np.random.default_rng(np.random.SeedSequence([ep_seed, 2])))
    params = operator.begin_episode(sim)
    first_frame_ns = start_ns + int(clock_rng.uniform(0.02, 0.06) * _NS)

    def wall(t: float) -> int:
        return first_frame_ns + int(round(t * _NS))

    next_joint = [0]  # index of the next 100 Hz / 50 Hz sample
    next_object = [0]
    physics_hz = sim.physics_hz

    def sample(t: float) -> None:
        """Publish the high-rate streams due at simulated time ``t`` (called between physics sub-steps)."""
        if bag is None:
            return
        tick = int(round(t * physics_hz))
        while next_joint[0] * physics_hz // JOINT_RATE_HZ <= tick:
            ts = wall(next_joint[0] / JOINT_RATE_HZ)
            js = sim.joint_state()
            bag.publish(JOINT_STATES_TOPIC, M.JOINT_STATE, ts, _joint_msg(js.names, js.position, js.velocity), "")
            bag.publish(EEF_POSE_TOPIC, M.POSE_STAMPED, ts, _pose_msg(sim.eef_pose()), WORLD_FRAME)
            next_joint[0] += 1
        while next_object[0] * physics_hz // OBJECT_RATE_HZ <= tick:
            ts = wall(next_object[0] / OBJECT_RATE_HZ)
            bag.publish(OBJECT_POSE_TOPIC, M.POSE_STAMPED, ts, _pose_msg(sim.object_pose()), WORLD_FRAME)
            next_object[0] += 1

    if bag is not None:
        bag.publish(MARKER_TOPIC, M.STRING, start_ns, {"data": "start"})
    frames = _EpisodeFrames()
    goal_every = CONTROL_HZ // GOAL_RATE_HZ
    k = 0
    while not operator.done:
        t = k / CONTROL_HZ
        sample(sim.time)
        images = sim.render_all(hw)
        eef, obj, goal = sim.eef_pose(), sim.object_pose(), sim.goal
        arm, fingers = sim.arm_state(), sim.finger_state()
        state = sim.get_state()
        cmd = operator.act(sim)
        if operator.done:
            break  # the operator calls it done: this frame is not recorded (no action follows it)
        if bag is not None:
            ts = wall(t)
            for camera, rgb in images.items():
                phase = wrist_phase_ns if camera == "wrist" else 0
                msgtype, body = _camera_body(camera, rgb, compressed_wrist and camera == "wrist")
                bag.publish(CAMERA_TOPICS[camera], msgtype, ts + phase, body, f"{camera}_camera_optical_frame")
            bag.publish(ACTION_TOPIC, M.FLOAT32_MULTI_ARRAY, ts + 1_500_000, _array_msg(cmd.action, ACTION_LABEL))
            bag.publish(GRASP_TOPIC, M.BOOL, ts + 1_500_000, {"data": bool(cmd.grasp)})
            if k % goal_every == 0:
                bag.publish(GOAL_TOPIC, M.POINT_STAMPED, ts, _point_msg(goal), WORLD_FRAME)
        target = np.concatenate([sim.commanded_eef_pos(cmd.action), eef[3:]])
        frames.add(
            t=t,
            front=images["front"],
            wrist=images["wrist"],
            joint_pos=arm.position,
            gripper=fingers.position,
            eef_pose=eef,
            object_pose=obj,
            goal=goal,
            action=cmd.action,
            state=state,
            target=target,
            grasp=cmd.grasp,
            place=cmd.place,
        )
        sim.step(cmd.action, on_substep=sample)
        k += 1
        if bag is not None:
            bag.flush(before_ns=wall(k / CONTROL_HZ) - 10_000_000)
    success = bool(sim.is_success())
    end_t = k / CONTROL_HZ
    end_ns = wall(end_t) + 5_000_000
    if bag is not None:
        bag.publish(SUCCESS_TOPIC, M.BOOL, wall(end_t) + 2_000_000, {"data": success})
        bag.publish(MARKER_TOPIC, M.STRING, end_ns, {"data": "end"})
        bag.flush()
    f = frames.take()
    hdf5 = {
        "timestamps": f["t"],
        "obs": {feature.name: f[feature.name] for feature in session_schema(hw).features},
        "actions": f["action"],
        "states": f["state"],
        "datagen": {
            OBJECT_POSE: {"cube": pose_to_matrix(f["object_pose"])},
            EEF_POSE: {"gripper": pose_to_matrix(f["eef_pose"])},
            TARGET_EEF_POSE: {"gripper": pose_to_matrix(f["target"])},
            SUBTASK_TERM_SIGNALS: {"grasp": f["grasp"].astype(bool), "place": f["place"].astype(bool)},
        },
    }
    return {
        "success": success,
        "frames": k,
        "operator": {**params.to_json(), "retries": operator.retries},
        "start_ns": start_ns,
        "end_ns": end_ns,
        "hdf5": hdf5,
    }


# -- synthetic recordings for benchmarks ----------------------------------------------------------------


def _camera_topic(index: int) -> tuple[str, str]:
    names = list(CAMERA_TOPICS)
    if index < len(names):
        return names[index], CAMERA_TOPICS[names[index]]
    return f"cam{index}", f"/camera/cam{index}/image_raw"


class _PatternCamera:
    """Cheap moving images: a fixed textured canvas (gradients, stripes, grain) panned per frame, plus a
    moving block. Not constant, not per-pixel noise each frame, and compressible like a real camera."""

    def __init__(self, hw: tuple[int, int], rng: np.random.Generator):
        h, w = hw
        self.h, self.w = h, w
        yy, xx = np.mgrid[0 : h + h // 2, 0 : 2 * w].astype(np.float32)
        r = 128 + 100 * np.sin(xx / (23 + 20 * rng.random())) * np.cos(yy / 41)
        g = 255 * (yy / (h + h // 2))
        b = 128 + 90 * np.sin((xx + yy) / (57 + 30 * rng.random()))
        grain = rng.integers(0, 12, size=(h + h // 2, 2 * w), dtype=np.uint8).astype(np.float32)
        self.canvas = np.clip(np.stack([r, g, b], axis=-1) + grain[..., None], 0, 255).astype(np.uint8)
        self.speed = (int(rng.integers(2, 6)), int(rng.integers(1, 3)))
        self.block = max(4, min(h, w) // 8)

    def frame(self, k: int) -> np.ndarray:
        x = (k * self.speed[0]) % self.w
        y = (k * self.speed[1]) % (self.h // 2)
        img = self.canvas[y : y + self.h, x : x + self.w].copy()
        s = self.block
        bx = int((0.5 + 0.4 * np.sin(k / 20)) * (self.w - s))
        by = int((0.5 + 0.4 * np.cos(k / 27)) * (self.h - s))
        img[by : by + s, bx : bx + s] = (20, 20, 20)
        return img


def write_synthetic_mcap(
    path: str | Path,
    seconds: float = 60.0,
    cameras: int = 2,
    image_hw: tuple[int, int] = (480, 640),
    joint_rate: int = 100,
    *,
    seed: int = 0,
    episode_s: float = 20.0,
    gap_s: float = 0.5,
    compressed_wrist: bool = False,
    chunk_size: int = 4 * 1024 * 1024,
) -> dict[str, Any]:
    """Write a large MCAP with the topics of :func:`record_session` but no physics, fast (for benchmarks).

    ``seconds`` of recording are cut into episodes of ``episode_s`` (markers, success) separated by
    ``gap_s`` without messages. Cameras beyond front and wrist publish on ``/camera/cam<i>/image_raw``.
    Joint states and the end-effector pose are smooth sinusoids at ``joint_rate``; the other streams keep
    their rates (object 50 Hz, goal 10 Hz, action and grasp 30 Hz).
    """
    if seconds <= 0 or cameras < 0 or joint_rate <= 0:
        raise RecorderError(
            f"{path}: need seconds > 0, cameras >= 0, joint_rate > 0 (got {seconds}, {cameras}, {joint_rate})"
        )
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    hw = (int(image_hw[0]), int(image_hw[1]))
    cams = [(*_camera_topic(i), _PatternCamera(hw, rng)) for i in range(cameras)]
    names = list(ARM_JOINTS) + list(FINGER_JOINTS)
    phases = rng.uniform(0, 2 * np.pi, len(names))
    start_ns = WALL_CLOCK_EPOCH_S * _NS + int(rng.integers(0, 86_400)) * _NS
    sigma = {topic: 1.5 for _, topic, _ in cams} | {JOINT_STATES_TOPIC: 0.8, EEF_POSE_TOPIC: 0.8, **_EXACT}

    def pose_at(t: float, radius: float) -> np.ndarray:
        xyz = [1.3 + radius * np.cos(t), 0.75 + radius * np.sin(t), 0.5 + 0.05 * np.sin(2 * t)]
        return np.array([*xyz, 0.0, 0.707, 0.0, 0.707])

    episodes = []
    t = 0.0
    while t < seconds - 0.1:  # a tail shorter than 0.1 s is left out
        episodes.append((t, min(seconds, t + episode_s)))
        t += episode_s + gap_s
    with atomic_path(path, kind="file") as tmp, McapRos2Writer(tmp, chunk_size=chunk_size) as writer:
        bag = _BagWriter(writer, _DriverClock(rng, sigma))
        writer.add_metadata("robodata", {"source": f"{SOURCE}-synthetic", "task": TASK, "robot_type": ROBOT_TYPE})
        frame_k = 0
        for e, (a, b) in enumerate(episodes):
            a_ns = start_ns + int(a * _NS)
            bag.publish(MARKER_TOPIC, M.STRING, a_ns, {"data": "start"})
            first = a_ns + 20_000_000
            duration = b - a - 0.03
            # One merged timeline of (time, stream) ticks for this episode, in time order.
            rates = {"joint": joint_rate, "object": OBJECT_RATE_HZ, "camera": CONTROL_HZ, "goal": GOAL_RATE_HZ}
            ticks = sorted((i / hz, kind) for kind, hz in rates.items() for i in range(int(duration * hz) + 1))
            goal = pose_at(float(e), 0.1)[:3]
            for tt, kind in ticks:
                ts = first + int(round(tt * _NS))
                if kind == "joint":
                    pos = 0.8 * np.sin(0.7 * tt + phases)
                    pos[-2:] = 0.025 + 0.02 * np.sin(0.5 * tt + phases[-2:])
                    vel = 0.56 * np.cos(0.7 * tt + phases)
                    bag.publish(JOINT_STATES_TOPIC, M.JOINT_STATE, ts, _joint_msg(names, pos, vel), "")
                    bag.publish(EEF_POSE_TOPIC, M.POSE_STAMPED, ts, _pose_msg(pose_at(tt, 0.15)), WORLD_FRAME)
                elif kind == "object":
                    bag.publish(OBJECT_POSE_TOPIC, M.POSE_STAMPED, ts, _pose_msg(pose_at(tt - 0.1, 0.15)), WORLD_FRAME)
                elif kind == "goal":
                    bag.publish(GOAL_TOPIC, M.POINT_STAMPED, ts, _point_msg(goal), WORLD_FRAME)
                else:
                    for ci, (cam, topic, source) in enumerate(cams):
                        msgtype, body = _camera_body(cam, source.frame(frame_k), compressed_wrist and cam == "wrist")
                        bag.publish(topic, msgtype, ts + ci * 4_000_000, body, f"{cam}_camera_optical_frame")
                    frame_k += 1
                    act = 0.3 * np.sin(np.array([1.0, 1.3, 0.7, 0.2]) * tt)
                    held = bool(0.3 < tt / max(duration, 1e-9) < 0.8)
                    bag.publish(ACTION_TOPIC, M.FLOAT32_MULTI_ARRAY, ts + 1_500_000, _array_msg(act, ACTION_LABEL))
                    bag.publish(GRASP_TOPIC, M.BOOL, ts + 1_500_000, {"data": held})
                    bag.flush(before_ns=ts - 10_000_000)
            end = first + int(duration * _NS) + 5_000_000
            bag.publish(SUCCESS_TOPIC, M.BOOL, end - 3_000_000, {"data": bool(e % 5 != 4)})
            bag.publish(MARKER_TOPIC, M.STRING, end, {"data": "end"})
            bag.flush()
        counts = dict(writer.counts)
    size = Path(path).stat().st_size
    return {
        "path": Path(path),
        "bytes": size,
        "messages": sum(counts.values()),
        "topics": counts,
        "episodes": len(episodes),
        "seconds": seconds,
        "image_hw": list(hw),
        "wall_time_s": time.perf_counter() - t0,
    }
