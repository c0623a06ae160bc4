"""Rigid-transform math of MimicGen: object-centric pose transfer and pose interpolation (4x4 homogeneous)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of ``(..., 4, 4)`` rigid transforms (exact: R^T, -R^T t)."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def relative_to(T_frame: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``T_frame^-1 · T``: poses ``T`` expressed in ``T_frame`` (both ``(..., 4, 4)``, broadcast)."""
    return invert(T_frame) @ np.asarray(T, dtype=np.float64)


def transform_segment(T_eef_src: np.ndarray, T_obj_src: np.ndarray, T_obj_new: np.ndarray) -> np.ndarray:
    """MimicGen's object-centric transfer: ``T_obj_new · T_obj_src^-1 · T_eef_src`` for every pose of a segment.

    Args:
        T_eef_src: ``(T, 4, 4)`` end-effector poses of the source segment (world frame).
        T_obj_src: ``(4, 4)`` the reference object's pose at the start of the source segment.
        T_obj_new: ``(4, 4)`` the same object's pose in the new scene.
    """
    return np.asarray(T_obj_new, np.float64) @ invert(T_obj_src) @ np.asarray(T_eef_src, np.float64)


def position_matrix(xyz: np.ndarray) -> np.ndarray:
    """``(..., 3)`` positions -> ``(..., 4, 4)`` transforms with identity rotation (e.g. a goal point)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    out = np.zeros(xyz.shape[:-1] + (4, 4))
    out[..., :3, :3] = np.eye(3)
    out[..., :3, 3] = xyz
    out[..., 3, 3] = 1.0
    return out


def interpolate(T0: np.ndarray, T1: np.ndarray, num_steps: int) -> np.ndarray:
    """``num_steps`` poses strictly after ``T0`` up to and including ``T1``: linear in position, along the
    axis-angle of ``R0^T R1`` in rotation. ``num_steps == 0`` gives an empty ``(0, 4, 4)`` array."""
    if num_steps <= 0:
        return np.zeros((0, 4, 4))
    T0, T1 = np.asarray(T0, np.float64), np.asarray(T1, np.float64)
    a = np.arange(1, num_steps + 1, dtype=np.float64) / num_steps
    out = np.zeros((num_steps, 4, 4))
    out[:, :3, 3] = T0[:3, 3] + a[:, None] * (T1[:3, 3] - T0[:3, 3])
    rotvec = Rotation.from_matrix(T0[:3, :3].T @ T1[:3, :3]).as_rotvec()
    out[:, :3, :3] = T0[:3, :3] @ Rotation.from_rotvec(a[:, None] * rotvec).as_matrix()
    out[:, 3, 3] = 1.0
    out[-1] = T1
    return out


def pose_distance(A: np.ndarray, B: np.ndarray, pos_weight: float = 1.0, rot_weight: float = 1.0) -> np.ndarray:
    """``pos_weight * |t_A - t_B| + rot_weight * angle(R_A^T R_B)`` (metres + radians), broadcast."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    dp = np.linalg.norm(A[..., :3, 3] - B[..., :3, 3], axis=-1)
    return pos_weight * dp + rot_weight * rotation_angle(A, B)


def pose_error(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pose position error (m) and rotation error (rad) between ``(..., 4, 4)`` arrays."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    dp = np.linalg.norm(A[..., :3, 3] - B[..., :3, 3], axis=-1)
    return dp, rotation_angle(A, B)


def rotation_angle(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Angle (rad) of ``R_A^T R_B`` for ``(..., 4, 4)`` poses (via the rotation vector: exact near zero)."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    R = np.swapaxes(A[..., :3, :3], -1, -2) @ B[..., :3, :3]
    shape = R.shape[:-2]
    ang = Rotation.from_matrix(R.reshape(-1, 3, 3)).magnitude()
    return ang.reshape(shape)
