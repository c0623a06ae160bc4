"""lerobot_episodes and lerobot_dataset through a real Dagster instance and Ray, read back by lerobot itself.

One project home for the module; the first and the second recording's releases are module fixtures (made once,
by whichever test asks first), so that each test runs alone and in any order."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import project_home

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    home = tmp_path_factory.mktemp("lrhome")
    cfg_file = home / "robodata.yaml"
    cfg_file.write_text(yaml.safe_dump({
        "home": str(home / "proj"),
        "sources": [{"pattern": "*.mcap", "topic_map": "robodata/sim/demo_topic_map.yaml"}],
        "ray": {"num_cpus": 2},
        # lerobot_episodes follows raw_teleop here (it reads exactly the tier before it)
        "tiers": {"lerobot": {"codec": "libx264", "crf": 23}, "synthetic_demos": {"enabled": False},
                  "augmented_videos": {"enabled": False}},
    }))
    with project_home(cfg_file) as (cfg, instance, defs):
        yield {"cfg": cfg, "instance": instance, "defs": defs, "tmp": home}


def _record_and_ingest(project, name: str, seed: int) -> tuple[str, str]:
    """Record ``name`` as robot-<name>'s only recording of the day and ingest it: (partition, recording key)."""
    from robodata.landing import LandingZone
    from robodata.registry import Registry
    from robodata.sim.recorder import record_session
    from robodata_dagster.runs import run_partitions, tick_sensor

    rec = record_session(project["tmp"] / "rec", name, n_episodes=2, seed=seed, image_hw=(48, 64))
    dst = LandingZone(project["cfg"].landing_url).land(rec["mcap"], under=f"robot-{name}")
    t = time.time() - 30
    os.utime(dst, (t, t))
    requests, _ = tick_sensor(project["instance"], project["defs"], wait_settle=False)
    assert len(requests) == 1
    part = requests[0].partition_key
    assert run_partitions(project["instance"], project["defs"], "ingest_recordings", [part])[0].success
    (key,) = [r.key for r in Registry(project["cfg"].registry_url).in_partition(part)]
    return part, key


def _run(project, job, keys):
    from robodata_dagster.runs import run_partitions

    return run_partitions(project["instance"], project["defs"], job, keys)


def _latest(project) -> dict:
    return json.loads((Path(project["cfg"].storage_url) / "lerobot/releases/latest.json").read_text())


def _episodes_and_release(project, name: str, seed: int) -> dict:
    part, key = _record_and_ingest(project, name, seed)
    out = _run(project, "write_lerobot_episodes", [part])[0]
    rel = _run(project, "cut_release", [""])[0]
    return {"key": key, "episodes": out, "release": rel, "latest": _latest(project) if rel.success else None}


@pytest.fixture(scope="module")
def first(project) -> dict:
    """rec_a (2 episodes) ingested, its shard written and the first release cut."""
    return _episodes_and_release(project, "rec_a", 11)


@pytest.fixture(scope="module")
def second(project, first) -> dict:
    """rec_b (2 episodes) after rec_a: its shard and a release of both."""
    return _episodes_and_release(project, "rec_b", 12)


def test_episodes_then_release_loads_in_lerobot(first):
    key, out, rel, latest = first["key"], first["episodes"], first["release"], first["latest"]
    assert out.success, out.error
    assert out.checks == {"shard_is_valid_lerobot": True, "shard_frames_contiguous_and_in_sync": True,
                          "every_recording_published": True}
    assert out.metadata["episodes"] == 2 and out.metadata["source_tier"] == "raw_teleop"
    assert rel.success, rel.error
    assert rel.checks == {"release_frames_contiguous_and_in_sync": True, "release_layout_videos_and_stats": True,
                          "within_reference_release_bounds": True, "release_drift": True}
    assert rel.metadata["duplicates"] == 0 and rel.metadata["episodes_checked"] == 2  # dedup ran on the release
    assert Path(rel.metadata["profile_path"]).read_text().startswith("<!DOCTYPE html>")
    assert rel.metadata["recordings"] == [key] and rel.metadata["promoted_to_latest"] is True
    assert latest["release"] == rel.metadata["release"]

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(repo_id="local/robodata", root=latest["path"], video_backend="pyav")
    assert ds.num_episodes == 2 and ds.num_frames == rel.metadata["frames"]
    item = ds[ds.num_frames - 1]
    assert tuple(item["observation.images.front"].shape) == (3, 48, 64)
    assert item["observation.state"].shape[0] == 12  # 7 arm joints + 2 fingers + goal xyz
    assert item["action"].shape[0] == 4
    fi = int(item["frame_index"])
    assert abs(float(item["timestamp"]) - fi / ds.fps) < 1e-4


def test_rerun_with_nothing_new_changes_nothing(project, first):
    # whatever release is latest now (the first, or a later one): cut it again, then once more
    now = _run(project, "cut_release", [""])[0]
    assert now.success, now.error
    root = Path(now.metadata["path"])
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    rel = _run(project, "cut_release", [""])[0]
    assert rel.success and rel.metadata["reused_existing"] is True
    assert rel.metadata["release"] == now.metadata["release"]
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_new_recording_makes_a_new_release_and_keeps_the_old(project, first, second):
    rel = second["release"]
    assert second["episodes"].success, second["episodes"].error
    assert rel.success and rel.metadata["release"] != first["latest"]["release"]
    assert sorted(rel.metadata["recordings"]) == sorted([first["key"], second["key"]])
    assert rel.metadata["episodes"] == 4
    assert "release_drift" in rel.checks  # compared with the first release (a warning when something drifted)
    old = Path(project["cfg"].storage_url) / "lerobot/releases" / first["latest"]["release"]
    assert (old / "meta/info.json").exists()  # the previous release stays readable


def test_mismatched_shard_fails_and_previous_release_stays_latest(project, first, second):
    # A shard whose features differ (another robot's data landed in the same project).
    from robodata.registry import INGESTED, Output, Recording, Registry

    store = Path(project["cfg"].storage_url)
    bad_key = "other-robot-mcap-0badf00d0badf00d"
    registry = Registry(project["cfg"].registry_url)
    with registry.engine.begin() as conn:
        registry.add_recording(conn, Recording(bad_key, "zone", "other/robot.mcap", 1, 1.0, "", time.time(), 0,
                                               INGESTED, partition_key="2026-12-01|other"))
    registry.put_output(Output("lerobot_episodes", bad_key, "2026-12-01|other", "iv", "v-bad", "published"))
    src = Path(registry.outputs("lerobot_episodes", [first["key"]])[first["key"]].path)
    dst = store / "lerobot/episodes" / bad_key
    shutil.copytree(src, dst)
    info = json.loads((dst / "meta/info.json").read_text())
    info["features"]["observation.state"]["shape"] = [13]
    (dst / "meta/info.json").write_text(json.dumps(info))
    latest_before = _latest(project)["release"]
    try:
        rel = _run(project, "cut_release", [""])[0]
    finally:  # out of the tests after this one, whatever happened
        shutil.rmtree(dst)
        registry.set_status(bad_key, "superseded")
    assert not rel.success
    assert bad_key in rel.error and "features differ" in rel.error
    assert _latest(project)["release"] == latest_before


def test_v21_release_for_groot(project, second, monkeypatch):
    monkeypatch.setenv("ROBODATA_CONFIG", str(project["tmp"] / "robodata.yaml"))
    cfg = yaml.safe_load((project["tmp"] / "robodata.yaml").read_text())
    cfg["tiers"]["lerobot"]["version"] = "v2.1"
    (project["tmp"] / "robodata.yaml").write_text(yaml.safe_dump(cfg))
    try:
        rel = _run(project, "cut_release", [""])[0]
    finally:
        cfg["tiers"]["lerobot"]["version"] = "v3.0"
        (project["tmp"] / "robodata.yaml").write_text(yaml.safe_dump(cfg))
    assert rel.success, rel.error
    root = Path(rel.metadata["path"])
    modality = json.loads((root / "meta/modality.json").read_text())
    assert set(modality) >= {"state", "action", "video", "annotation"}
    widths = {k: v["end"] - v["start"] for k, v in modality["state"].items()}
    assert widths.get("joint_pos") == 7 and widths.get("gripper") == 2
    assert modality["video"]["front"]["original_key"] == "observation.images.front"
    assert (root / "data/chunk-000/episode_000000.parquet").exists()
    assert (root / "videos/chunk-000/observation.images.front/episode_000000.mp4").exists()
    eps = [json.loads(x) for x in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert len(eps) == 4 and all(e["length"] > 0 for e in eps)
    import pyarrow.parquet as pq

    t = pq.read_table(root / "data/chunk-000/episode_000000.parquet")
    assert "annotation.human.action.task_description" in t.column_names
    assert np.all(np.asarray(t.column("annotation.human.action.task_description").to_pylist()) == 0)
