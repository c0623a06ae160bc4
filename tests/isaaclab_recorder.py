"""HDF5 files laid out the way Isaac Lab's own recorder writes them (not with robodata's writer).

Isaac Lab's ``HDF5DatasetFileHandler`` (``isaaclab/utils/datasets/hdf5_dataset_file_handler.py``) writes an
episode's data dict recursively: a dict-valued term becomes a group, every tensor one dataset created with
``compression="gzip"``; ``/data`` carries ``total`` and ``env_args`` (JSON ``{"env_name", "type": 2}``), a
demo ``num_samples`` (``len(actions)``), ``seed`` and ``success``. There are no per-frame timestamps. The
recorder terms of the manager-based envs (``ActionStateRecorderManagerCfg``) give ``actions``,
``processed_actions``, ``initial_state`` and ``states`` (``scene.get_state()``: ``articulation/<name>/
{joint_position, joint_velocity, root_pose, root_velocity}``, ``rigid_object/<name>/{root_pose,
root_velocity}``) and ``obs`` (the policy group's terms); Isaac Lab Mimic's annotation adds
``obs/datagen_info/{object_pose, eef_pose, target_eef_pose, subtask_term_signals}/<name>``. Recorded one env
at a time, ``initial_state`` leaves are ``(1, D)``.

``root_pose`` is position + quaternion: ``w, x, y, z`` in Isaac Lab 2.x, ``x, y, z, w`` from 3.0 on.

With ``flat_obs`` the policy group is recorded as Isaac Lab's ``PreStepFlatPolicyObservationsRecorder`` does
with ``concatenate_terms=True`` (the default outside record_demos / Mimic): ``obs`` is ``obs_buf["policy"]``,
one ``(T, D)`` dataset of the terms concatenated in order, not a group (no cameras, no datagen_info in it).

:func:`write_robomimic_dataset` writes robomimic's own layout (its ``docs/datasets/overview``): ``/data`` with
``total`` and ``env_args`` (``{"env_name", "type": 1, "env_kwargs": {"control_freq", ...}}``), demos
``demo_1``... (robosuite's collection counts from 1) with ``actions``, ``rewards``, ``dones``, a flat
``states``, ``obs/`` and ``next_obs/`` and the ``num_samples`` / ``model_file`` attributes, and the root
``/mask`` group of filter keys (``train``, ``valid``: arrays of demo names as bytes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

JOINTS = 9  # Franka: 7 arm joints + 2 finger joints


def _put(group: h5py.Group, key: str, value: Any) -> None:
    """The recorder's ``create_dataset_helper``: dicts become groups, arrays gzip-compressed datasets."""
    if isinstance(value, dict):
        sub = group.create_group(key)
        for k, v in value.items():
            _put(sub, k, v)
    else:
        group.create_dataset(key, data=np.asarray(value), compression="gzip")


def _quat(yaw: np.ndarray, order: str) -> np.ndarray:
    """Rotations about z as quaternions in ``order`` (``wxyz`` or ``xyzw``)."""
    w, z = np.cos(yaw / 2), np.sin(yaw / 2)
    zero = np.zeros_like(yaw)
    cols = (w, zero, zero, z) if order == "wxyz" else (zero, zero, z, w)
    return np.stack(cols, axis=-1).astype(np.float32)


def _pose_matrix(pos: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    m = np.tile(np.eye(4, dtype=np.float32), (len(pos), 1, 1))
    c, s = np.cos(yaw), np.sin(yaw)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    m[:, :3, 3] = pos
    return m


# The policy terms of demo_data's obs, in order: what a flat (concatenate_terms=True) obs concatenates.
POLICY_TERMS = ("actions", "joint_pos", "joint_vel", "object", "eef_pos", "eef_quat", "gripper_pos")


def demo_data(frames: int, seed: int, *, quat_order: str = "wxyz", cameras: bool = True,
              datagen: bool = True, flat_obs: bool = False) -> dict[str, Any]:
    """One episode's data dict, as Isaac Lab's recorder collects it for a Franka cube-lift task (``flat_obs``:
    the policy group concatenated into one ``(T, D)`` array, as ``concatenate_terms=True`` gives it)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float32)
    joints = (0.3 * np.sin(t[:, None] / 9 + np.arange(JOINTS)) + rng.normal(0, 0.01, (frames, JOINTS))).astype(np.float32)
    robot_yaw = np.zeros(frames)  # a fixed-base robot at the origin
    cube_yaw = np.full(frames, 0.4 + 0.1 * seed)
    cube_pos = np.tile(np.array([0.5, 0.1 * seed, 0.02], np.float32), (frames, 1))
    cube_pos[:, 2] += np.clip(t - frames / 2, 0, None) * 0.002
    eef_pos = (cube_pos + np.array([0, 0, 0.1], np.float32)).astype(np.float32)

    def root(pos: np.ndarray, yaw: np.ndarray) -> np.ndarray:
        return np.concatenate([pos, _quat(yaw, quat_order)], axis=1).astype(np.float32)

    robot = {
        "joint_position": joints,
        "joint_velocity": np.gradient(joints, axis=0).astype(np.float32),
        "root_pose": root(np.zeros((frames, 3), np.float32), robot_yaw),
        "root_velocity": np.zeros((frames, 6), np.float32),
    }
    cube = {"root_pose": root(cube_pos, cube_yaw), "root_velocity": np.zeros((frames, 6), np.float32)}
    states = {"articulation": {"robot": robot}, "rigid_object": {"cube": cube}}
    initial = {kind: {name: {k: v[:1] for k, v in leaves.items()} for name, leaves in group.items()}
               for kind, group in states.items()}
    actions = rng.uniform(-1, 1, (frames, 7)).astype(np.float32)
    obs: dict[str, Any] = {
        "actions": actions,  # Isaac Lab's policy group often observes the last action
        "joint_pos": joints,
        "joint_vel": robot["joint_velocity"],
        "object": np.concatenate([cube_pos, cube["root_pose"][:, 3:]], axis=1),
        "eef_pos": eef_pos,
        "eef_quat": _quat(np.zeros(frames), quat_order),
        "gripper_pos": joints[:, 7:9],
    }
    if flat_obs:  # obs_buf["policy"]: a tensor, so the recorder writes one dataset
        flat = np.concatenate([obs[k].reshape(frames, -1) for k in POLICY_TERMS], axis=1).astype(np.float32)
        return {"actions": actions, "processed_actions": np.concatenate([actions, actions[:, -1:]], axis=1),
                "initial_state": initial, "states": states, "obs": flat}
    if cameras:
        img = rng.integers(0, 255, (frames, 24, 32, 3), dtype=np.uint8)
        obs["table_cam"] = img
        obs["wrist_cam"] = img[:, ::-1].copy()
    if datagen:
        grasped = t >= frames // 2
        obs["datagen_info"] = {
            "object_pose": {"cube": _pose_matrix(cube_pos, cube_yaw)},
            "eef_pose": {"franka": _pose_matrix(eef_pos, np.zeros(frames))},
            "target_eef_pose": {"franka": _pose_matrix(eef_pos + 0.001, np.zeros(frames))},
            "subtask_term_signals": {"grasp": grasped},
        }
    return {"actions": actions, "processed_actions": np.concatenate([actions, actions[:, -1:]], axis=1),
            "initial_state": initial, "states": states, "obs": obs}


def write_isaaclab_recording(path: Path, *, demos: int = 2, frames: int = 20, quat_order: str = "wxyz",
                             env_name: str = "Isaac-Lift-Cube-Franka-IK-Rel-Mimic-v0", cameras: bool = True,
                             datagen: bool = True, env_args: dict[str, Any] | None = None,
                             flat_obs: bool = False) -> Path:
    """A file as ``HDF5DatasetFileHandler.create`` + ``write_episode`` leave it (demo_0, demo_1, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["total"] = 0
        data.attrs["env_args"] = json.dumps({"env_name": env_name, "type": 2, **(env_args or {})})
        for i in range(demos):
            ep = demo_data(frames + 3 * i, seed=i, quat_order=quat_order, cameras=cameras, datagen=datagen,
                           flat_obs=flat_obs)
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = len(ep["actions"])
            g.attrs["seed"] = 42 + i
            g.attrs["success"] = True
            for key, value in ep.items():
                _put(g, key, value)
            data.attrs["total"] += g.attrs["num_samples"]
    return path


def write_robomimic_dataset(path: Path, *, demos: int = 3, frames: int = 12, control_freq: int | None = 20,
                            masks: dict[str, list[str]] | None = None) -> Path:
    """A robomimic low-dim dataset (robosuite Lift): demos ``demo_1``..``demo_<demos>`` of ``frames + i`` frames,
    quaternions ``x, y, z, w`` (robosuite's order), filter keys ``masks`` (default: train = all but the last,
    valid = the last)."""
    names = [f"demo_{i + 1}" for i in range(demos)]
    masks = masks if masks is not None else {"train": names[:-1], "valid": names[-1:]}
    kwargs: dict[str, Any] = {"has_renderer": False, "robots": ["Panda"], "controller_configs": {"type": "OSC_POSE"}}
    if control_freq is not None:
        kwargs["control_freq"] = control_freq
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": kwargs})
        total = 0
        for i, name in enumerate(names):
            n = frames + i
            rng = np.random.default_rng(i)
            g = data.create_group(name)
            g.create_dataset("actions", data=rng.uniform(-1, 1, (n, 7)))
            g.create_dataset("rewards", data=np.zeros(n))
            g.create_dataset("dones", data=(np.arange(n) == n - 1).astype(np.int64))
            g.create_dataset("states", data=rng.normal(size=(n, 32)))
            quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)) + rng.normal(0, 1e-4, (n, 4))
            obs = {"robot0_eef_pos": rng.normal(size=(n, 3)), "robot0_eef_quat": quat / np.linalg.norm(quat, axis=1)[:, None],
                   "robot0_gripper_qpos": rng.normal(size=(n, 2)), "object": rng.normal(size=(n, 10))}
            for key in ("obs", "next_obs"):
                for k, v in obs.items():
                    g.create_dataset(f"{key}/{k}", data=v)
            g.attrs["num_samples"] = n
            g.attrs["model_file"] = "<mujoco model='lift'/>"
            total += n
        data.attrs["total"] = total
        for key, demo_names in masks.items():
            f.create_dataset(f"mask/{key}", data=np.array(demo_names, dtype="S"))
    return path


def leaves(path: Path, demo: str = "demo_0") -> dict[str, np.ndarray]:
    """Every dataset of a demo group by its path inside the group (what Isaac Lab's ``load_episode`` reads)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f[f"data/{demo}"].visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out
