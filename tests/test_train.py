"""The policy tier's library, fast: trainer command lines, log parsing, the held-out split, launch specs, config."""

from __future__ import annotations

import pytest

from robodata.config import load_config, parse_overrides
from robodata.train.commands import TrainCommandError, groot_command, lerobot_command, merge_args
from robodata.train.config import PolicyConfig
from robodata.train.evaluate import holdout_split
from robodata.train.launchers import k8s_pod_spec, ray_job_params
from robodata.train.metrics import MetricsParser


def test_lerobot_command_is_the_offline_cpu_one(tmp_path):
    cfg = PolicyConfig(max_steps=300, batch_size=8, trainer_args=["--policy.dim_model=128", "--steps=50"])
    cmd = lerobot_command(cfg, "/rel", tmp_path / "out", repo_id="local/robodata", train_episodes=[0, 2])
    a = cmd.argv
    assert a[0].endswith("lerobot-train")
    for flag in ("--dataset.root=/rel", "--dataset.video_backend=pyav", "--policy.type=act", "--policy.device=cpu",
                 "--policy.push_to_hub=false", "--policy.pretrained_backbone_weights=null", "--wandb.enable=false",
                 "--batch_size=8", "--dataset.episodes=[0,2]", "--policy.dim_model=128"):
        assert flag in a
    assert "--steps=50" in a and "--steps=300" not in a  # passthrough wins over the config
    assert not cmd.resumed and cmd.env["HF_HUB_OFFLINE"] == "1"
    assert "--wandb.enable=true" in lerobot_command(PolicyConfig(wandb=True), "/r", tmp_path / "o", repo_id="x").argv


def test_lerobot_command_resumes_from_last_checkpoint(tmp_path):
    cfg_file = tmp_path / "out/checkpoints/last/pretrained_model/train_config.json"
    cfg_file.parent.mkdir(parents=True)
    cfg_file.write_text("{}")
    cmd = lerobot_command(PolicyConfig(), "/rel", tmp_path / "out", repo_id="x")
    assert cmd.resumed and "--resume=true" in cmd.argv and f"--config_path={cfg_file}" in cmd.argv


def test_groot_command_matches_gr00t_finetune_flags(tmp_path):
    cfg = PolicyConfig(engine="groot", num_gpus=2, max_steps=20000, batch_size=64, save_steps=1000)
    a = groot_command(cfg, "/rel21", tmp_path / "o", dataset_format="v2.1").argv
    assert a[:2] == ["python", "scripts/gr00t_finetune.py"]
    s = " ".join(a)
    for part in ("--dataset-path /rel21", "--data-config fourier_gr1_arms_only", "--embodiment-tag new_embodiment",
                 "--max-steps 20000", "--batch-size 64", "--num-gpus 2", "--save-steps 1000",
                 "--base-model-path nvidia/GR00T-N1.5-3B", "--no-tune-llm", "--tune-visual"):
        assert part in s
    with pytest.raises(TrainCommandError, match="v2.1"):
        groot_command(cfg, "/rel", tmp_path / "o", dataset_format="v3.0")
    with pytest.raises(TrainCommandError, match="GPU"):
        groot_command(PolicyConfig(engine="groot"), "/rel", tmp_path / "o", dataset_format="v2.1")
    with pytest.raises(TrainCommandError, match="v3.0"):
        lerobot_command(PolicyConfig(), "/rel", tmp_path / "o", repo_id="x", dataset_format="v2.1")


def test_merge_args_replaces_same_flag():
    assert merge_args(["--a=1", "--b=2"], ["--b=3", "--c"]) == ["--a=1", "--b=3", "--c"]


def test_metrics_from_lerobot_and_hf_logs():
    p = MetricsParser("lerobot", log_steps=200)
    p.feed("INFO 2026 lerobot_train.py:641 step:800 smpl:3K ep:16 epch:2.10 loss:0.412 grdn:3.1 lr:1.0e-05 "
           "updt_s:0.700 data_s:0.050 smp/s:5.3", 10.0)
    p.feed("INFO step:1K smpl:4K ep:20 epch:2.6 loss:0.300 grdn:2.0 lr:1.0e-05 updt_s:0.7 data_s:0.05", 50.0)
    assert [x.step for x in p.points] == [800, 1000]  # "1K" is rounded by lerobot: the step comes from log_freq
    assert p.final_loss == 0.3 and p.best_loss == 0.3 and p.points[0].values["grad_norm"] == 3.1
    assert p.samples_per_s(4) == pytest.approx(5.3)
    h = MetricsParser("groot", log_steps=10)
    h.feed("{'loss': 0.9, 'grad_norm': 1.0, 'learning_rate': 0.0001, 'epoch': 0.1}")
    h.feed("{'loss': 0.5, 'grad_norm': 1.0, 'learning_rate': 0.0001, 'epoch': 0.2}")
    h.feed("{'train_runtime': 2.0, 'train_samples_per_second': 40.0, 'train_loss': 0.6, 'epoch': 0.2}")
    assert [x.step for x in h.points] == [10, 20] and h.samples_per_s(16) == 40.0


def test_holdout_split_is_deterministic_and_disjoint():
    tr, ho = holdout_split(8, 0.25, "rel1")
    assert (tr, ho) == holdout_split(8, 0.25, "rel1") and len(ho) == 2 and not set(tr) & set(ho)
    assert holdout_split(1, 0.5, "x") == ([0], [])
    assert holdout_split(4, 0.0, "x") == ([0, 1, 2, 3], [])


def test_workflow_overrides_are_real_config_keys(tmp_path):
    cfg = load_config(overrides=parse_overrides(["tiers.policy.max_steps=20000", "tiers.policy.batch_size=64",
                                                 "tiers.policy.engine=groot", "tiers.policy.groot.data_config=so100"]))
    p = cfg.tiers.policy
    assert (p.max_steps, p.batch_size, p.engine, p.groot.data_config) == (20000, 64, "groot", "so100")
    from robodata.config import ConfigError

    with pytest.raises(ConfigError, match="max_stepz"):
        load_config(overrides=parse_overrides(["tiers.policy.max_stepz=1"]))


def test_launchpad_config_merges_into_tiers_policy():
    from robodata_dagster.assets.policy_checkpoint import PolicyRunConfig

    base = PolicyConfig(trainer_args=["--policy.dim_model=64"])
    out = PolicyRunConfig(max_steps=7, trainer_args=["--policy.n_heads=2"], overrides=["rollouts=0"]).apply(base)
    assert out.max_steps == 7 and out.rollouts == 0 and out.trainer_args == ["--policy.dim_model=64", "--policy.n_heads=2"]


def test_gpu_pod_spec_and_ray_job():
    cfg = PolicyConfig(engine="groot", launcher="k8s", num_gpus=4,
                       k8s={"volume_claim": "robodata-store", "node_selector": {"gpu": "h100"}})
    spec = k8s_pod_spec(cfg)
    c = spec["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert spec["volumes"][0]["persistent_volume_claim"]["claim_name"] == "robodata-store"
    assert spec["node_selector"] == {"gpu": "h100"}
    job = ray_job_params(cfg, {"ROBODATA_TRAIN_SPEC": "{}"})
    assert job["entrypoint_num_gpus"] == 4 and "pipes_entry" in job["entrypoint"]


def test_release_repo_id_from_its_manifest_reaches_training(tmp_path):
    """tiers.lerobot.repo_id is recorded in the release and is what lerobot-train loads it as."""
    import json

    from robodata import store_layout as layout
    from robodata.storage import DataStore
    from robodata.train.finetune import resolve_release

    store = DataStore(tmp_path)
    root = store.local_path(layout.release_path("abc123"))
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v3.0", "total_episodes": 2,
                                                         "total_frames": 10, "fps": 30, "features": {}}))
    (root / "meta" / "robodata_release.json").write_text(json.dumps({"release": "abc123", "repo_id": "lab/arm"}))
    ref = resolve_release(store, "abc123")
    assert ref.repo_id == "lab/arm"
    assert "--dataset.repo_id=lab/arm" in lerobot_command(PolicyConfig(), ref.root, tmp_path / "o",
                                                          repo_id=ref.repo_id).argv
