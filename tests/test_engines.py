"""Engines and launchers as Dagster resources: picked from the project config, refusing a run that names another,
and a staged output that fails a blocking check kept in quarantine, never where downstream looks."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from robodata import store_layout as layout
from robodata.config import load_config
from robodata.stages.engines import EngineMismatch, PipesLaunch
from robodata_dagster.resources.engines import (
    REPO_ROOT,
    CosmosTransfer,
    IsaacLabMimic,
    KubernetesLauncher,
    LocalAugmentation,
    LocalMimicGen,
    RayJobLauncher,
    SubprocessLauncher,
    engine_resources,
)
from robodata_dagster.resources.project import ProjectResource
from tests.conftest import registered_partition

STANDIN = [sys.executable, "-m", "robodata.mimicgen.isaaclab_standin"]


def _config(tmp_path: Path, tiers: dict) -> Path:
    path = tmp_path / "robodata.yaml"
    path.write_text(yaml.safe_dump({"home": str(tmp_path / "proj"), "tiers": tiers}))
    return path


def test_default_config_picks_the_local_engines(tmp_path):
    res = engine_resources(load_config(_config(tmp_path, {})))
    assert type(res["synthetic_demos_engine"]) is LocalMimicGen
    assert type(res["augmented_videos_engine"]) is LocalAugmentation
    launcher = res["policy_launcher"]
    assert type(launcher) is SubprocessLauncher and launcher.cwd == str(REPO_ROOT)


def test_definitions_pick_isaaclab_cosmos_and_ray_when_the_config_says_so(tmp_path, monkeypatch):
    cfg_file = _config(tmp_path, {
        "synthetic_demos": {"engine": "isaaclab", "isaaclab": {"launcher": "k8s"}},
        "augmented_videos": {"engine": "cosmos"},
        "policy": {"launcher": "ray", "ray": {"address": "http://head.example:8265"}},
    })
    monkeypatch.setenv("ROBODATA_CONFIG", str(cfg_file))
    from robodata_dagster.definitions import build_definitions

    resources = build_definitions().resources
    synth, aug, trainer = (resources[k] for k in ("synthetic_demos_engine", "augmented_videos_engine",
                                                  "policy_launcher"))
    assert type(synth) is IsaacLabMimic and type(synth.launcher) is KubernetesLauncher
    assert type(aug) is CosmosTransfer and type(aug.launcher) is SubprocessLauncher
    assert type(trainer) is RayJobLauncher and trainer.address == "http://head.example:8265"


def test_a_run_naming_another_engine_is_refused_before_any_work(tmp_path):
    from robodata.mimicgen.engines import LocalDemoGenerator
    from robodata.stages.synthetic import SyntheticDemosStage

    cfg = load_config(_config(tmp_path, {"synthetic_demos": {"engine": "isaaclab"}}))
    with pytest.raises(EngineMismatch, match="tiers.synthetic_demos.engine is 'isaaclab' for this run.*'local'"):
        SyntheticDemosStage(cfg.tiers.synthetic_demos, LocalDemoGenerator())


def test_pod_and_ray_job_from_the_trainer_launch(tmp_path):
    from dagster_k8s.pipes import build_pod_body

    from robodata.train.commands import TrainCommand
    from robodata.train.config import PolicyConfig
    from robodata.train.launchers import trainer_launch

    store = tmp_path / "store"
    cfg = PolicyConfig(engine="groot", launcher="k8s", num_gpus=2, k8s={"volume_claim": "robodata-store"})
    cmd = TrainCommand("groot", ["python", "gr00t_finetune.py", "--dataset-path", f"{store}/lerobot/releases/r1"],
                       f"{store}/policy/runs/r1-groot")
    request = trainer_launch(cfg, cmd, store)
    assert str(store) in request.env["ROBODATA_TRAIN_SPEC"] and str(store) not in request.pod_env["ROBODATA_TRAIN_SPEC"]
    pod = build_pod_body("trainer", env_vars=request.pod_env, base_pod_meta=None,
                         **{k: v for k, v in KubernetesLauncher.pod(request).items() if k not in ("namespace", "env")})
    c = pod.spec.containers[0]
    assert c.image == "gr00t:latest" and c.command == ["python", "-m", "robodata.train.pipes_entry"]
    assert c.resources.limits["nvidia.com/gpu"] == "2" and pod.spec.volumes[0].persistent_volume_claim.claim_name
    assert "/data/policy/runs/r1-groot" in next(e.value for e in c.env if e.name == "ROBODATA_TRAIN_SPEC")
    job = RayJobLauncher.job(request)
    assert job["entrypoint"] == "python -m robodata.train.pipes_entry" and job["entrypoint_num_gpus"] == 2
    assert job["runtime_env"]["env_vars"] == request.env


def test_pod_working_directory_from_the_launch():
    spec = KubernetesLauncher.pod(PipesLaunch(["python", "examples/inference.py"], cwd="/workspace/cosmos",
                                              image="cosmos:2.5", namespace="gpu"))
    assert spec["base_pod_spec"] == {"containers": [{"working_dir": "/workspace/cosmos"}]}
    assert spec["image"] == "cosmos:2.5" and spec["namespace"] == "gpu"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    from robodata.sim.recorder import record_session

    d = tmp_path_factory.mktemp("rec")
    return Path(record_session(d, "rec", n_episodes=1, seed=7, image_hw=(48, 64), formats=["hdf5"])["hdf5"])


def _quarantined(store: Path, rel: str) -> list[dict]:
    """The findings of each quarantined copy of ``rel`` (one per failed run)."""
    return [json.loads(p.read_text()) for p in sorted((store / "quarantine" / rel).glob("*.findings.json"))]


def test_synthetic_demos_failing_a_blocking_check_is_quarantined_not_published(tmp_path, recording):
    """Isaac Lab Mimic's launch path (its stand-in) writes 20-frame demos; the config wants at least 50."""
    from robodata_dagster.assets.synthetic_demos import synthetic_demos

    store = tmp_path / "proj" / "store"
    (store / "raw_teleop").mkdir(parents=True)
    shutil.copy(recording, store / layout.episodes_path(layout.RAW_TELEOP, "rec"))
    cfg_file = _config(tmp_path, {"synthetic_demos": {
        "engine": "isaaclab", "min_demo_frames": 50,
        "isaaclab": {"command": STANDIN, "generation_num_trials": 2, "num_envs": 1, "device": "cpu"}}})
    instance = dg.DagsterInstance.ephemeral()
    part = registered_partition(instance, load_config(cfg_file).registry_url, "rec")

    class NoRay(dg.ConfigurableResource):
        pass

    res = dg.materialize([synthetic_demos], partition_key=part, instance=instance, raise_on_error=False,
                         resources={"project": ProjectResource(config_path=str(cfg_file)), "ray_cluster": NoRay(),
                                    **engine_resources(load_config(cfg_file))})
    checks = {e.check_name: e.passed for e in res.get_asset_check_evaluations()}
    assert checks["demo_lengths_in_bounds"] is False and checks["no_nan"] is True
    md = res.asset_materializations_for_node("synthetic_demos")[0].metadata
    assert md["published"].value is False and "/quarantine/" in md["path"].value
    rel = layout.episodes_path(layout.SYNTHETIC_DEMOS, "rec")
    assert not (store / rel).exists()
    [record] = _quarantined(store, rel)
    assert record["output"] == rel
    assert any(f["check"] == "demo_lengths_in_bounds" and "outside [50, 2000]" in f["message"]
               for f in record["findings"])


def test_augmented_store_failing_a_blocking_check_is_quarantined_not_published(tmp_path, recording):
    """Variants that must differ from the source by more than 255 grey levels cannot pass the scene check."""
    from robodata.augment.config import AugmentedVideosConfig
    from robodata.augment.engines import LocalClipAugmenter
    from robodata.stages.augment import augment_recording
    from robodata.storage import DataStore

    store = DataStore(tmp_path / "store")
    (tmp_path / "store" / "raw_teleop").mkdir(parents=True)
    shutil.copy(recording, tmp_path / "store" / layout.episodes_path(layout.RAW_TELEOP, "rec"))
    cfg = AugmentedVideosConfig(min_distance=255, cameras=["front"])
    outcome, summary = augment_recording(store, "rec", cfg, LocalClipAugmenter(), source_tier=layout.RAW_TELEOP)
    assert not outcome.published and [c.name for c in outcome.blocking_failures] == [
        "augmented_variants_differ_but_keep_robot_and_object"]
    rel = layout.episodes_path(layout.AUGMENTED_VIDEOS, "rec")
    assert not store.exists(rel) and summary["path"] == outcome.quarantined
    [record] = _quarantined(Path(store.root), rel)
    assert any("hardly changed" in f["message"] for f in record["findings"])
    assert summary["variants"] == 1 and store.exists(f"{layout.videos_path('rec')}/demo_0/front.v0.mp4")
