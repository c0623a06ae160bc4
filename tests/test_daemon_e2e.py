"""The platform with nobody at the keyboard: a real ``dagster-daemon`` (sensors, automation, run queue) over
the project's instance. A recording copied into a robot's day folder ends up ingested, through every enabled
tier, in a new release; a second copy of the same bytes changes nothing."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import project_home
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

HANG_GUARD_S = 1500  # generous: a busy 2-core machine starts Ray and a code server per run
# pytest-timeout well above a slow run (five waits, each under the guard): it ends a hang the guards miss
pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * HANG_GUARD_S)]


def _wait(what: str, pred, daemon, limit_s: float = HANG_GUARD_S):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        got = pred()
        if got:
            return got
        if not daemon.alive():
            raise AssertionError(f"the daemon died while waiting for {what}:\n{daemon.log_tail(40)}")
        time.sleep(3)
    raise AssertionError(f"gave up waiting for {what} after {limit_s} s:\n{daemon.log_tail(40)}")


def test_landed_recording_reaches_a_release_with_no_manual_step(tmp_path):
    from robodata.registry import DUPLICATE, INGESTED, Registry
    from robodata_dagster.backfills import DaemonProcess

    home = tmp_path / "home"
    home.mkdir()
    (home / "map.yaml").write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
    cfg_file = home / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(home / "proj"),
        "sources": [{"pattern": "*.mcap", "topic_map": str(home / "map.yaml")}],
        "ray": {"num_cpus": 1},
        "landing": {"settle_seconds": 1},
        "tiers": {"synthetic_demos": {"enabled": False}, "augmented_videos": {"enabled": False},
                  "lerobot": {"codec": "libx264", "crf": 23},
                  "policy": {"max_steps": 2, "batch_size": 2, "rollouts": 0}},
    }))
    src = make_mcap(tmp_path / "session.mcap", 40)
    with project_home(cfg_file) as (cfg, instance, defs):
        landing, store = Path(cfg.landing_url), Path(cfg.storage_url)
        latest = store / "lerobot" / "releases" / "latest.json"
        reg = Registry(cfg.registry_url)
        with DaemonProcess(instance, home / "daemon.log") as daemon:
            dst = landing / "robot-01" / "2026-12-01" / "session.mcap"
            dst.parent.mkdir(parents=True)
            shutil.copy(src, dst)
            release = _wait("a release holding the landed recording",
                            lambda: json.loads(latest.read_text()) if latest.exists() else None, daemon)
            (key,) = release["recordings"]
            assert key.startswith("robot-01-2026-12-01-session-mcap-") and reg.lookup(key).status == INGESTED
            # the policy tier follows the new release on its own too
            import dagster as dg

            _wait("a policy trained on that release", lambda: instance.fetch_materializations(
                dg.AssetKey("policy_checkpoint"), limit=1).records, daemon)
            _wait("every run to finish", lambda: all(r.is_finished for r in instance.get_runs()), daemon)
            runs_before = {r.run_id for r in instance.get_runs()}
            # the same bytes again, from another robot: registered, found to be a copy in its run, no release
            copy = landing / "robot-02" / "2026-12-01" / "again.mcap"
            copy.parent.mkdir(parents=True)
            shutil.copy(src, copy)
            dup = _wait("the copy to be recognised", lambda: next(
                (r for r in reg.recordings(status=[DUPLICATE])), None), daemon)
            assert dup.duplicate_of == key and dup.path == "robot-02/2026-12-01/again.mcap"
            _wait("the copy's run to finish", lambda: all(
                r.is_finished for r in instance.get_runs() if r.run_id not in runs_before), daemon)
            time.sleep(90)  # let the sensors and automation tick a few more times: nothing may follow
            new_runs = [r for r in instance.get_runs() if r.run_id not in runs_before]
        # one run, the copy's robot x day partition's ingest, which materialized nothing
        assert [r.tags.get("dagster/partition") for r in new_runs] == [dup.partition_key] == ["2026-12-01|robot-02"]
        assert json.loads(latest.read_text())["release"] == release["release"]
        assert not instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("raw_teleop"), asset_partitions=[dup.partition_key]), limit=1).records
