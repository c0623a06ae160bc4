"""Benchmark: episode store (HDF5) -> LeRobot v3.0, robodata vs lerobot 0.6.1 vs the PyAV encoder floor.

    python benchmarks/lerobot_write.py [--quick] [--episodes N] [--seconds S] [--workdir DIR]

The same synthetic recording (two 480x640 cameras and one 96x96 camera with moving patterns, 7-dim state and
action, 30 fps) is written to an Isaac Lab HDF5 episode store once, then converted to LeRobot v3.0 by
(a) robodata's ``write_shard``, (b) lerobot 0.6.1's own ``LeRobotDataset.create`` / ``add_frame`` /
``save_episode`` in streaming-encoding mode (its fastest), and (c) PyAV alone encoding the same frames read
from the same store (one camera after the other, no parquet, no stats: the floor). All use libsvtav1,
yuv420p, g=2, crf=30, preset 12 (lerobot's defaults). Each runs in its own subprocess so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FPS = 30
CAMERAS = {"front": (480, 640), "side": (480, 640), "wrist": (96, 96)}
STATE_DIM = ACTION_DIM = 7
TASK = "pour the nuts"
CODEC_OPTIONS = {"g": "2", "crf": "30", "preset": "12"}  # lerobot 0.6.1's RGBEncoderConfig defaults


def make_store(path: Path, episodes: int, frames: int) -> None:
    from robodata.formats.isaaclab import EpisodeSchema, EpisodeStoreWriter, FeatureSpec

    feats = [FeatureSpec("joint_pos", "state", (STATE_DIM,)), FeatureSpec("target", "action", (ACTION_DIM,))]
    feats += [FeatureSpec(c, "image", (h, w, 3), "uint8") for c, (h, w) in CAMERAS.items()]
    schema = EpisodeSchema(feats, float(FPS), task=TASK, robot_type="gr1t2")
    rng = np.random.default_rng(0)
    textures = {}
    for c, (h, w) in CAMERAS.items():  # a smooth texture twice the frame size; frames are moving crops of it
        yy, xx = np.mgrid[0 : 2 * h, 0 : 2 * w]
        r = 127 + 90 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
        g = 127 + 90 * np.sin((xx + yy) / 41.0)
        b = 127 + 90 * np.cos(xx / 17.0 - yy / 29.0)
        textures[c] = (np.stack([r, g, b], -1) + rng.normal(0, 6, (2 * h, 2 * w, 3))).clip(0, 255).astype(np.uint8)
    with EpisodeStoreWriter(path, schema) as store:
        for e in range(episodes):
            demo = store.begin_episode()
            for s in range(0, frames, 30):
                t = np.arange(s, min(frames, s + 30))
                obs = {
                    "joint_pos": np.sin(t[:, None] / 20.0 + np.arange(STATE_DIM) + e).astype(np.float32),
                    "target": np.cos(t[:, None] / 20.0 + np.arange(ACTION_DIM) + e).astype(np.float32),
                }
                for c, (h, w) in CAMERAS.items():
                    tex = textures[c]
                    obs[c] = np.stack([
                        tex[int(h / 2 + h / 2 * np.sin(i / 40 + e)) : int(h / 2 + h / 2 * np.sin(i / 40 + e)) + h,
                            (3 * i + 7 * e) % w : (3 * i + 7 * e) % w + w]
                        for i in t
                    ])  # fmt: skip
                demo.extend(t / FPS, obs)
            demo.close(success=True)


def run_robodata(store: Path, out: Path) -> int:
    from robodata.lerobot import write_shard

    return write_shard(store, out).frames


def run_lerobot(store: Path, out: Path) -> int:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from robodata.formats.isaaclab import EpisodeStore

    features = {
        "observation.state": {"dtype": "float32", "shape": (STATE_DIM,), "names": [f"joint_pos_{i}" for i in range(STATE_DIM)]},
        "action": {"dtype": "float32", "shape": (ACTION_DIM,), "names": [f"target_{i}" for i in range(ACTION_DIM)]},
    }  # fmt: skip
    for c, (h, w) in CAMERAS.items():
        features[f"observation.images.{c}"] = {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
    ds = LeRobotDataset.create(repo_id="local/bench", fps=FPS, features=features, root=out, robot_type="gr1t2",
                               use_videos=True, streaming_encoding=True)  # fmt: skip
    frames = 0
    with EpisodeStore(store) as src:
        for name in src.demo_names:
            g = src.group(name)
            n = src.num_samples(name)
            for s in range(0, n, 16):
                e = min(n, s + 16)
                state, action = g["obs"]["joint_pos"][s:e], g["actions"][s:e]
                imgs = {c: g["obs"][c][s:e] for c in CAMERAS}
                for j in range(e - s):
                    frame = {"observation.state": state[j], "action": action[j], "task": TASK}
                    for c in CAMERAS:
                        frame[f"observation.images.{c}"] = imgs[c][j]
                    ds.add_frame(frame)
            ds.save_episode()
            frames += n
    ds.finalize()
    return frames


def run_pyav(store: Path, out: Path) -> int:
    import av

    from robodata.formats.isaaclab import EpisodeStore

    out.mkdir(parents=True, exist_ok=True)
    frames = 0
    with EpisodeStore(store) as src:
        for c, (h, w) in CAMERAS.items():
            with av.open(str(out / f"{c}.mp4"), "w") as container:
                stream = container.add_stream("libsvtav1", rate=FPS, options=CODEC_OPTIONS)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.time_base = Fraction(1, FPS)
                pts = 0
                for name in src.demo_names:
                    ds = src.group(name)["obs"][c]
                    for s in range(0, len(ds), 16):
                        for img in ds[s : s + 16]:
                            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                            vf.pts, vf.time_base = pts, Fraction(1, FPS)
                            container.mux(stream.encode(vf))
                            pts += 1
                container.mux(stream.encode(None))
            frames = pts
    return frames


MODES = {"robodata": run_robodata, "lerobot": run_lerobot, "pyav": run_pyav}


def child(mode: str, store: Path, out: Path) -> None:
    import av  # noqa: F401 - imports are not part of the measured time

    import robodata.formats.isaaclab

    if mode == "lerobot":
        import lerobot.datasets.lerobot_dataset  # noqa: F401
    elif mode == "robodata":
        import robodata.lerobot  # noqa: F401
    t0 = time.perf_counter()
    frames = MODES[mode](store, out)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "frames": frames, "seconds": seconds, "peak_rss_mb": rss_mb}))


def measure(mode: str, store: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, SVT_LOG="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, __file__, "--child", mode, str(store), str(out)], env=env,
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 episodes x 3 s instead of 6 x 30 s")
    ap.add_argument("--episodes", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "STORE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    episodes = args.episodes or (2 if args.quick else 6)
    seconds = args.seconds or (3.0 if args.quick else 30.0)
    frames = int(seconds * FPS)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="robodata-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        store = work / "recording.hdf5"
        t0 = time.perf_counter()
        make_store(store, episodes, frames)
        print(f"input: {episodes} episodes x {frames} frames ({episodes * frames / FPS:.0f} s at {FPS} fps), cameras "
              f"{', '.join(f'{c} {h}x{w}' for c, (h, w) in CAMERAS.items())}; store {store.stat().st_size / 1e9:.2f} GB "
              f"written in {time.perf_counter() - t0:.0f} s; {os.cpu_count()} CPUs")  # fmt: skip
        results = {m: measure(m, store, work / m) for m in ("robodata", "lerobot", "pyav")}
        a, b, c = (results[m]["frames"] / results[m]["seconds"] for m in ("robodata", "lerobot", "pyav"))
        print(f"{'':28s} {'frames/s':>9s} {'seconds':>8s} {'peak RSS MB':>12s}")
        labels = {"robodata": "(a) robodata write_shard", "lerobot": "(b) lerobot 0.6.1 streaming",
                  "pyav": "(c) PyAV encode only (floor)"}  # fmt: skip
        for m, r in results.items():
            print(f"{labels[m]:28s} {r['frames'] / r['seconds']:9.1f} {r['seconds']:8.1f} {r['peak_rss_mb']:12.0f}")
        print(f"a/b = {a / b:.2f}x    a/c = {a / c:.0%} of the floor")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
