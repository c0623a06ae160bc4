"""synthetic_demos materialized through Dagster with real Ray (2 workers), its blocking checks, bad input on one
partition only, and the production engine launched through Dagster Pipes with a stand-in for Isaac Lab."""

from __future__ import annotations

import shutil
import sys

import dagster as dg
import h5py
import pytest
import yaml

from robodata import store_layout as layout
from robodata.config import load_config
from robodata.formats.isaaclab import EpisodeStore
from robodata_dagster.assets.synthetic_demos import STANDIN_COMMAND, synthetic_demos
from robodata_dagster.resources.engines import engine_resources
from robodata_dagster.resources.project import ProjectResource
from tests.conftest import registered_partition

HW = (48, 64)


def synthetic_demos_path(key: str) -> str:
    return layout.episodes_path(layout.SYNTHETIC_DEMOS, key)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from robodata.sim.recorder import record_session

    home = tmp_path_factory.mktemp("mghome")
    rep = record_session(home / "rec", "good", n_episodes=2, seed=5, image_hw=HW, formats=["hdf5"])
    store = home / "proj" / "store" / "raw_teleop"
    store.mkdir(parents=True)
    for key in ("good", "good-isaac", "good-fail"):
        shutil.copy(rep["hdf5"], store / f"{key}.hdf5")
    shutil.copy(rep["hdf5"], store / "noobj.hdf5")
    with h5py.File(store / "noobj.hdf5", "r+") as f:
        for name in f["data"]:
            del f[f"data/{name}/obs/datagen_info/object_pose"]
    return home


def _materialize(home, key, tier, ray=None):
    cfg_file = home / f"robodata-{tier.get('engine', 'local')}.yaml"
    cfg_file.write_text(yaml.safe_dump({"home": str(home / "proj"), "tiers": {"synthetic_demos": tier}}))
    instance = dg.DagsterInstance.ephemeral()
    cfg = load_config(str(cfg_file))
    part = registered_partition(instance, cfg.registry_url, key)  # raw_teleop/<key>.hdf5, ingested
    resources = {"project": ProjectResource(config_path=str(cfg_file)), "ray_cluster": ray or _NoRay(),
                 **engine_resources(cfg)}  # the engine the config names, as definitions.py picks it
    return dg.materialize([synthetic_demos], partition_key=part, instance=instance, resources=resources,
                          raise_on_error=False), cfg


class _NoRay(dg.ConfigurableResource):
    """Ray left down: trials run in-process (the library's fallback)."""


def test_local_engine_on_ray_with_blocking_checks(home):
    import ray
    from dagster_ray import Lifecycle, LocalRay

    ray_res = LocalRay(ray_init_options={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False,
                                         "ignore_reinit_error": True,
                                         "runtime_env": {"env_vars": {"MUJOCO_GL": "egl"}}},
                       lifecycle=Lifecycle(cleanup="never"))
    try:
        res, cfg = _materialize(home, "good", {"demos_per_source": 2, "datagen": {"seed": 3}}, ray_res)
    finally:
        ray.shutdown()
    assert res.success
    mat = res.asset_materializations_for_node("synthetic_demos")[0]
    md = mat.metadata
    assert md["successes"].value == 4 and md["workers"].value == 2
    assert md["success_rate"].value >= 0.5 and "overview" in md
    assert set(md["source_usage_per_subtask"].value) == {"grasp", "place"}
    checks = res.get_asset_check_evaluations()
    assert len(checks) == 7 and all(c.passed for c in checks)  # the stage's 6 and every_recording_published
    assert "within_reference_release_bounds" in {c.check_name for c in checks}  # bounds of the latest release
    with EpisodeStore(cfg.storage_url + "/" + synthetic_demos_path("good")) as es:
        assert len(es) == 4 and es.read("demo_0").obs["wrist"].shape[1:] == (*HW, 3)


def test_source_without_object_poses_fails_that_partition_only(home):
    res, cfg = _materialize(home, "noobj", {"demos_per_source": 1})
    assert not res.success
    failure = res.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "recording noobj (" in failure.description and "no object poses" in failure.description
    assert not (home / "proj" / "store" / synthetic_demos_path("noobj")).exists()
    assert (home / "proj" / "store" / "raw_teleop" / "good.hdf5").exists()


def test_isaaclab_engine_launch_through_pipes_with_a_standin(home):
    tier = {"engine": "isaaclab", "isaaclab": {"command": STANDIN_COMMAND, "generation_num_trials": 3,
                                               "num_envs": 2, "device": "cpu"}}
    res, cfg = _materialize(home, "good-isaac", tier)
    assert res.success, res.get_step_failure_events()
    md = res.asset_materializations_for_node("synthetic_demos")[0].metadata
    assert md["engine"].value == "isaaclab_mimic" and md["demos"].value == 3
    cmd = md["command"].value
    assert "--task Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0" in cmd and "--generation_num_trials 3" in cmd
    assert "--num_envs 2" in cmd and "--headless" in cmd and "--enable_cameras" in cmd
    checks = {c.check_name: c for c in res.get_asset_check_evaluations()}
    # Isaac Lab Mimic records no per-subtask provenance: the invariant is NOT EVALUATED (a warning, not passed,
    # not blocking: the demos are published), the other checks pass
    inv = checks.pop("object_centric_invariant")
    assert not inv.passed and inv.severity == dg.AssetCheckSeverity.WARN
    assert inv.metadata["evaluated"].value is False
    assert "not evaluated: Isaac Lab Mimic records no per-subtask source provenance" in str(inv.metadata["findings"].value)
    assert all(c.passed for c in checks.values()) and len(checks) == 6
    with EpisodeStore(cfg.storage_url + "/" + synthetic_demos_path("good-isaac")) as es:
        assert len(es) == 3 and es.env_args["env_name"] == "Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0"


def test_isaaclab_engine_failure_is_one_clear_error(home):
    tier = {"engine": "isaaclab", "isaaclab": {"command": [sys.executable, "-c", "import sys; sys.exit(3)"]}}
    res, _ = _materialize(home, "good-fail", tier)
    assert not res.success
    failure = res.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert failure is not None and "Isaac Lab Mimic (engine isaaclab) failed" in failure.description
