"""`robodata backfill`: a real Dagster backfill (PartitionBackfill in the instance), executed by the daemon.

Each test has its own project home and Dagster instance. The daemon is the real `dagster-daemon run`
subprocess over the installed code location: started by the CLI when none is running, or one the test
starts first (then the CLI only waits for it). Generous hang guards, no timing assertions.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import project_home, registered_partition
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

HANG_GUARD_S = 900  # a daemon, a code server and Ray on a busy CI machine: minutes, never forever
# pytest-timeout above the guards one test waits through (a daemon's first heartbeat, then the backfill)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * HANG_GUARD_S)]


@contextlib.contextmanager
def _project(tmp_path: Path, *, recordings: dict[str, dict] | None = None):
    """A project home with small MCAPs landed and registered (the CLI's tick of the real sensor), each
    recording the only one of its robot (the folder named like it) today: keys are its partitions."""
    small_map = tmp_path / "small_map.yaml"
    small_map.write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(tmp_path / "proj"),
        "sources": [{"pattern": "small_*.mcap", "topic_map": str(small_map)}],
        "ray": {"num_cpus": 2},
        "tiers": {"lerobot": {"codec": "libx264", "crf": 23}},
    }))
    with project_home(cfg_file) as (cfg, instance, defs):
        keys: dict[str, str] = {}
        if recordings:
            from robodata_dagster.runs import tick_sensor

            landing = Path(cfg.landing_url)
            for name, kw in recordings.items():
                path = landing / name / f"{name}.mcap"
                path.parent.mkdir(parents=True)
                make_mcap(path, **kw)
                t = time.time() - 30  # settled: untouched for a while
                os.utime(path, (t, t))
            requests, skip = tick_sensor(instance, defs, wait_settle=False)
            keys = {name: next(r.partition_key for r in requests if r.partition_key.endswith("|" + name))
                    for name in recordings}
            assert set(recordings) <= set(instance.get_dynamic_partitions("robots")), skip
        yield {"cfg": cfg, "instance": instance, "defs": defs, "keys": keys, "home": tmp_path}


def _backfill_id(out: str) -> str:
    first = next(line for line in out.splitlines() if line.startswith("backfill "))
    return first.split()[1].rstrip(":")


def _materialized_in(instance, run_id: str) -> set[tuple[str, str | None]]:
    """(asset, partition) of every materialization the run itself recorded. (The daemon also runs the project's
    sensors, so other runs may materialize the same partitions meanwhile: the backfill's own runs are checked.)"""
    import dagster as dg

    out = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        mat = entry.dagster_event.event_specific_data.materialization
        out.add((mat.asset_key.to_user_string(), mat.partition))
    return out


def test_backfill_is_a_dagster_backfill_run_by_the_daemon(tmp_path, capsys):
    """No daemon running: the CLI starts dagster-daemon; one run per robot x day partition (backfill policy);
    a recording's key names its partition."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    from robodata.cli import main
    from robodata.registry import Registry
    from robodata_dagster.backfills import live_daemon

    with _project(tmp_path,
                  recordings={"small_a": {"frames": 40}, "small_b": {"frames": 45}, "small_c": {"frames": 50}}) as p:
        instance = p["instance"]
        wanted = [p["keys"]["small_a"], p["keys"]["small_b"]]
        registry = Registry(p["cfg"].registry_url)
        (rec_b,) = registry.in_partition(wanted[1])
        assert live_daemon(instance) is None
        rc = main(["backfill", wanted[0], rec_b.key, "--timeout", str(HANG_GUARD_S)])
        cap = capsys.readouterr()
        assert rc == 0, cap.out + cap.err
        bid = _backfill_id(cap.out)
        # The object the UI shows in its Backfills tab, finished by the daemon.
        backfill = instance.get_backfill(bid)
        assert backfill is not None and bid in {b.backfill_id for b in instance.get_backfills()}
        assert backfill.is_asset_backfill and backfill.status == BulkActionStatus.COMPLETED_SUCCESS
        assert backfill.tags["robodata/launched_by"] == "cli" and backfill.tags["robodata/job"] == "ingest_recordings"
        # BackfillPolicy.multi_run(max_partitions_per_run=1): a run per partition, tagged with the backfill.
        runs = list(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": bid})))
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert {r.tags["dagster/asset_partition_range_start"] for r in runs} == set(wanted)
        assert all(r.asset_selection == {dg.AssetKey("raw_teleop")} for r in runs)
        done = set().union(*(_materialized_in(instance, r.run_id) for r in runs))
        assert done == {("raw_teleop", k) for k in wanted}  # not small_c
        for k in wanted:
            row = next(line for line in cap.out.splitlines() if line.startswith(k))
            assert " yes " in row and "materialized" in row, row
        store = Path(p["cfg"].storage_url)
        for k in wanted:
            (rec,) = registry.in_partition(k)
            assert (store / "raw_teleop" / f"{rec.key}.hdf5").exists()
        # The daemon robodata started is gone (its whole process group), and not mistaken for a live one.
        assert "daemon: started" in cap.out
        log = Path(cap.out.split("daemon: started (log ", 1)[1].split(")", 1)[0])
        assert "BackfillDaemon" in log.read_text()  # the daemon's own log, kept in the instance folder
        pid = int(cap.err.split("started dagster-daemon (pid ", 1)[1].split(",", 1)[0])
        from robodata_dagster.backfills import _group_alive

        assert not _group_alive(pid)  # no process of its group runs (a zombie awaiting init's reaping is none)
        assert live_daemon(instance) is None


def test_failed_partition_fails_the_backfill_on_a_running_daemon(tmp_path, capsys):
    """A daemon already heartbeating: the CLI only waits. A bad recording fails its own partition only."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    from robodata.cli import main
    from robodata_dagster.backfills import DaemonProcess, live_daemon

    with _project(tmp_path, recordings={"small_ok": {"frames": 40}, "small_nan": {"nan_at": 10}}) as p:
        instance, keys = p["instance"], p["keys"]
        daemon = DaemonProcess(instance, tmp_path / "test-daemon.log").start()
        try:
            deadline = time.time() + HANG_GUARD_S
            while live_daemon(instance) is None:
                assert daemon.alive(), daemon.log_tail()
                assert time.time() < deadline, "the daemon never heartbeat"
                time.sleep(1)
            rc = main(["backfill", "--timeout", str(HANG_GUARD_S)])
            cap = capsys.readouterr()
            assert rc == 1, cap.out + cap.err
            assert daemon.alive()  # the CLI left the daemon it found alone
        finally:
            daemon.stop()
        bid = _backfill_id(cap.out)
        assert "daemon: existing" in cap.out and "started dagster-daemon" not in cap.err
        backfill = instance.get_backfill(bid)
        assert backfill.status == BulkActionStatus.COMPLETED_FAILED
        runs = {}
        for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": bid})):
            start, end = r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"]
            assert start == end  # one robot x day per run
            runs[start] = r
        assert set(runs) == {keys["small_ok"], keys["small_nan"]}  # one partition per run
        assert runs[keys["small_ok"]].status == dg.DagsterRunStatus.SUCCESS
        assert runs[keys["small_nan"]].status == dg.DagsterRunStatus.FAILURE
        assert _materialized_in(instance, runs[keys["small_ok"]].run_id) == {("raw_teleop", keys["small_ok"])}
        assert _materialized_in(instance, runs[keys["small_nan"]].run_id) == set()
        bad_row, bad_error = [line for line in cap.out.splitlines() if line.startswith(keys["small_nan"])]
        assert " NO " in bad_row and "failed" in bad_row, bad_row
        assert "small_nan.mcap" in bad_error and "NaN" in bad_error, bad_error  # the whole error, below the table
        ok_row = next(line for line in cap.out.splitlines() if line.startswith(keys["small_ok"]))
        assert " yes " in ok_row and "materialized" in ok_row


def test_no_wait_submits_and_returns(tmp_path, capsys):
    from dagster._core.execution.backfill import BulkActionStatus

    from robodata.cli import main
    from robodata_dagster.backfills import backfill_runs

    with _project(tmp_path, recordings={"small_a": {"frames": 40}}) as p:
        rc = main(["backfill", "--no-wait"])
        cap = capsys.readouterr()
        assert rc == 0
        bid = cap.out.strip().splitlines()[-1]
        backfill = p["instance"].get_backfill(bid)
        assert backfill is not None and backfill.status == BulkActionStatus.REQUESTED  # waits for a daemon
        assert backfill_runs(p["instance"], bid) == []
        assert "no Dagster daemon is running" in cap.err
        # Wrong selections are refused before anything is submitted.
        n = len(p["instance"].get_backfills())
        assert main(["backfill", "nope-mcap-00000000"]) == 2
        assert "unknown recording partitions: ['nope-mcap-00000000']" in capsys.readouterr().err
        assert main(["backfill", "2026-01-02|small_a"]) == 2  # a partition that holds no recording
        assert "no recording is registered in it" in capsys.readouterr().err
        assert main(["backfill", "--job", "cut_release", p["keys"]["small_a"]]) == 2
        assert "is not partitioned" in capsys.readouterr().err
        assert main(["backfill", "--assets", "no_such_asset"]) == 2
        assert len(p["instance"].get_backfills()) == n


def test_release_job_backfill_launches_one_run(tmp_path, capsys):
    """An unpartitioned, release-level job: one run of the whole asset, through the daemon."""
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus

    from robodata import store_layout as layout
    from robodata.cli import main
    from robodata.lerobot import write_shard
    from robodata.releases import read_latest
    from robodata.storage import DataStore
    from tests.test_lerobot import make_store

    with _project(tmp_path) as p:
        instance = p["instance"]
        store = DataStore(p["cfg"].storage_url)
        for key, episodes in (("rec-a", 2), ("rec-b", 1)):  # two recordings' lerobot_episodes shards
            src = make_store(tmp_path / f"{key}.hdf5", episodes=episodes, frames=20, cameras=(("front", (32, 40, 3)),))
            write_shard(src, store.local_path(layout.shard_path(key)), video_codec="libx264", crf=23)
            registered_partition(instance, p["cfg"].registry_url, key, tiers=("raw_teleop", "lerobot_episodes"))
        rc = main(["backfill", "--job", "cut_release", "--timeout", str(HANG_GUARD_S)])
        cap = capsys.readouterr()
        assert rc == 0, cap.out + cap.err
        bid = _backfill_id(cap.out)
        assert "unpartitioned" in cap.out.splitlines()[0]
        assert instance.get_backfill(bid).status == BulkActionStatus.COMPLETED_SUCCESS
        runs = list(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": bid})))
        assert len(runs) == 1 and runs[0].asset_selection == {dg.AssetKey("lerobot_dataset")}
        assert _materialized_in(instance, runs[0].run_id) == {("lerobot_dataset", None)}
        latest = read_latest(store)
        assert latest and sorted(latest["recordings"]) == ["rec-a", "rec-b"]
        assert f"release {latest['release']}" in cap.out
