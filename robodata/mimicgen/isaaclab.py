"""The production engine: Isaac Lab Mimic's ``annotate_demos.py`` then ``generate_dataset.py``, their command
lines and their output collected.

Both run in the Isaac Lab container (NVIDIA's ``isaac-lab`` image, from your registry) wrapped by
:mod:`robodata.mimicgen.pipes_entry`, which reports back to Dagster through Dagster Pipes. Isaac Lab 3.0::

    # 1. source demos without obs/datagen_info -> annotated demos (skipped when the source is annotated already)
    /workspace/isaaclab/isaaclab.sh -p scripts/imitation_learning/isaaclab_mimic/annotate_demos.py \\
        --task Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0 --input_file IN --output_file ANNOTATED --auto \\
        --enable_pinocchio --device cuda --headless --enable_cameras
    # 2. annotated demos -> generated demos
    /workspace/isaaclab/isaaclab.sh -p scripts/imitation_learning/isaaclab_mimic/generate_dataset.py \\
        --task Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0 --input_file ANNOTATED --output_file OUT \\
        --generation_num_trials 1000 --num_envs 10 --enable_pinocchio --device cuda --headless --enable_cameras

``--enable_pinocchio`` goes with the Pink-IK tasks (the GR1T2 humanoid ones: pinocchio must be imported before
Isaac Sim starts). Isaac Lab 3.0 writes quaternions ``x, y, z, w`` (2.x: ``w, x, y, z``); the order of the
output is decided from the image's Isaac Lab version and stamped into its ``env_args``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robodata.formats.isaaclab import EpisodeStore, EpisodeStoreError
from robodata.formats.isaaclab_layout import (
    ACTIONS,
    DATA_GROUP,
    DATAGEN_GROUP,
    EEF_POSE,
    ENV_ARGS_ATTR,
    ENV_NAME_KEY,
    GRIPPER_ACTION,
    OBJECT_POSE,
    OBS_GROUP,
    SUBTASK_TERM_SIGNALS,
    SUCCESS_ATTR,
    TARGET_EEF_POSE,
)
from robodata.mimicgen.config import IsaacLabMimicConfig, SubtaskConfig
from robodata.mimicgen.errors import MimicGenError
from robodata.mimicgen.validate import CHECK_FINITE, CHECK_INVARIANT, CHECK_LENGTHS, CHECK_SUCCESS, Check

GENERATE_SCRIPT = "generate_dataset.py"
ANNOTATE_SCRIPT = "annotate_demos.py"


@dataclass(frozen=True)
class MimicTask:
    """One Isaac Lab Mimic task: whether it needs ``--enable_pinocchio`` (Pink IK) and what it was called before."""

    task_id: str
    pinocchio: bool = False
    robot: str = ""


# The Mimic tasks Isaac Lab registers (isaaclab_mimic.envs and isaaclab_mimic.envs.pinocchio_envs).
MIMIC_TASKS: dict[str, MimicTask] = {t.task_id: t for t in (
    MimicTask("Isaac-Stack-Cube-Franka-IK-Rel-Mimic-v0", robot="franka"),
    MimicTask("Isaac-Stack-Cube-Franka-IK-Rel-Blueprint-Mimic-v0", robot="franka"),
    MimicTask("Isaac-Stack-Cube-Franka-IK-Abs-Mimic-v0", robot="franka"),
    MimicTask("Isaac-Stack-Cube-Franka-IK-Rel-Visuomotor-Mimic-v0", robot="franka"),
    MimicTask("Isaac-Stack-Cube-Franka-IK-Rel-Visuomotor-Cosmos-Mimic-v0", robot="franka"),
    MimicTask("Isaac-Stack-Cube-Galbot-Left-Arm-Gripper-RmpFlow-Rel-Mimic-v0", robot="galbot"),
    MimicTask("Isaac-Stack-Cube-Galbot-Right-Arm-Suction-RmpFlow-Rel-Mimic-v0", robot="galbot"),
    MimicTask("Isaac-Stack-Cube-Galbot-Left-Arm-Gripper-RmpFlow-Abs-Mimic-v0", robot="galbot"),
    MimicTask("Isaac-Stack-Cube-Galbot-Right-Arm-Suction-RmpFlow-Abs-Mimic-v0", robot="galbot"),
    MimicTask("Isaac-PickPlace-GR1T2-Abs-Mimic-v0", pinocchio=True, robot="gr1t2"),
    MimicTask("Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0", pinocchio=True, robot="gr1t2"),
    MimicTask("Isaac-ExhaustPipe-GR1T2-Pink-IK-Abs-Mimic-v0", pinocchio=True, robot="gr1t2"),
)}
# Earlier names of tasks (Isaac Lab renamed them); a config naming one is told the current name.
RENAMED_TASKS: dict[str, str] = {
    "Isaac-Stack-Cube-Franka-IK-Rel-Mimic": "Isaac-Stack-Cube-Franka-IK-Rel-Mimic-v0",
    "Isaac-PickPlace-GR1T2-Pink-IK-Abs-Mimic-v0": "Isaac-PickPlace-GR1T2-Abs-Mimic-v0",
}


def mimic_task(task: str) -> MimicTask:
    """The table's entry for ``task`` (a custom task not in the table: Pink IK when its name says so)."""
    name = task.split(":")[-1]
    if name in RENAMED_TASKS:
        raise MimicGenError(f"tiers.synthetic_demos.isaaclab.task: {name!r} is now called {RENAMED_TASKS[name]!r} "
                            "in Isaac Lab")
    return MIMIC_TASKS.get(name) or MimicTask(name, pinocchio="Pink-IK" in name)


def _script_command(cfg: IsaacLabMimicConfig, script: str) -> list[str]:
    """``cfg.command`` (which runs generate_dataset.py) with its script swapped for ``script``."""
    cmd = list(cfg.command)
    for i in range(len(cmd) - 1, -1, -1):
        if cmd[i].endswith(GENERATE_SCRIPT):
            cmd[i] = cmd[i][: -len(GENERATE_SCRIPT)] + script
            return cmd
    return cmd if script == GENERATE_SCRIPT else [*cmd, script]  # a stand-in: the script name as its first argument


def _launcher_flags(cfg: IsaacLabMimicConfig) -> list[str]:
    argv = ["--enable_pinocchio"] if mimic_task(cfg.task).pinocchio else []
    argv += ["--device", cfg.device]
    if cfg.headless:
        argv.append("--headless")
    if cfg.enable_cameras:
        argv.append("--enable_cameras")
    return argv


def annotate_demos_argv(cfg: IsaacLabMimicConfig, input_file: str, output_file: str) -> list[str]:
    """The exact ``annotate_demos.py`` command line (automatic annotation from the task's subtask signals)."""
    return [*_script_command(cfg, ANNOTATE_SCRIPT), "--task", cfg.task, "--input_file", str(input_file),
            "--output_file", str(output_file), "--auto", *_launcher_flags(cfg)]


def generate_dataset_argv(cfg: IsaacLabMimicConfig, input_file: str, output_file: str) -> list[str]:
    """The exact ``generate_dataset.py`` command line for ``cfg``."""
    argv = [*_script_command(cfg, GENERATE_SCRIPT), "--task", cfg.task, "--input_file", str(input_file),
            "--output_file", str(output_file), "--generation_num_trials", str(cfg.generation_num_trials),
            "--num_envs", str(cfg.num_envs), *_launcher_flags(cfg)]
    return argv + list(cfg.extra_args)


def is_annotated(path: str | os.PathLike[str]) -> bool:
    """True when every demo of the Isaac Lab HDF5 at ``path`` has ``obs/datagen_info`` (Mimic's annotations)."""
    with h5py.File(path, "r") as f:
        data = f.get(DATA_GROUP)
        demos = [data[k] for k in data if isinstance(data[k], h5py.Group)] if data is not None else []
        return bool(demos) and all(f"{OBS_GROUP}/{DATAGEN_GROUP}" in d for d in demos)


def isaaclab_quaternion_order(image: str) -> str:
    """The quaternion order an Isaac Lab image writes: ``wxyz`` for 2.x tags, else ``xyzw`` (3.0 and later)."""
    m = re.search(r":v?(\d+)\.", image or "")
    return "wxyz" if m and int(m.group(1)) < 3 else "xyzw"


def stamp_quaternion_order(path: str | os.PathLike[str], order: str) -> None:
    """Record ``order`` in the file's ``env_args`` (``quaternion_order``), where robodata's readers look for it."""
    with h5py.File(path, "r+") as f:
        data = f[DATA_GROUP]
        raw = data.attrs.get(ENV_ARGS_ATTR, "{}")
        args = json.loads(raw.decode() if isinstance(raw, bytes) else raw or "{}")
        args["quaternion_order"] = order
        data.attrs[ENV_ARGS_ATTR] = json.dumps(args)


def summarize_output(path: str | os.PathLike[str], min_frames: int = 1, max_frames: int = 100_000,
                     quaternion_order: str | None = None) -> dict[str, Any]:
    """Read a generated Isaac Lab HDF5: demos, frames, successes, lengths, and which demos hold NaN or bad lengths.

    ``quaternion_order`` is the order the file's quaternions are in (``xyzw`` for Isaac Lab 3.0); without it the
    file's stamp or its data decide."""
    p = Path(path)
    try:
        es = EpisodeStore(p, quaternion_order=quaternion_order)
    except EpisodeStoreError as err:
        raise MimicGenError(f"Isaac Lab Mimic wrote no usable dataset: {err}") from err
    with es:
        lengths, successes, nan, bad_len = [], 0, [], []
        for name in es.demo_names:
            n = es.num_samples(name)
            lengths.append(n)
            successes += bool(es.attrs(name).get(SUCCESS_ATTR, True))
            if not min_frames <= n <= max_frames:
                bad_len.append(name)
            found: list[str] = []
            es.group(name).visititems(lambda k, d: found.append(k) if isinstance(d, h5py.Dataset)  # noqa: B023 - called at once
                                      and d.dtype.kind == "f" and not np.isfinite(d[()]).all() else None)
            if found:
                nan.append(name)
        return {"demos": len(es.demo_names), "frames": int(sum(lengths)), "successes": successes,
                "min_len": min(lengths, default=0), "max_len": max(lengths, default=0),
                "nan_demos": nan, "bad_length_demos": bad_len, "env_name": es.env_args.get(ENV_NAME_KEY, "")}


def pipes_entry_argv(output_file: str, min_frames: int, max_frames: int, argv: list[str], *,
                     step: str = "generate", quaternion_order: str | None = None) -> list[str]:
    """``argv`` wrapped by :mod:`robodata.mimicgen.pipes_entry`, which reports the output through Dagster Pipes."""
    import sys

    extra = ["--step", step] + (["--quaternion_order", quaternion_order] if quaternion_order else [])
    return [sys.executable, "-m", "robodata.mimicgen.pipes_entry", "--output_file", str(output_file),
            "--min_frames", str(min_frames), "--max_frames", str(max_frames), *extra, "--", *argv]


# A controller lags its target: these catch a recorded pose that is wrong, not a controller that is slow.
TRACKING_POS_TOLERANCE_M = 0.10
TRACKING_ROT_TOLERANCE_RAD = 0.5
RIGID_TOLERANCE = 1e-3  # |R^T R - I|, |det R - 1| and the bottom row of a (4, 4) pose
NO_PROVENANCE = ("Isaac Lab Mimic records no per-subtask source provenance (which source demo and frames each "
                 "subtask was transformed from) to recompute the invariant against")


def _not_rigid(T: np.ndarray) -> np.ndarray:
    """Per pose of ``(N, 4, 4)``: True where it is not a valid rigid transform (non-finite, rotation not
    orthonormal or a reflection, bottom row not ``[0, 0, 0, 1]``)."""
    T = np.asarray(T, np.float64)
    finite = np.isfinite(T).all(axis=(-2, -1))
    T = np.where(finite[:, None, None], T, np.eye(4))
    R = T[:, :3, :3]
    orth = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(axis=(-2, -1)) <= RIGID_TOLERANCE
    proper = np.abs(np.linalg.det(R) - 1.0) <= RIGID_TOLERANCE
    bottom = np.abs(T[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=-1) <= RIGID_TOLERANCE
    return ~(finite & orth & proper & bottom)


def _subtask_of_frames(n: int, subtasks: Sequence[SubtaskConfig], signals: dict[str, np.ndarray]) -> list[str]:
    """The subtask each of ``n`` frames belongs to: a subtask ends at the first rising edge of its term signal
    after the previous one ended (the last runs to the end); "?" where the demo records no signals."""
    if not subtasks or not signals:
        return ["?"] * n
    out, start = [], 0
    for st in subtasks:
        end = n
        sig = signals.get(st.term_signal or "")
        if st is not subtasks[-1] and sig is not None:
            hits = np.flatnonzero(sig[start:n]) + start
            end = int(hits[0]) + 1 if hits.size else n
        out += [st.name] * max(end - start, 0)
        start = max(end, start)
    return (out + ["?"] * n)[:n]


def pose_consistency(path: str | os.PathLike[str], subtasks: Sequence[SubtaskConfig] = (), *,
                     pos_tolerance: float = TRACKING_POS_TOLERANCE_M,
                     rot_tolerance: float = TRACKING_ROT_TOLERANCE_RAD) -> dict[str, Any]:
    """What an Isaac Lab Mimic output's own poses say: per demo and end effector, ``obs/datagen_info/eef_pose``
    tracks ``target_eef_pose`` (within the tolerances) and both are rigid transforms. Returns the demos
    checked, those recording no pose pair, the per-subtask worst tracking errors and the problems found
    (each naming its demo, subtask, end effector and frame)."""
    from robodata.mimicgen.poses import pose_error

    checked: list[str] = []
    no_poses: list[str] = []
    per_subtask: dict[str, dict[str, float]] = {}
    problems: list[str] = []
    with h5py.File(path, "r") as f:
        demos = f[DATA_GROUP]
        for name in sorted(k for k in demos if isinstance(demos[k], h5py.Group)):
            di = demos[name].get(f"{OBS_GROUP}/{DATAGEN_GROUP}")
            eef = di.get(EEF_POSE) if di is not None else None
            tgt = di.get(TARGET_EEF_POSE) if di is not None else None
            eefs = sorted(set(eef) & set(tgt)) if eef is not None and tgt is not None else []
            if not eefs or eef is None or tgt is None:
                no_poses.append(name)
                continue
            sig_group = di.get(SUBTASK_TERM_SIGNALS)
            signals = {k: np.asarray(v[()]).reshape(-1).astype(bool) for k, v in sig_group.items()} if sig_group else {}
            for e in eefs:
                measured, target = np.asarray(eef[e][()], np.float64), np.asarray(tgt[e][()], np.float64)
                n = min(len(measured), len(target))
                labels = _subtask_of_frames(n, subtasks, signals)
                if len(measured) != len(target):
                    problems.append(f"{name} (eef {e}): {len(measured)} eef poses for {len(target)} targets")
                bad = np.zeros(n, bool)
                for kind, poses in ((EEF_POSE, measured[:n]), (TARGET_EEF_POSE, target[:n])):
                    wrong = _not_rigid(poses)
                    if wrong.any():
                        i = int(np.flatnonzero(wrong)[0])
                        problems.append(f"{name} subtask {labels[i]} ({kind} {e}, frame {i} and {int(wrong.sum()) - 1} "
                                        "more): not a rigid transform")
                    bad |= wrong
                ok = np.flatnonzero(~bad)
                if not ok.size:
                    continue
                dp, dr = pose_error(measured[ok], target[ok])
                for j, i in enumerate(ok):
                    row = per_subtask.setdefault(labels[i], {"max_tracking_pos_m": 0.0, "max_tracking_rot_rad": 0.0})
                    row["max_tracking_pos_m"] = max(row["max_tracking_pos_m"], float(dp[j]))
                    row["max_tracking_rot_rad"] = max(row["max_tracking_rot_rad"], float(dr[j]))
                over = np.flatnonzero((dp > pos_tolerance) | (dr > rot_tolerance))
                if over.size:
                    j = int(over[0])
                    i = int(ok[j])
                    problems.append(f"{name} subtask {labels[i]} (eef {e}, frame {i} and {over.size - 1} more): the eef "
                                    f"pose is {dp[j]:.3g} m / {dr[j]:.3g} rad from its target")
            checked.append(name)
    for row in per_subtask.values():
        for k, v in row.items():
            row[k] = float(f"{v:.3g}")
    return {"demos_checked": checked, "demos_without_poses": no_poses, "per_subtask": per_subtask,
            "problems": problems, "pos_tolerance_m": pos_tolerance, "rot_tolerance_rad": rot_tolerance}


# While the gripper holds an object, the eef does not move in the object's frame: more than this is a slip or a
# pose recorded wrong (a firm grasp settles within millimetres; the tolerance leaves room for soft fingers).
GRASP_DRIFT_POS_TOLERANCE_M = 0.02
GRASP_DRIFT_ROT_TOLERANCE_RAD = 0.2
_GRIPPER_OBS = ("gripper_pos", "gripper_state", "gripper_qpos", "gripper_action")  # obs terms of one gripper
PROVENANCE_KEYS = ("src_demo_inds", "src_demo_labels")  # MimicGen's per-subtask source demos (and per frame)


def _gripper_signal(g: h5py.Group, di: h5py.Group, eef: str, single: bool) -> tuple[np.ndarray | None, str]:
    """The gripper of ``eef`` per frame and where it came from: ``datagen_info/gripper_action/<eef>``, else (one
    end effector only) a gripper obs term, else the last action column when it is binary (Isaac Lab's
    ``BinaryJointPositionAction``, ``actions_to_gripper_actions``); ``None`` when the demo records none."""
    ga = di.get(GRIPPER_ACTION)
    if isinstance(ga, h5py.Group) and isinstance(ga.get(eef), h5py.Dataset):
        return np.asarray(ga[eef][()], np.float64), f"{OBS_GROUP}/{DATAGEN_GROUP}/{GRIPPER_ACTION}/{eef}"
    if isinstance(ga, h5py.Dataset) and single:
        return np.asarray(ga[()], np.float64), f"{OBS_GROUP}/{DATAGEN_GROUP}/{GRIPPER_ACTION}"
    if not single:
        return None, ""
    obs = g.get(OBS_GROUP)
    for term in _GRIPPER_OBS:
        ds = obs.get(term) if isinstance(obs, h5py.Group) else None
        if isinstance(ds, h5py.Dataset) and ds.ndim in (1, 2) and np.issubdtype(ds.dtype, np.number):
            return np.asarray(ds[()], np.float64), f"{OBS_GROUP}/{term}"
    act = g.get(ACTIONS)
    if isinstance(act, h5py.Dataset) and act.ndim == 2 and act.shape[1] > 1:
        last = np.asarray(act[:, -1], np.float64)
        if len(np.unique(last)) == 2:
            return last, f"{ACTIONS}[:, -1] (binary)"
    return None, ""


def _closed(gripper: np.ndarray) -> np.ndarray:
    """Per frame: the gripper is closed. A demo starts with it open (every Mimic task does), so closed is the
    far half of its travel from the first frame: sign and units free (a -1/+1 command, finger joint positions)."""
    x = gripper.reshape(len(gripper), -1).mean(axis=1)
    d = np.abs(x - x[0]) if len(x) else x
    span = float(d.max()) if len(d) else 0.0
    return d > span / 2 if span > 1e-6 else np.zeros(len(x), bool)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True of at least two frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= 2]


def _provenance(g: h5py.Group) -> dict[str, Any]:
    """MimicGen's per-subtask source provenance where a file records it: ``src_demo_inds`` (one source demo per
    subtask) and ``src_demo_labels`` (one per frame, given here as ``[start, end, source]`` runs), as datasets or
    attributes of the demo, its ``datagen_info`` or ``obs/datagen_info``."""
    out: dict[str, Any] = {}
    for where in (g, g.get(DATAGEN_GROUP), g.get(f"{OBS_GROUP}/{DATAGEN_GROUP}")):
        if not isinstance(where, h5py.Group):
            continue
        for key in PROVENANCE_KEYS:
            if key in out:
                continue
            v = where.get(key)
            raw = v[()] if isinstance(v, h5py.Dataset) else where.attrs.get(key)
            if raw is None:
                continue
            if isinstance(raw, (str, bytes)):
                raw = json.loads(raw)
            arr = np.asarray(raw).reshape(-1)
            if key == "src_demo_labels":
                edges = [0, *(np.flatnonzero(np.diff(arr)) + 1).tolist(), len(arr)]
                out[key] = [[int(a), int(b), arr[a].item()] for a, b in zip(edges, edges[1:], strict=False) if b > a]
            else:
                out[key] = arr.tolist()
    return out


def grasp_consistency(path: str | os.PathLike[str], subtasks: Sequence[SubtaskConfig] = (), *,
                      pos_tolerance: float = GRASP_DRIFT_POS_TOLERANCE_M,
                      rot_tolerance: float = GRASP_DRIFT_ROT_TOLERANCE_RAD) -> dict[str, Any]:
    """The eef pose against the object pose: while the gripper is closed (:func:`_gripper_signal`) on the object of
    the subtask in which it closed (its ``object_ref``: a grasp subtask ends holding its object), the eef pose in
    that object's frame (``object_pose^-1 . eef_pose``) stays what it was when the grasp took hold (the grasp
    subtask's last frame, where its term signal rises; else the first closed frame). Returns the
    largest drift per demo and subtask (``grasp_drift``), the demos evaluated, the reason for each demo that
    could not be (``demos_not_evaluated``), the problems found and each demo's source provenance."""
    from robodata.mimicgen.poses import pose_error, relative_to

    refs = {st.name: st.object_ref for st in subtasks}
    drift: dict[str, dict[str, dict[str, Any]]] = {}
    evaluated: list[str] = []
    skipped: dict[str, str] = {}
    problems: list[str] = []
    provenance: dict[str, dict[str, Any]] = {}
    with h5py.File(path, "r") as f:
        demos = f[DATA_GROUP]
        for name in sorted((k for k in demos if isinstance(demos[k], h5py.Group)), key=_demo_order):
            g = demos[name]
            prov = _provenance(g)
            if prov:
                provenance[name] = prov
            di = g.get(f"{OBS_GROUP}/{DATAGEN_GROUP}")
            eef = di.get(EEF_POSE) if isinstance(di, h5py.Group) else None
            objs = di.get(OBJECT_POSE) if isinstance(di, h5py.Group) else None
            if not isinstance(eef, h5py.Group) or not isinstance(objs, h5py.Group) or not len(eef):
                skipped[name] = f"no {EEF_POSE} and {OBJECT_POSE} in {OBS_GROUP}/{DATAGEN_GROUP}"
                continue
            if not subtasks:
                skipped[name] = "no subtasks configured (which object each grasp holds)"
                continue
            sig_group = di.get(SUBTASK_TERM_SIGNALS)
            signals = {k: np.asarray(v[()]).reshape(-1).astype(bool) for k, v in sig_group.items()} if sig_group else {}
            why, done = [], False
            for e in sorted(eef):
                grip, _src = _gripper_signal(g, di, e, len(eef) == 1)
                if grip is None:
                    why.append(f"eef {e}: no gripper action or state recorded")
                    continue
                T_eef = np.asarray(eef[e][()], np.float64)
                n = min(len(T_eef), len(grip))
                labels = _subtask_of_frames(n, subtasks, signals)
                runs = _runs(_closed(grip[:n]))
                if not runs:
                    why.append(f"eef {e}: the gripper never closes")
                for a, b in runs:
                    label = labels[a]
                    obj = refs.get(label)
                    if obj is None or obj not in objs:
                        why.append(f"eef {e}: a grasp at frame {a} in subtask {label} whose object "
                                   f"{obj!r} has no {OBJECT_POSE}")
                        continue
                    # held from where the subtask's term signal says so (the fingers have closed), else from the
                    # first closed frame, to the gripper's opening
                    ends = [i for i in range(a, b) if labels[i] != label]
                    a = ends[0] - 1 if ends and ends[0] - 1 > a else a
                    T_obj = np.asarray(objs[obj][a:b], np.float64)
                    rel = relative_to(T_obj, T_eef[a:b])
                    if len(rel) < 2 or not np.isfinite(rel).all():
                        continue  # a non-finite pose: the finite check names it
                    dp, dr = pose_error(rel, np.broadcast_to(rel[0], rel.shape))
                    row = drift.setdefault(name, {}).setdefault(label, {"object": obj, "eef": e,
                                                                        "max_drift_pos_m": 0.0, "max_drift_rot_rad": 0.0})
                    row["max_drift_pos_m"] = max(row["max_drift_pos_m"], float(f"{dp.max():.3g}"))
                    row["max_drift_rot_rad"] = max(row["max_drift_rot_rad"], float(f"{dr.max():.3g}"))
                    done = True
                    over = np.flatnonzero((dp > pos_tolerance) | (dr > rot_tolerance))
                    if over.size:
                        problems.append(f"{name} subtask {label} (eef {e} holding {obj}, frame {a + int(over[0])} and "
                                        f"{over.size - 1} more of the grasp over frames {a}-{b - 1}): the eef moved up "
                                        f"to {dp.max():.3g} m / {dr.max():.3g} rad in the object's frame while the "
                                        "gripper was closed")
            if done:
                evaluated.append(name)
            else:
                skipped[name] = "; ".join(why) or "nothing to compare"
    return {"grasp_drift": drift, "demos_grasp_evaluated": evaluated, "demos_not_evaluated": skipped,
            "problems": problems, "provenance": provenance, "drift_pos_tolerance_m": pos_tolerance,
            "drift_rot_tolerance_rad": rot_tolerance}


def _demo_order(name: str) -> tuple[int, str]:
    m = re.match(r"^demo_(\d+)$", name)
    return (int(m.group(1)) if m else 1 << 30, name)


def invariant_check(path: str | os.PathLike[str], subtasks: Sequence[SubtaskConfig] = ()) -> Check:
    """``object_centric_invariant`` on an Isaac Lab Mimic output, from what it records.

    Failed when its recorded poses are inconsistent: the eef off its target or not rigid
    (:func:`pose_consistency`), or the eef moving in the frame of the object it holds (:func:`grasp_consistency`).
    Passed only when the eef-vs-object comparison was made (a demo recording eef and object poses and a
    gripper) and found nothing. Otherwise NOT EVALUATED, never passed: Isaac Lab Mimic writes no per-subtask
    source provenance (its ``DataGenerator.generate`` keeps the selected source demos to itself), so the
    transfer itself cannot be recomputed; where a file does record it (``src_demo_inds`` / ``src_demo_labels``,
    as MimicGen writes them) it is in the details (``provenance``)."""
    c = pose_consistency(path, subtasks)
    grasp = grasp_consistency(path, subtasks)
    details = {k: (v[:20] if isinstance(v, list) else v) for k, v in c.items()}
    details["grasp"] = {k: (v[:20] if isinstance(v, list) else dict(list(v.items())[:20]) if isinstance(v, dict) else v)
                        for k, v in grasp.items() if k != "provenance"}
    if grasp["provenance"]:
        details["provenance"] = dict(list(grasp["provenance"].items())[:20])
    problems = c["problems"] + grasp["problems"]
    if problems:
        return Check(CHECK_INVARIANT, False, {**details, "evaluated": True},
                     f"{len(problems)} recorded poses are inconsistent: " + "; ".join(problems[:5]))
    n_prov = len(grasp["provenance"])
    prov = (f"{n_prov} demos record their per-subtask source demos (in the details), but the sources are not "
            "here to recompute the transfer against" if n_prov else NO_PROVENANCE)
    if grasp["demos_grasp_evaluated"]:
        return Check(CHECK_INVARIANT, True, {**details, "evaluated": True,
                                             "evaluated_what": "eef pose held in the grasped object's frame; "
                                             "eef tracks target; rigid transforms", "not_evaluated_what": prov})
    not_grasp = "; ".join(f"{d}: {why}" for d, why in list(grasp["demos_not_evaluated"].items())[:3])
    grasp_why = f"; the eef-vs-object comparison could not be made ({not_grasp})" if not_grasp else ""
    if not c["demos_checked"]:
        return Check.not_evaluated(CHECK_INVARIANT, prov + f", and no demo records both "
                                   f"{OBS_GROUP}/{DATAGEN_GROUP}/{EEF_POSE} and {TARGET_EEF_POSE} to check "
                                   "for consistency" + grasp_why, details)
    return Check.not_evaluated(CHECK_INVARIANT, prov + f"; its recorded poses are consistent in "
                               f"{len(c['demos_checked'])} demos (eef tracks target, rigid transforms)" + grasp_why,
                               details)


def isaaclab_checks(path: str | os.PathLike[str], min_frames: int = 1, max_frames: int = 100_000,
                    subtasks: Sequence[SubtaskConfig] = (), quaternion_order: str | None = None) -> dict[str, Check]:
    """The four checks of ``synthetic_demos`` on an Isaac Lab Mimic output, from what it records.

    Success comes from Isaac Lab's own flags (its simulator is not here to replay in); the object-centric
    invariant from :func:`invariant_check` (failed on inconsistent poses, otherwise not evaluated).
    """
    s = summarize_output(path, min_frames, max_frames, quaternion_order)
    failed = s["demos"] - s["successes"]
    return {
        CHECK_SUCCESS: Check(CHECK_SUCCESS, failed == 0 and s["demos"] > 0,
                             {"demos": s["demos"], "successes": s["successes"], "note": "success flags of Isaac Lab"},
                             "Isaac Lab Mimic wrote no demos" if not s["demos"] else
                             f"{failed} of {s['demos']} demos are flagged failed by Isaac Lab Mimic"),
        CHECK_INVARIANT: invariant_check(path, subtasks),
        CHECK_FINITE: Check(CHECK_FINITE, not s["nan_demos"], {"bad": s["nan_demos"][:20]},
                            f"{len(s['nan_demos'])} demos hold NaN or inf ({', '.join(s['nan_demos'][:5])})"),
        CHECK_LENGTHS: Check(CHECK_LENGTHS, not s["bad_length_demos"], {"out_of_bounds": s["bad_length_demos"][:20]},
                             f"{len(s['bad_length_demos'])} demos are outside [{min_frames}, {max_frames}] frames "
                             f"({', '.join(s['bad_length_demos'][:5])})"),
    }
