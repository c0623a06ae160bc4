"""The augmented_videos asset through Dagster: local engine, and Cosmos Transfer's launch path with a Pipes stand-in."""

from __future__ import annotations

import json
import shutil
import sys

import dagster as dg
import pytest
import yaml

from robodata_dagster.resources.project import ProjectResource
from tests.conftest import registered_partition

KEY = "sess-abc123"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from robodata.sim.recorder import record_session

    d = tmp_path_factory.mktemp("rec")
    return record_session(d, "sess", n_episodes=2, seed=5, image_hw=(48, 64), formats=["hdf5"])["hdf5"]


def _materialize(tmp_path, recorded, tier_cfg):
    from robodata.config import load_config
    from robodata_dagster.assets.augmented_videos import build_augmented_videos

    store = tmp_path / "store"
    (store / "raw_teleop").mkdir(parents=True)
    shutil.copy(recorded, store / "raw_teleop" / f"{KEY}.hdf5")
    cfg = tmp_path / "robodata.yaml"
    # MimicGen off: augmented_videos follows (and reads exactly) raw_teleop
    cfg.write_text(yaml.safe_dump({"home": str(tmp_path / "proj"), "storage_root": str(store),
                                   "tiers": {"augmented_videos": tier_cfg, "synthetic_demos": {"enabled": False}}}))
    augmented_videos = build_augmented_videos(load_config(str(cfg)))
    assert [d.asset_key.path[-1] for d in augmented_videos.specs_by_key[augmented_videos.key].deps] == ["raw_teleop"]
    instance = dg.DagsterInstance.ephemeral()
    part = registered_partition(instance, load_config(str(cfg)).registry_url, KEY)
    from dagster_ray import LocalRay  # noqa: F401 - the asset needs a ray resource; Ray stays down (in-process tasks)

    class NoRay(dg.ConfigurableResource):
        pass

    from robodata_dagster.resources.engines import engine_resources

    res = dg.materialize(
        [augmented_videos], partition_key=part, instance=instance, raise_on_error=False,
        resources={"project": ProjectResource(config_path=str(cfg)), "ray_cluster": NoRay(),
                   **engine_resources(load_config(str(cfg)))},  # the engine the config names
    )
    return res, store


def _outcome(res):
    mats = res.asset_materializations_for_node("augmented_videos")
    checks = {e.check_name: e.passed
              for e in res.get_asset_check_evaluations()}
    return (mats[0].metadata if mats else {}), checks


def test_local_engine_materializes_with_checks(tmp_path, recorded):
    res, store = _materialize(tmp_path, recorded, {"variants": 1})
    assert res.success
    md, checks = _outcome(res)
    assert checks and all(checks.values()), checks
    assert md["variants"].value == 2 and md["demos_out"].value == 4 and md["clips"].value == 4
    assert "before_after" in md and md["mp4_bytes"].value > 0
    assert (store / "augmented_videos" / f"{KEY}.hdf5").exists()
    assert (store / "augmented_videos" / KEY / "demo_1" / "wrist.v0.mp4").exists()


def test_cosmos_launch_through_pipes_with_a_stand_in(tmp_path, recorded):
    cosmos = {"command": [sys.executable, "-m", "robodata.augment.cosmos_standin"],
              "extra_args": ["--fault", "corrupt:demo_1.wrist.v0"], "controls": {"depth": 0.5, "edge": 1.0, "seg": 0.5, "vis": 0.3}}
    res, store = _materialize(tmp_path, recorded, {"engine": "cosmos", "cosmos": cosmos})
    assert res.success
    md, checks = _outcome(res)
    assert md["variants"].value == 1  # demo_0 made it; demo_1 lost its wrist clip to the corrupt output
    assert "demo_1 v0" in md["variants_failed"].value
    assert "demo_1/wrist v0" in md["failed_clips"].value
    assert all(checks.values()), checks
    spec = json.loads((store / "augmented_videos" / KEY / "cosmos" / "specs" / "demo_0.front.v0.json").read_text())
    assert spec["depth"]["control_weight"] == 0.5 and spec["seg"]["control_path"].endswith("front.seg.mp4")
    assert "control_path" not in spec["vis"] and spec["video_path"].endswith("demo_0/front.mp4")
