"""Benchmark: the same ingest + LeRobot work on a 1-node and a 2-node local Ray cluster, one run.

    python benchmarks/ray_cluster.py [--quick] [--recordings N] [--seconds S]

``N`` synthetic ROS 2 MCAP recordings (pipeline_api.py's: one 96x128 camera at 30 Hz, 6-joint states at 100 Hz,
commands at 30 Hz; default 6 x 40 s, ``--quick`` 4 x 8 s) are written once. Then a real Ray cluster is started
with ``ray start`` (tests/ray_cluster.py), each node ``--num-cpus=1`` and pinned to one core with ``taskset``:

- **1 node**: the head alone, on core 0;
- **2 nodes**: the head on core 0 and a worker node on core 1.

robodata connects by ``ray.address`` from the config (``make_ray_resource``, the assets' resource) and runs one
task per recording through ``robodata.parallel.run_tasks`` (how the assets fan out): ``ingest_recording`` to a
time-synced Isaac Lab HDF5 store, then ``write_shard`` to a LeRobot v3.0 shard with the project's codec
settings. Before the timing each node runs a warm-up task (worker start-up and imports are not timed). The table
gives the wall time of the fan-out, the speed-up of 2 nodes over 1, and per node the tasks it ran, their busy
time (sum of task wall times) and utilisation = busy / wall. The driver is not pinned (it mostly waits). Results
are printed and written to ``benchmarks/results/ray_cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from pipeline_api import TOPIC_MAP, make_recordings  # noqa: E402 - benchmarks/ is the script folder

from tests.ray_cluster import local_ray_cluster  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def ingest_and_shard(rec: str, work: str, codec: dict[str, Any]) -> dict[str, Any]:
    """One recording -> canonical HDF5 -> LeRobot v3.0 shard (a Ray task); where and how long it ran."""
    import ray

    from robodata.ingest import ingest_recording
    from robodata.lerobot import write_shard
    from robodata.topicmap import load_topic_map

    t0 = time.perf_counter()
    stem = Path(rec).stem
    store = Path(work) / f"{stem}.hdf5"
    ingest_recording(rec, store, load_topic_map(TOPIC_MAP))
    rep = write_shard(store, Path(work) / f"{stem}-lerobot", **codec)
    return {"node": ray.get_runtime_context().get_node_id(), "busy_s": time.perf_counter() - t0,
            "frames": rep.frames}


def warm(_: int) -> str:
    import ray

    import robodata.ingest  # the imports a real task pays once per worker
    import robodata.lerobot  # noqa: F401

    time.sleep(0.5)  # holds the node's CPU, so the next warm-up lands on the other node
    return str(ray.get_runtime_context().get_node_id())


def measure(nodes: int, recs: list[Path], codec: dict[str, Any]) -> dict[str, Any]:
    import dagster as dg
    import ray

    from robodata.config import ProjectConfig
    from robodata.parallel import run_tasks
    from robodata_dagster.resources.ray import make_ray_resource

    t_up = time.perf_counter()
    with local_ray_cluster(workers=nodes - 1, cpus_per_node=1, cores=list(range(nodes))) as cluster:
        up_s = time.perf_counter() - t_up
        cfg = ProjectConfig.model_validate({"ray": {"address": cluster.address}})
        names = {n.node_id: n.name for n in cluster.nodes}
        with make_ray_resource(cfg).yield_for_execution(dg.build_init_resource_context()), \
                tempfile.TemporaryDirectory(prefix="rdbench-") as work:
            warmed = {r.value for r in run_tasks(warm, [(i,) for i in range(2 * nodes)])}
            t0 = time.perf_counter()
            res = run_tasks(ingest_and_shard, [(str(r), work, codec) for r in recs], num_cpus=1)
            wall = time.perf_counter() - t0
            ray.shutdown()
    bad = [str(r.error) for r in res if not r.ok]
    if bad:
        raise SystemExit(f"{nodes} node(s): {bad}")
    per_node = {}
    for node_id, name in names.items():
        mine = [r.value for r in res if r.value["node"] == node_id]
        busy = sum(m["busy_s"] for m in mine)
        per_node[name] = {"tasks": len(mine), "busy_s": busy, "utilisation": busy / wall}
    return {"nodes": nodes, "wall_s": wall, "cluster_up_s": up_s, "warmed_nodes": len(warmed),
            "frames": sum(r.value["frames"] for r in res), "per_node": per_node}


def print_table(rows: list[dict[str, Any]]) -> None:
    base = rows[0]["wall_s"]
    print(f"\n{'cluster':9s} {'wall s':>7s} {'speed-up':>8s} {'frames/s':>8s}   per node: tasks, busy s, utilisation")
    for r in rows:
        nodes = "   ".join(f"{name} {v['tasks']}, {v['busy_s']:.1f} s, {100 * v['utilisation']:.0f} %"
                           for name, v in r["per_node"].items())
        print(f"{r['nodes']} node{'s' if r['nodes'] > 1 else ' '}   {r['wall_s']:7.1f} {base / r['wall_s']:7.2f}x "
              f"{r['frames'] / r['wall_s']:8.1f}   {nodes}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 recordings x 8 s")
    ap.add_argument("--recordings", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    n = args.recordings or (4 if args.quick else 6)
    seconds = args.seconds or (8.0 if args.quick else 40.0)

    from robodata.config import load_config
    from robodata.stages.tiers import codec_options

    codec = codec_options(load_config().tiers.lerobot)
    with tempfile.TemporaryDirectory(prefix="rdbench-recs-") as tmp:
        recs = make_recordings(Path(tmp), n, seconds)
        rows = [measure(1, recs, codec), measure(2, recs, codec)]
    print(f"{n} recordings x {seconds:g} s ({rows[0]['frames']} frames), codec {codec.get('video_codec')}; "
          f"each node --num-cpus=1 on its own core")
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "ray_cluster.json"
    out.write_text(json.dumps({"recordings": n, "seconds": seconds, "runs": rows}, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
