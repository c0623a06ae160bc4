"""Small recordings made by the tests: a compact MCAP (ROS 2 messages) and the topic map that fits it.

Used where a test needs to damage a recording in a precise way (NaN at frame k, a timestamp going
backwards) that the simulator would never produce.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robodata.ros2.mcap_writer import McapRos2Writer, header, image_message

T0 = 1_700_000_000_000_000_000
SMALL_TOPIC_MAP = {
    "task": "wave",
    "robot_type": "test_arm",
    "fps": 30,
    "reference": {"topic": "/cam/image_raw"},
    "sync": {"method": "nearest", "tolerance_s": 0.02},
    "episodes": {"split": "gap", "gap_s": 0.5},
    "features": [
        {"name": "cam", "topic": "/cam/image_raw", "role": "image"},
        {"name": "joints", "topic": "/joint_states", "field": "position", "select": ["j1", "j2"], "role": "state"},
        {"name": "action", "topic": "/cmd", "field": "data", "role": "action"},
    ],
}


def make_mcap(
    path: Path,
    frames: int = 60,
    *,
    nan_at: int | None = None,
    backwards_at: int | None = None,
    duplicate_at: int | None = None,
    gap_after: int | None = None,
    skip_joints: bool = False,
    jitter_ms: float = 1.0,
    joint_lag_ms: float = 0.0,
) -> Path:
    """Camera at 30 Hz, joint states at 100 Hz, commands at 30 Hz; defects placed at the given frame."""
    rng = np.random.default_rng(0)
    w = McapRos2Writer(path)
    h, wd = 24, 32
    t_cam = np.arange(frames) / 30.0
    if gap_after is not None:
        t_cam[gap_after:] += 1.0
    t_cam += rng.normal(0, jitter_ms * 1e-3, frames)
    events = []
    for k, t in enumerate(t_cam):
        img = np.zeros((h, wd, 3), np.uint8)
        img[:, : (k % wd) + 1] = (k * 4) % 256
        img[..., 1] = 100
        events.append((t, "img", k, img))
        cmd = [np.sin(k / 10), np.cos(k / 10)]
        if nan_at is not None and k == nan_at:
            cmd[0] = float("nan")
        events.append((t + 0.0005, "cmd", k, cmd))
    if not skip_joints:
        t_end = t_cam[-1] + 0.05
        for j, t in enumerate(np.arange(t_cam[0] - 0.05, t_end, 0.01)):
            events.append((t + joint_lag_ms * 1e-3, "joint", j, [np.sin(t), np.cos(t)]))
    events.sort(key=lambda e: e[0])
    last_cam_ns = None
    for t, kind, k, val in events:
        ns = T0 + int(t * 1e9)
        if kind == "img":
            # The camera driver's header stamp may misbehave; the recorder's log time always moves on.
            stamp = ns
            if backwards_at is not None and k == backwards_at and last_cam_ns is not None:
                stamp = last_cam_ns - 5_000_000
            if duplicate_at is not None and k == duplicate_at and last_cam_ns is not None:
                stamp = last_cam_ns
            w.write("/cam/image_raw", "sensor_msgs/msg/Image", image_message(stamp, "cam", val), log_time_ns=ns)
            last_cam_ns = stamp
        elif kind == "cmd":
            w.write("/cmd", "std_msgs/msg/Float32MultiArray",
                    {"layout": {"dim": [], "data_offset": 0}, "data": [float(x) for x in val]}, log_time_ns=ns)
        else:
            w.write("/joint_states", "sensor_msgs/msg/JointState",
                    {"header": header(ns, "base"), "name": ["j1", "j2"], "position": val, "velocity": [0.0, 0.0],
                     "effort": []}, log_time_ns=ns)
    w.close()
    return path
