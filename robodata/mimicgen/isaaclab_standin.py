"""Stands in for Isaac Lab Mimic's ``generate_dataset.py`` (no Isaac Sim, no GPU): same arguments, writes an
Isaac Lab-layout HDF5 of ``--generation_num_trials`` short demos. Used to test the production launch path."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import h5py
import numpy as np


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
    args, _unknown = p.parse_known_args(argv)
    with h5py.File(args.input_file, "r") as f:
        if "data" not in f:
            print(f"{args.input_file}: not an Isaac Lab dataset (no /data)", file=sys.stderr)
            return 1
    rng = np.random.default_rng(0)
    out = Path(args.output_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": args.task, "type": 2, "env_kwargs": {}})
        total = 0
        for i in range(args.generation_num_trials):
            g = data.create_group(f"demo_{i}")
            n = args.frames
            g.create_dataset("actions", data=rng.normal(size=(n, 7)).astype(np.float32))
            g.create_dataset("obs/eef_pos", data=np.cumsum(rng.normal(0, 0.01, (n, 3)), 0).astype(np.float32))
            if args.enable_cameras:
                g.create_dataset("obs/robot_pov_cam", data=rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8))
            dg = g.create_group("obs/datagen_info")
            dg.create_dataset("object_pose/nut", data=np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)))
            dg.create_dataset("eef_pose/right", data=np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)))
            g.attrs["num_samples"] = n
            g.attrs["success"] = True
            total += n
        data.attrs["total"] = total
    print(f"[stand-in] {args.generation_num_trials}/{args.generation_num_trials} demos generated for {args.task} "
          f"({args.num_envs} envs) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
