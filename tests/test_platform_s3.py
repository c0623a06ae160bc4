"""The platform on object storage: land, ingest, release, all through s3:// URLs against an S3-compatible
server (moto's standalone server on 127.0.0.1), credentials from the environment, with a fleet's nested
prefixes and a duplicate upload."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import moto_server, project_home, s3_filesystem
from tests.recordings import SMALL_TOPIC_MAP, make_mcap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_project(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    with moto_server() as env:
        for k, v in env.items():
            mp.setenv(k, v)
        fs = s3_filesystem(env)
        fs.mkdir("fleet")
        home = tmp_path_factory.mktemp("s3home")
        (home / "map.yaml").write_text(yaml.safe_dump(SMALL_TOPIC_MAP))
        cfg_file = home / "robodata.yaml"
        cfg_file.write_text(yaml.safe_dump({
            "home": str(home / "proj"),
            "storage_root": "s3://fleet/store",
            "landing_root": "s3://fleet/landing",
            "landing": {"settle_seconds": 0},
            "sources": [{"pattern": "*.mcap", "topic_map": str(home / "map.yaml")}],
            "ray": {"num_cpus": 2},
            "tiers": {"synthetic_demos": {"enabled": False}, "augmented_videos": {"enabled": False},
                      "lerobot": {"codec": "libx264", "crf": 23}},
        }))
        try:
            with project_home(cfg_file) as (cfg, instance, defs):
                yield {"cfg": cfg, "instance": instance, "defs": defs, "fs": fs, "home": home}
        finally:
            mp.undo()


def _run(p, job, keys):
    from robodata_dagster.runs import run_partitions

    return run_partitions(p["instance"], p["defs"], job, keys)


def test_land_ingest_release_on_s3(s3_project):
    from robodata.registry import DUPLICATE, INGESTED, Registry
    from robodata_dagster.runs import tick_sensor

    p = s3_project
    fs, home = p["fs"], p["home"]
    a = make_mcap(home / "a.mcap", 40)
    b = make_mcap(home / "b.mcap", 50)
    fs.put(str(a), "fleet/landing/robot-07/2026-12-01/a.mcap")
    fs.put(str(b), "fleet/landing/robot-08/2026-12-01/b.mcap")
    fs.put(str(a), "fleet/landing/robot-09/2026-12-01/a-again.mcap")  # the same bytes, uploaded twice
    requests, _ = tick_sensor(p["instance"], p["defs"], wait_settle=False)
    parts = sorted(r.partition_key for r in requests)
    assert parts == ["2026-12-01|robot-07", "2026-12-01|robot-08", "2026-12-01|robot-09"]
    outcomes = {o.partition: o for o in _run(p, "ingest_recordings", parts)}
    assert all(o.success for o in outcomes.values()), [o.error for o in outcomes.values()]
    reg = Registry(p["cfg"].registry_url)
    recs = {r.partition_key: r for part in parts for r in reg.in_partition(part)}
    assert sorted(r.status for r in recs.values()) == [DUPLICATE, INGESTED, INGESTED]
    good = sorted(r.key for r in recs.values() if r.status == INGESTED)
    dup = recs["2026-12-01|robot-09"]
    assert dup.status == DUPLICATE and outcomes["2026-12-01|robot-09"].metadata == {}  # nothing materialized
    assert sorted(fs.ls("fleet/store/raw_teleop")) and not fs.exists(f"fleet/store/raw_teleop/{dup.key}.hdf5")
    assert all(fs.exists(f"fleet/store/raw_teleop/{k}.hdf5") for k in good)
    # the tiers that are switched off are not in the graph: lerobot_episodes reads raw_teleop
    assert not any(k.path[-1] in ("synthetic_demos", "augmented_videos")
                   for k in p["defs"].resolve_asset_graph().get_all_asset_keys())
    assert all(o.success for o in _run(p, "write_lerobot_episodes", parts[:2]))
    (release,) = _run(p, "cut_release", [""])
    assert release.success, release.error
    latest = json.loads(fs.cat("fleet/store/lerobot/releases/latest.json"))
    assert sorted(latest["recordings"]) == good
    assert release.metadata["episodes"] == 2 and release.metadata["frames"] == 90
    # nothing new landed: the next ticks request nothing
    assert tick_sensor(p["instance"], p["defs"], wait_settle=False)[0] == []
