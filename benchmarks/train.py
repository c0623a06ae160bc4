"""Benchmark: training samples/s of the local engine (lerobot-train on our release) vs lerobot's own data loader.

    python benchmarks/train.py [--quick] [--release PATH] [--steps N] [--batch B]

On one release (recorded in the simulator when ``--release`` is not given), in one run:
(a) the local engine: ``lerobot-train`` (ACT, CPU) launched and parsed by ``robodata.train.run_trainer``;
    samples/s is lerobot's own figure (batch / (update + data loading) time) averaged over the log windows;
(b) lerobot's own ``LeRobotDataset`` + torch ``DataLoader`` over the same episodes, same batch, same video
    backend (pyav), no model: the data-loading ceiling that (a) cannot exceed.
The ratio says how loader-bound training is. Results go to ``benchmarks/results/train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")


def make_release(work: Path, episodes: int) -> Path:
    """Record ``episodes`` simulator episodes and write them as a LeRobot v3.0 dataset (robodata's writer)."""
    from robodata.formats.isaaclab import EpisodeStore
    from robodata.lerobot import write_shard
    from robodata.sim.recorder import record_session

    rec = record_session(work / "rec", "bench", n_episodes=episodes, seed=5, image_hw=(48, 64), formats=("hdf5",))
    out = work / "release"
    with EpisodeStore(rec["hdf5"]) as es:
        demos = list(es.demo_names)
    write_shard(rec["hdf5"], out, episodes=demos, video_codec="libx264", crf=23, gop=2)
    return out


def bench_engine(root: Path, work: Path, steps: int, batch: int) -> dict:
    from robodata.train.commands import lerobot_command
    from robodata.train.config import PolicyConfig
    from robodata.train.runner import run_trainer

    log = max(2, steps // 5)
    cfg = PolicyConfig(max_steps=steps, batch_size=batch, save_steps=steps, log_steps=log,
                       trainer_args=["--policy.dim_model=128", "--policy.n_encoder_layers=2",
                                     "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
                                     "--policy.n_action_steps=1"])
    cmd = lerobot_command(cfg, root, work / "run", repo_id="local/bench")
    res = run_trainer(cmd, log_steps=log, batch_size=batch)
    if not res.ok:
        raise SystemExit(res.error)
    update = sum(p["values"].get("update_s", 0) for p in res.curve) / max(1, len(res.curve))
    data = sum(p["values"].get("dataloading_s", 0) for p in res.curve) / max(1, len(res.curve))
    return {"samples_per_s": round(res.samples_per_s or 0, 2), "steps": res.steps, "wall_s": res.wall_s,
            "update_s_per_step": round(update, 4), "dataloading_s_per_step": round(data, 4),
            "final_loss": res.final_loss}


def bench_loader(root: Path, batches: int, batch: int) -> dict:
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id="local/bench", root=str(root), video_backend="pyav")
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=0,
                                     generator=torch.Generator().manual_seed(0))
    it = iter(dl)
    next(it)  # warm-up (decoder start-up), as lerobot-train's first step is excluded from its windows
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(dl)
            b = next(it)
        n += len(b["index"])
    dt = time.perf_counter() - t0
    return {"samples_per_s": round(n / dt, 2), "samples": n, "seconds": round(dt, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 episodes, 20 steps")
    ap.add_argument("--release", type=Path, help="an existing LeRobot v3.0 dataset folder")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int, default=4)
    a = ap.parse_args()
    steps = a.steps or (20 if a.quick else 200)
    with tempfile.TemporaryDirectory(prefix="robodata-bench-train-") as tmp:
        work = Path(tmp)
        root = a.release or make_release(work, 2 if a.quick else 6)
        engine = bench_engine(root, work, steps, a.batch)
        loader = bench_loader(root, max(10, steps // 2), a.batch)
    out = {"release": str(root) if a.release else "recorded", "batch": a.batch, "policy": "act (small), cpu",
           "local_engine_lerobot_train": engine, "lerobot_dataloader_only": loader,
           "engine_vs_loader": round(engine["samples_per_s"] / loader["samples_per_s"], 3)
           if loader["samples_per_s"] else None}
    print(json.dumps(out, indent=1))
    res_dir = REPO / "benchmarks" / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / "train.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
