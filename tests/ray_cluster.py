"""A real multi-node Ray cluster on this machine, for the tests and the benchmark: ``ray start --head`` plus
worker nodes, each a separate ``ray start --block`` process group with its own CPUs and a custom resource.

    with local_ray_cluster(workers=1) as cluster:   # head: {"head_node": 1}, worker: {"worker_node": 1}
        cfg = {"ray": {"address": cluster.address}}  # robodata connects by address, as a user configures it
        ...
        cluster.kill_worker()                        # the worker node's raylet and its workers, SIGKILL

Every port is a free one picked here and every node has its own ``--temp-dir``, so the cluster never meets
another Ray on the machine; at teardown each node's process group is killed and anything left that names the
cluster's temp dir is killed too. Not ``ray stop --force``: that stops every Ray of every user on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RayNode:
    name: str  # "head_node", "worker_node", "worker_node_2", ...: also its custom resource
    proc: subprocess.Popen[bytes]
    temp_dir: Path
    node_id: str = ""

    def kill(self) -> None:
        """SIGKILL the node's whole process group (``ray start``, raylet, its workers): a node lost mid-run."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in _leftovers(str(self.temp_dir), environ=False):  # its workers run in groups of their own
            _kill(pid)
        self.proc.wait(timeout=30)


@dataclass
class LocalRayCluster:
    address: str  # "127.0.0.1:<port>", what ``ray.address`` is set to
    root: Path
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    @property
    def worker(self) -> RayNode:
        return self.nodes[1]

    def kill_worker(self, index: int = 1) -> None:
        self.nodes[index].kill()


def _node_args(name: str, cpus: int, temp_dir: Path) -> list[str]:
    return [f"--num-cpus={cpus}", "--num-gpus=0", f"--resources={{\"{name}\": 1}}",
            f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
            f"--object-store-memory={256 * 1024 * 1024}", "--block",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]


def _spawn(args: list[str], log: Path, core: int | None, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [RAY, "start", *args]
    if core is not None:  # the node and everything it starts run on this one core
        cmd = ["taskset", "-c", str(core), *cmd]
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


# Asked from a short-lived child process, so that the caller need not be connected to the cluster.
_PROBE = """import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
names = json.loads(sys.argv[2])
print(json.dumps({k: n["NodeID"] for n in ray.nodes() if n["Alive"] for k in n["Resources"] if k in names}))
"""


def _wait_for_nodes(cluster: LocalRayCluster, count: int) -> None:
    """Until the GCS lists ``count`` alive nodes; then each node's id, found by its custom resource."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        for node in cluster.nodes:
            if node.proc.poll() is not None:
                log = (cluster.root / f"{node.name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"ray node {node.name} exited ({node.proc.returncode}):\n{log}")
        res = subprocess.run([sys.executable, "-c", _PROBE, cluster.address, json.dumps([n.name for n in cluster.nodes])],
                             capture_output=True, text=True, timeout=60)
        if res.returncode == 0:
            ids = json.loads(res.stdout.strip().splitlines()[-1])
            if all(n.name in ids for n in cluster.nodes) and len(ids) >= count:
                for n in cluster.nodes:
                    n.node_id = ids[n.name]
                return
            last = res.stdout
        else:
            last = res.stderr[-1000:]
        time.sleep(1.0)
    raise RuntimeError(f"the local Ray cluster at {cluster.address} did not come up in {START_TIMEOUT_S:.0f} s: "
                       f"{last}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _leftovers(marker: str, environ: bool = True) -> list[int]:
    """Processes whose command line (or, with ``environ``, environment) names ``marker``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            env = (d / "environ").read_bytes() if environ else b""
        except OSError:
            continue
        if marker.encode() in cmd or marker.encode() in env:
            pids.append(int(d.name))
    return pids


def _teardown(cluster: LocalRayCluster) -> None:
    for node in reversed(cluster.nodes):
        try:
            os.killpg(node.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for node in cluster.nodes:
        try:
            node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for node in cluster.nodes:
        try:
            os.killpg(node.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            node.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    # Workers or agents that left the process group: everything that names this cluster's folder.
    for _ in range(3):
        pids = _leftovers(str(cluster.root))
        if not pids:
            break
        for pid in pids:
            _kill(pid)
        time.sleep(0.5)
    shutil.rmtree(cluster.root, ignore_errors=True)


@contextmanager
def local_ray_cluster(workers: int = 1, cpus_per_node: int = 1,
                      cores: Sequence[int] | None = None) -> Iterator[LocalRayCluster]:
    """A head node (resource ``head_node``) and ``workers`` worker nodes (``worker_node``, ``worker_node_2``,
    ...), each with ``cpus_per_node`` CPUs and, with ``cores``, pinned to ``cores[i]``; torn down on exit."""
    # Short: Ray's unix sockets live under the temp dir, and a socket path has at most 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="rdray-", dir="/tmp"))
    port = free_port()
    cluster = LocalRayCluster(f"127.0.0.1:{port}", root)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
           "RAY_USAGE_STATS_ENABLED": "0", "ROBODATA_RAY_CLUSTER": str(root),
           # a cluster on 127.0.0.1 only; a driver that finds no RAY_AUTH_MODE connects without a token
           "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    try:
        names = ["head_node"] + [f"worker_node{'' if i == 0 else f'_{i + 1}'}" for i in range(workers)]
        for i, name in enumerate(names):
            tmp = root / name
            tmp.mkdir()
            args = _node_args(name, cpus_per_node, tmp)
            if i == 0:
                args = ["--head", f"--port={port}", "--include-dashboard=false",
                        f"--ray-client-server-port={free_port()}", *args]
            else:
                args = [f"--address={cluster.address}", *args]
            core = cores[i] if cores else None
            cluster.nodes.append(RayNode(name, _spawn(args, root / f"{name}.log", core, env), tmp))
            if i == 0:
                _wait_for_nodes(cluster, 1)
        _wait_for_nodes(cluster, len(names))
        yield cluster
    finally:
        _teardown(cluster)
