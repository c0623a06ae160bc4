"""Forward and inverse kinematics of a :class:`~robodata.robot.model.RobotModel`'s end effector (pinocchio).

Conventions: joint vectors hold the model's *active* joints (``model.joint_names``, rad or m); a pose is a
``(4, 4)`` homogeneous transform of the frame in the model's world (root) frame, or ``(7,)`` ``x, y, z`` (m)
then a unit quaternion ``qx, qy, qz, qw`` (scalar last, ROS/Isaac Lab 3 order). Batches put the frame axis
first: ``(T, J)`` joints <-> ``(T, 4, 4)`` or ``(T, 7)`` poses.

IK is damped least squares on pinocchio's frame Jacobian (the error is the SE(3) log of the frame's pose
relative to the target, so it is Newton-like near the solution), each step at most ``max_step`` rad/m per
joint; joint limits are respected (joints at a limit that a step would push out leave the solve, the rest is
clipped), and each frame is seeded with the previous frame's solution. Residuals
are reported per frame: position in m, rotation as an angle in rad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robodata.robot.model import RobotModel, RobotModelError


def pose_to_matrix(pose: np.ndarray) -> np.ndarray:
    """``(..., 7)`` xyz + quat xyzw -> ``(..., 4, 4)`` (the quaternion is normalised)."""
    p = np.asarray(pose, dtype=np.float64)
    q = p[..., 3:7] / np.linalg.norm(p[..., 3:7], axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.zeros(p.shape[:-1] + (4, 4))
    out[..., 0, :3] = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1)
    out[..., 1, :3] = np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1)
    out[..., 2, :3] = np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)
    out[..., :3, 3] = p[..., :3]
    out[..., 3, 3] = 1.0
    return out


def matrix_to_pose(mat: np.ndarray) -> np.ndarray:
    """``(..., 4, 4)`` -> ``(..., 7)`` xyz + quat xyzw, with ``qw >= 0``."""
    import pinocchio

    m = np.asarray(mat, dtype=np.float64)
    flat = m.reshape(-1, 4, 4)
    quats = np.array([pinocchio.Quaternion(r[:3, :3]).coeffs() for r in flat]).reshape(-1, 4)
    quats *= np.where(quats[:, 3:4] < 0, -1.0, 1.0)
    return np.concatenate([flat[:, :3, 3], quats], axis=1).reshape(m.shape[:-2] + (7,))


def _as_matrices(targets: np.ndarray) -> np.ndarray:
    t = np.asarray(targets, dtype=np.float64)
    if t.shape[-2:] == (4, 4):
        return t.reshape(-1, 4, 4)
    if t.shape[-1] == 7:
        return pose_to_matrix(t.reshape(-1, 7))
    raise RobotModelError(f"end-effector poses must be (..., 4, 4) or (..., 7) xyz + quat xyzw, got {t.shape}")


def rotation_angle(r: np.ndarray) -> np.ndarray:
    """Angle (rad) of ``(..., 3, 3)`` rotation matrices."""
    tr = np.trace(np.asarray(r), axis1=-2, axis2=-1)
    return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


class Kinematics:
    """FK/IK of one frame (default: the model's ``ee_frame``) with one pinocchio data buffer.

    Not thread-safe: use one per thread or worker.
    """

    def __init__(self, model: RobotModel, frame: str | None = None):
        import pinocchio

        self.robot = model
        self.frame = frame or model.ee_frame
        if self.frame is None:
            raise RobotModelError(f"{model.path}: no end-effector frame (load the model with ee_frame=... or "
                                  "pass frame=...)")
        self.frame_id = model.frame_id(self.frame)
        self._pin = pinocchio
        self._data = model.model.createData()
        self._cols = model.velocity_columns()
        lim = model.limits()
        self.lower, self.upper = lim["lower"], lim["upper"]

    def _placement(self, config: np.ndarray) -> Any:
        pin = self._pin
        pin.forwardKinematics(self.robot.model, self._data, config)
        return pin.updateFramePlacement(self.robot.model, self._data, self.frame_id)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """End-effector transforms ``(..., 4, 4)`` of joint positions ``(..., J)``."""
        q = np.asarray(q, dtype=np.float64)
        configs = self.robot.configuration(q).reshape(-1, self.robot.model.nq)
        out = np.array([self._placement(c).homogeneous for c in configs])
        return out.reshape(q.shape[:-1] + (4, 4))

    def fk_pose(self, q: np.ndarray) -> np.ndarray:
        """End-effector poses ``(..., 7)`` xyz + quat xyzw of joint positions ``(..., J)``."""
        return matrix_to_pose(self.fk(q))

    def ik(
        self,
        targets: np.ndarray,
        seed: np.ndarray | None = None,
        *,
        max_iters: int = 100,
        position_tolerance: float = 1e-5,
        rotation_tolerance: float = 1e-4,
        damping: float = 1e-6,
        max_step: float = 0.5,
        restarts: int = 8,
    ) -> IKResult:
        """Joint positions reaching ``targets`` (``(4, 4)``/``(7,)`` or batches ``(T, 4, 4)``/``(T, 7)``).

        ``seed`` is the first frame's starting joints (default: the reference configuration, clipped into
        the limits); every later frame starts from the previous frame's solution. A frame that does not converge
        from there (a local minimum against a joint limit: the reference configuration of an arm is often a
        straight, singular elbow at its limit) is solved again from up to ``restarts`` other seeds (the middle of
        the limits, then random configurations inside them, the same on every run); the best solution is kept.
        """
        pin = self._pin
        mats = _as_matrices(targets)
        qa = (self.robot.active_positions(self.robot.reference) if seed is None
              else np.asarray(seed, dtype=np.float64).reshape(-1).copy())
        if qa.shape != (len(self.robot.joint_names),):
            raise RobotModelError(f"IK seed has {qa.size} values, the model has {len(self.robot.joint_names)} "
                                  f"active joints ({self.robot.joint_names})")
        qa = np.clip(qa, self.lower, self.upper)
        n = len(mats)
        out = IKResult(np.zeros((n, qa.size)), np.zeros(n), np.zeros(n), np.zeros(n, np.int64), np.zeros(n, bool))
        lo, hi = np.where(np.isfinite(self.lower), self.lower, -np.pi), np.where(np.isfinite(self.upper), self.upper,
                                                                                   np.pi)
        rng = np.random.default_rng(0)
        others = [(lo + hi) / 2, *(lo + (hi - lo) * rng.uniform(0.1, 0.9, size=(restarts, qa.size)))][:restarts]
        opts = (max_iters, damping, max_step, position_tolerance, rotation_tolerance)
        for k, target in enumerate(mats):
            want = pin.SE3(target[:3, :3].copy(), target[:3, 3].copy())
            best = self._solve(want, qa, *opts)
            iters = best[4]
            for start in others:
                if best[3]:
                    break
                again = self._solve(want, start, *opts)
                iters += again[4]
                if again[3] or again[1] + again[2] < best[1] + best[2]:
                    best = again
            qa = best[0]
            out.q[k], out.position_error[k], out.rotation_error[k], out.converged[k] = best[:4]
            out.iterations[k] = iters
        return out

    def _solve(self, want: Any, qa: np.ndarray, max_iters: int, damping: float, max_step: float,
               position_tolerance: float, rotation_tolerance: float) -> tuple[np.ndarray, float, float, bool, int]:
        """Damped least squares from ``qa`` to ``want``: (joints, position error m, rotation error rad, converged,
        iterations)."""
        pin = self._pin
        m = self.robot.model
        qa = np.clip(np.asarray(qa, np.float64).copy(), self.lower, self.upper)
        eye = np.eye(6)
        it = 0
        for it in range(max_iters + 1):
            cfg = self.robot.configuration(qa)
            have = self._placement(cfg)
            i_m_d = have.actInv(want)
            err = pin.log6(i_m_d).vector
            if np.linalg.norm(err[:3]) < position_tolerance and np.linalg.norm(err[3:]) < rotation_tolerance:
                break
            if it == max_iters:
                break
            jac = pin.computeFrameJacobian(m, self._data, cfg, self.frame_id, pin.ReferenceFrame.LOCAL)
            jac = -pin.Jlog6(i_m_d.inverse()) @ jac[:, self._cols]
            dq = -jac.T @ np.linalg.solve(jac @ jac.T + damping * eye, err)
            # Joints at a limit that the step pushes further out are taken out of the solve (an active set),
            # so the others do the work instead of the step being clipped away.
            stuck = ((qa <= self.lower) & (dq < 0)) | ((qa >= self.upper) & (dq > 0))
            if stuck.any():
                jac[:, stuck] = 0.0
                dq = -jac.T @ np.linalg.solve(jac @ jac.T + damping * eye, err)
            big = np.abs(dq).max()
            if big > max_step:
                dq *= max_step / big
            qa = np.clip(qa + dq, self.lower, self.upper)
        have = self._placement(self.robot.configuration(qa))
        pos = float(np.linalg.norm(have.translation - want.translation))
        rot = float(rotation_angle(have.rotation.T @ want.rotation))
        ok = pos < max(position_tolerance, 1e-9) * 10 and rot < rotation_tolerance * 10
        return qa, pos, rot, ok, it


@dataclass
class IKResult:
    """Per-frame IK output: ``q`` ``(T, J)``; residuals ``position_error`` (m) and ``rotation_error`` (rad);
    ``iterations``; ``converged`` (residuals within 10x the tolerances)."""

    q: np.ndarray
    position_error: np.ndarray
    rotation_error: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray

    def summary(self) -> dict[str, float]:
        """Max and mean residuals in mm and degrees, and the fraction of frames that converged."""
        return {
            "position_error_max_mm": float(self.position_error.max(initial=0.0) * 1000),
            "position_error_mean_mm": float(self.position_error.mean() * 1000) if self.q.size else 0.0,
            "rotation_error_max_deg": float(np.degrees(self.rotation_error.max(initial=0.0))),
            "converged_fraction": float(self.converged.mean()) if self.q.size else 1.0,
        }


def pose_errors(have: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame position error (m) and rotation error (rad) between two pose batches (7-vectors or 4x4)."""
    a, b = _as_matrices(have), _as_matrices(want)
    pos = np.linalg.norm(a[:, :3, 3] - b[:, :3, 3], axis=-1)
    rot = rotation_angle(np.swapaxes(a[:, :3, :3], -1, -2) @ b[:, :3, :3])
    return pos, rot


def forward_kinematics(model: RobotModel, q: np.ndarray, frame: str | None = None) -> np.ndarray:
    """``(..., 7)`` xyz + quat xyzw poses of ``frame`` (default: the end effector) for joints ``(..., J)``."""
    return Kinematics(model, frame).fk_pose(q)


def inverse_kinematics(model: RobotModel, targets: np.ndarray, seed: np.ndarray | None = None,
                       frame: str | None = None, **kw: Any) -> IKResult:
    """IK over a trajectory of poses, each frame seeded with the previous solution (see :meth:`Kinematics.ik`)."""
    return Kinematics(model, frame).ik(targets, seed, **kw)
