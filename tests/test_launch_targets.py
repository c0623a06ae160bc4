"""Today's NVIDIA launch targets, checked up to the launch: every command line robodata builds is accepted by a
stand-in that parses it with the real tool's arguments, a wrong one is rejected (exit 2 and a message), and the
Kubernetes pod specs deserialise into the kubernetes client's typed models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from robodata.mimicgen.config import IsaacLabMimicConfig
from robodata.mimicgen.isaaclab import annotate_demos_argv, generate_dataset_argv, is_annotated, mimic_task
from robodata.stages.engines import PodPathError, PodSettings, local_paths_in, pod_launch_fields
from robodata.train.commands import build_command
from robodata.train.config import PolicyConfig

PY = sys.executable


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


# ---- Isaac Lab 3.0 Mimic -----------------------------------------------------------------------------------

ISAAC = [PY, "-m", "robodata.mimicgen.isaaclab_standin"]


def test_isaaclab_annotate_then_generate_command_lines_are_accepted(source_demos: Path) -> None:
    cfg = IsaacLabMimicConfig(command=ISAAC, device="cpu", generation_num_trials=3, num_envs=2)
    store = source_demos.parents[1]
    annotated = store / "synthetic_demos" / ".rec.annotated.hdf5"
    out = store / "synthetic_demos" / ".rec.partial.hdf5"
    ann = annotate_demos_argv(cfg, str(source_demos), str(annotated))
    assert ann[len(ISAAC)] == "annotate_demos.py" and "--auto" in ann and "--enable_pinocchio" in ann
    assert not is_annotated(source_demos)
    r = run(ann)
    assert r.returncode == 0, r.stderr
    assert is_annotated(annotated)
    gen = generate_dataset_argv(cfg, str(annotated), str(out))
    assert gen[len(ISAAC):len(ISAAC) + 2] == ["--task", "Isaac-NutPour-GR1T2-Pink-IK-Abs-Mimic-v0"]
    assert "--enable_pinocchio" in gen and gen[gen.index("--generation_num_trials") + 1] == "3"
    r = run(gen)
    assert r.returncode == 0, r.stderr
    with h5py.File(out, "r") as f:
        assert len(f["data"]) == 3
        assert f["data/demo_0/obs/eef_quat"][0].tolist() == [0.0, 0.0, 0.0, 1.0]  # xyzw, as Isaac Lab 3.0 writes


def test_isaaclab_standins_reject_wrong_arguments_and_inputs(source_demos: Path, tmp_path: Path) -> None:
    cfg = IsaacLabMimicConfig(command=ISAAC, device="cpu")
    gen = generate_dataset_argv(cfg, str(source_demos), str(tmp_path / "o.hdf5"))
    r = run([a.replace("--num_envs", "--num-envs") for a in gen])  # misspelled
    assert r.returncode == 2 and "unrecognized arguments: --num-envs" in r.stderr
    r = run([a for a in gen if a not in ("--input_file", str(source_demos))])  # missing required
    assert r.returncode == 2 and "--input_file" in r.stderr
    r = run(gen)  # generate needs annotated demos
    assert r.returncode == 1 and "not annotated" in r.stderr and "annotate_demos.py first" in r.stderr
    ann = annotate_demos_argv(cfg, str(source_demos), str(tmp_path / "a.hdf5"))
    r = run([*ann, "--generation_num_trials", "3"])  # a generate flag given to annotate
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    r = run([*ann[: ann.index("--task") + 1], "Isaac-Stack-Cube-Franka-IK-Rel-Mimic",
             *ann[ann.index("--task") + 2:]])
    assert r.returncode == 1 and "no registered env" in r.stderr
    assert run(ann).returncode == 0
    r = run(annotate_demos_argv(cfg, str(tmp_path / "a.hdf5"), str(tmp_path / "b.hdf5")))  # annotated already
    assert r.returncode == 1 and "annotated already" in r.stderr


def test_isaaclab_task_table() -> None:
    assert mimic_task("Isaac-Stack-Cube-Franka-IK-Rel-Mimic-v0").pinocchio is False
    assert mimic_task("Isaac-PickPlace-GR1T2-Abs-Mimic-v0").pinocchio is True
    assert mimic_task("Isaac-Custom-Pink-IK-Abs-Mimic-v0").pinocchio is True
    with pytest.raises(Exception, match="is now called 'Isaac-PickPlace-GR1T2-Abs-Mimic-v0'"):
        mimic_task("Isaac-PickPlace-GR1T2-Pink-IK-Abs-Mimic-v0")
    cfg = IsaacLabMimicConfig(task="Isaac-Stack-Cube-Franka-IK-Rel-Mimic-v0")
    assert "--enable_pinocchio" not in generate_dataset_argv(cfg, "/d/in.hdf5", "/d/out.hdf5")
    assert generate_dataset_argv(cfg, "/d/i.hdf5", "/d/o.hdf5")[2].endswith("isaaclab_mimic/generate_dataset.py")
    assert annotate_demos_argv(cfg, "/d/i.hdf5", "/d/o.hdf5")[2].endswith("isaaclab_mimic/annotate_demos.py")


# ---- Cosmos Transfer 2.5 ------------------------------------------------------------------------------------

COSMOS = [PY, "-m", "robodata.augment.cosmos_standin"]


def _clip(tmp_path: Path) -> dict:
    from robodata.augment.video import video_settings, write_clip

    frames = np.zeros((1, 8, 32, 32, 3), np.uint8)[0]
    ts = np.arange(8) / 30.0
    paths = {}
    for kind in ("video", "edge", "depth"):
        p = tmp_path / f"front.{kind}.mp4"
        write_clip(p, [frames], ts, 30, video_settings("libx264", 18))
        paths[kind] = str(p)
    return paths


def test_cosmos_spec_and_command_are_accepted_and_wrong_ones_rejected(tmp_path: Path) -> None:
    from robodata.augment.config import CosmosConfig
    from robodata.augment.cosmos import command
    from robodata.augment.errors import AugmentError

    paths = _clip(tmp_path)
    spec = {"name": "demo_0.front.v0", "prompt": "a robot", "video_path": paths["video"], "seed": 1, "guidance": 3,
            "edge": {"control_path": paths["edge"], "control_weight": 1.0},
            "depth": {"control_path": paths["depth"], "control_weight": 0.5}, "vis": {"control_weight": 0.3}}
    sp = tmp_path / "spec.json"
    sp.write_text(json.dumps(spec))
    cfg = CosmosConfig(command=COSMOS, extra_args=["--disable-guardrails"])
    argv = command(cfg, sp, tmp_path / "out")
    r = run(argv)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "demo_0.front.v0.mp4").exists()
    r = run([*argv[:-1], "--setup.disable-guardrails"])  # the prefixed spelling: tyro OmitArgPrefixes refuses it
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    r = run([*COSMOS, "-o", str(tmp_path / "out")])  # no -i
    assert r.returncode == 2 and "--input-files" in r.stderr
    bad = {**spec, "guidance": 3.5, "edge": {"control_path": str(tmp_path / "nope.mp4"), "control_weight": 2},
           "control_videos": []}
    sp.write_text(json.dumps(bad))
    r = run(argv)
    assert r.returncode == 1
    for what in ("unknown key 'control_videos'", "guidance 3.5", "edge.control_weight 2", "nope.mp4' does not exist"):
        assert what in r.stderr
    sp.write_text(json.dumps(spec))
    r = run([*argv, "--model=edge/distilled"])  # distilled edge: edge only, 4 steps
    assert r.returncode == 1 and "takes only the edge control" in r.stderr and "num_steps 4" in r.stderr
    with pytest.raises(AugmentError, match="integer guidance"):
        from robodata.augment.cosmos import build_spec

        build_spec(tmp_path, "demo_0", "front", 0, 1, CosmosConfig(guidance=2.5))


def test_cosmos_distilled_edge_spec(tmp_path: Path) -> None:
    from robodata.augment.clips import clip_paths
    from robodata.augment.config import CosmosConfig
    from robodata.augment.cosmos import build_spec, command, write_spec

    p = clip_paths(tmp_path, "demo_0", "front")
    src = _clip(tmp_path)
    for kind in ("video", "edge"):
        p[kind].parent.mkdir(parents=True, exist_ok=True)
        os.replace(src[kind], p[kind])
    cfg = CosmosConfig(command=COSMOS, controls={"edge": 1.0}, extra_args=["--model=edge/distilled"])
    spec = build_spec(tmp_path, "demo_0", "front", 0, 7, cfg)
    assert spec["num_steps"] == 4 and set(spec) & {"edge", "depth", "seg", "vis"} == {"edge"}
    r = run(command(cfg, write_spec(tmp_path / "specs", spec), tmp_path / "out"))
    assert r.returncode == 0, r.stderr


# ---- GR00T N1.5 / N1.6 / N1.7 -------------------------------------------------------------------------------

@pytest.fixture()
def release(tmp_path: Path) -> Path:
    root = tmp_path / "store" / "lerobot" / "releases" / "r1"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1"}))
    (root / "meta" / "episodes.jsonl").write_text('{"episode_index": 0, "tasks": ["t"], "length": 10}\n')
    (root / "meta" / "modality.json").write_text(json.dumps({
        "state": {"arm": {"start": 0, "end": 7}, "gripper": {"start": 7, "end": 8}},
        "action": {"arm": {"start": 0, "end": 7}, "gripper": {"start": 7, "end": 8, "absolute": True}},
        "video": {"front": {"original_key": "observation.images.front"}},
        "annotation": {"human.action.task_description": {}}}))
    return root


@pytest.mark.parametrize("version", ["n1.6", "n1.7"])
def test_groot_launch_finetune_command_is_accepted(release: Path, version: str) -> None:
    exe = f"{PY} -m robodata.train.launch_finetune_standin --groot-version={version}"
    cfg = PolicyConfig(engine="groot", num_gpus=1, max_steps=20, save_steps=10,
                       groot={"version": version}, trainer_executable=exe)
    out = release.parents[2] / "policy" / "runs" / "r1"
    cmd = build_command(cfg, release, out, repo_id="local/x", dataset_format="v2.1")
    argv = cmd.argv
    assert "--data-config" not in argv and argv[argv.index("--embodiment-tag") + 1] == "NEW_EMBODIMENT"
    assert argv[argv.index("--base-model-path") + 1] == f"nvidia/GR00T-N1.{version[-1]}-3B"
    mc = Path(argv[argv.index("--modality-config-path") + 1])
    assert mc.read_text().count("ActionConfig(rep=ActionRepresentation.ABSOLUTE") == 2
    r = run(argv)
    assert r.returncode == 0, r.stderr
    assert "Loaded modality config" in r.stdout and (out / "checkpoint-20").is_dir()
    # the real script rejects N1.5's flag, and so does the stand-in
    r = run([*argv, "--data-config", "fourier_gr1_arms_only"])
    assert r.returncode == 2 and "unrecognized arguments: --data-config" in r.stderr
    i = argv.index("--base-model-path")
    r = run(argv[:i] + argv[i + 2:])
    assert r.returncode == 2 and "--base-model-path" in r.stderr
    mc.write_text(mc.read_text().replace("'gripper'", "'hand'", 1))  # a key the dataset does not have
    r = run(argv)
    assert r.returncode == 1 and "'hand' is not in meta/modality.json" in r.stderr


def test_groot_n15_keeps_data_config(release: Path, tmp_path: Path) -> None:
    cfg = PolicyConfig(engine="groot", num_gpus=1, max_steps=10, save_steps=10,
                       trainer_executable=f"{PY} -m robodata.train.standin")
    argv = build_command(cfg, release, tmp_path / "run", repo_id="x", dataset_format="v2.1").argv
    assert argv[argv.index("--data-config") + 1] == "fourier_gr1_arms_only" and "nvidia/GR00T-N1.5-3B" in argv
    assert run(argv).returncode == 0
    r = run([*argv, "--modality-config-path", "x.py"])
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr


# ---- Kubernetes pod specs -----------------------------------------------------------------------------------

def _typed_pod(spec: dict, command: list[str], env: dict[str, str]):
    """The pod as PipesK8sClient builds it, deserialised into kubernetes' typed models."""
    from dagster_k8s.pipes import build_pod_body
    from kubernetes.client import ApiClient

    body = build_pod_body(pod_name="robodata-launch", image="registry/isaac-lab:3.0.0", command=command,
                          env_vars=env, base_pod_meta=None, base_pod_spec=spec)
    data = ApiClient().sanitize_for_serialization(body)
    return ApiClient()._ApiClient__deserialize(data, "V1Pod"), data


def test_pod_specs_use_the_shared_volume_gpus_and_node_selector(tmp_path: Path) -> None:
    settings = PodSettings(volume_claim="robodata-store", mount_path="/data", gpus=2,
                           node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    store = "/mnt/projects/robodata/store"
    cfg = IsaacLabMimicConfig(launcher="k8s")
    argv = generate_dataset_argv(cfg, f"{store}/synthetic_demos/.k.annotated.hdf5", f"{store}/synthetic_demos/.k.hdf5")
    fields = pod_launch_fields(settings, store, argv, {"OUT": f"{store}/synthetic_demos/.k.hdf5"})
    assert fields["pod_command"][fields["pod_command"].index("--input_file") + 1] == \
        "/data/synthetic_demos/.k.annotated.hdf5"
    pod, data = _typed_pod(fields["pod_spec"], fields["pod_command"], fields["pod_env"])
    c = pod.spec.containers[0]
    assert c.resources.limits["nvidia.com/gpu"] == "2"
    assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    store_vol = next(v for v in pod.spec.volumes if v.name == "store")
    assert store_vol.persistent_volume_claim.claim_name == "robodata-store"
    assert any(m.mount_path == "/data" and m.name == "store" for m in c.volume_mounts)
    assert not local_paths_in(data), local_paths_in(data)
    assert {e.name: e.value for e in c.env}["OUT"] == "/data/synthetic_demos/.k.hdf5"
    # a path outside the store (a local temp folder) is refused, never passed through
    with pytest.raises(PodPathError, match="local paths it cannot see"):
        pod_launch_fields(settings, store, [*argv, "--kit_args", str(tmp_path / "x")])
    with pytest.raises(PodPathError, match="volume_claim"):
        pod_launch_fields(PodSettings(), store, argv)


def test_trainer_pod_spec_deserialises(release: Path) -> None:
    from robodata.train.launchers import trainer_launch

    cfg = PolicyConfig(engine="groot", launcher="k8s", num_gpus=4, groot={"version": "n1.6"},
                       k8s={"volume_claim": "robodata-store", "node_selector": {"pool": "gpu"}})
    store = release.parents[2]
    cmd = build_command(cfg, release, store / "policy" / "runs" / "r1", repo_id="x", dataset_format="v2.1")
    launch = trainer_launch(cfg, cmd, store)
    assert launch.pod_spec is not None and launch.pod_env is not None
    pod, data = _typed_pod(launch.pod_spec, ["python", "-m", "robodata.train.pipes_entry"], launch.pod_env)
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "4"
    assert pod.spec.node_selector == {"pool": "gpu"}
    assert next(v for v in pod.spec.volumes if v.name == "store").persistent_volume_claim.claim_name == "robodata-store"
    assert not local_paths_in(data), local_paths_in(data)
