"""Time synchronisation: nearest / linear / hold alignment, tolerance, rate statistics."""

from __future__ import annotations

import numpy as np

from robodata.sync import StreamStats, align, pose_to_matrix


def test_nearest_respects_tolerance():
    ref = np.array([0.0, 0.1, 0.2, 0.3])
    t = np.array([0.005, 0.098, 0.26, 0.301])
    v = np.arange(4.0)[:, None]
    al = align(ref, t, v, "nearest", 0.02)
    assert al.values[:, 0].tolist() == [0, 1, 2, 3]
    assert al.ok.tolist() == [True, True, False, True]  # 0.2 is 60 ms from its nearest sample
    assert np.isclose(al.worst_offset, 0.06)
    assert al.misaligned == 1


def test_linear_interpolates_and_slerps_poses():
    t = np.array([0.0, 1.0])
    v = np.array([[0.0, 0, 0, 0, 0, 0, 1], [1.0, 2, 0, 0, 0, 1, 0]])  # 180 deg about z at the end
    al = align(np.array([0.5]), t, v, "linear", 0.6, is_pose=True)
    assert np.allclose(al.values[0, :3], [0.5, 1.0, 0.0])
    q = al.values[0, 3:]
    assert np.isclose(np.linalg.norm(q), 1.0)
    assert np.allclose(np.abs(q), [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)  # halfway: 90 deg
    # Out of tolerance: the closer bracketing sample is 0.5 s away.
    assert not align(np.array([0.5]), t, v, "linear", 0.1).ok[0]


def test_hold_uses_latest_sample_before():
    t = np.array([0.0, 1.0])
    v = np.array([[1.0], [2.0]])
    al = align(np.array([-0.1, 0.5, 1.05]), t, v, "hold", 0.6)
    assert al.ok.tolist() == [False, True, True]
    assert al.values[1:, 0].tolist() == [1.0, 2.0]


def test_bool_streams_never_interpolate():
    al = align(np.array([0.4, 0.6]), np.array([0.0, 1.0]), np.array([False, True]), "linear", 1.0)
    assert al.values.tolist() == [False, True]


def test_stream_stats():
    s = StreamStats()
    rng = np.random.default_rng(0)
    ts = np.cumsum(np.full(1001, 0.01) + rng.normal(0, 0.001, 1001))
    for x in ts:
        s.add(float(x))
    assert abs(s.rate_hz - 100) < 1
    assert 0.0005 < s.jitter_s < 0.002
    assert s.backwards == 0


def test_pose_to_matrix_identity_and_rotation():
    m = pose_to_matrix(np.array([[1, 2, 3, 0, 0, 0, 1.0], [0, 0, 0, 0, 0, np.sqrt(0.5), np.sqrt(0.5)]]))
    assert np.allclose(m[0], [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]])
    assert np.allclose(m[1][:3, :3] @ [1, 0, 0], [0, 1, 0])
