"""The Dagster instance on a real PostgreSQL server (dagster-postgres: runs, event log, schedules), chosen by
``instance.storage: postgres``, its password from the environment: ingest -> release through the sensor and two
concurrent CLI runs; PostgreSQL down at start, or killed in the middle of a run.

One throwaway server for the module (tests/pg_server.py); the kill test restarts it, so that every test runs
alone and in any order."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import project_home
from tests.pg_server import PgServer, pg_fixture, wait_until  # noqa: F401 - pg_fixture: the `pg` fixture

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parents[1]
PASS_ENV = "ROBODATA_TEST_PG_PASSWORD"  # where the password lives: the environment, never robodata.yaml

CHILD = r"""
import sys
from robodata.config import load_config
from robodata_dagster.runs import instance_and_defs, run_partitions
instance, defs = instance_and_defs(load_config())
(out,) = run_partitions(instance, defs, "ingest_recordings", [sys.argv[1]])
print(out.run_id, out.success, out.error)
sys.exit(0 if out.success else 1)
"""


def _config(home: Path, port: int, *, pass_env: str | None = PASS_ENV) -> Path:
    cfg_file = home / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(home / "proj"),
        "sources": [{"pattern": "*.mcap", "topic_map": "robodata/sim/demo_topic_map.yaml"}],
        "ray": {"num_cpus": 2},
        "tiers": {"lerobot": {"codec": "libx264", "crf": 23}, "synthetic_demos": {"enabled": False},
                  "augmented_videos": {"enabled": False}},
        "instance": {"storage": "postgres", "postgres": {"host": "127.0.0.1", "port": port, "db": "dagster",
                                                         "username": "robodata", "pass_env": pass_env}},
    }))
    return cfg_file


@pytest.fixture(scope="module")
def project(pg: PgServer, tmp_path_factory):
    home = tmp_path_factory.mktemp("pghome")
    saved = os.environ.get(PASS_ENV)
    os.environ[PASS_ENV] = pg.password
    try:
        with project_home(_config(home, pg.port)) as (cfg, instance, defs):
            yield {"cfg": cfg, "instance": instance, "defs": defs, "tmp": home, "pg": pg}
    finally:
        if saved is None:
            os.environ.pop(PASS_ENV, None)
        else:
            os.environ[PASS_ENV] = saved


def _land(project, name: str, seed: int, episodes: int = 2) -> None:
    """Record ``name`` in the simulator and land it as robot-<name>'s recording of today, settled."""
    from robodata.landing import LandingZone
    from robodata.sim.recorder import record_session

    rec = record_session(project["tmp"] / "rec", name, n_episodes=episodes, seed=seed, image_hw=(48, 64))
    dst = LandingZone(project["cfg"].landing_url).land(rec["mcap"], under=f"robot-{name}")
    t = time.time() - 30
    os.utime(dst, (t, t))


def _tick(project) -> list[str]:
    from robodata_dagster.runs import tick_sensor

    requests, _ = tick_sensor(project["instance"], project["defs"], wait_settle=False)
    return sorted(r.partition_key for r in requests)


def _run(project, job: str, keys: list[str]):
    from robodata_dagster.runs import run_partitions

    return run_partitions(project["instance"], project["defs"], job, keys)


def _no_debris(store: Path) -> None:
    from robodata.atomic import OLD_MARK, PARTIAL_MARK, find_debris

    assert find_debris(store) == []
    assert [p for p in store.rglob("*") if PARTIAL_MARK in p.name or OLD_MARK in p.name] == []


def test_instance_storage_is_postgres_and_password_stays_out_of_files(project, pg):
    instance = project["instance"]
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    text = (project["cfg"].dagster_home / "dagster.yaml").read_text()
    assert text.startswith("# Written by robodata") and f"env: {PASS_ENV}" in text and "postgres_db:" in text
    assert pg.password not in text and pg.password not in (project["tmp"] / "robodata.yaml").read_text()
    tables = {r[0] for r in pg.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "event_logs", "jobs", "job_ticks", "concurrency_limits"} <= tables
    # the steps' pools exist before any run claims a slot (two first claims at once abort on PostgreSQL)
    from robodata_dagster.runs import asset_pools

    steps = set(asset_pools(project["defs"]))  # this project's: ingest, policy_training (no MimicGen tier)
    assert {"ingest", "policy_training"} <= steps
    assert steps <= {r[0] for r in pg.query("SELECT concurrency_key FROM concurrency_limits")}


def test_storage_change_rewrites_dagster_yaml(tmp_path, monkeypatch):
    from robodata.config import load_config
    from robodata_dagster.runs import InstanceUnreachable, dagster_yaml, prepare_home

    cfg_file = _config(tmp_path, 5999)
    sqlite = load_config(cfg_file, overrides={"instance": {"storage": "sqlite"}})
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    prepare_home(sqlite)
    yml = sqlite.dagster_home / "dagster.yaml"
    assert "storage:" not in yml.read_text() and "(SQLite)" in yml.read_text()
    pg_cfg = load_config(cfg_file)
    assert "postgres_db:" in dagster_yaml(pg_cfg) and "port: 5999" in dagster_yaml(pg_cfg)
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv(PASS_ENV, "x")
    with pytest.raises(InstanceUnreachable, match="not reachable"):  # nothing listens on 5999
        prepare_home(pg_cfg)
    assert yml.read_text() == dagster_yaml(pg_cfg)  # the storage changed: the file was rewritten


def test_ingest_to_release_through_sensor_and_concurrent_runs(project, pg):
    import dagster as dg

    from robodata.registry import Registry

    for name, seed in (("pga", 11), ("pgb", 12)):
        _land(project, name, seed)
    parts = _tick(project)
    assert len(parts) == 2 and all(p.endswith(("|robot-pga", "|robot-pgb")) for p in parts)
    # two CLI processes at once, each executing one partition's run against the shared instance
    env = {**os.environ, "PYTHONPATH": str(REPO), "ROBODATA_CONFIG": str(project["tmp"] / "robodata.yaml")}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, part], env=env, cwd=project["tmp"], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for part in parts]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    records = project["instance"].get_run_records(dg.RunsFilter(job_name="ingest_recordings"))
    mine = {r.dagster_run.tags.get("dagster/partition"): r for r in records}
    assert {p: mine[p].dagster_run.status for p in parts} == {p: dg.DagsterRunStatus.SUCCESS for p in parts}
    (a, b) = (mine[p] for p in parts)
    overlap = min(a.end_time, b.end_time) - max(a.start_time, b.start_time)
    assert overlap > 0, f"the two runs did not overlap ({overlap:.1f} s): not concurrent"

    out = _run(project, "write_lerobot_episodes", parts)
    assert all(o.success for o in out), [o.error for o in out]
    (rel,) = _run(project, "cut_release", [""])
    assert rel.success, rel.error
    registry = Registry(project["cfg"].registry_url)
    keys = sorted(r.key for p in parts for r in registry.in_partition(p))
    assert sorted(rel.metadata["recordings"]) == keys and rel.metadata["promoted_to_latest"] is True
    # what Dagster recorded lives in PostgreSQL: the runs and the release's materialization
    rows = pg.query("SELECT status, count(*) FROM runs GROUP BY status")
    assert dict(rows).get("SUCCESS", 0) >= 5
    (n,) = pg.query("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                    "AND asset_key LIKE '%lerobot_dataset%'")[0]
    assert n >= 1
    assert pg.query("SELECT count(*) FROM dynamic_partitions WHERE partitions_def_name = 'robots' "
                    "AND partition IN ('robot-pga', 'robot-pgb')")[0][0] == 2


def test_postgres_down_at_start_is_one_clear_error(tmp_path, monkeypatch):
    from robodata_dagster.runs import InstanceUnreachable

    with socket_port() as port:  # a port nothing listens on
        cfg_file = _config(tmp_path, port)
    monkeypatch.setenv(PASS_ENV, "not-the-password")
    with pytest.raises(InstanceUnreachable) as err, project_home(cfg_file):
        pass
    msg = str(err.value)
    assert msg.startswith(f"PostgreSQL at 127.0.0.1:{port} (the Dagster instance) is not reachable: "), msg
    assert "\n" not in msg and "not-the-password" not in msg and err.value.__cause__ is None
    # no password in the environment: said before any connection is tried
    monkeypatch.delenv(PASS_ENV)
    with pytest.raises(InstanceUnreachable, match=f"\\${PASS_ENV} is not set"), project_home(cfg_file):
        pass


def test_postgres_killed_mid_run_leaves_no_started_run_and_nothing_half_published(project, pg):
    import dagster as dg

    from robodata_dagster.runs import InstanceUnreachable

    _land(project, "pgkill", 21, episodes=1)
    (part,) = _tick(project)
    killed: dict[str, str] = {}

    def kill_when_started() -> None:
        def started():
            try:
                return pg.query("SELECT run_id FROM runs WHERE status = 'STARTED'")
            except Exception:  # noqa: BLE001 - not yet
                return None
        try:
            killed["run"] = wait_until("the run to start", started, limit_s=600)[0][0]
            time.sleep(1.0)  # into the run's steps
        finally:
            pg.stop("immediate")  # a crash: every session cut off

    watcher = threading.Thread(target=kill_when_started, daemon=True)
    watcher.start()
    try:
        with pytest.raises(InstanceUnreachable) as err:
            _run(project, "ingest_recordings", [part])
    finally:
        watcher.join(timeout=700)
        if not pg.running():
            pg.start()
    msg = str(err.value)
    assert msg.startswith(f"PostgreSQL at 127.0.0.1:{pg.port} (the Dagster instance) went away during run "), msg
    assert killed["run"] in msg and pg.password not in msg
    _no_debris(Path(project["cfg"].storage_url))
    # the server is back: the next run ends the interrupted one first, then completes
    (out,) = _run(project, "ingest_recordings", [part])
    assert out.success, out.error
    old = project["instance"].get_run_by_id(killed["run"])
    assert old.status == dg.DagsterRunStatus.FAILURE
    live = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    assert project["instance"].get_runs(filters=dg.RunsFilter(statuses=live)) == []
    _no_debris(Path(project["cfg"].storage_url))


class socket_port:
    """A free TCP port on 127.0.0.1 (nothing listens on it once the block ends)."""

    def __enter__(self) -> int:
        import socket

        self._s = socket.socket()
        self._s.bind(("127.0.0.1", 0))
        return int(self._s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._s.close()
