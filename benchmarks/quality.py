"""Dedup and drift over 1,000 and 10,000 episodes derived from the simulator's recordings, with planted duplicates
and planted drift.

    python benchmarks/quality.py            # 1,000 and 10,000 episodes (~5 min on 2 shared cores)
    python benchmarks/quality.py --quick    # 300 and 1,000 episodes (~1 min)

Source data: real sessions of the Fetch simulator (``robodata.sim.recorder.record_session``, 2 sessions x 3
episodes, 48x64 cameras, HDF5). From them, N distinct "original" episodes are derived: each takes one recorded
demo and gets its own time warp (length x0.8-1.2, a smooth non-linear warp), per-dimension offsets (~1 std of the
dimension), a smooth per-dimension perturbation and sensor noise; for the first ``--frames`` episodes the two
cameras' frames are kept too, blended with a per-episode random low-frequency pattern (another scene). Then 10 % of
the set is planted duplicates of earlier originals, in equal parts:

- **exact**: the same arrays again under another episode id and source (a file copied under another name);
- **re-recorded**: resampled to 0.9-1.1x the length, the first 0-3 % cropped, timestamps offset, noise of 2 % of
  each dimension's std added;
- **re-exported** (only among the episodes with frames): the same low-dim with every frame re-encoded as JPEG q40
  at 3/4 size, and half of them exported with another layout (the action dropped), so that only the frame
  hashes can find them.

Dedup runs as a release and then a batch of new recordings against it (the index holds the first half, the
second half is checked against the index and itself). Recall: planted duplicates reported with a twin of the
same original; precision: reported duplicates that are planted and name a twin of the right original. Time and
peak memory (tracemalloc: the Python heap, numpy included; VmHWM for the process) are for signatures + index +
dedup. Baseline in the same run: all pairs verified with the same distance on a subsample, extrapolated to N.

Drift: reference and new LeRobot v3.0 releases written with robodata's writer (low-dim, N episodes each); the new
one has planted drift in observation.state[2] (+0.5 std), action[1] (std x1.6), episode length (-25 %) and the
task mix (10 % -> 40 % of a second task); everything else is undrifted. A separate pair of 60-episode releases
with a 48x64 camera has brightness -25 on every channel in the new one (so brightness and the red/green/blue means
are expected to move; blur is not). Recall / precision over features.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MUJOCO_GL", "egl")

from benchmarks._common import peak_rss_mb

HW = (48, 64)


def record_demos(work: Path, sessions: int) -> list[dict]:
    from robodata.formats.isaaclab import EpisodeStore
    from robodata.sim.recorder import record_session

    demos = []
    for i in range(sessions):
        r = record_session(work, f"session-{i}", n_episodes=3, seed=100 + i, image_hw=HW, formats=("hdf5",))
        with EpisodeStore(r["hdf5"]) as es:
            for d in es.demo_names:
                demos.append({"state": es.state_vector(d).astype(np.float64),
                              "action": np.asarray(es.group(d)["actions"][()], np.float64),
                              "ts": es.timestamps(d),
                              "frames": {c.name: es.feature(d, c.name) for c in es.schema.cameras}})
    return demos


def _warp(n_out: int, n_in: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    u = np.linspace(0, 1, n_out)
    w = u + strength * rng.uniform(-1, 1) * np.sin(np.pi * u) / np.pi
    return np.clip(np.maximum.accumulate(w), 0, 1) * (n_in - 1)


def _interp(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(x) - 1)
    f = (pos - lo)[:, None]
    return x[lo] * (1 - f) + x[hi] * f


def _scene(img: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    return np.clip(0.5 * img + 0.5 * pattern, 0, 255).astype(np.uint8)


def _reexport(img: np.ndarray) -> np.ndarray:
    import io

    from PIL import Image

    im = Image.fromarray(img)
    h, w = img.shape[:2]
    im = im.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=40)
    return np.asarray(Image.open(buf).convert("RGB").resize((w, h), Image.Resampling.BILINEAR))


def make_episodes(demos: list[dict], n: int, n_frames: int, k_frames: int, seed: int) -> tuple[list[dict], dict]:
    """``n`` episodes: originals + 10 % planted duplicates; returns (episodes, truth: id -> (original, kind))."""
    from robodata.dedup import frame_times

    rng = np.random.default_rng(seed)
    allv = np.concatenate([np.concatenate([d["state"], d["action"]], 1) for d in demos])
    dstd = np.maximum(allv.std(0), 1e-3)
    n_dup = n // 10
    n_orig = n - n_dup
    eps: list[dict] = []
    truth: dict[str, tuple[str, str]] = {}
    sdim = demos[0]["state"].shape[1]
    for i in range(n_orig):
        d = demos[i % len(demos)]
        x = np.concatenate([d["state"], d["action"]], 1)
        m = int(len(x) * rng.uniform(0.8, 1.2))
        y = _interp(x, _warp(m, len(x), rng, 0.3))
        u = np.linspace(0, 1, m)[:, None]
        y = y + rng.normal(0, 1.0, x.shape[1]) * dstd
        y = y + 0.4 * dstd * np.sin(2 * np.pi * (rng.uniform(0.5, 2, x.shape[1]) * u + rng.uniform(0, 1, x.shape[1])))
        y = y + rng.normal(0, 0.01, y.shape) * dstd
        ep = {"id": f"orig-{i:05d}", "source": "", "state": y[:, :sdim], "action": y[:, sdim:],
              "ts": np.arange(m) / 30.0, "frames": None}
        if i < n_frames:
            pattern = np.kron(rng.uniform(0, 255, (4, 4, 3)), np.ones((HW[0] // 4, HW[1] // 4, 1)))
            idx = frame_times(len(d["ts"]), k_frames)
            ep["frames"] = {c: [_scene(f[j], pattern) for j in idx] for c, f in d["frames"].items()}
        eps.append(ep)
        truth[ep["id"]] = (ep["id"], "original")
    kinds = ["exact", "re-recorded", "re-exported"]
    for j in range(n_dup):
        kind = kinds[j % 3]
        pool = n_frames if kind == "re-exported" else n_orig
        o = eps[int(rng.integers(0, min(pool, n_orig)))]
        if kind == "re-exported" and o["frames"] is None:
            kind = "exact"
        dup = dict(o)
        dup["id"] = f"dup-{j:05d}-{kind}"
        if kind == "re-recorded":
            x = np.concatenate([o["state"], o["action"]], 1)
            m = int(len(x) * rng.uniform(0.9, 1.1))
            start = rng.uniform(0, 0.03) * (len(x) - 1)
            y = _interp(x, np.linspace(start, len(x) - 1, m)) + rng.normal(0, 0.02, (m, x.shape[1])) * dstd
            dup.update(state=y[:, :sdim], action=y[:, sdim:], ts=np.arange(m) / 30.0 + rng.uniform(0, 100))
            if o["frames"] is not None:
                dup["frames"] = o["frames"]  # the cameras saw the same (sampled at the same normalised times)
        elif kind == "re-exported":
            dup["frames"] = {c: [_reexport(f) for f in fs] for c, fs in o["frames"].items()}
            if j % 2:
                dup["action"] = None  # another export layout: only the frames can tell
                dup["id"] += "-layout"
        truth[dup["id"]] = (o["id"], kind)
        eps.append(dup)
    order = rng.permutation(len(eps))
    eps = [eps[i] for i in order]
    # an original must come before its copies (the later one is the duplicate): stable fix-up
    pos = {e["id"]: i for i, e in enumerate(eps)}
    for e in list(eps):
        o = truth[e["id"]][0]
        if o != e["id"] and pos[o] > pos[e["id"]]:
            a, b = pos[o], pos[e["id"]]
            eps[a], eps[b] = eps[b], eps[a]
            pos[eps[a]["id"]], pos[eps[b]["id"]] = a, b
    half = len(eps) // 2
    for i, e in enumerate(eps):
        e["source"] = "release-1" if i < half else "recordings"
    return eps, truth


def run_dedup(eps: list[dict], truth: dict, work: Path, baseline_m: int) -> dict:
    from robodata.dedup import DedupConfig, DedupIndex, EpisodeSignature, dedup_episodes

    cfg = DedupConfig(policy="exclude_all")
    tracemalloc.start()
    t0 = time.perf_counter()
    sigs = [EpisodeSignature.compute(e["id"], e["source"], e["state"], e["action"], e["ts"], e["frames"], cfg)
            for e in eps]
    t_sig = time.perf_counter() - t0
    db = work / "dedup.sqlite3"
    if db.exists():
        db.unlink()
    index = DedupIndex(db, cfg)
    half = len(sigs) // 2
    t1 = time.perf_counter()
    r1 = dedup_episodes(sigs[:half], index)
    r2 = dedup_episodes(sigs[half:], index)
    t_dedup = time.perf_counter() - t1
    _, heap = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    found = r1.duplicates + r2.duplicates
    planted = {i for i, (o, k) in truth.items() if k != "original"}
    good = [d for d in found if d.episode_id in planted and truth[d.twin_id][0] == truth[d.episode_id][0]]
    by_kind = {}
    for k in ("exact", "re-recorded", "re-exported"):
        ids = {i for i in planted if truth[i][1] == k}
        hit = {d.episode_id for d in good if d.episode_id in ids}
        by_kind[k] = f"{len(hit)}/{len(ids)}"
    wrong = [d for d in found if d not in good][:5]
    # baseline: all pairs, the same verification, on a subsample
    m = min(baseline_m, len(sigs))
    sub = sigs[:m]
    tb = time.perf_counter()
    for i in range(m):
        for j in range(i):
            index.verify(sub[i], sub[j])
    t_pairs = time.perf_counter() - tb
    pairs_n = len(sigs) * (len(sigs) - 1) / 2
    est = t_pairs / (m * (m - 1) / 2) * pairs_n
    return {"episodes": len(sigs), "planted": len(planted), "found": len(found),
            "recall": len(good) / max(1, len(planted)), "precision": len(good) / max(1, len(found)),
            "by_kind": by_kind, "signature_s": round(t_sig, 2), "dedup_s": round(t_dedup, 2),
            "candidates_verified": r1.candidates_verified + r2.candidates_verified,
            "heap_mb": round(heap / 1e6, 1), "index_mb": round(db.stat().st_size / 1e6, 1),
            "allpairs_sub": m, "allpairs_sub_s": round(t_pairs, 2), "allpairs_est_s": round(est, 1),
            "excluded": len(r1.excluded) + len(r2.excluded),
            "wrong_examples": [d.describe() for d in wrong]}


def write_release(root: Path, eps: list[dict], tasks: list[str], camera: bool = False) -> None:
    from robodata.lerobot.video import VideoSettings
    from robodata.lerobot.writer_v3 import LeRobotV3Writer

    s = eps[0]["state"].shape[1]
    a = eps[0]["action"].shape[1]
    feats = {"observation.state": {"dtype": "float32", "shape": [s], "names": [f"s{i}" for i in range(s)]},
             "action": {"dtype": "float32", "shape": [a], "names": [f"a{i}" for i in range(a)]}}
    if camera:
        feats["observation.images.front"] = {"dtype": "video", "shape": [HW[0], HW[1], 3],
                                             "names": ["height", "width", "channel"]}
    with LeRobotV3Writer(root, fps=30, features=feats, video=VideoSettings(codec="libx264", crf=18, preset="ultrafast")) as w:
        for e, t in zip(eps, tasks, strict=True):
            ep = w.begin_episode(t, length=len(e["state"]))
            batch = {"observation.state": e["state"], "action": e["action"]}
            if camera:
                batch["observation.images.front"] = e["video"]
            ep.add(batch)
            ep.end()


def drift_sets(demos: list[dict], n: int, seed: int, drift: bool, camera: bool = False) -> tuple[list[dict], list[str]]:
    rng = np.random.default_rng(seed)
    allv = np.concatenate([np.concatenate([d["state"], d["action"]], 1) for d in demos])
    dstd = np.maximum(allv.std(0), 1e-3)
    sdim = demos[0]["state"].shape[1]
    eps, tasks = [], []
    for _ in range(n):
        d = demos[int(rng.integers(0, len(demos)))]
        x = np.concatenate([d["state"], d["action"]], 1)
        m = int(len(x) * rng.uniform(0.8, 1.2) * (0.75 if drift and not camera else 1.0))
        y = _interp(x, _warp(m, len(x), rng, 0.3)) + rng.normal(0, 0.3, x.shape[1]) * dstd
        st, ac = y[:, :sdim].copy(), y[:, sdim:].copy()
        if drift and not camera:
            st[:, 2] += 0.5 * dstd[2]
            ac[:, 1] = ac[:, 1].mean() + (ac[:, 1] - ac[:, 1].mean()) * 1.6 + rng.normal(0, 0.6) * dstd[sdim + 1]
        e = {"state": st, "action": ac}
        if camera:
            pos = _warp(m, len(d["ts"]), rng, 0.3).round().astype(int)
            v = d["frames"]["front"][pos].astype(np.int16) - (25 if drift else 0)
            e["video"] = np.clip(v, 0, 255).astype(np.uint8)
        eps.append(e)
        second = rng.random() < (0.4 if drift and not camera else 0.1)
        tasks.append("stack the cube on the block" if second else "pick up the cube and place it at the goal")
    return eps, tasks


def run_drift(demos: list[dict], n: int, work: Path, camera: bool = False) -> dict:
    from robodata.drift import DriftConfig, drift_report

    ref, new = work / f"ref-{n}-{camera}", work / f"new-{n}-{camera}"
    for p in (ref, new):
        shutil.rmtree(p, ignore_errors=True)
    tw = time.perf_counter()
    write_release(ref, *drift_sets(demos, n, 1, False, camera), camera=camera)
    write_release(new, *drift_sets(demos, n, 2, True, camera), camera=camera)
    t_write = time.perf_counter() - tw
    cfg = DriftConfig(image_episodes=60 if camera else 0)
    tracemalloc.start()
    t0 = time.perf_counter()
    rep = drift_report(new, ref, cfg)
    t = time.perf_counter() - t0
    _, heap = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = rep.write(work / f"report-{n}-{camera}")
    if camera:
        planted = {f"observation.images.front:{s}" for s in ("brightness", "red", "green", "blue")}
        considered = {f.name for f in rep.features if f.group == "image"}
    else:
        planted = {"observation.state[s2]", "action[a1]", "episode_length", "task_mix"}
        considered = {f.name for f in rep.features}
    flagged = {f.name for f in rep.drifted} & considered
    hit = flagged & planted
    return {"episodes": n, "camera": camera, "features": len(considered), "planted": sorted(planted),
            "flagged": sorted(flagged), "recall": len(hit) / len(planted), "precision": len(hit) / max(1, len(flagged)),
            "drift_s": round(t, 2), "write_s": round(t_write, 1), "heap_mb": round(heap / 1e6, 1),
            "report": str(out["markdown"]),
            "values": {f.name: round(f.value, 3) for f in rep.features if f.name in planted | flagged}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 and 1,000 episodes, one recorded session")
    ap.add_argument("--sizes", type=int, nargs="*")
    ap.add_argument("--frames", type=int, default=600, help="episodes whose camera frames are hashed")
    ap.add_argument("--baseline", type=int, default=400, help="episodes in the all-pairs subsample")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "quality.json")
    args = ap.parse_args()
    sizes = args.sizes or ([300, 1000] if args.quick else [1000, 10_000])
    base = Path(tempfile.mkdtemp(prefix="robodata-quality-bench-"))
    rows, drifts = [], []
    try:
        t0 = time.perf_counter()
        demos = record_demos(base / "rec", 1 if args.quick else 2)
        rec_s = time.perf_counter() - t0
        print(f"recorded {len(demos)} demos in the simulator ({rec_s:.0f} s); "
              f"{sum(len(d['ts']) for d in demos)} frames", flush=True)
        for n in sizes:
            eps, truth = make_episodes(demos, n, min(args.frames, n // 2), 4, seed=n)
            rows.append(run_dedup(eps, truth, base, args.baseline))
            print(json.dumps(rows[-1]), flush=True)
            del eps
            drifts.append(run_drift(demos, n, base))
            print(json.dumps(drifts[-1]), flush=True)
        drifts.append(run_drift(demos, 60, base, camera=True))
        print(json.dumps(drifts[-1]), flush=True)
        shutil.copy(drifts[-2]["report"], base / "example_drift_report.md")
    finally:
        rss = peak_rss_mb()
        shutil.rmtree(base, ignore_errors=True)
    print()
    print("dedup (signatures + SQLite index + verification; release then new recordings against it)")
    print(f"{'episodes':>9s} {'planted':>7s} {'recall':>7s} {'precision':>9s} {'exact':>9s} {'re-rec':>9s} "
          f"{'re-exp':>9s} {'sig s':>6s} {'dedup s':>7s} {'verified':>8s} {'heap MB':>7s} {'index MB':>8s} | "
          f"{'all-pairs est s':>15s} {'ratio':>6s}")
    for r in rows:
        k = r["by_kind"]
        total = r["signature_s"] + r["dedup_s"]
        print(f"{r['episodes']:>9,d} {r['planted']:>7d} {r['recall']:>7.3f} {r['precision']:>9.3f} {k['exact']:>9s} "
              f"{k['re-recorded']:>9s} {k['re-exported']:>9s} {r['signature_s']:>6.1f} {r['dedup_s']:>7.1f} "
              f"{r['candidates_verified']:>8d} {r['heap_mb']:>7.1f} {r['index_mb']:>8.1f} | {r['allpairs_est_s']:>15,.1f} "
              f"{r['allpairs_est_s'] / max(total, 1e-9):>5.0f}x")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        ta, tb = a["signature_s"] + a["dedup_s"], b["signature_s"] + b["dedup_s"]
        f = b["episodes"] / a["episodes"]
        print(f"growth {a['episodes']:,} -> {b['episodes']:,} ({f:.0f}x episodes): time {tb / ta:.1f}x "
              f"(dedup alone {b['dedup_s'] / max(a['dedup_s'], 1e-9):.1f}x), heap {b['heap_mb'] / max(a['heap_mb'], 1e-9):.1f}x, "
              f"all-pairs would be {f * (b['episodes'] - 1) / (a['episodes'] - 1):.0f}x "
              f"(log-log slope {math.log(tb / ta) / math.log(f):.2f}; 1 = linear)")
    print("\ndrift (planted: state[s2] +0.5 std, action[a1] std x1.6, episode length -25 %, task mix 10 -> 40 %; "
          "camera set: brightness -25)")
    print(f"{'episodes':>9s} {'camera':>6s} {'features':>8s} {'recall':>7s} {'precision':>9s} {'drift s':>7s} "
          f"{'heap MB':>7s}  flagged")
    for d in drifts:
        print(f"{d['episodes']:>9,d} {str(d['camera']):>6s} {d['features']:>8d} {d['recall']:>7.2f} "
              f"{d['precision']:>9.2f} {d['drift_s']:>7.2f} {d['heap_mb']:>7.1f}  {', '.join(d['flagged'])}")
    print(f"\nprocess peak RSS {rss:.0f} MB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"dedup": rows, "drift": drifts, "peak_rss_mb": rss}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
