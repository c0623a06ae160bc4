"""Landing zone at fleet scale: the ``new_recordings`` tick over 10k / 100k / 1M landed objects.

    python benchmarks/landing_scale.py                  # local 10k, 100k, 1M; S3 (moto) 10k  (~15 min)
    python benchmarks/landing_scale.py --s3 10000 100000 --local 10000 100000 1000000   # the issue's sizes
    python benchmarks/landing_scale.py --quick          # local 10k, 100k; S3 10k (~3 min)

Each size is a fleet's landing zone as robots write it: 100 robots, ``robot-NN/YYYY-MM-DD/rec-NNNN.mcap``,
about a year of folders at 1M. Every object already landed is registered (the registry is bulk-loaded with
exactly the rows a scan would have written), then 100 new recordings arrive between ticks, spread over
today's folders, and the tick runs as the sensor runs it (:class:`robodata.landing.Scanner`, real SQLite
registry, real filesystem or S3 server). Measured per size: the tick that first sees the new objects and the
tick that registers them (seconds), the Python heap peak during a tick (tracemalloc), the sensor state (the
registry file and the cursor), duplicate run requests across 5 ticks (must be 0), and the time to plan a
Dagster backfill over 100,000 recordings (a real ``PartitionBackfill`` added to a SQLite instance) in their
robot x day partitions, against one partition per recording in the same run (``--backfill N``).
The baseline (same run): the previous sensor's tick, a listing of every object plus a content hash of
each new one (here: a read of its bytes), with an ever-growing JSON cursor of every name ever seen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROBOTS = 100
NEW_PER_TICK = 100
FULL_SCAN_SECONDS = 20.0  # as sensors/new_recordings.py (not imported: the benchmark needs no Dagster for this)


def layout(n: int) -> list[tuple[str, int]]:
    """(folder, files in it) for ``n`` objects over 100 robots and up to a year of day folders."""
    days = max(1, min(365, round(365 * n / 1_000_000)))
    per = -(-n // (ROBOTS * days))
    today = dt.datetime.now(dt.UTC).date()
    out, left = [], n
    for d in range(days, 0, -1):  # the newest day last; today is kept for the new arrivals
        day = today - dt.timedelta(days=d)
        for r in range(ROBOTS):
            k = min(per, left)
            if k <= 0:
                return out
            out.append((f"robot-{r:02d}/{day}", k))
            left -= k
    return out


def populate_local(root: Path, n: int) -> list[tuple[str, int, float]]:
    """Create the objects (1 KiB each, sparse content does not matter: the tick never reads it)."""
    objs = []
    payload = b"\x89MCAP0\r\n" * 128
    t = time.time() - 86400
    for folder, k in layout(n):
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        for i in range(k):
            p = d / f"rec-{i:04d}.mcap"
            with open(p, "wb") as fh:
                fh.write(payload)
            os.utime(p, (t, t))
            objs.append((f"{folder}/rec-{i:04d}.mcap", len(payload), t))
    return objs


def bulk_register(reg, zone, objs: list[tuple[str, int, float]], etags: dict[str, str] | None = None) -> None:
    """The rows a scan writes for objects it registered (landed, recordings, folders), in bulk."""
    import sqlalchemy as sa

    from robodata.partitions import recording_key
    from robodata.registry import DIRS, LANDED, RECORDINGS

    now = time.time()
    etags = etags or {}
    with reg.engine.begin() as c:
        for i in range(0, len(objs), 20_000):
            chunk = objs[i:i + 20_000]
            landed, recs = [], []
            for path, size, mtime in chunk:
                et = etags.get(path, "")
                key = recording_key(path, (zone.url, size, round(mtime, 6), et))
                landed.append(dict(zone=zone.url, path=path, parent=path.rpartition("/")[0], size=size, mtime=mtime,
                                   etag=et, state="registered", seen=2, key=key, first_seen=now, note=""))
                recs.append(dict(key=key, zone=zone.url, path=path, size=size, mtime=mtime, etag=et, registered_at=now,
                                 tick=1, status="ingested", digest=None, duplicate_of=None, note=""))
            c.execute(sa.insert(LANDED), landed)
            c.execute(sa.insert(RECORDINGS), recs)
        if zone.local_root is not None:
            dirs = {""}
            for path, _, _ in objs:
                parts = path.split("/")[:-1]
                for j in range(1, len(parts) + 1):
                    dirs.add("/".join(parts[:j]))
            rows = [dict(zone=zone.url, path=d, parent=d.rpartition("/")[0] if d else "",
                         mtime_ns=os.stat(zone.local_root / d if d else zone.local_root).st_mtime_ns) for d in dirs]
            c.execute(sa.insert(DIRS), rows)


def arrive(zone, k: int, tag: str) -> list[str]:
    """``k`` new recordings in today's folders (spread over robots), already settled."""
    today = dt.datetime.now(dt.UTC).date()
    payload = b"\x89MCAP0\r\n" * 128
    names = []
    t = time.time() - 60
    for i in range(k):
        rel = f"robot-{i % ROBOTS:02d}/{today}/new-{tag}-{i:04d}.mcap"
        if zone.local_root is not None:
            p = zone.local_root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(payload)
            os.utime(p, (t, t))
        else:
            zone.fs.pipe(f"{zone.root}/{rel}", payload)
        names.append(rel)
    return names


def timed_tick(scanner, tick: int, *, full: bool = False):
    tracemalloc.start()
    t0 = time.perf_counter()
    rep = scanner.scan(tick, full=full)
    sec = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return rep, sec, peak / 1e6


def old_sensor_tick(zone, cursor: dict, new: list[str]) -> tuple[float, int]:
    """The previous sensor: list every object, hash each new one in the tick, keep every name in the cursor."""
    import hashlib

    t0 = time.perf_counter()
    for f in zone.iter_all():
        if f.name in cursor:
            continue
        with zone.fs.open(f"{zone.root}/{f.name}", "rb") as fh:
            hashlib.blake2b(fh.read()).hexdigest()
        cursor[f.name] = {"size": f.size, "mtime": f.mtime}
    sec = time.perf_counter() - t0
    return sec, len(json.dumps(cursor))


def _plan(inst, graph, asset: str, partitions: list[str]) -> float:
    import dagster as dg
    from dagster._core.execution.backfill import PartitionBackfill

    t0 = time.perf_counter()
    bf = PartitionBackfill.from_asset_partitions(
        backfill_id=f"bench-{asset}", asset_graph=graph, partition_names=partitions,
        asset_selection=[dg.AssetKey(asset)], backfill_timestamp=time.time(), tags={},
        dynamic_partitions_store=inst, all_partitions=False, title=None, description=None, run_config=None)
    inst.add_backfill(bf)
    return time.perf_counter() - t0


def plan_backfill(n: int, home: Path) -> dict:
    """A real PartitionBackfill over ``n`` recordings added to a SQLite instance, two ways: robot x day
    partitions (robodata's: 100 robots, 10 recordings per robot-day, so n/10 partitions, chosen from the
    registry as ``robodata backfill`` does) and, as the baseline, one dynamic partition per recording."""
    import datetime as _dt

    import dagster as dg

    from robodata.registry import RECORDINGS, Registry
    from robodata_dagster.assets.partitions import ROBOTS as ROBOT_DIM
    from robodata_dagster.assets.partitions import fleet_partitions

    per_part = 10
    days = max(1, n // (ROBOTS * per_part))
    start = _dt.date(2026, 1, 1)
    fleet = fleet_partitions()  # from landing.start_date (2026-01-01)
    per_rec = dg.DynamicPartitionsDefinition(name="recordings")

    @dg.asset(name="raw_teleop", partitions_def=fleet,
              backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1))
    def fleet_asset():
        return None

    @dg.asset(name="raw_teleop_per_recording", partitions_def=per_rec,
              backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1))
    def per_recording_asset():
        return None

    defs = dg.Definitions(assets=[fleet_asset, per_recording_asset])
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    reg = Registry(f"sqlite:///{home / 'registry.sqlite3'}")
    import sqlalchemy as sa

    rows, keys = [], []
    for i in range(n):
        robot, day = f"robot-{i % ROBOTS:02d}", start + _dt.timedelta(days=(i // ROBOTS) % days)
        key = f"rec-{i:07d}"
        keys.append(key)
        rows.append(dict(key=key, zone="bench", path=f"{robot}/{day}/{key}.mcap", size=1, mtime=0.0, etag="",
                         registered_at=0.0, tick=1, status="ingested", digest=None, duplicate_of=None, note="",
                         partition_key=f"{day}|{robot}"))
    with reg.engine.begin() as c:
        for i in range(0, n, 20_000):
            c.execute(sa.insert(RECORDINGS), rows[i:i + 20_000])
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        inst.add_dynamic_partitions(ROBOT_DIM, [f"robot-{r:02d}" for r in range(ROBOTS)])
        inst.add_dynamic_partitions("recordings", keys)
        graph = defs.resolve_asset_graph()
        t0 = time.perf_counter()
        parts = sorted(reg.partitions())
        lookup = time.perf_counter() - t0
        fleet_s = _plan(inst, graph, "raw_teleop", parts)
        old_s = _plan(inst, graph, "raw_teleop_per_recording", keys)
        grid = len(fleet.get_partition_keys(dynamic_partitions_store=inst))
    return {"recordings": n, "partitions": len(parts), "registry_lookup_s": round(lookup, 3),
            "plan_s": round(fleet_s, 3), "old_plan_s": round(old_s, 3), "partitions_defined": grid}


def measure(kind: str, n: int, work: Path, s3_env: dict[str, str] | None, baseline: bool) -> dict:
    from robodata.config import LandingConfig
    from robodata.landing import LandingZone, Scanner
    from robodata.registry import Registry

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if kind == "local":
        zone = LandingZone(str(work / "landing"))
        objs = populate_local(zone.local_root, n)
        etags = None
    else:
        import s3fs

        bucket = f"fleet-{n}"
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_env["AWS_ENDPOINT_URL"]}, use_listings_cache=False)
        fs.mkdir(bucket)
        objs, etags = _populate_s3(fs, bucket, n)
        zone = LandingZone(f"s3://{bucket}/landing")
    reg = Registry(f"sqlite:///{work / 'registry.sqlite3'}")
    bulk_register(reg, zone, objs, etags)
    setup = time.perf_counter() - t0
    # between full scans an object store lists the recent day folders only (landing.recent_days)
    settings = LandingConfig(settle_seconds=1, max_new_per_tick=10_000,
                             recent_days=1 if kind == "s3" else 0)
    sc = Scanner(zone, reg, settings)
    _, warm_s, _ = timed_tick(sc, 2)  # the first tick after start-up (nothing new)
    requested: list[str] = []
    ticks = []
    for t in range(5):
        new = arrive(zone, NEW_PER_TICK, f"t{t}")
        rep1, s1, m1 = timed_tick(sc, 10 + 2 * t)
        rep2, s2, m2 = timed_tick(sc, 11 + 2 * t)
        requested += [r.key for r in rep1.new + rep2.new]
        ticks.append((s1, s2, max(m1, m2), len(rep2.new), len(new)))
    # the hourly full scan, as the sensor runs it: at most FULL_SCAN_SECONDS per tick, resumed next tick
    full_s, full_m, full_ticks, point = 0.0, 0.0, 0, ""
    longest = 0.0
    while True:
        tracemalloc.start()
        t0 = time.perf_counter()
        full_rep = sc.scan(99, full=True, resume_after=point, deadline_s=FULL_SCAN_SECONDS)
        dt_s = time.perf_counter() - t0
        full_m = max(full_m, tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
        full_s += dt_s
        longest = max(longest, dt_s)
        full_ticks += 1
        point = full_rep.resume_point
        if not point:
            break
    state = (work / "registry.sqlite3").stat().st_size + sum(
        p.stat().st_size for p in work.glob("registry.sqlite3-*"))
    row = {
        "kind": kind, "objects": n, "setup_s": round(setup, 1),
        "tick_idle_s": round(warm_s, 3),
        "tick_sees_100_s": round(max(t[0] for t in ticks), 3),
        "tick_registers_100_s": round(max(t[1] for t in ticks), 3),
        "heap_peak_mb": round(max(t[2] for t in ticks), 2),
        "registered_per_tick": sorted({t[3] for t in ticks}),
        "duplicate_requests": len(requested) - len(set(requested)),
        "full_scan_s": round(full_s, 2), "full_scan_ticks": full_ticks, "full_scan_longest_tick_s": round(longest, 2),
        "full_scan_heap_mb": round(full_m, 2),
        "registry_mb": round(state / 1e6, 1), "cursor_bytes": len(json.dumps({"tick": 99, "full_at": time.time()})),
    }
    if baseline:
        cursor = {o[0]: {"size": o[1], "mtime": o[2]} for o in objs}
        arrive(zone, NEW_PER_TICK, "old")
        tracemalloc.start()
        sec, cur_bytes = old_sensor_tick(zone, cursor, [])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        row.update(old_tick_s=round(sec, 2), old_heap_mb=round(peak / 1e6, 1), old_cursor_mb=round(cur_bytes / 1e6, 1))
    return row


def _populate_s3(fs, bucket: str, n: int):
    """Upload the objects in parallel (boto3 from s3fs's session), returning (objects, etags)."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    payload = b"\x89MCAP0\r\n" * 128
    names = [f"{folder}/rec-{i:04d}.mcap" for folder, k in layout(n) for i in range(k)]

    def put(rel: str):
        r = client.put_object(Bucket=bucket, Key=f"landing/{rel}", Body=payload)
        return rel, r["ETag"].strip('"')

    with ThreadPoolExecutor(16) as ex:
        etags = dict(ex.map(put, names))
    objs = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="landing/"):
        for o in page.get("Contents", []):
            objs.append((o["Key"][len("landing/"):], int(o["Size"]), o["LastModified"].timestamp()))
    return objs, etags


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--local", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--s3", type=int, nargs="*", default=[10_000])
    ap.add_argument("--backfill", type=int, default=100_000, help="recordings in the planned backfill")
    ap.add_argument("--baseline-upto", type=int, default=100_000, help="run the old sensor up to this many objects")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "landing_scale.json")
    ap.add_argument("--quick", action="store_true", help="local 10k and 100k, S3 10k, a 10k-partition backfill")
    args = ap.parse_args()
    if args.quick:
        args.local, args.s3, args.backfill = [10_000, 100_000], [10_000], 10_000
    rows = []
    base = Path(tempfile.mkdtemp(prefix="robodata-landing-bench-"))
    try:
        for n in args.local:
            rows.append(measure("local", n, base / f"local-{n}", None, n <= args.baseline_upto))
            shutil.rmtree(base / f"local-{n}", ignore_errors=True)
            print(json.dumps(rows[-1]), flush=True)
        if args.s3:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.conftest import moto_server

            with moto_server() as env:
                os.environ.update(env)
                for n in args.s3:
                    rows.append(measure("s3", n, base / f"s3-{n}", env, n <= 10_000))
                    print(json.dumps(rows[-1]), flush=True)
        bf = plan_backfill(args.backfill, base / "dagster") if args.backfill else None
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(f"{'store':6s} {'objects':>9s} {'idle tick':>9s} {'sees 100':>9s} {'takes 100':>9s} {'heap MB':>8s} "
          f"{'dup req':>7s} {'full scan':>14s} {'registry MB':>11s} {'cursor B':>8s} | {'old tick':>8s} "
          f"{'old heap':>8s} {'old cursor MB':>13s}")
    for r in rows:
        print(f"{r['kind']:6s} {r['objects']:>9d} {r['tick_idle_s']:>9.3f} {r['tick_sees_100_s']:>9.3f} "
              f"{r['tick_registers_100_s']:>9.3f} {r['heap_peak_mb']:>8.2f} {r['duplicate_requests']:>7d} "
              f"{str(r['full_scan_s']) + ' s/' + str(r['full_scan_ticks']) + ' tk':>14s} {r['registry_mb']:>11.1f} {r['cursor_bytes']:>8d} | "
              f"{r.get('old_tick_s', float('nan')):>8.2f} {r.get('old_heap_mb', float('nan')):>8.1f} "
              f"{r.get('old_cursor_mb', float('nan')):>13.1f}")
    if bf is not None:
        print(f"\nbackfill over {bf['recordings']:,} recordings: {bf['partitions']:,} robot x day partitions "
              f"(of {bf['partitions_defined']:,} defined), chosen from the registry in {bf['registry_lookup_s']} s, "
              f"planned in {bf['plan_s']} s; one partition per recording (before): {bf['old_plan_s']} s "
              f"({bf['old_plan_s'] / max(bf['plan_s'], 1e-9):.1f}x)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "backfill": bf}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
