"""Crash safety with real kills: a CLI process executing an ingest run, killed with SIGKILL mid-run, leaves
nothing that blocks the next one (its run is ended, its ingest pool slot freed), nothing half-written that
looks complete, and no temporary that outlives the next clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import project_home
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

HANG_GUARD_S = 900  # a hang guard: Dagster, a code server and Ray on a busy 2-core machine
# pytest-timeout above the guards a test can wait through (the daemon test waits four times)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(5 * HANG_GUARD_S)]
REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys
from robodata.config import load_config
from robodata_dagster.runs import instance_and_defs, run_partitions
instance, defs = instance_and_defs(load_config())
run_partitions(instance, defs, "ingest_recordings", [sys.argv[1]])
"""


def _wait(what: str, pred, proc=None, limit_s: float = HANG_GUARD_S):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        got = pred()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the child ended (rc {proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def test_killed_cli_ingest_blocks_nothing(tmp_path):
    import dagster as dg

    from robodata.registry import Registry
    from robodata_dagster.runs import run_partitions, tick_sensor

    (tmp_path / "map.yaml").write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(tmp_path / "proj"), "ray": {"num_cpus": 1},
        "sources": [{"pattern": "*.mcap", "topic_map": str(tmp_path / "map.yaml")}],
        "tiers": {"synthetic_demos": {"enabled": False}, "augmented_videos": {"enabled": False}},
    }))
    with project_home(cfg_file) as (cfg, instance, defs):
        for i in range(3):  # three robots: each kill leaves one slot of the ingest pool (limit 2) claimed
            dst = Path(cfg.landing_url) / f"robot-{i}" / f"take{i}.mcap"
            dst.parent.mkdir(parents=True)
            make_mcap(dst, 40 + 5 * i)
            os.utime(dst, (time.time() - 30, time.time() - 30))
        requests, _ = tick_sensor(instance, defs, wait_settle=False)
        parts = sorted(r.partition_key for r in requests)
        assert len(parts) == 3
        env = {**os.environ, "PYTHONPATH": str(REPO), "ROBODATA_CONFIG": str(cfg_file)}
        killed = []
        for part in parts[:2]:
            proc = subprocess.Popen([sys.executable, "-c", CHILD, part], env=env, cwd=tmp_path, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

            def claimed(part=part):
                runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": part},
                                                               statuses=[dg.DagsterRunStatus.STARTED]))
                info = instance.event_log_storage.get_concurrency_info("ingest")
                return next((r for r in runs if r.run_id in info.active_run_ids), None)

            run = _wait(f"the run of {part} to hold an ingest slot", claimed, proc)
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI and everything it started (Ray)
            proc.wait(timeout=HANG_GUARD_S)
            killed.append(run.run_id)
        # the second CLI already ended the first's dead run when it started; the second's is STARTED and holds
        # its slot until somebody looks (the defect was: for ever, both slots, every later ingest blocked)
        assert instance.get_run_by_id(killed[0]).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(killed[1]).status == dg.DagsterRunStatus.STARTED
        held = instance.event_log_storage.get_concurrency_info("ingest").active_run_ids
        assert killed[1] in held and killed[0] not in held
        # the next ingest ends the dead runs, frees their slots, and goes through
        (out,) = run_partitions(instance, defs, "ingest_recordings", [parts[2]])
        assert out.success, out.error
        for run_id in killed:
            run = instance.get_run_by_id(run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            events = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert "is gone (killed?)" in events[-1].dagster_event.message
        assert not set(killed) & instance.event_log_storage.get_concurrency_info("ingest").active_run_ids
        # the killed partitions are re-ingested by a rerun; nothing under a final name was half-written
        for part in parts[:2]:
            (again,) = run_partitions(instance, defs, "ingest_recordings", [part])
            assert again.success, again.error
        store = Path(cfg.storage_url)
        registry = Registry(cfg.registry_url)
        for part in parts:
            (rec,) = registry.in_partition(part)
            assert registry.outputs("raw_teleop", [rec.key])[rec.key].status == "published"
            assert (store / "raw_teleop" / f"{rec.key}.hdf5").exists()


def test_doctor_lists_and_removes_what_dead_writers_left(tmp_path, capsys):
    """A writer killed mid-write in the store (a stage's staging file, a conversion's temporary folder):
    `robodata doctor` lists it with its size, `--fix` removes it; a live writer's temporary is kept."""
    from robodata.atomic import atomic_path, find_debris
    from robodata.cli import main

    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({"home": str(tmp_path / "proj")}))
    with project_home(cfg_file) as (cfg, instance, defs):
        store = Path(cfg.storage_url)
        killed = (
            "import os, signal, sys\n"
            "from robodata.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1], kind='dir') as tmp:\n"
            "    (tmp / 'frames.bin').write_bytes(b'x' * 100000)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
        )
        dest = store / "raw_teleop" / "rec-0123.hdf5"
        dest.parent.mkdir(parents=True)
        proc = subprocess.run([sys.executable, "-c", killed, str(dest)], cwd=REPO, timeout=HANG_GUARD_S,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == -signal.SIGKILL
        with atomic_path(store / "lerobot" / "live.json", kind="file") as live:  # a writer still at work
            live.write_text("{}")
            assert main(["doctor"]) == 0
            out = capsys.readouterr().out
            assert "temporaries of dead writers: 1 (0.1 MB)" in out and ".rec-0123.hdf5.partial-" in out
            assert "temporaries kept: 1" in out and live.name in out
            assert main(["doctor", "--fix"]) == 0
            assert "(removed)" in capsys.readouterr().out
            assert [d.path for d in find_debris(tmp_path)] == [live]
        assert find_debris(tmp_path) == [] and not dest.exists()


def test_a_killed_cli_leaves_no_process_behind(tmp_path):
    """kill -9 of the process alone (not its group): what it started (here a stand-in for Ray's workers and
    a daemon) is killed by its reaper once it is gone."""
    import psutil

    state = tmp_path / "reaper-state"
    script = ("import subprocess, sys, time\n"
              "from robodata.owner import start_reaper\n"
              "start_reaper()\n"
              "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(900)']) for _ in range(2)]\n"
              "print(' '.join(str(k.pid) for k in kids), flush=True)\n"
              "time.sleep(900)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO), "ROBODATA_REAPER_STATE": str(state)})
    kids = [int(p) for p in proc.stdout.readline().split()]
    assert len(kids) == 2
    _wait("the reaper to note both children",
          lambda: state.exists() and set(kids) <= {int(p) for p in state.read_text().split()}, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=HANG_GUARD_S)
    _wait("the children to be gone", lambda: not any(psutil.pid_exists(k) and psutil.Process(k).status()
                                                      != psutil.STATUS_ZOMBIE for k in kids))



def test_a_daemon_runs_worker_killed_is_ended_and_retried(tmp_path):
    """A real dagster-daemon launches the sensor's ingest run; its run worker is killed (as the kernel's OOM
    killer would). The run is ended and its slot freed (by the code server that lost its child, or by the next
    sensor tick's sweep of runs whose owner is gone), and run retries (on infrastructure failures only) run
    it again to success."""
    import dagster as dg
    import psutil

    from robodata.owner import Owner
    from robodata_dagster.backfills import DaemonProcess
    from robodata_dagster.runs import OWNER_TAG

    (tmp_path / "map.yaml").write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
    cfg_file = tmp_path / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(tmp_path / "proj"), "ray": {"num_cpus": 1}, "landing": {"settle_seconds": 1},
        "sources": [{"pattern": "*.mcap", "topic_map": str(tmp_path / "map.yaml")}],
        # only the landing sensor's runs: no tier after raw_teleop, nothing else competing for the cores
        "tiers": {"synthetic_demos": {"enabled": False}, "augmented_videos": {"enabled": False}},
    }))
    with project_home(cfg_file) as (cfg, instance, defs), DaemonProcess(instance, tmp_path / "daemon.log") as daemon:
        dst = Path(cfg.landing_url) / "robot-9" / "take.mcap"
        dst.parent.mkdir(parents=True)
        make_mcap(dst, 300)

        def owned_run():
            runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            return next((r for r in runs if OWNER_TAG in r.tags and "dagster/parent_run_id" not in r.tags), None)

        def alive():
            assert daemon.alive(), daemon.log_tail(40)
            return True

        run = _wait("the sensor's ingest run to start in a run worker", lambda: alive() and owned_run())
        owner = Owner.parse(run.tags[OWNER_TAG])
        worker = psutil.Process(owner.pid)
        for p in [*worker.children(recursive=True), worker]:
            p.kill()
        dead = _wait("the dead run to be ended", lambda: alive() and (
            r := instance.get_run_by_id(run.run_id)).status == dg.DagsterRunStatus.FAILURE and r, limit_s=HANG_GUARD_S)
        # ended by whichever saw it first: the code server (its child died) or robodata's sweep (the owner tag)
        failure = instance.all_logs(dead.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1].dagster_event.message
        assert "is gone (killed?)" in failure or "marked as failed from outside the execution context" in failure
        _wait("its slot to be freed (the next sensor tick)", lambda: alive() and run.run_id not in
              instance.event_log_storage.get_concurrency_info("ingest").active_run_ids, limit_s=HANG_GUARD_S)
        retry = _wait("its retry to succeed", lambda: alive() and next(
            (r for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
             if r.status == dg.DagsterRunStatus.SUCCESS), None), limit_s=HANG_GUARD_S)
        assert retry.tags.get("dagster/partition") == run.tags.get("dagster/partition")
