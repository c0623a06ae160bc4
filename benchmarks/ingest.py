"""Benchmark: MCAP -> time-synced Isaac Lab HDF5 (robodata ingest) vs the ``mcap`` library's own decode loop.

    python benchmarks/ingest.py [--quick] [--seconds N] [--repeat N] [--workdir DIR] [--profile]

One synthetic ROS 2 recording (``robodata.sim.recorder.write_synthetic_mcap``: two 480x640 rgb8 cameras at
30 Hz, joint states and end-effector pose at 100 Hz, object pose 50 Hz, goal 10 Hz, action and grasp 30 Hz,
zstd chunks, 20 s episodes) is written once and cached under ``benchmarks/results/ingest-cache/``. Then,
each in its own subprocess (imports not timed, peak RSS = the child's own ``VmHWM``):

- **(a1) mcap decode**: ``mcap.reader.make_reader(f, decoder_factories=[mcap_ros2 DecoderFactory()])`` and
  ``for schema, channel, message, decoded in reader.iter_decoded_messages(): pass``: the floor of any
  Python consumer of the file through the reference libraries.
- **(a2) mcap decode + numpy**: the same, plus every ``sensor_msgs/Image`` turned into an ``(H, W, 3)`` uint8
  array (``np.frombuffer(decoded.data).reshape``, a zero-copy view of the decoded bytes).
- **(r) robodata reader**: robodata's own MCAP reader, every message decoded, nothing else (to split (b)).
- **(b) robodata ingest**: ``ingest_recording(mcap, out.hdf5, load_topic_map(DEMO_TOPIC_MAP))``: decode,
  time-sync to the front camera, episode split by markers, write the HDF5 (uncompressed frames) atomically.
- **(w) h5py write floor**: h5py alone writing as many 480x640 frames as (b) writes, same layout, nothing
  read: the output side's floor ((b) writes ~2.7x the MCAP's bytes: frames are stored uncompressed).

Then robodata's ingest runs on a recording a third as long, to show peak RSS does not grow with the
recording (streaming). Results are printed and merged into ``benchmarks/results/ingest.json``.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from _common import peak_rss_mb  # noqa: E402 - benchmarks/ is on sys.path as the script folder

RESULTS = REPO / "benchmarks" / "results"
CACHE = RESULTS / "ingest-cache"
CAMERAS = 2
IMAGE_HW = (480, 640)
JOINT_RATE = 100
CACHE_VERSION = 1  # bump when the recording's parameters change


# -- the recording ------------------------------------------------------------------------------------------


def recording(seconds: float) -> tuple[Path, dict]:
    """The synthetic MCAP of ``seconds`` (cached with its write_synthetic_mcap summary)."""
    from robodata.sim.recorder import write_synthetic_mcap

    CACHE.mkdir(parents=True, exist_ok=True)
    stem = f"synthetic-v{CACHE_VERSION}-{seconds:g}s-{CAMERAS}cam-{IMAGE_HW[0]}x{IMAGE_HW[1]}-{JOINT_RATE}hz"
    path, meta_path = CACHE / f"{stem}.mcap", CACHE / f"{stem}.json"
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size:
            meta["cached"] = True
            return path, meta
    tmp = path.with_suffix(".mcap.partial")
    info = write_synthetic_mcap(tmp, seconds=seconds, cameras=CAMERAS, image_hw=IMAGE_HW, joint_rate=JOINT_RATE)
    tmp.replace(path)
    meta = {k: (str(v) if isinstance(v, Path) else v) for k, v in info.items()}
    meta["path"] = str(path)
    meta_path.write_text(json.dumps(meta, indent=1))
    meta["cached"] = False
    return path, meta


def warm_page_cache(path: Path) -> None:
    """Read the file once so every contender starts from the same (warm) page cache."""
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


# -- the contenders (run in a child process) ---------------------------------------------------------------


def run_mcap(mcap: Path, _out: Path, to_numpy: bool) -> dict:
    import numpy as np
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    messages = images = 0
    with open(mcap, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        if not to_numpy:
            for _schema, _channel, _message, _decoded in reader.iter_decoded_messages():
                messages += 1
        else:
            for schema, _channel, _message, decoded in reader.iter_decoded_messages():
                messages += 1
                if schema.name == "sensor_msgs/msg/Image":
                    h, w, step = decoded.height, decoded.width, decoded.step
                    img = np.frombuffer(decoded.data, np.uint8).reshape(h, step)[:, : w * 3].reshape(h, w, 3)
                    assert img.shape == (h, w, 3)
                    images += 1
    return {"messages": messages, "images": images}


def run_reader(mcap: Path, _out: Path) -> dict:
    from robodata.readers import open_recording

    messages = 0
    with open_recording(mcap) as reader:
        for _m in reader.messages():
            messages += 1
    return {"messages": messages}


def run_ingest(mcap: Path, out: Path) -> dict:
    from robodata.ingest import ingest_recording
    from robodata.topicmap import DEMO_TOPIC_MAP, load_topic_map

    report = ingest_recording(mcap, out, load_topic_map(DEMO_TOPIC_MAP))
    meta = report.as_metadata()
    return {"frames": report.frames, "episodes": meta["episodes"], "dropped_frames": meta["dropped_frames"],
            "bytes_written": report.bytes_written}  # fmt: skip


def run_write_floor(mcap: Path, out: Path) -> dict:
    """h5py alone writing as many camera frames as the recording has, in (b)'s layout (uncompressed, one
    frame per chunk, 16-frame appends, cameras interleaved), from one preallocated batch: nothing read."""
    import h5py
    import numpy as np

    meta = json.loads(mcap.with_suffix(".json").read_text())
    counts = {t: n for t, n in meta["topics"].items() if t.startswith("/camera/")}
    h, w = IMAGE_HW
    batch = np.random.default_rng(0).integers(0, 255, (16, h, w, 3), dtype=np.uint8)
    with h5py.File(out, "w") as f:
        ds = {t: f.create_dataset(t.strip("/").replace("/", "_"), shape=(0, h, w, 3), maxshape=(None, h, w, 3),
                                  dtype=np.uint8, chunks=(1, h, w, 3)) for t in counts}  # fmt: skip
        for start in range(0, max(counts.values()), 16):
            for t, d in ds.items():
                m = min(16, counts[t] - start)
                if m > 0:
                    d.resize(start + m, axis=0)
                    d[start:] = batch[:m]
    return {"frames": sum(counts.values()) // CAMERAS, "bytes_written": out.stat().st_size}


MODES = {
    "mcap": lambda m, o: run_mcap(m, o, to_numpy=False),
    "mcap_numpy": lambda m, o: run_mcap(m, o, to_numpy=True),
    "reader": run_reader,
    "ingest": run_ingest,
    "write": run_write_floor,
}
LABELS = {
    "mcap": "(a1) mcap + mcap_ros2 decode",
    "mcap_numpy": "(a2) (a1) + Image -> numpy",
    "reader": "(r) robodata reader only",
    "ingest": "(b) robodata ingest -> HDF5",
    "write": "(w) h5py write floor (no read)",
}


def child(mode: str, rec: Path, out: Path, profile: Path | None) -> None:
    import numpy  # noqa: F401 - imports are not part of the measured time

    if mode.startswith("mcap"):
        import mcap.reader  # noqa: F401
        import mcap_ros2.decoder  # noqa: F401
    else:
        import h5py  # noqa: F401
        import zstandard  # noqa: F401

        import robodata.ingest
        import robodata.msgconv
        import robodata.readers
        import robodata.topicmap  # noqa: F401
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    if profile is not None:
        import cProfile

        import robodata.readers.mcap_reader as mcap_reader

        # Python 3.12's cProfile records every thread (sys.monitoring): read serially so the profile adds up.
        mcap_reader.default_workers = lambda: 0
        prof = cProfile.Profile()
        result = prof.runcall(MODES[mode], rec, out)
        prof.dump_stats(str(profile))
    else:
        result = MODES[mode](rec, out)
    seconds = time.perf_counter() - t0
    rss = peak_rss_mb()
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_rss_mb": rss, "rss_after_imports_mb": rss0,
                      "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **result}))


def measure(mode: str, mcap: Path, work: Path, profile: Path | None = None, repeat: int = 1) -> dict:
    """Run ``mode`` ``repeat`` times in fresh processes: the fastest run, with the highest peak RSS seen."""
    runs = [measure_once(mode, mcap, work, profile) for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs_s": [r["seconds"] for r in runs]}


def measure_once(mode: str, mcap: Path, work: Path, profile: Path | None = None) -> dict:
    out = work / f"{mode}.hdf5"
    out.unlink(missing_ok=True)
    warm_page_cache(mcap)
    cmd = [sys.executable, __file__, "--child", mode, str(mcap), str(out)]
    if profile is not None:
        cmd += ["--profile-out", str(profile)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} on {mcap.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the report -----------------------------------------------------------------------------------------------


def derive(r: dict, meta: dict) -> dict:
    """Input MB/s and camera frames/s (camera messages decoded, or frames x cameras written)."""
    cam_msgs = sum(n for t, n in meta["topics"].items() if t.startswith("/camera/"))
    cam_frames = r["frames"] * CAMERAS if "frames" in r else cam_msgs
    return {**r, "input_mb_s": meta["bytes"] / 1e6 / r["seconds"], "camera_frames_s": cam_frames / r["seconds"]}


# Where (b)'s time goes, by stage: (file suffix, function) -> label; cumulative times (they nest).
PHASES = [
    (("robodata/ingest.py", "_probe"), "probe: first message of each topic, build decoders"),
    (("mcap_reader.py", "messages"), "reader: read + decompress + CRC + decode (all)"),
    (("mcap_reader.py", "_chunk_records"), "  of which read + zstd of chunks (+ CRC32 if validated)"),
    (("typesys.py", "decode"), "  of which CDR decode (rosbags)"),
    (("robodata/ingest.py", "_convert"), "msgconv.to_array: message -> numpy (all features)"),
    (("robodata/ingest.py", "finalize"), "sync: pick camera frames per reference tick (+ image convert)"),
    (("robodata/ingest.py", "flush_images"), "write images: np.stack 16 frames + h5py"),
    (("robodata/ingest.py", "close_episode"), "close episode: align low-dim, write, keep()"),
    (("isaaclab.py", "commit"), "commit: close HDF5, atomic rename"),
]


def print_profile(path: Path, top: int = 10) -> dict:
    import pstats

    st = pstats.Stats(str(path))
    stats = st.stats  # type: ignore[attr-defined]
    total = max(ct for (_f, _l, fn), (_cc, _nc, _tt, ct, _c) in stats.items() if fn == "ingest_recording")
    rows = []
    print(f"\ncProfile of (b), reader threads off, {total:.2f} s in ingest_recording; top {top} by own time:")
    print(f"{'own s':>7s} {'%':>6s} {'cum s':>7s} {'calls':>8s}  function")
    items = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in items[:top]:
        where = f"{Path(file).name}:{line}({fn})" if line else fn
        print(f"{tt:7.2f} {tt / total:6.1%} {ct:7.2f} {nc:8d}  {where}")
        rows.append({"function": where, "tottime_s": round(tt, 3), "cumtime_s": round(ct, 3), "calls": nc})
    phases = {}
    print("by stage (cumulative, nested):")
    for (suffix, fn), label in PHASES:
        ct = sum(v[3] for (f, _l, name), v in stats.items() if name == fn and f.endswith(suffix))
        phases[label.strip()] = round(ct, 3)
        print(f"{ct:7.2f} {ct / total:6.1%}  {label}")
    return {"total_s": round(total, 3), "top_by_own_time": rows, "stages_cumulative_s": phases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 s recording (memory check 5 s vs 15 s) instead of 60 s")
    ap.add_argument("--seconds", type=float, help="length of the main recording (memory check: a third of it vs it)")
    ap.add_argument("--workdir", type=Path, help="where the HDF5 outputs go (default: a temp dir, removed)")
    ap.add_argument("--repeat", type=int, help="runs per contender, fastest kept (default: 3 with --quick, else 1)")
    ap.add_argument("--profile", action="store_true", help="also run (b) under cProfile and print the top 10")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "MCAP", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]), args.profile_out)
        return

    seconds = args.seconds or (10.0 if args.quick else 60.0)
    if args.seconds:
        mem_sizes = (round(seconds / 3, 1), seconds)
    else:
        mem_sizes = (5.0, 15.0) if args.quick else (20.0, 60.0)
    repeat = args.repeat or (3 if args.quick else 1)
    label = "custom" if args.seconds else ("quick" if args.quick else "full")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="robodata-ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        recs = {}
        for s in sorted({seconds, *mem_sizes}):
            t0 = time.perf_counter()
            recs[s] = recording(s)
            p, m = recs[s]
            how = "cached" if m["cached"] else f"written in {time.perf_counter() - t0:.0f} s"
            print(f"recording {s:g} s: {m['bytes'] / 1e6:,.0f} MB, {m['messages']:,} messages, {m['episodes']} "
                  f"episode(s) ({how}): {p.relative_to(REPO) if p.is_relative_to(REPO) else p}")  # fmt: skip
        mcap, meta = recs[seconds]
        print(f"{CAMERAS} cameras {IMAGE_HW[0]}x{IMAGE_HW[1]} rgb8 @ 30 Hz, joints @ {JOINT_RATE} Hz, zstd chunks; "
              f"{os.cpu_count()} CPUs; each contender in its own process, warm page cache, best of {repeat}")

        results = {}
        for mode in MODES:
            results[mode] = derive(measure(mode, mcap, work, repeat=repeat), meta)
        base, numpy_base, ing = results["mcap"], results["mcap_numpy"], results["ingest"]

        print(f"\nmain recording: {seconds:g} s, {meta['bytes'] / 1e6:,.0f} MB")
        print(f"{'':30s} {'seconds':>8s} {'input MB/s':>11s} {'cam frames/s':>13s} {'HDF5 MB/s':>10s} "
              f"{'peak RSS MB':>12s}")  # fmt: skip
        for mode, r in results.items():
            out_mb_s = f"{r['bytes_written'] / 1e6 / r['seconds']:10.0f}" if "bytes_written" in r else f"{'-':>10s}"
            print(f"{LABELS[mode]:30s} {r['seconds']:8.2f} {r['input_mb_s']:11.0f} {r['camera_frames_s']:13.0f} "
                  f"{out_mb_s} {r['peak_rss_mb']:12.0f}")  # fmt: skip
        ratios = {}
        for name, b in (("a1", base), ("a2", numpy_base)):
            ratios[f"b_over_{name}_time"] = ing["seconds"] / b["seconds"]
            ratios[f"b_over_{name}_throughput"] = ing["input_mb_s"] / b["input_mb_s"]
        print(f"(b)/(a1): {ratios['b_over_a1_time']:.2f}x the time, {ratios['b_over_a1_throughput']:.0%} of the "
              f"throughput;  (b)/(a2): {ratios['b_over_a2_time']:.2f}x the time, "
              f"{ratios['b_over_a2_throughput']:.0%} of the throughput")  # fmt: skip
        wr = results["write"]
        ratios["b_over_a1_plus_w_time"] = ing["seconds"] / (base["seconds"] + wr["seconds"])
        print(f"(b)/((a1)+(w)): {ratios['b_over_a1_plus_w_time']:.2f}x the time of decoding and writing the same "
              f"bytes back to back")  # fmt: skip
        print(f"(b) wrote {ing['frames']:,} synced frames in {ing['episodes']} episode(s), {ing['dropped_frames']} "
              f"dropped, {ing['bytes_written'] / 1e6:,.0f} MB of HDF5")  # fmt: skip

        memory = {}
        for s in mem_sizes:
            memory[s] = ing if s == seconds else derive(measure("ingest", recs[s][0], work, repeat=repeat), recs[s][1])
        small, big = (memory[s] for s in mem_sizes)
        print("\nmemory vs recording length, (b) robodata ingest:")
        print(f"{'recording':>10s} {'MB in':>7s} {'seconds':>8s} {'peak RSS MB':>12s} {'RSS after imports':>18s}")
        for s, r in memory.items():
            print(f"{s:9g}s {recs[s][1]['bytes'] / 1e6:7,.0f} {r['seconds']:8.2f} {r['peak_rss_mb']:12.0f} "
                  f"{r['rss_after_imports_mb']:18.0f}")  # fmt: skip
        rss_ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
        print(f"peak RSS {mem_sizes[1]:g} s / {mem_sizes[0]:g} s = {rss_ratio:.2f} "
              f"({mem_sizes[1] / mem_sizes[0]:.0f}x the input)")  # fmt: skip

        profile_rows = None
        if args.profile:
            prof = work / "ingest.prof"
            pr = measure("ingest", mcap, work, profile=prof)
            print(f"\n(b) serial (reader threads off) under cProfile: {pr['seconds']:.2f} s "
                  f"(vs {ing['seconds']:.2f} s threaded, unprofiled)")  # fmt: skip
            profile_rows = print_profile(prof)

        RESULTS.mkdir(parents=True, exist_ok=True)
        out_json = RESULTS / "ingest.json"
        try:
            saved = json.loads(out_json.read_text()) if out_json.exists() else {}
        except json.JSONDecodeError:
            saved = {}
        saved[label] = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "repeat": repeat,
            "cpus": os.cpu_count(),
            "recording": {"seconds": seconds, "bytes": meta["bytes"], "messages": meta["messages"],
                          "topics": meta["topics"], "cameras": CAMERAS, "image_hw": list(IMAGE_HW),
                          "joint_rate_hz": JOINT_RATE},  # fmt: skip
            "results": {mode: {k: (round(v, 3) if isinstance(v, float) else [round(x, 3) for x in v]
                                   if isinstance(v, list) else v) for k, v in r.items()}
                        for mode, r in results.items()},  # fmt: skip
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "memory": {
                f"{s:g}s": {"bytes": recs[s][1]["bytes"], "seconds": round(r["seconds"], 3),
                            "peak_rss_mb": round(r["peak_rss_mb"], 1),
                            "rss_after_imports_mb": round(r["rss_after_imports_mb"], 1)}
                for s, r in memory.items()
            },  # fmt: skip
            "memory_peak_rss_ratio": round(rss_ratio, 3),
            **({"profile": profile_rows} if profile_rows else {}),
        }
        out_json.write_text(json.dumps(saved, indent=1))
        print(f"\nresults: {out_json.relative_to(REPO)} [{label}]")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
