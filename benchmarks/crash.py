"""Crash campaign: kill running work at random points, then check what it left.

    python benchmarks/crash.py                 # N=20 kills of each kind (ingest, shard, release), ~30-40 min
    python benchmarks/crash.py --trials 5      # quicker (--quick: 3)
    python benchmarks/crash.py --kinds ingest  # one kind

One project home (SQLite instance and registry, local store), three recordings of three robots landed and
registered by the real sensor. Each trial starts the work in a child process exactly as the CLI runs it
(``run_partitions`` against the instance: an ingest of a robot x day partition, a lerobot_episodes shard of
one, or a release cut), waits a random time between 0.3 s and the time a clean run of that kind took (so the
kill lands in Ray's start-up, the step, the staging or the publish), and sends SIGKILL to the child alone
(not its process group: what it started must be cleaned up by robodata itself). Then, as an operator would,
the next CLI run happens (it ends the dead run and frees its slots) and the same work is run to completion.
Counted per kind, over all trials:

- **corrupt**: an output under its final name that does not read (an HDF5 store h5py cannot open, a shard
  or release whose ``meta/info.json`` does not parse, a ``latest.json`` that does not point at a readable
  release);
- **mislabelled**: a shard version folder ``<key>@<digest>`` whose content digest is not its name, or a
  release whose manifest's versions do not match its shards' digests;
- **STARTED**: runs still STARTED once the next CLI run has looked (the sweep); **slots**: concurrency
  slots still held by dead runs;
- **orphans**: processes the child had started that are still alive 30 s after it was killed;
- **debris**: ``.partial-`` / ``.old-`` temporaries of dead writers left once the next run and
  ``robodata doctor --fix`` are done (kept temporaries of live writers are not debris);
- **rerun ok**: the same work run again to completion afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import sys
from robodata.config import load_config
from robodata_dagster.runs import instance_and_defs, run_partitions
instance, defs = instance_and_defs(load_config())
job, part = sys.argv[1], sys.argv[2]
out = run_partitions(instance, defs, job, [part])[0]
print("OK" if out.success else "FAILED " + out.error, flush=True)
"""
JOBS = {"ingest": "ingest_recordings", "shard": "write_lerobot_episodes", "release": "cut_release"}


def _child(cfg_file: Path, job: str, part: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ROBODATA_CONFIG": str(cfg_file)}
    return subprocess.Popen([sys.executable, "-c", CHILD, job, part], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _descendants(pid: int) -> dict[int, float]:
    import psutil

    try:
        return {c.pid: c.create_time() for c in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {}


def _alive(procs: dict[int, float]) -> list[int]:
    import psutil

    out = []
    for pid, created in procs.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


def _check_outputs(store: Path) -> tuple[int, int, list[str]]:
    """(corrupt, mislabelled, what) over the store's final outputs."""
    import h5py

    from robodata.stages.tiers import dataset_digest

    corrupt, mislabelled, what = 0, 0, []
    for f in (store / "raw_teleop").glob("*.hdf5"):
        try:
            with h5py.File(f, "r") as h:
                list(h["data"])
        except Exception as err:  # noqa: BLE001 - counted
            corrupt += 1
            what.append(f"{f.name}: {err}")
    for d in (store / "lerobot" / "episodes").glob("*@*"):
        if d.name.startswith("."):
            continue
        try:
            json.loads((d / "meta" / "info.json").read_text())
        except Exception as err:  # noqa: BLE001
            corrupt += 1
            what.append(f"{d.name}: {err}")
            continue
        if dataset_digest(d) != d.name.rsplit("@", 1)[1]:
            mislabelled += 1
            what.append(f"{d.name}: content digest {dataset_digest(d)}")
    latest = store / "lerobot" / "releases" / "latest.json"
    if latest.exists():
        try:
            rel = Path(json.loads(latest.read_text())["path"])
            json.loads((rel / "meta" / "info.json").read_text())
            manifest = json.loads((rel / "meta" / "robodata_release.json").read_text())
            for key, version in manifest["upstream_versions"].items():
                shard = store / "lerobot" / "episodes" / f"{key}@{version}"
                if shard.exists() and dataset_digest(shard) != version:
                    mislabelled += 1
                    what.append(f"release {rel.name}: {key}@{version} holds other content")
        except Exception as err:  # noqa: BLE001
            corrupt += 1
            what.append(f"latest.json: {err}")
    return corrupt, mislabelled, what


def campaign(kinds: list[str], trials: int, seed: int) -> list[dict]:
    import dagster as dg
    import yaml

    from robodata.atomic import find_debris, sweep_debris
    from robodata.config import load_config
    from robodata.registry import Registry
    from robodata_dagster.runs import instance_and_defs, run_partitions, sweep_dead_runs, tick_sensor
    from tests.recordings import SMALL_TOPIC_MAP, make_mcap

    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="robodata-crash-"))
    (work / "map.yaml").write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
    cfg_file = work / "robodata.yaml"

    def write_config(t: int = 0) -> None:
        """Trial t's settings: alternating so that every trial's work is real work (not an up-to-date skip):
        raw_teleop's rate tolerance, the shards' crf, the release format."""
        cfg_file.write_text(yaml.safe_dump({
            "home": str(work / "proj"), "ray": {"num_cpus": 2},
            "sources": [{"pattern": "*.mcap", "topic_map": str(work / "map.yaml")}],
            "tiers": {"synthetic_demos": {"enabled": False}, "augmented_videos": {"enabled": False},
                      "raw_teleop": {"rate_tolerance": 0.1 + 0.01 * (t % 2)},
                      "lerobot": {"codec": "libx264", "crf": 23 + t % 2, "version": ("v3.0", "v2.1")[t % 2]}},
        }))

    write_config()
    os.environ["ROBODATA_CONFIG"] = str(cfg_file)
    cfg = load_config()
    instance, defs = instance_and_defs(cfg)
    for i in range(3):
        dst = Path(cfg.landing_url) / f"robot-{i}" / f"take{i}.mcap"
        dst.parent.mkdir(parents=True)
        make_mcap(dst, 120 + 10 * i)
        os.utime(dst, (time.time() - 30, time.time() - 30))
    parts = sorted(r.partition_key for r in tick_sensor(instance, defs, wait_settle=False)[0])
    store = Path(cfg.storage_url)
    registry = Registry(cfg.registry_url)
    rows = []
    for kind in kinds:
        job = JOBS[kind]
        if kind != "ingest":  # the inputs of the kind exist
            for p in parts:
                run_partitions(instance, defs, "ingest_recordings", [p])
            if kind == "release":
                for p in parts:
                    run_partitions(instance, defs, "write_lerobot_episodes", [p])
        t0 = time.perf_counter()
        clean = _child(cfg_file, job, parts[0] if kind != "release" else "")
        clean.wait()
        clean_s = time.perf_counter() - t0
        row = {"kind": kind, "trials": trials, "clean_run_s": round(clean_s, 1), "killed_mid_run": 0, "corrupt": 0,
               "mislabelled": 0, "started_after": 0, "slots_held": 0, "orphans": 0, "debris_after": 0,
               "rerun_ok": 0, "notes": []}
        for t in range(trials):
            part = rng.choice(parts) if kind != "release" else ""
            write_config(t + 1)
            if kind == "release":  # a cut that writes: only the release latest points at is kept
                latest = store / "lerobot" / "releases" / "latest.json"
                keep = Path(json.loads(latest.read_text())["path"]).name if latest.exists() else ""
                for d in (store / "lerobot" / "releases").iterdir():
                    if d.is_dir() and d.name != keep and not d.name.startswith("."):
                        import shutil

                        shutil.rmtree(d)
            delay = rng.uniform(0.3, max(0.5, clean_s))
            proc = _child(cfg_file, job, part)
            seen: dict[int, float] = {}
            end = time.monotonic() + delay
            while time.monotonic() < end and proc.poll() is None:
                seen.update(_descendants(proc.pid))
                time.sleep(0.05)
            if proc.poll() is None:
                row["killed_mid_run"] += 1
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            deadline = time.monotonic() + 30
            while _alive(seen) and time.monotonic() < deadline:
                time.sleep(0.5)
            left = _alive(seen)
            row["orphans"] += len(left)
            for pid in left:  # count them, then clean up for the next trial
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            # the operator's next CLI run (it sweeps dead runs first), then the doctor
            sweep_dead_runs(instance)
            live = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
            row["started_after"] += sum(1 for r in instance.get_runs(filters=dg.RunsFilter(statuses=live)))
            for pool in ("ingest", "mimicgen"):
                info = instance.event_log_storage.get_concurrency_info(pool)
                row["slots_held"] += len(info.active_run_ids)
            sweep_debris(work)
            row["debris_after"] += len([d for d in find_debris(work) if d.gone])
            defs = instance_and_defs(load_config())[1]  # this trial's settings
            again = run_partitions(instance, defs, job, [part])[0]
            row["rerun_ok"] += int(again.success)
            if not again.success:
                row["notes"].append(f"rerun {t}: {again.error[:200]}")
            corrupt, mislabelled, what = _check_outputs(store)
            row["corrupt"] += corrupt
            row["mislabelled"] += mislabelled
            row["notes"] += what
        rows.append(row)
        print(json.dumps(row), flush=True)
    del registry
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--kinds", default="ingest,shard,release")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 kills of each kind (run_all.py)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "crash.json")
    args = ap.parse_args()
    if args.quick:
        args.trials = 3
    rows = campaign(args.kinds.split(","), args.trials, args.seed)
    print()
    cols = ["kind", "trials", "clean_run_s", "killed_mid_run", "corrupt", "mislabelled", "started_after",
            "slots_held", "orphans", "debris_after", "rerun_ok"]
    print(" | ".join(f"{c:>14s}" for c in cols))
    for r in rows:
        print(" | ".join(f"{str(r[c]):>14s}" for c in cols))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["corrupt"] == r["mislabelled"] == r["started_after"] == r["slots_held"] == r["orphans"]
                    == r["debris_after"] == 0 and r["rerun_ok"] == r["trials"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
