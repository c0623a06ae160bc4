"""robodata on a real two-node Ray cluster (``ray start --head`` + a worker node, tests/ray_cluster.py): connected
by ``ray.address`` from the config, work seen on both nodes, a worker node killed mid-run survived, and a head
that is gone refused in seconds with one sentence naming the address."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster_ray import RayResource

import robodata
from robodata.config import ProjectConfig
from robodata.ingest import IngestError
from robodata.parallel import RayUnreachableError, run_tasks
from robodata_dagster.resources.ray import make_ray_resource
from tests.ray_cluster import LocalRayCluster, free_port, local_ray_cluster
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

pytestmark = pytest.mark.slow


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():  # an embedded Ray an earlier test kept up, or this module's connection
        ray.shutdown()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    _shutdown_ray()
    with local_ray_cluster(workers=1) as c:
        yield c
        _shutdown_ray()


@pytest.fixture
def connected(cluster: LocalRayCluster) -> Iterator[LocalRayCluster]:
    """This process connected to ``cluster`` the way the assets are: ``make_ray_resource`` of a config whose
    ``ray.address`` is the head's address."""
    _shutdown_ray()
    cfg = ProjectConfig.model_validate({"ray": {"address": cluster.address}})
    resource = make_ray_resource(cfg)
    with resource.yield_for_execution(dg.build_init_resource_context()):
        yield cluster
    _shutdown_ray()


def where(folder: str, item: int, seconds: float = 0.0, fail: bool = False) -> str:
    """A task: notes each attempt at ``item`` (one line per start, with the node), works ``seconds``, and
    returns the node it ran on; ``fail`` raises a user-data error."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    with open(Path(folder) / f"{item}.attempts", "a") as fh:
        fh.write(node + "\n")
    if fail:
        raise IngestError(f"recording {item}.mcap: timestamps go backwards at frame 3")
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:  # busy, like an encoder: holds the node's one CPU
        sum(range(10_000))
    return node


def test_assets_code_path_runs_tasks_on_both_nodes(connected: LocalRayCluster, tmp_path: Path) -> None:
    res = run_tasks(where, [(str(tmp_path), i, 1.0) for i in range(4)], num_cpus=1)
    assert all(r.ok for r in res), [r.error for r in res]
    nodes = {r.value for r in res}
    assert nodes == {connected.head.node_id, connected.worker.node_id}


def test_a_bad_recording_is_not_retried(connected: LocalRayCluster, tmp_path: Path) -> None:
    [bad, good] = run_tasks(where, [(str(tmp_path), 0, 0.0, True), (str(tmp_path), 1, 0.0)], num_cpus=1)
    assert not bad.ok and isinstance(bad.error, IngestError) and "0.mcap: timestamps go backwards" in str(bad.error)
    assert good.ok
    assert len((tmp_path / "0.attempts").read_text().split()) == 1  # a user-data error runs once


class NodeOfEpisode(robodata.PipelineStage):
    """Leaves the episode as it is; notes which Ray node processed it."""

    def __init__(self, folder: str):
        self.folder = folder

    def process_episode(self, episode: dict[str, Any]) -> dict[str, Any]:
        import ray

        name = episode["episode_id"].replace("/", "_")
        Path(self.folder, name).write_text(ray.get_runtime_context().get_node_id())
        return episode


def test_the_python_api_uses_ray_address_from_the_config(cluster: LocalRayCluster, tmp_path: Path) -> None:
    _shutdown_ray()
    bags, seen = tmp_path / "bags", tmp_path / "seen"
    bags.mkdir()
    seen.mkdir()
    for i in range(4):
        make_mcap(bags / f"r{i}.mcap", 40 + 5 * i)
    (tmp_path / "robodata.yaml").write_text(yaml.safe_dump({"ray": {"address": cluster.address}}))
    # A process of its own, as a user's script is: Ray Data in this test process may hold state of an earlier
    # Ray session (other tests' embedded Ray), which a new session's workers cannot resolve.
    script = f"""
import json, ray, robodata
from tests.recordings import SMALL_TOPIC_MAP
from tests.test_ray_cluster import NodeOfEpisode
res = robodata.pipeline({str(bags)!r}, {str(tmp_path / "out")!r}, topic_map=SMALL_TOPIC_MAP,
                        config={str(tmp_path / "robodata.yaml")!r}, stages=[NodeOfEpisode({str(seen)!r})]).run()
print(json.dumps({{"ok": res.ok, "published": res.published, "episodes_out": res.episodes_out,
                   "gcs": ray.get_runtime_context().gcs_address}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["gcs"].endswith(cluster.address.rsplit(":", 1)[1])
    assert res["ok"] and res["published"] and res["episodes_out"] == 4
    assert {p.read_text() for p in seen.iterdir()} <= {cluster.head.node_id, cluster.worker.node_id}
    assert (tmp_path / "out" / "meta" / "info.json").exists()


def test_a_worker_node_killed_mid_run_is_survived(tmp_path: Path) -> None:
    _shutdown_ray()
    with local_ray_cluster(workers=1) as c:
        cfg = ProjectConfig.model_validate({"ray": {"address": c.address}})
        with make_ray_resource(cfg).yield_for_execution(dg.build_init_resource_context()):
            out: list[Any] = []
            runner = threading.Thread(target=lambda: out.extend(
                run_tasks(where, [(str(tmp_path), i, 6.0) for i in range(3)], num_cpus=1)))
            runner.start()
            deadline = time.monotonic() + 60
            on_worker: list[Path] = []
            while not on_worker and time.monotonic() < deadline:
                on_worker = [p for p in tmp_path.glob("*.attempts") if c.worker.node_id in p.read_text()]
                time.sleep(0.2)
            assert on_worker, "no task reached the worker node"
            c.kill_worker()  # its raylet and the worker running the task, SIGKILL, mid-task
            runner.join(timeout=120)
            assert not runner.is_alive()
            _shutdown_ray()
    assert len(out) == 3 and all(r.ok for r in out), [r.error for r in out]
    assert {r.value for r in out} == {c.head.node_id}  # the lost task ran again on the head node
    attempts = on_worker[0].read_text().split()
    assert attempts[0] == c.worker.node_id and attempts[-1] == c.head.node_id and len(attempts) == 2


def test_a_head_that_is_gone_is_one_clear_error_in_seconds(tmp_path: Path) -> None:
    _shutdown_ray()
    address = f"127.0.0.1:{free_port()}"  # nothing listens there: the head is gone
    pattern = rf"^Ray cluster at {address} is not reachable: Connection refused"

    # the assets' resource, inside a real Dagster run: the run fails (no run left STARTED) with the sentence
    @dg.asset
    def needs_ray(ray_cluster: RayResource) -> None:
        raise AssertionError("never reached")

    t0 = time.monotonic()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([needs_ray], instance=instance, raise_on_error=False,
                                resources={"ray_cluster": make_ray_resource(
                                    ProjectConfig.model_validate({"ray": {"address": address}}))})
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        errors = [str(e.event_specific_data) for e in result.all_events if e.is_failure]
        assert any(f"Ray cluster at {address} is not reachable" in m for m in errors), errors

    # the Python API with the address in its project config
    (tmp_path / "robodata.yaml").write_text(yaml.safe_dump({"ray": {"address": address}}))
    make_mcap(tmp_path / "a.mcap", 40)
    with pytest.raises(RayUnreachableError, match=pattern):
        robodata.pipeline(str(tmp_path / "a.mcap"), str(tmp_path / "out"), topic_map=SMALL_TOPIC_MAP,
                          config=str(tmp_path / "robodata.yaml")).run()
    assert time.monotonic() - t0 < 30
    with pytest.raises(RayUnreachableError, match=r"^Ray cluster at ray://127\.0\.0\.1:1 is not reachable"):
        robodata.pipeline(str(tmp_path / "a.mcap"), str(tmp_path / "out"), topic_map=SMALL_TOPIC_MAP,
                          ray_address="ray://127.0.0.1:1").run()
    import ray

    assert not ray.is_initialized()
