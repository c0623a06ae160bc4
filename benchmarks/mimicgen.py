"""MimicGen generation throughput: demos/min and success rate with 1 and 2 Ray workers, against the bare cost of
the simulator (the same number of physics steps and rendered frames, no generation logic) in the same run.

    python benchmarks/mimicgen.py            # 10 scripted source demos x 3 generated each, 96x128 cameras
    python benchmarks/mimicgen.py --quick    # 4 sources x 1, 48x64
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

RESULTS = Path(__file__).parent / "results" / "mimicgen.json"


def bare_sim(steps: int, frames: int, hw: tuple[int, int]) -> float:
    """Seconds to step Fetch ``steps`` times (episodes of 150 steps) and render ``frames`` frames of both cameras."""
    from robodata.sim.fetch import FetchPickPlace

    sim = FetchPickPlace(image_hw=hw)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, (steps, 4))
    t0 = time.perf_counter()
    for i in range(steps):
        if i % 150 == 0:
            sim.reset(seed=i)
        sim.step(actions[i])
        if i < frames:
            for cam in sim.cameras:
                sim.render(cam, hw)
    wall = time.perf_counter() - t0
    sim.close()
    return wall


def generate(src: Path, out: Path, per_source: int, hw: tuple[int, int], workers: int) -> dict:
    import ray

    from robodata.mimicgen.config import SyntheticDemosConfig
    from robodata.mimicgen.generate import generate_demos

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MUJOCO_GL": "egl"}})
    try:
        cfg = SyntheticDemosConfig(demos_per_source=per_source, image_hw=hw, datagen={"seed": 0})
        # Warm the workers (each builds its simulator once) outside the timed run.
        generate_demos(src, out.with_suffix(".warm.hdf5"),
                       SyntheticDemosConfig(demos_per_source=1, image_hw=hw,
                                            datagen={"seed": 1, "num_trials": workers, "guarantee": False}))
        rep = generate_demos(src, out, cfg)
    finally:
        ray.shutdown()
    return {"workers": rep.workers, "trials": rep.trials, "successes": rep.successes,
            "success_rate": round(rep.success_rate, 3), "failure_reasons": rep.failure_reasons,
            "steps": rep.steps, "kept_frames": rep.kept_frames, "wall_s": round(rep.wall_s, 2),
            "demos_per_min": round(rep.demos_per_min, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_src, per, hw = (4, 1, (48, 64)) if args.quick else (10, 3, (96, 128))
    from robodata.sim.recorder import record_session

    with tempfile.TemporaryDirectory(prefix="robodata-bench-mimicgen-") as tmp:
        t0 = time.perf_counter()
        rec = record_session(tmp, "src", n_episodes=n_src, seed=0, image_hw=hw, formats=["hdf5"])
        print(f"recorded {n_src} scripted source demos ({sum(rec['success'])} successful) "
              f"in {time.perf_counter() - t0:.1f}s", flush=True)
        runs = {}
        for w in (1, 2):
            runs[w] = generate(Path(rec["hdf5"]), Path(tmp) / f"gen{w}.hdf5", per, hw, w)
            print(f"{w} worker(s): {runs[w]}", flush=True)
        bare = bare_sim(runs[1]["steps"], runs[1]["kept_frames"], hw)
        bare_physics = bare_sim(runs[1]["steps"], 0, hw)
    r1, r2 = runs[1], runs[2]
    result = {
        "quick": args.quick, "sources": n_src, "per_source": per, "image_hw": list(hw), "cpus": os.cpu_count(),
        "runs": {str(k): v for k, v in runs.items()},
        "bare_sim_s": round(bare, 2), "bare_physics_only_s": round(bare_physics, 2),
        "overhead_vs_bare": round(r1["wall_s"] / bare, 3),
        "overhead_vs_physics_only": round(r1["wall_s"] / bare_physics, 3),
        "scaling_2_vs_1": round(r2["demos_per_min"] / r1["demos_per_min"], 3) if r1["demos_per_min"] else None,
        "identical_outcomes_1_vs_2": r1["trials"] == r2["trials"] and r1["successes"] == r2["successes"],
    }
    print(json.dumps(result, indent=2))
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
