"""The local simulator: gymnasium-robotics Fetch pick-and-place (MuJoCo), headless, 30 Hz control, two cameras.

One :class:`FetchPickPlace` owns one MuJoCo model for its whole life (episodes are resets, not re-creations).
Physics runs at 600 Hz and a control step applies one action for 20 physics sub-steps (1/30 s); a callback
after every sub-step lets a recorder sample joint states (100 Hz) or the object pose (50 Hz) *between*
control steps, as real drivers would publish them.

Conventions: positions in metres in the world frame, quaternions ``xyzw`` (ROS order; MuJoCo's is ``wxyz``),
joint names without MuJoCo's ``robot0:`` prefix (the real Fetch names, e.g. ``shoulder_pan_joint``).
Needs ``MUJOCO_GL=egl`` (set here when unset) and, on Debian, ``libegl1 libegl-mesa0 libgl1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from robodata.errors import RobodataError

ENV_ID = "FetchPickAndPlace-v4"
CONTROL_HZ = 30
PHYSICS_HZ = 600
SUCCESS_DISTANCE = 0.05
ACTION_SCALE = 0.05  # metres of end-effector motion per control step for an action component of 1 (Fetch's own)
ARM_JOINTS = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "upperarm_roll_joint",
    "elbow_flex_joint",
    "forearm_roll_joint",
    "wrist_flex_joint",
    "wrist_roll_joint",
)
FINGER_JOINTS = ("r_gripper_finger_joint", "l_gripper_finger_joint")
# A camera is a MuJoCo camera name, or a free camera looking at a point (MuJoCo's mjvCamera fields).
# "front" is a third-person view across the table (the model's external_camera_0 shows the cube at ~4 px);
# "wrist" is the camera in Fetch's gripper, looking down between the fingers.
FRONT_CAMERA: dict[str, Any] = {"lookat": [1.3, 0.75, 0.55], "distance": 1.0, "azimuth": 150.0, "elevation": -30.0}
DEFAULT_CAMERAS: dict[str, str | dict[str, Any]] = {"front": FRONT_CAMERA, "wrist": "gripper_camera_rgb"}
DEFAULT_IMAGE_HW = (96, 128)
# Semantic classes of :meth:`FetchPickPlace.render_semantic` (for segmentation control videos).
SEGMENT_CLASSES = {"background": 0, "floor": 1, "table": 2, "robot": 3, "object": 4}

_PREFIX = "robot0:"
_GRIP_SITE = "robot0:grip"
_OBJECT_BODY = "object0"
_OBJECT_JOINT = "object0:joint"
_TARGET_SITE = "target0"
_FINGER_GEOMS = ("robot0:r_gripper_finger_link", "robot0:l_gripper_finger_link")


class SimulatorError(RobodataError):
    """The simulator cannot be created or was used wrongly (unknown camera, bad state vector...)."""


@dataclass
class JointState:
    """Names, positions (rad or m) and velocities of a set of joints, in the given order."""

    names: list[str]
    position: np.ndarray
    velocity: np.ndarray


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 1:4], q[..., :1]], axis=-1)


def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)


def pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """``(..., 7)`` poses (xyz + quat xyzw) -> ``(..., 4, 4)`` homogeneous transforms."""
    pose = np.asarray(pose, dtype=np.float64)
    x, y, z, w = (pose[..., 3 + i] for i in range(4))
    n = np.sqrt(x * x + y * y + z * z + w * w)
    n = np.where(n == 0, 1.0, n)
    x, y, z, w = x / n, y / n, z / n, w / n
    out = np.zeros(pose.shape[:-1] + (4, 4))
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - z * w)
    out[..., 0, 2] = 2 * (x * z + y * w)
    out[..., 1, 0] = 2 * (x * y + z * w)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - x * w)
    out[..., 2, 0] = 2 * (x * z - y * w)
    out[..., 2, 1] = 2 * (y * z + x * w)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    out[..., :3, 3] = pose[..., :3]
    out[..., 3, 3] = 1.0
    return out


class FetchPickPlace:
    """Fetch pick-and-place in MuJoCo with 30 Hz control, sub-step sampling and RGB/depth/segmentation cameras.

    Args:
        image_hw: size ``(H, W)`` of rendered camera images.
        cameras: our camera name -> a MuJoCo camera name (``head_camera_rgb``, ``gripper_camera_rgb``,
            ``external_camera_0``) or a free camera ``{"lookat": xyz, "distance", "azimuth", "elevation"}``.
        control_hz, physics_hz: control and physics rates; ``physics_hz`` must be a multiple of ``control_hz``.
    """

    def __init__(
        self,
        image_hw: tuple[int, int] = DEFAULT_IMAGE_HW,
        cameras: Mapping[str, str | Mapping[str, Any]] | None = None,
        *,
        control_hz: int = CONTROL_HZ,
        physics_hz: int = PHYSICS_HZ,
    ):
        if physics_hz % control_hz:
            raise SimulatorError(f"physics rate {physics_hz} Hz is not a multiple of the control rate {control_hz} Hz")
        try:
            from gymnasium_robotics.envs.fetch.pick_and_place import MujocoFetchPickAndPlaceEnv
        except Exception as err:
            raise SimulatorError(f"cannot import gymnasium-robotics' Fetch environment ({err})") from err
        try:
            self._env = MujocoFetchPickAndPlaceEnv()
        except Exception as err:
            raise SimulatorError(f"cannot create the Fetch pick-and-place environment ({err})") from err
        self.model: mujoco.MjModel = self._env.model
        self.data: mujoco.MjData = self._env.data
        self.control_hz = control_hz
        self.physics_hz = physics_hz
        self.n_substeps = physics_hz // control_hz
        # The env was built (and its start pose settled) at 500 Hz; from here on physics runs at physics_hz.
        self.model.opt.timestep = 1.0 / physics_hz
        self._env.n_substeps = self.n_substeps
        self.cameras: dict[str, str | dict[str, Any]] = {
            k: v if isinstance(v, str) else dict(v) for k, v in (cameras or DEFAULT_CAMERAS).items()
        }
        self._mjv_cameras = {name: self._make_camera(name, spec) for name, spec in self.cameras.items()}
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

        def ids(kind: mujoco.mjtObj, names: Sequence[str]) -> np.ndarray:
            return np.array([mujoco.mj_name2id(self.model, kind, n) for n in names])

        self.arm_joints = list(ARM_JOINTS)
        self.finger_joints = list(FINGER_JOINTS)
        arm = ids(mujoco.mjtObj.mjOBJ_JOINT, [_PREFIX + j for j in ARM_JOINTS])
        fingers = ids(mujoco.mjtObj.mjOBJ_JOINT, [_PREFIX + j for j in FINGER_JOINTS])
        self._arm_q, self._arm_v = self.model.jnt_qposadr[arm], self.model.jnt_dofadr[arm]
        self._fin_q, self._fin_v = self.model.jnt_qposadr[fingers], self.model.jnt_dofadr[fingers]
        self._grip_site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, _GRIP_SITE)
        self._target_site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, _TARGET_SITE)
        self._object_body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, _OBJECT_BODY)
        self._object_geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, _OBJECT_BODY)
        self._finger_geoms = set(ids(mujoco.mjtObj.mjOBJ_GEOM, _FINGER_GEOMS).tolist())
        jnt = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, _OBJECT_JOINT)
        self._obj_q = int(self.model.jnt_qposadr[jnt])
        self._obj_v = int(self.model.jnt_dofadr[jnt])
        self._semantic_lut = self._build_semantic_lut()
        self._goal: np.ndarray = np.zeros(3)
        self._t0 = 0.0
        self.reset(seed=0)

    # -- episode control -------------------------------------------------------------------------------

    @property
    def dt(self) -> float:
        """Seconds per control step."""
        return 1.0 / self.control_hz

    @property
    def time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self.data.time - self._t0)

    @property
    def initial_gripper_pos(self) -> np.ndarray:
        return np.array(self._env.initial_gripper_xpos, dtype=np.float64)

    @property
    def table_height(self) -> float:
        """Height of the object's centre when it rests on the table."""
        return float(self._env.height_offset)

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: robot at its start pose, object and goal at positions drawn from ``seed``.

        Fetch's own distributions: object within +-15 cm of the gripper (at least 10 cm away), goal within
        +-15 cm, on the table or (half the time) up to 45 cm in the air.
        """
        self._env.reset(seed=seed)
        self._goal = np.array(self._env.goal, dtype=np.float64)
        self._sync_after_teleport()
        self._t0 = float(self.data.time)

    def set_object_pose(self, pos: Sequence[float], quat_xyzw: Sequence[float] | None = None) -> None:
        """Place the object (velocity zeroed); orientation unchanged when ``quat_xyzw`` is None."""
        q = self.data.qpos
        q[self._obj_q : self._obj_q + 3] = np.asarray(pos, dtype=np.float64)
        if quat_xyzw is not None:
            quat = quat_xyzw_to_wxyz(np.asarray(quat_xyzw, dtype=np.float64))
            q[self._obj_q + 3 : self._obj_q + 7] = quat / np.linalg.norm(quat)
        self.data.qvel[self._obj_v : self._obj_v + 6] = 0.0
        self._sync_after_teleport()

    def set_goal(self, xyz: Sequence[float]) -> None:
        self._goal = np.asarray(xyz, dtype=np.float64).reshape(3).copy()
        self._sync_after_teleport()

    def _sync_after_teleport(self) -> None:
        self._env.goal = self._goal.copy()
        mujoco.mj_forward(self.model, self.data)
        # Move the (invisible) goal marker where the goal is, and the mocap onto the gripper so that nothing
        # pulls the arm before the first action.
        self._env._render_callback()
        from gymnasium_robotics.utils import mujoco_utils

        mujoco_utils.reset_mocap2body_xpos(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)

    def step(self, action: Sequence[float] | np.ndarray, on_substep: Callable[[float], None] | None = None) -> bool:
        """Apply a 4-d action ``(dx, dy, dz, gripper)`` in [-1, 1] for one control step; return success.

        ``on_substep(t)`` is called after every physics sub-step with the simulated time since reset (s).
        """
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if a.shape != (4,):
            raise SimulatorError(f"action must have 4 components (dx, dy, dz, gripper), got {a.shape[0]}")
        self._env._set_action(a)
        for _ in range(self.n_substeps):
            mujoco.mj_step(self.model, self.data)
            if on_substep is not None:
                on_substep(self.time)
        self._env._step_callback()
        return self.is_success()

    def commanded_eef_pos(self, action: Sequence[float] | np.ndarray) -> np.ndarray:
        """Where ``action`` asks the end effector to go from the current pose (Fetch's mocap target)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[:3], -1.0, 1.0)
        return self.eef_pose()[:3] + ACTION_SCALE * a

    # -- state -----------------------------------------------------------------------------------------

    def arm_state(self) -> JointState:
        return JointState(self.arm_joints, self.data.qpos[self._arm_q].copy(), self.data.qvel[self._arm_v].copy())

    def finger_state(self) -> JointState:
        return JointState(self.finger_joints, self.data.qpos[self._fin_q].copy(), self.data.qvel[self._fin_v].copy())

    def joint_state(self) -> JointState:
        """Arm joints then the two finger joints (what ``/joint_states`` publishes)."""
        a, f = self.arm_state(), self.finger_state()
        return JointState(
            a.names + f.names, np.concatenate([a.position, f.position]), np.concatenate([a.velocity, f.velocity])
        )

    def eef_pose(self) -> np.ndarray:
        """Gripper site pose: ``(7,)`` xyz + quat xyzw."""
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._grip_site])
        return np.concatenate([self.data.site_xpos[self._grip_site], quat_wxyz_to_xyzw(quat)])

    def object_pose(self) -> np.ndarray:
        """Object (cube) pose: ``(7,)`` xyz + quat xyzw."""
        return np.concatenate(
            [self.data.xpos[self._object_body], quat_wxyz_to_xyzw(self.data.xquat[self._object_body])]
        )

    @property
    def goal(self) -> np.ndarray:
        return self._goal.copy()

    def object_goal_distance(self) -> float:
        return float(np.linalg.norm(self.data.xpos[self._object_body] - self._goal))

    def is_success(self) -> bool:
        """Fetch's criterion: the object's centre within 5 cm of the goal."""
        return self.object_goal_distance() < SUCCESS_DISTANCE

    def is_grasping(self) -> bool:
        """Both fingers touch the object."""
        n = self.data.ncon
        if n == 0:
            return False
        pairs = np.asarray(self.data.contact.geom[:n])
        touching = set()
        for g1, g2 in pairs:
            if g1 == self._object_geom and g2 in self._finger_geoms:
                touching.add(int(g2))
            elif g2 == self._object_geom and g1 in self._finger_geoms:
                touching.add(int(g1))
        return len(touching) == 2

    @property
    def state_size(self) -> int:
        return int(self.model.nq + self.model.nv)

    def get_state(self) -> np.ndarray:
        """The full simulator state: qpos then qvel, flattened ``(nq + nv,)``."""
        return np.concatenate([self.data.qpos, self.data.qvel]).copy()

    def set_state(self, state: Sequence[float]) -> None:
        s = np.asarray(state, dtype=np.float64).reshape(-1)
        if s.shape[0] != self.state_size:
            raise SimulatorError(f"a Fetch state has {self.state_size} values (qpos + qvel), got {s.shape[0]}")
        self.data.qpos[:] = s[: self.model.nq]
        self.data.qvel[:] = s[self.model.nq :]
        self._sync_after_teleport()

    # -- cameras ---------------------------------------------------------------------------------------

    def _renderer(self, hw: tuple[int, int] | None) -> mujoco.Renderer:
        h, w = hw or self.image_hw
        r = self._renderers.get((h, w))
        if r is None:
            vis = self.model.vis.global_
            vis.offheight, vis.offwidth = max(vis.offheight, h), max(vis.offwidth, w)
            r = mujoco.Renderer(self.model, height=h, width=w)
            self._renderers[(h, w)] = r
        return r

    def _make_camera(self, name: str, spec: str | Mapping[str, Any]) -> str | mujoco.MjvCamera:
        if isinstance(spec, str):
            known = {self.model.camera(i).name for i in range(self.model.ncam)}
            if spec not in known:
                raise SimulatorError(f"camera {name!r} maps to {spec!r}, which is not a Fetch camera ({sorted(known)})")
            return spec
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        try:
            cam.lookat[:] = np.asarray(spec["lookat"], dtype=np.float64)
            cam.distance = float(spec["distance"])
            cam.azimuth = float(spec["azimuth"])
            cam.elevation = float(spec["elevation"])
        except (KeyError, TypeError, ValueError) as err:
            raise SimulatorError(
                f"free camera {name!r} needs lookat (xyz), distance, azimuth and elevation, got {dict(spec)}"
            ) from err
        return cam

    def _camera(self, name: str) -> str | mujoco.MjvCamera:
        if name in self._mjv_cameras:
            return self._mjv_cameras[name]
        known = {self.model.camera(i).name for i in range(self.model.ncam)}
        if name in known:
            return name
        raise SimulatorError(
            f"unknown camera {name!r} (one of {sorted(self.cameras)} or a Fetch camera {sorted(known)})"
        )

    def render(self, camera: str, hw: tuple[int, int] | None = None) -> np.ndarray:
        """RGB image ``(H, W, 3)`` uint8 of a camera (our name, e.g. ``front``, or a MuJoCo camera name)."""
        r = self._renderer(hw)
        r.update_scene(self.data, camera=self._camera(camera))
        return r.render().copy()

    def render_all(self, hw: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        return {name: self.render(name, hw) for name in self.cameras}

    def render_depth(self, camera: str, hw: tuple[int, int] | None = None) -> np.ndarray:
        """Depth image ``(H, W)`` float32 in metres."""
        r = self._renderer(hw)
        r.enable_depth_rendering()
        try:
            r.update_scene(self.data, camera=self._camera(camera))
            return r.render().astype(np.float32)
        finally:
            r.disable_depth_rendering()

    def render_segmentation(self, camera: str, hw: tuple[int, int] | None = None) -> np.ndarray:
        """Geom-id image ``(H, W)`` int32 (-1 where no geom); see :meth:`render_semantic` for classes."""
        r = self._renderer(hw)
        r.enable_segmentation_rendering()
        try:
            r.update_scene(self.data, camera=self._camera(camera))
            seg = r.render()
        finally:
            r.disable_segmentation_rendering()
        ids, types = seg[..., 0], seg[..., 1]
        return np.where(types == int(mujoco.mjtObj.mjOBJ_GEOM), ids, -1).astype(np.int32)

    def render_semantic(self, camera: str, hw: tuple[int, int] | None = None) -> np.ndarray:
        """Class image ``(H, W)`` uint8 with :data:`SEGMENT_CLASSES` (background, floor, table, robot, object)."""
        seg = self.render_segmentation(camera, hw)
        return self._semantic_lut[seg + 1]

    def _build_semantic_lut(self) -> np.ndarray:
        lut = np.zeros(self.model.ngeom + 1, dtype=np.uint8)  # index 0 = no geom
        for g in range(self.model.ngeom):
            body = self.model.body(self.model.geom_bodyid[g]).name
            name = self.model.geom(g).name
            if g == self._object_geom:
                cls = "object"
            elif name == "floor0":
                cls = "floor"
            elif body.startswith(_PREFIX):
                cls = "robot"
            elif body.startswith("table"):
                cls = "table"
            else:
                cls = "background"
            lut[g + 1] = SEGMENT_CLASSES[cls]
        return lut

    # -- lifetime --------------------------------------------------------------------------------------

    def env_kwargs(self) -> dict[str, Any]:
        """What an episode store records about this simulator (Isaac Lab's ``env_kwargs``)."""
        return {
            "env_id": ENV_ID,
            "fps": self.control_hz,
            "physics_hz": self.physics_hz,
            "image_hw": list(self.image_hw),
            "cameras": dict(self.cameras),
            "success_distance": SUCCESS_DISTANCE,
        }

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def __enter__(self) -> FetchPickPlace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
