"""Local augmentation engine throughput: frames/s of decode + augment + encode against plain PyAV decode + encode
of the same clips in the same run (the ratio is the cost of the augmentation itself), at 480x640 and 256x256,
then the same clips over 1 vs 2 Ray workers.

    python benchmarks/augment.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _clip(n: int, hw: tuple[int, int], seed: int) -> np.ndarray:
    """A moving-gradient scene with a square (compressible like a camera, not random noise)."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = (xx + 3 * i + seed) % 256
        out[i, ..., 1] = (yy + 2 * i) % 256
        out[i, ..., 2] = 128
        out[i, h // 3 : h // 3 + h // 5, (5 * i) % (w - w // 5) : (5 * i) % (w - w // 5) + w // 5] = 240
    return out


def _seg(n: int, hw: tuple[int, int]) -> np.ndarray:
    s = np.zeros((n, *hw), np.uint8)
    s[:, hw[0] // 2 :] = 2  # table
    s[:, hw[0] // 3 : hw[0] // 2, hw[1] // 3 : hw[1] // 2] = 3  # robot
    return s


def plain(src: str, dst: str) -> int:
    """Decode an MP4 and encode it again (the floor)."""
    from robodata.augment.video import iter_clip, read_clip, video_settings, write_clip

    ts, _ = read_clip(src)
    return write_clip(dst, (f for _, f in iter_clip(src)), ts, 30, video_settings("libx264", 18)).frames


def augmented(src: str, dst: str, seed: int) -> int:
    """Decode, augment (local engine, all effects, background + table through a mask), encode."""
    import torch

    from robodata.augment.config import LocalEngineConfig
    from robodata.augment.local import LocalAugmenter, draw_params
    from robodata.augment.video import iter_clip, read_clip, video_settings, write_clip

    torch.set_num_threads(1)
    cfg = LocalEngineConfig(device="cpu")
    ts, first = read_clip(src)
    hw = first.shape[1:3]
    aug = LocalAugmenter(cfg, draw_params(cfg, seed), hw)

    def batches():
        i = 0
        for _, f in iter_clip(src):
            yield aug.apply(f, _seg(len(f), hw), i)
            i += len(f)

    return write_clip(dst, batches(), ts, 30, video_settings("libx264", 18)).frames


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    from robodata.augment.video import video_settings, write_clip

    n, clips = (60, 2) if args.quick else (150, 4)
    results: dict = {"frames_per_clip": n, "clips": clips, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        for hw in [(480, 640), (256, 256)]:
            tag = f"{hw[0]}x{hw[1]}"
            srcs = []
            for c in range(clips):
                p = f"{tmp}/{tag}_{c}.mp4"
                write_clip(p, [_clip(n, hw, c)], np.arange(n) / 30, 30, video_settings("libx264", 18))
                srcs.append(p)
            t = time.perf_counter()
            frames = sum(plain(s, s + ".plain.mp4") for s in srcs)
            fps_plain = frames / (time.perf_counter() - t)
            t = time.perf_counter()
            frames = sum(augmented(s, s + ".aug.mp4", i) for i, s in enumerate(srcs))
            fps_aug = frames / (time.perf_counter() - t)
            results[tag] = {"decode_encode_fps": round(fps_plain, 1), "decode_augment_encode_fps": round(fps_aug, 1),
                            "ratio": round(fps_aug / fps_plain, 3)}
            print(tag, results[tag], flush=True)
        import ray

        from robodata.parallel import run_tasks

        srcs = [f"{tmp}/256x256_{c}.mp4" for c in range(clips)]
        for workers in (1, 2):
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
            run_tasks(augmented, [(srcs[0], f"{tmp}/warm.mp4", 0)])  # worker start-up outside the timing
            t = time.perf_counter()
            res = run_tasks(augmented, [(s, f"{s}.ray{workers}.mp4", i) for i, s in enumerate(srcs)])
            dt = time.perf_counter() - t
            ray.shutdown()
            assert all(r.ok for r in res), [r.error for r in res]
            results[f"ray_{workers}_workers_256x256_fps"] = round(sum(r.value for r in res) / dt, 1)
            print(f"ray {workers} workers", results[f"ray_{workers}_workers_256x256_fps"], flush=True)
    out = Path(__file__).parent / "results" / ("augment_quick.json" if args.quick else "augment.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
