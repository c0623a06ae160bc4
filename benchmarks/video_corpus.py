"""Video corpus scan: clips/s of probe + scene split + quality filters + hashing on Ray Data against decoding alone
(PyAV, the same clips, the same Ray Data map) in the same run; peak memory of the driver and the workers at N and
N/4 clips (flat in corpus size); dedup recall/precision on planted duplicates; scene-cut recall/precision on
planted cuts; planted bad clips caught.

    python benchmarks/video_corpus.py [--clips 1000] [--quick]

The corpus is generated first (not timed): three MuJoCo renders of the Fetch scene (three cameras) composited,
at a random size, place and start, over a per-clip procedural texture with a moving shape (96x128, 30 fps,
40 frames, libx264), 8 % of them two such shots joined (a cut at frame 40); 20 % are duplicates of an earlier
clip (a re-upload, CRF 38, VP9 WebM, a 10 % border crop resized back, upscaled 1.5x, the first 4 frames
trimmed); 12 % are bad (black, static, blurred, shaky, too short, too small, empty, truncated, not a video,
audio only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HW = (96, 128)
FPS = 30
FRAMES = 40
CAMERAS = {
    "a": {"lookat": [1.3, 0.75, 0.45], "distance": 1.6, "azimuth": 150, "elevation": -25},
    "b": {"lookat": [1.3, 0.75, 0.45], "distance": 1.2, "azimuth": 60, "elevation": -45},
    "c": {"lookat": [1.2, 0.7, 0.5], "distance": 2.0, "azimuth": 230, "elevation": -15},
}
DUP_KINDS = ("reupload", "crf38", "vp9", "crop", "upscale", "trim")
BAD_KINDS = {"black": "black", "static": "static", "blurred": "blurred", "shaky": "shaky", "short": "too_short",
             "tiny": "low_resolution", "empty": "finding", "truncated": "finding", "notvideo": "finding",
             "audio": "finding"}


def render_bases(n: int = 90) -> dict[str, np.ndarray]:
    from robodata.sim.fetch import FetchPickPlace
    from robodata.sim.teleop import ScriptedTeleop

    out = {}
    with FetchPickPlace(image_hw=(120, 160), cameras=CAMERAS) as sim:
        for seed, cam in enumerate(CAMERAS):
            sim.reset(seed)
            op = ScriptedTeleop(seed)
            op.begin_episode(sim)
            frames = []
            for _ in range(n):
                frames.append(sim.render(cam))
                sim.step(op.act(sim).action)
            out[cam] = np.stack(frames)
    return out


def encode(path: Path, frames: np.ndarray, codec: str = "libx264", crf: int = 23) -> None:
    import av

    opts = {"crf": str(crf), **({"b": "0", "deadline": "realtime", "cpu-used": "8"} if codec == "libvpx-vp9"
                                else {"preset": "veryfast"})}
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=FPS, options=opts)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, FPS)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))


def _resize(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((hw[1], hw[0]), Image.Resampling.BILINEAR)) for f in frames])


_BASES: dict[str, np.ndarray] = {}


def _init(npz: str) -> None:
    _BASES.update(dict(np.load(npz)))


def shot(seed: int, n: int = FRAMES) -> np.ndarray:
    """One original shot: a sim render window over a procedural texture, with a moving square."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = HW
    block = int(rng.integers(6, 16))
    tex = rng.integers(0, 256, (h // block + 1, w // block + 1, 3), np.uint8)
    bg = np.asarray(Image.fromarray(tex).resize(((w // block + 1) * block, (h // block + 1) * block),
                                                Image.Resampling.NEAREST))[:h, :w]
    base = _BASES[str(rng.choice(list(CAMERAS)))]
    start = int(rng.integers(0, len(base) - n))
    s = float(rng.uniform(0.45, 0.7))
    sh, sw = int(h * s), int(w * s)
    win = _resize(base[start:start + n], (sh, sw))
    y, x = int(rng.integers(0, h - sh)), int(rng.integers(0, w - sw))
    out = np.repeat(bg[None], n, axis=0)
    out[:, y:y + sh, x:x + sw] = win
    size = int(rng.integers(10, 24))
    y0, x0, vy, vx = rng.integers(0, h - size), rng.integers(0, w - size), *rng.uniform(-1.5, 1.5, 2)
    color = rng.integers(0, 256, 3)
    for i in range(n):
        yy, xx = int(np.clip(y0 + vy * i, 0, h - size)), int(np.clip(x0 + vx * i, 0, w - size))
        out[i, yy:yy + size, xx:xx + size] = color
    return out


def make_clip(root: str, spec: dict[str, Any]) -> None:
    """Write one planned clip (run in a generator process)."""
    from PIL import Image, ImageFilter

    p = Path(root) / spec["name"]
    kind = spec["kind"]
    seed = spec["seed"]
    if kind in ("original", "cut"):
        frames = shot(seed) if kind == "original" else np.concatenate([shot(seed), shot(seed + 7_000_000)])
        encode(p, frames)
        Path(p.with_suffix(".txt")).write_text(f"scene {seed}\n")
        return
    if kind == "dup":
        src = Path(root) / spec["of"]
        import av

        with av.open(str(src)) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        how = spec["how"]
        if how == "reupload":
            p.write_bytes(src.read_bytes())
        elif how == "crf38":
            encode(p, frames, crf=38)
        elif how == "vp9":
            encode(p, frames, "libvpx-vp9", crf=40)
        elif how == "crop":
            dy, dx = round(HW[0] * 0.1), round(HW[1] * 0.1)
            encode(p, _resize(frames[:, dy:-dy, dx:-dx], HW))
        elif how == "upscale":
            encode(p, _resize(frames, (HW[0] * 3 // 2, HW[1] * 3 // 2)))
        else:
            encode(p, frames[4:])
        return
    rng = np.random.default_rng(seed)
    if kind == "black":
        encode(p, rng.integers(0, 8, (FRAMES, *HW, 3), np.uint8))
    elif kind == "static":
        encode(p, np.repeat(shot(seed, 1), FRAMES, axis=0))
    elif kind == "blurred":
        encode(p, np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(3))) for f in shot(seed)]))
    elif kind == "shaky":
        big = _resize(shot(seed), (HW[0] + 20, HW[1] + 26))
        offs = rng.integers(0, 21, (FRAMES, 2))
        encode(p, np.stack([big[i, y:y + HW[0], x:x + HW[1]] for i, (y, x) in enumerate(offs)]))
    elif kind == "short":
        encode(p, shot(seed, 12))
    elif kind == "tiny":
        encode(p, _resize(shot(seed), (48, 64)))
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        encode(p, shot(seed))
        data = p.read_bytes()
        p.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "notvideo":
        p.write_text("not a video\n" * 20)
    else:  # audio only
        import av

        with av.open(str(p), "w") as out:
            s = out.add_stream("aac", rate=16000)
            for k in range(15):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, k * 1024
                out.mux(s.encode(af))
            out.mux(s.encode(None))


def plan(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Clip specs in name order; a duplicate always names an earlier (sorting-first) original."""
    rng = np.random.default_rng(seed)
    specs: list[dict[str, Any]] = []
    originals: list[dict[str, Any]] = []
    bad = list(BAD_KINDS)
    for i in range(n):
        u = rng.random()
        name = f"c{i:05d}"
        if u < 0.12 or (i == n - 1 and not any(s["kind"] in BAD_KINDS for s in specs)):
            kind = bad[i % len(bad)]
            specs.append({"name": f"{name}.{'m4a.mp4' if kind == 'audio' else 'mp4'}", "kind": kind, "seed": i})
        elif u < 0.32 and originals:
            o = originals[int(rng.integers(0, len(originals)))]
            how = DUP_KINDS[i % len(DUP_KINDS)]
            cuts = [c - 4 for c in o["cuts"]] if how == "trim" else list(o["cuts"])
            specs.append({"name": f"{name}.{'webm' if how == 'vp9' else 'mp4'}", "kind": "dup", "of": o["name"],
                          "how": how, "seed": i, "cuts": cuts})
        else:
            kind = "cut" if rng.random() < 0.1 else "original"
            o = {"name": f"{name}.mp4", "kind": kind, "seed": i, "cuts": [FRAMES] if kind == "cut" else []}
            specs.append(o)
            originals.append(o)
    return specs


def generate(root: Path, specs: list[dict[str, Any]], npz: str) -> float:
    t = time.perf_counter()
    first = [s for s in specs if s["kind"] != "dup"]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2, initializer=_init, initargs=(npz,)) as ex:
        list(ex.map(make_clip, [str(root)] * len(first), first, chunksize=8))
        dups = [s for s in specs if s["kind"] == "dup"]
        list(ex.map(make_clip, [str(root)] * len(dups), dups, chunksize=8))
    return time.perf_counter() - t


class RssSampler:
    """Peak RSS of this process and of each Ray worker (``ray::`` processes below it), sampled every 0.1 s."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.driver = 0
        self.worker = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            self.driver = max(self.driver, self.me.memory_info().rss)
            for c in self.me.children(recursive=True):
                try:
                    if c.cmdline()[:1] and c.cmdline()[0].startswith("ray::"):
                        self.worker = max(self.worker, c.memory_info().rss)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()


def decode_only(row: dict[str, Any]) -> dict[str, Any]:
    """Decode every frame of a clip with PyAV (threads as the scan uses them), nothing else."""
    import av

    n = 0
    try:
        with av.open(row["url"]) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for _ in c.decode(s):
                n += 1
    except (av.error.FFmpegError, IndexError, OSError):
        pass
    return {"frames": n}


def evaluate(res: Any, specs: list[dict[str, Any]], root: Path) -> dict[str, Any]:
    from robodata.video.scenes import cut_accuracy

    by = {str(root / s["name"]): s for s in specs}
    tp = fp = 0
    false: list[str] = []
    true_bits: list[float] = []
    for r in res.rejections:
        if r.reason != "duplicate":
            continue
        s = by[r.clip]
        ok = s["kind"] == "dup" and r.twin is not None and r.twin.rsplit("#", 1)[0] == str(root / s["of"])
        tp, fp = tp + ok, fp + (not ok)
        if ok:
            true_bits.append(float(r.detail.rsplit("(", 1)[-1].split()[0]))
        else:
            t = by[str(r.twin).rsplit("#", 1)[0]]
            false.append(f"{s['name']}#{r.index} ({s['kind']} {s.get('how', '')} of {s.get('of', '-')}) -> "
                         f"{t['name']} ({t['kind']}): {r.detail.rsplit('(', 1)[-1].rstrip(')')}")
    fn = sum(by[s.clip]["kind"] == "dup" for s in res.shots)
    ctp = cfp = cfn = 0
    for c in res.clips:
        a, b, m = cut_accuracy(c.cuts, by[c.clip].get("cuts", []))
        ctp, cfp, cfn = ctp + a, cfp + b, cfn + m
    caught = 0
    bad = [s for s in specs if s["kind"] in BAD_KINDS]
    rej = {r.clip: r.reason for r in res.rejections}
    found = {f.path for f in res.findings}
    for s in bad:
        want = BAD_KINDS[s["kind"]]
        p = str(root / s["name"])
        caught += (p in found) if want == "finding" else (rej.get(p) == want)
    wrongly = sum(1 for r in res.rejections if r.reason != "duplicate" and by[r.clip]["kind"] not in BAD_KINDS)
    return {"dup_recall": tp / max(1, tp + fn), "dup_precision": tp / max(1, tp + fp), "dup_found": tp,
            "dup_missed": fn, "dup_false": fp, "cut_recall": ctp / max(1, ctp + cfn),
            "cut_precision": ctp / max(1, ctp + cfp), "cuts_planted": ctp + cfn, "bad_caught": caught,
            "bad_planted": len(bad), "good_rejected": wrongly, "dup_false_examples": false[:10],
            "dup_true_bits_p95_max": [round(float(np.quantile(true_bits, 0.95)), 1), max(true_bits)] if true_bits else []}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="200 clips")
    args = ap.parse_args()
    n = 200 if args.quick else args.clips
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    import ray

    from robodata.parallel import start_ray_data
    from robodata.video.config import VideoCorpusConfig
    from robodata.video.corpus import scan_corpus
    from robodata.video.hashing import ShotIndex

    results: dict[str, Any] = {"clips": n, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        npz = f"{tmp}/bases.npz"
        np.savez(npz, **render_bases())
        results["render_s"] = round(time.perf_counter() - t, 1)
        roots = {}
        for size in (n // 4, n):
            root = Path(tmp) / f"corpus{size}"
            root.mkdir()
            specs = plan(size)
            results[f"generate_{size}_s"] = round(generate(root, specs, npz), 1)
            roots[size] = (root, specs)
        print(f"rendered and generated in {results['render_s'] + sum(results[f'generate_{s}_s'] for s in roots):.0f} s",
              flush=True)
        cfg = VideoCorpusConfig()
        start_ray_data(None)
        warm = Path(tmp) / "warm"
        warm.mkdir()
        make_clip_args = plan(4, seed=99)
        for s in make_clip_args:
            _init(npz)
            make_clip(str(warm), s)
        scan_corpus(str(warm), cfg)  # worker start-up outside the timings

        root, specs = roots[n]
        urls = sorted(str(p) for p in root.iterdir() if p.suffix in (".mp4", ".webm"))
        t = time.perf_counter()
        ds = ray.data.from_items([{"url": u} for u in urls], override_num_blocks=len(urls)).map(decode_only)
        frames = sum(r["frames"] for r in ds.iter_rows())
        decode_s = time.perf_counter() - t
        results["decode_only_clips_per_s"] = round(len(urls) / decode_s, 1)
        results["decoded_frames"] = frames
        for size in (n // 4, n):
            root, specs = roots[size]
            with RssSampler() as mem:
                res = scan_corpus(str(root), cfg, index=ShotIndex(f"{tmp}/index{size}.sqlite", cfg))
            files = len(specs)
            results[f"scan_{size}"] = {
                "clips_per_s": round(files / res.timings["analyze"], 1), "seconds": round(res.timings["total"], 1),
                "dedup_s": round(res.timings["dedup"], 2), "driver_peak_mb": round(mem.driver / 2**20),
                "worker_peak_mb": round(mem.worker / 2**20), **evaluate(res, specs, root), "counts": res.counts}
            print(size, json.dumps(results[f"scan_{size}"]), flush=True)
        ray.shutdown()
    full, quarter = results[f"scan_{n}"], results[f"scan_{n // 4}"]
    results["ratio_scan_to_decode"] = round(full["clips_per_s"] / results["decode_only_clips_per_s"], 3)
    rows = [
        ("clips/s, probe + split + filter + hash (Ray Data)", f"{full['clips_per_s']}"),
        ("clips/s, PyAV decode alone (Ray Data, same clips)", f"{results['decode_only_clips_per_s']}"),
        ("ratio scan / decode", f"{results['ratio_scan_to_decode']:.2f}"),
        (f"peak RSS driver, {n // 4} / {n} clips", f"{quarter['driver_peak_mb']} / {full['driver_peak_mb']} MB"),
        (f"peak RSS per worker, {n // 4} / {n} clips", f"{quarter['worker_peak_mb']} / {full['worker_peak_mb']} MB"),
        ("dedup recall / precision (planted duplicate shots)",
         f"{full['dup_recall']:.3f} / {full['dup_precision']:.3f} ({full['dup_found']} found, {full['dup_missed']} "
         f"missed, {full['dup_false']} false)"),
        ("scene-cut recall / precision", f"{full['cut_recall']:.3f} / {full['cut_precision']:.3f} "
                                         f"({full['cuts_planted']} planted)"),
        ("bad clips caught (right reason)", f"{full['bad_caught']} / {full['bad_planted']}"),
        ("good clips rejected by a quality filter", f"{full['good_rejected']}"),
        ("dedup on the driver", f"{full['dedup_s']} s"),
    ]
    print(f"\n| {n} clips, {os.cpu_count()} CPUs | |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    out = Path(__file__).parent / "results" / f"video_corpus_{n}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
