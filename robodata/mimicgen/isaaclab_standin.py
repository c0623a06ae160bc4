"""Stands in for Isaac Lab Mimic's ``generate_dataset.py`` (no Isaac Sim, no GPU): same arguments, writes an
Isaac Lab-layout HDF5 of ``--generation_num_trials`` short demos. Used to test the production launch path.

Like Isaac Lab Mimic it records no per-subtask source provenance. ``--datagen_poses`` also writes what a Mimic
env's recorder can hold: ``target_eef_pose`` (a smooth path), ``eef_pose`` tracking it one frame behind, and
the input's subtask term signals (rising at evenly spaced frames)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np

from robodata.formats.isaaclab_layout import (
    ACTIONS,
    DATA_GROUP,
    EEF_POSE,
    ENV_ARGS_ATTR,
    ENV_KWARGS_KEY,
    ENV_NAME_KEY,
    ENV_TYPE,
    ENV_TYPE_KEY,
    NUM_SAMPLES_ATTR,
    OBJECT_POSE,
    SUBTASK_TERM_SIGNALS,
    SUCCESS_ATTR,
    TARGET_EEF_POSE,
    TOTAL_ATTR,
    datagen_path,
    demo_name,
    obs_path,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="stand-in for isaaclab_mimic generate_dataset.py")
    p.add_argument("--task", required=True)
    p.add_argument("--input_file", required=True)
    p.add_argument("--output_file", required=True)
    p.add_argument("--generation_num_trials", type=int, default=10)
    p.add_argument("--num_envs", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--enable_cameras", action="store_true")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--datagen_poses", action="store_true", help="also write target_eef_pose and term signals")
    args, _unknown = p.parse_known_args(argv)
    with h5py.File(args.input_file, "r") as f:
        if DATA_GROUP not in f:
            print(f"{args.input_file}: not an Isaac Lab dataset (no /{DATA_GROUP})", file=sys.stderr)
            return 1
        first = next((f[DATA_GROUP][k] for k in f[DATA_GROUP]), None)
        sig = first.get(datagen_path(SUBTASK_TERM_SIGNALS)) if first is not None else None
        signal_names = sorted(sig) if sig is not None else []
    rng = np.random.default_rng(0)
    # As Isaac Lab's HDF5DatasetFileHandler.create does: an output path without ".hdf5" gets it appended.
    out = Path(args.output_file if args.output_file.endswith(".hdf5") else args.output_file + ".hdf5")
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as f:
        data = f.create_group(DATA_GROUP)
        data.attrs[ENV_ARGS_ATTR] = json.dumps({ENV_NAME_KEY: args.task, ENV_TYPE_KEY: ENV_TYPE, ENV_KWARGS_KEY: {}})
        total = 0
        for i in range(args.generation_num_trials):
            g = data.create_group(demo_name(i))
            n = args.frames
            g.create_dataset(ACTIONS, data=rng.normal(size=(n, 7)).astype(np.float32))
            g.create_dataset(obs_path("eef_pos"), data=np.cumsum(rng.normal(0, 0.01, (n, 3)), 0).astype(np.float32))
            if args.enable_cameras:
                g.create_dataset(obs_path("robot_pov_cam"), data=rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8))
            g.create_dataset(datagen_path(OBJECT_POSE, "nut"), data=np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)))
            if args.datagen_poses:
                target = _path(n, rng)
                g.create_dataset(datagen_path(TARGET_EEF_POSE, "right"), data=target)
                g.create_dataset(datagen_path(EEF_POSE, "right"), data=np.concatenate([target[:1], target[:-1]]))
                for k, sname in enumerate(signal_names):
                    rise = (k + 1) * n // (len(signal_names) + 1)
                    g.create_dataset(datagen_path(SUBTASK_TERM_SIGNALS, sname), data=np.arange(n) >= rise)
            else:
                g.create_dataset(datagen_path(EEF_POSE, "right"), data=np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)))
            g.attrs[NUM_SAMPLES_ATTR] = n
            g.attrs[SUCCESS_ATTR] = True
            total += n
        data.attrs[TOTAL_ATTR] = total
    print(f"[stand-in] {args.generation_num_trials}/{args.generation_num_trials} demos generated for {args.task} "
          f"({args.num_envs} envs) -> {out}")
    return 0


def _path(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 4, 4)`` float32 poses along a smooth path: 1 cm steps, a slow turn about z."""
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, 3] = np.array([0.4, 0.0, 0.3]) + np.cumsum(rng.normal(0, 0.01, (n, 3)), 0)
    a = np.linspace(0.0, 0.5, n)
    T[:, 0, 0], T[:, 0, 1], T[:, 1, 0], T[:, 1, 1] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    return T.astype(np.float32)


if __name__ == "__main__":
    raise SystemExit(main())
