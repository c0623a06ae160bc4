"""policy_checkpoint end to end: a real release, real lerobot-train steps, eval, MLflow registry, bad input.

The releases and the first (promoted) training are module fixtures, made once by whichever test asks first;
the tests compare what they change with what was there before them, so that each runs alone and in any order."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import project_home

pytestmark = pytest.mark.slow

# A small ACT so that a handful of CPU steps and the checkpoint copies stay quick.
SMALL_ACT = ["--policy.dim_model=64", "--policy.dim_feedforward=128", "--policy.n_heads=2",
             "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1", "--policy.chunk_size=10",
             "--policy.n_action_steps=1", "--policy.use_vae=false"]
STANDIN = f"{sys.executable} -m robodata.train.standin"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    home = tmp_path_factory.mktemp("trainhome")
    cfg_file = home / "robodata.yaml"
    cfg = {"home": str(home / "proj"), "ray": {"num_cpus": 2},
           "sources": [{"pattern": "*.mcap", "topic_map": "robodata/sim/demo_topic_map.yaml"}],
           "tiers": {"lerobot": {"codec": "libx264", "crf": 23},
                     "synthetic_demos": {"enabled": False}, "augmented_videos": {"enabled": False},
                     "policy": {"max_steps": 10, "batch_size": 2, "save_steps": 5, "log_steps": 5,
                                "trainer_args": SMALL_ACT, "rollouts": 1, "rollout_steps": 10,
                                "eval_max_frames": 30}}}
    cfg_file.write_text(yaml.safe_dump(cfg))
    from robodata.landing import LandingZone
    from robodata.sim.recorder import record_session
    from robodata_dagster.runs import run_partitions, tick_sensor

    with project_home(cfg_file, clear=("MLFLOW_TRACKING_URI",)) as (c, instance, defs):
        rec = record_session(home / "rec", "rec_a", n_episodes=4, seed=11, image_hw=(48, 64))
        dst = LandingZone(c.landing_url).land(rec["mcap"])
        t = time.time() - 30
        os.utime(dst, (t, t))
        part = tick_sensor(instance, defs, wait_settle=False)[0][0].partition_key
        for job in ("ingest_recordings", "write_lerobot_episodes"):
            assert run_partitions(instance, defs, job, [part])[0].success
        from robodata.registry import Registry

        (key,) = [r.key for r in Registry(c.registry_url).in_partition(part)]
        v30 = run_partitions(instance, defs, "cut_release", [""])[0]
        assert v30.success, v30.error
        cfg["tiers"]["lerobot"]["version"] = "v2.1"  # the GR00T flavour of the same recordings
        cfg_file.write_text(yaml.safe_dump(cfg))
        v21 = run_partitions(instance, defs, "cut_release", [""])[0]
        assert v21.success, v21.error
        cfg["tiers"]["lerobot"]["version"] = "v3.0"
        cfg_file.write_text(yaml.safe_dump(cfg))
        yield {"cfg": c, "instance": instance, "v30": v30.metadata["release"], "v21": v21.metadata["release"],
               "key": key, "store": Path(c.storage_url)}


def _train(project, **run_cfg):
    import dagster as dg

    from robodata_dagster.assets.policy_checkpoint import PolicyRunConfig, policy_checkpoint
    from robodata_dagster.resources.engines import engine_resources
    from robodata_dagster.resources.project import ProjectResource

    res = dg.materialize([policy_checkpoint], instance=project["instance"],
                         resources={"project": ProjectResource(), **engine_resources(project["cfg"])},
                         run_config=dg.RunConfig(ops={"policy_checkpoint": PolicyRunConfig(**run_cfg)}),
                         raise_on_error=False)
    meta = {}
    for ev in res.get_asset_materialization_events():
        meta = {k: getattr(v, "value", v) for k, v in ev.materialization.metadata.items()}
    checks = {ev.check_name: ev.passed for ev in res.get_asset_check_evaluations()}
    err = ""
    for ev in res.all_events:
        if ev.is_failure and ev.event_specific_data is not None:
            e = getattr(ev.event_specific_data, "error", None)
            err = " ".join(str(getattr(e, "message", e)).split())
    return res.success, meta, checks, err


def _registry(project, name="robodata-policy"):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project['cfg'].home_dir}/mlflow/mlflow.db"
    return sorted(int(v.version) for v in MlflowClient(uri, uri).search_model_versions(f"name='{name}'"))


def _latest_text(project):
    p = project["store"] / "policy/latest.json"
    return p.read_text() if p.exists() else None


def _promoted(project):
    return json.loads((project["store"] / "policy/latest.json").read_text())


@pytest.fixture(scope="module")
def first(project) -> dict:
    """The first training of the project (local engine, the v3.0 release): what it reported, and the registry
    and the promoted policy right after it."""
    ok, meta, checks, err = _train(project, release=project["v30"])
    return {"ok": ok, "meta": meta, "checks": checks, "err": err, "registry": _registry(project),
            "promoted": _promoted(project)["run"] if _latest_text(project) else None}


def test_local_engine_trains_evaluates_tracks_and_registers(project, first):
    ok, meta, checks, err = (first[k] for k in ("ok", "meta", "checks", "err"))
    assert ok, err
    assert meta["steps"] == 10 and meta["release"] == project["v30"] and meta["recordings"] == [project["key"]]
    assert meta["final_loss"] > 0 and meta["best_loss"] <= meta["final_loss"] and meta["samples_per_s"] > 0
    assert Path(meta["checkpoint"], "model.safetensors").exists() and meta["checkpoint_bytes"] > 0
    assert len(meta["heldout_episodes"]) == 1 and len(meta["train_episodes"]) == 3
    assert meta["eval_action_mse"] > 0 and 0 <= meta["eval_rollout_success_rate"] <= 1
    assert "data:image/png;base64" in meta["loss_curve"]
    assert meta["promoted"] is True and checks == {"gx_metrics_valid": True, "checkpoint_not_worse_than_promoted": True}
    assert first["registry"] == [1] and first["promoted"] == meta["run"]
    assert meta["candidate"] == str(project["store"] / "policy/runs" / f"{meta['run']}.candidate.json")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project['cfg'].home_dir}/mlflow/mlflow.db"
    run = MlflowClient(uri).get_run(meta["mlflow_run_id"])
    assert run.data.tags["robodata.release"] == project["v30"] and project["key"] in run.data.tags["robodata.recordings"]
    assert run.data.params["heldout_episodes"] == str(meta["heldout_episodes"])
    assert "train_loss" in run.data.metrics and "eval_action_mse" in run.data.metrics


def test_same_release_and_config_reuses_the_checkpoint(project, first):
    registered = _registry(project)
    ok, meta, checks, err = _train(project, release=project["v30"])
    assert ok, err
    assert meta["reused_existing"] is True and meta["run"] == first["meta"]["run"]
    assert _registry(project) == registered  # nothing new to register


def test_worse_checkpoint_is_not_promoted(project, first):
    # A learning rate that wrecks the weights: same release, same held-out episodes, same rollouts.
    registered, promoted = _registry(project), _promoted(project)["run"]
    ok, meta, checks, err = _train(project, release=project["v30"], max_steps=5,
                                   trainer_args=["--policy.optimizer_lr=5.0"])
    assert meta["promoted"] is False and checks["checkpoint_not_worse_than_promoted"] is False
    assert set(checks) == {"gx_metrics_valid", "checkpoint_not_worse_than_promoted"}  # metrics may be huge or NaN
    assert "worse than" in meta["promotion"]
    assert _registry(project) == registered and _promoted(project)["run"] == promoted
    # its candidate record (checkpoint, metrics, eval) is quarantined, never where promotion looks
    assert "/quarantine/" in meta["candidate"] and Path(meta["candidate"]).exists()
    assert not (project["store"] / "policy/runs" / f"{meta['run']}.candidate.json").exists()


def test_bad_inputs_fail_clearly_and_touch_nothing(project, first, tmp_path):
    before, registered = _latest_text(project), _registry(project)
    ok, _, _, err = _train(project, release="doesnotexist")
    assert not ok and "doesnotexist" in err and "not a LeRobot dataset" in err
    ok, _, _, err = _train(project, release=project["v21"])  # lerobot-train on the v2.1 (GR00T) release
    assert not ok and "v3.0" in err
    ok, _, _, err = _train(project, release=project["v21"], engine="groot", overrides=["num_gpus=1"])
    assert not ok and "GPU" in err  # no GPU here: refused before anything is launched
    assert _latest_text(project) == before and _registry(project) == registered


def test_groot_launch_crash_then_resume(project, first, monkeypatch):
    """The production engine up to the GPU: real command line and Pipes, a stand-in for gr00t_finetune.py."""
    import robodata.train.finetune as ft

    monkeypatch.setattr(ft, "visible_gpus", lambda: 1)
    before = _latest_text(project)
    groot = dict(release=project["v21"], engine="groot", max_steps=40,
                 overrides=["num_gpus=1", "save_steps=10", "log_steps=10", "trainer_args=[]",
                            f"trainer_executable={STANDIN}", "tracking.registered_model=robodata-gr00t"])
    ok, _, _, err = _train(project, **{**groot, "overrides": groot["overrides"] + ["trainer_env={ROBODATA_STANDIN_CRASH_AT: '35'}"]})
    assert not ok and "OutOfMemoryError" in err and "resume" in err
    assert _latest_text(project) == before
    ok, meta, checks, err = _train(project, **groot)
    assert ok, err
    assert meta["resumed_from_step"] == 30 and meta["steps"] == 40 and meta["checkpoint"].endswith("checkpoint-40")
    assert "--data-config fourier_gr1_arms_only" in meta["trainer_command"] and "--resume" in meta["trainer_command"]
    assert meta["samples_per_s"] > 0 and meta["promoted"] is True
    assert _registry(project, "robodata-gr00t") == [1]
