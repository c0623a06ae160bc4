"""Python-API plugins over the robot model: a joint-limit validator and action-space stages.

Rows are the pipeline's episode rows (``action`` and ``observation.state`` as ``(T, D)`` arrays, ``fps``).
Joint columns are located by a start column and the joint names' count: ``state_start=0`` and seven joints
means ``observation.state[:, 0:7]``. Conventions as in :mod:`robodata.robot.kinematics` (rad/m, poses xyz +
quat xyzw). Models load when the plugin is built (a bad file or name fails the run at once, with one message)
and again, lazily, in each Ray worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from robodata.api.extensions import PipelineStage, Validator
from robodata.robot.actions import (
    ActionNormalizer,
    ActionSpaceError,
    delta_to_pose,
    pose_to_delta,
    to_absolute,
    to_delta,
)
from robodata.robot.model import RobotModel
from robodata.stages.base import Finding

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

    from robodata.robot.kinematics import Kinematics


class _ModelConfig:
    """The robot-model part of a plugin's config, with the model loaded once per process."""

    def __init__(self, model: str | os.PathLike[str], joints: Sequence[str], *, format: str | None = None,
                 ee_frame: str | None = None, name_prefix: str = "",
                 locked: Mapping[str, float | Sequence[float]] | None = None):
        self.model_path, self.joints = str(model), list(joints)
        self.model_format, self.ee_frame, self.name_prefix = format, ee_frame, name_prefix
        self.locked = dict(locked or {})
        self._kin: Kinematics | None = None
        self._robot: RobotModel | None = self._load()  # fails at construction on a bad file or joint name

    def _load(self) -> RobotModel:
        return RobotModel.load(self.model_path, self.model_format, self.ee_frame, self.joints,
                               locked=self.locked, name_prefix=self.name_prefix)

    @property
    def robot(self) -> RobotModel:
        if self._robot is None:
            self._robot = self._load()
        return self._robot

    @property
    def kinematics(self) -> Kinematics:
        from robodata.robot.kinematics import Kinematics

        if self._kin is None:
            self._kin = Kinematics(self.robot)
        return self._kin

    def __getstate__(self) -> dict[str, Any]:  # pinocchio objects stay behind; workers reload the file
        return {k: v for k, v in self.__dict__.items() if k not in ("_robot", "_kin")} | {"_robot": None, "_kin": None}


def _columns(arr: np.ndarray, start: int, width: int, what: str) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < start + width:
        raise ValueError(f"{what} has shape {a.shape}: no columns {start}..{start + width - 1}")
    return a[:, start:start + width]


POSE_NAMES = ("x", "y", "z", "qx", "qy", "qz", "qw")  # an end-effector pose's action columns


def _names(episode: dict[str, Any], width: int) -> list[str]:
    """The names of the row's action columns: a stage's (``action_names``), else ``action_<i>``."""
    got = episode.get("action_names")
    names = [] if got is None else [str(n) for n in np.asarray(got, dtype=object).reshape(-1)]
    return names if len(names) == width else [f"action_{i}" for i in range(width)]


# ---- validator ----------------------------------------------------------------------------------------------


class JointLimits(_ModelConfig, Validator):
    """Joint positions (and velocities) in ``observation.state`` within the URDF/MJCF model's limits.

    Config: ``model`` (a URDF or MJCF path), ``joints`` (the data's joint names, in column order),
    ``state_start`` (the first joint column), ``velocity_start`` (recorded velocity columns; default: velocities
    from positions at the episode's fps), ``position_tolerance``/``velocity_tolerance``, ``name_prefix``.
    One finding per joint and kind, naming the frame ranges.
    """

    name = "joint_limits"

    def __init__(self, model: str, joints: Sequence[str], state_start: int = 0, velocity_start: int | None = None,
                 position_tolerance: float = 1e-3, velocity_tolerance: float = 0.0, **kw: Any):
        super().__init__(model, joints, **kw)
        self.state_start, self.velocity_start = int(state_start), velocity_start
        self.position_tolerance, self.velocity_tolerance = float(position_tolerance), float(velocity_tolerance)

    def validate_episode(self, episode: dict[str, Any]) -> Iterable[Finding]:
        from robodata.robot.validate import validate_joints

        state = episode["observation.state"]
        q = _columns(state, self.state_start, len(self.joints), "observation.state")
        v = None if self.velocity_start is None else _columns(state, self.velocity_start, len(self.joints),
                                                              "observation.state")
        t = np.arange(len(q)) / float(episode.get("fps") or 1.0)
        for f in validate_joints(self.robot, self.joints, q, v, t, position_tolerance=self.position_tolerance,
                                 velocity_tolerance=self.velocity_tolerance):
            yield self.finding(f.message, episode)


# ---- joint <-> end-effector actions -------------------------------------------------------------------------


class EndEffectorActions(_ModelConfig, PipelineStage):
    """Absolute joint-position actions -> end-effector pose actions by forward kinematics.

    ``action[:, action_start : action_start + J]`` (the ``joints``) becomes 7 columns xyz + quat xyzw of
    ``ee_frame``; the other action columns (a gripper) stay, in order.
    """

    name = "end_effector_actions"

    def __init__(self, model: str, joints: Sequence[str], ee_frame: str, action_start: int = 0, **kw: Any):
        super().__init__(model, joints, ee_frame=ee_frame, **kw)
        self.action_start = int(action_start)

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        a = np.asarray(episode["action"], dtype=np.float64)
        s, j = self.action_start, len(self.joints)
        pose = self.kinematics.fk_pose(_columns(a, s, j, "action"))
        names = _names(episode, a.shape[1])
        return {**episode, "action": np.concatenate([a[:, :s], pose, a[:, s + j:]], axis=1).astype(np.float32),
                "action_names": [*names[:s], *POSE_NAMES, *names[s + j:]]}


class JointActions(_ModelConfig, PipelineStage):
    """End-effector pose actions (xyz + quat xyzw at ``action_start``) -> joint positions by IK.

    Each frame's IK starts from the previous frame's solution; the first from the joints in
    ``observation.state`` at ``state_start`` when given, else the model's reference configuration. An episode
    whose IK misses a pose by more than ``max_position_error`` (m) or ``max_rotation_error`` (rad) fails,
    naming the frame and the residual.
    """

    name = "joint_actions"

    def __init__(self, model: str, joints: Sequence[str], ee_frame: str, action_start: int = 0,
                 state_start: int | None = None, max_position_error: float = 1e-3,
                 max_rotation_error: float = 1e-2, **kw: Any):
        super().__init__(model, joints, ee_frame=ee_frame, **kw)
        self.action_start, self.state_start = int(action_start), state_start
        self.max_position_error, self.max_rotation_error = float(max_position_error), float(max_rotation_error)

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        from robodata.api.errors import PipelineError

        a = np.asarray(episode["action"], dtype=np.float64)
        s = self.action_start
        seed = None
        if self.state_start is not None:
            seed = _columns(episode["observation.state"], self.state_start, len(self.joints), "observation.state")[0]
        res = self.kinematics.ik(_columns(a, s, 7, "action"), seed)
        bad = np.flatnonzero((res.position_error > self.max_position_error)
                             | (res.rotation_error > self.max_rotation_error))
        if bad.size:
            k = int(bad[0])
            raise PipelineError(f"IK did not reach the end-effector pose at frame {k} of {len(a)} "
                                f"({len(bad)} frame(s) missed; residual {res.position_error[k] * 1000:.2f} mm, "
                                f"{np.degrees(res.rotation_error[k]):.2f} deg) with {self.robot.path.name}")
        names = _names(episode, a.shape[1])
        return {**episode, "action": np.concatenate([a[:, :s], res.q, a[:, s + 7:]], axis=1).astype(np.float32),
                "action_names": [*names[:s], *self.joints, *names[s + 7:]]}


# ---- delta <-> absolute -------------------------------------------------------------------------------------


class _DeltaConfig(PipelineStage):
    def __init__(self, dims: Sequence[int], state_dims: Sequence[int], pose: bool = False, frame: str = "local"):
        self.dims, self.state_dims = [int(d) for d in dims], [int(d) for d in state_dims]
        if len(self.dims) != len(self.state_dims):
            raise ValueError(f"{type(self).__name__}: dims {self.dims} and state_dims {self.state_dims} differ in length")
        if pose and len(self.dims) != 7:
            raise ValueError(f"{type(self).__name__}: a pose needs 7 dims (xyz + quat xyzw), got {len(self.dims)}")
        self.pose, self.frame = pose, frame

    def _convert(self, episode: dict[str, Any], forward: bool) -> dict[str, Any]:
        a = np.asarray(episode["action"], dtype=np.float64)
        ref = np.asarray(episode["observation.state"], dtype=np.float64)[:, self.state_dims]
        if self.pose:
            conv = pose_to_delta if forward else delta_to_pose
            out = a.copy()
            out[:, self.dims] = conv(a[:, self.dims], ref, self.frame)
        else:
            out = (to_delta if forward else to_absolute)(a, ref, self.dims)
        return {**episode, "action": out.astype(np.float32)}


class DeltaActions(_DeltaConfig):
    """Absolute actions -> deltas from the state: ``action[:, dims] -= observation.state[:, state_dims]``
    (``pose: true``: 7 dims xyz + quat xyzw, rotation delta in the state's frame, ``frame: local|world``)."""

    name = "delta_actions"

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        return self._convert(episode, True)


class AbsoluteActions(_DeltaConfig):
    """Delta actions -> absolute: ``action[:, dims] += observation.state[:, state_dims]`` (the inverse of
    :class:`DeltaActions`, same config)."""

    name = "absolute_actions"

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any] | None:
        return self._convert(episode, False)


# ---- normalisation -------------------------------------------------------------------------------------------


class NormalizeActions(PipelineStage):
    """Normalise ``action`` (``mean_std``, ``min_max`` or ``quantile``) with statistics fitted over the episodes
    that are published, or read from ``stats`` (a dataset folder or a ``robodata_action_norm.json``).

    In the Python API a fitting stage runs last: its statistics are fitted after validators and dedup, over the
    rows that are written (:meth:`fit_published`), and applied as the parts are written; with ``stats`` it
    applies them in place, in order. Elsewhere (a Dagster tier) :meth:`process` fits over the episodes it is
    given. :meth:`write_statistics` stores them with the output (``meta/robodata_action_norm.json``, with the
    action feature's names) and marks ``info.json`` (``action_normalization``), so nobody takes the actions for
    raw ones. ``save_to``: another dataset folder to write the statistics into.
    """

    name = "normalize_actions"

    def __init__(self, mode: str = "mean_std", stats: str | None = None, dims: Sequence[int] | None = None,
                 clip: float | None = None, save_to: str | None = None):
        self.normalizer = ActionNormalizer.load(stats) if stats else ActionNormalizer(mode, dims=dims, clip=clip)
        self.save_to, self.stats_from = save_to, stats
        self.fitted_on = "given statistics" if stats else ""

    @property
    def fits_published(self) -> bool:
        """Fitted over the published episodes (no ``stats`` given): the Python API runs it after dedup."""
        return self.stats_from is None

    def fit_rows(self, rows: Iterable[Mapping[str, Any]]) -> ActionNormalizer:
        for row in rows:
            self.normalizer.update(np.asarray(row["action"]))
        return self.normalizer

    def fit_published(self, rows: Iterable[Mapping[str, Any]]) -> ActionNormalizer:
        """Fit over the rows that are published (the driver streams their actions, after validators and dedup)."""
        from robodata.api.errors import PipelineError

        try:
            self.fit_rows(rows)
        except ActionSpaceError as err:  # NaN, or actions of differing widths
            raise PipelineError(f"stage {self.label!r}: {err}") from err
        if not self.normalizer.fitted:
            raise PipelineError(f"stage {self.label!r}: no actions to fit normalisation statistics on")
        self.fitted_on = "published episodes"
        if self.save_to:
            self.normalizer.save(self.save_to)
        return self.normalizer

    def finish_published(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "action": self.normalizer.apply(np.asarray(row["action"], dtype=np.float32))}

    def part_key(self) -> str:
        """The fitted statistics, for the identity of the parts they shaped."""
        import hashlib
        import json

        doc = json.dumps(self.normalizer.to_json(), sort_keys=True, default=str)
        return f"{self.label}:{hashlib.blake2b(doc.encode(), digest_size=12).hexdigest()}"

    def process(self, dataset: ray.data.Dataset) -> ray.data.Dataset:
        if not self.normalizer.fitted:
            self.fit_rows(dataset.select_columns(["action"]).iter_rows())
            self.fitted_on = self.fitted_on or "episodes of the stage"
        if self.save_to:
            self.normalizer.save(self.save_to)
        norm = self.normalizer

        def apply(row: dict[str, Any]) -> dict[str, Any]:
            return {**row, "action": norm.apply(np.asarray(row["action"], dtype=np.float32))}

        return dataset.map(apply)

    def write_statistics(self, dataset_root: str | os.PathLike[str]) -> str:
        """Store the fitted statistics with a dataset (``meta/robodata_action_norm.json``, named after the
        dataset's action columns) and mark its ``info.json``: ``action_normalization`` names the file and mode."""
        import json
        from pathlib import Path

        from robodata.atomic import atomic_write_json
        from robodata.lerobot.layout import INFO_PATH
        from robodata.robot.actions import ACTION_NORM_PATH

        info_path = Path(dataset_root) / INFO_PATH
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
        names = ((info or {}).get("features", {}).get(self.normalizer.feature) or {}).get("names")
        if isinstance(names, list) and len(names) == len(self.normalizer.stats["mean"]):
            self.normalizer.names = [str(n) for n in names]
        out = str(self.normalizer.save(dataset_root))
        if info is not None:
            info["action_normalization"] = {
                "stats": ACTION_NORM_PATH, "feature": self.normalizer.feature, "mode": self.normalizer.mode,
                "dims": self.normalizer.dims, "clip": self.normalizer.clip, "fitted_on": self.fitted_on,
                "frames": int(self.normalizer.stats["count"][0]),
                "note": f"{self.normalizer.feature} is normalised: invert with the statistics in {ACTION_NORM_PATH}",
            }
            atomic_write_json(info_path, info)
        return out
