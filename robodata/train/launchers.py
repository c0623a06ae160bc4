"""What production launchers need: a GPU pod spec for Kubernetes, Ray job parameters, path remapping, the loss plot."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from robodata.stages.engines import PipesLaunch, ray_job_submission
from robodata.train.commands import TrainCommand
from robodata.train.config import PolicyConfig

PIPES_ENTRY = "robodata.train.pipes_entry"
ENTRYPOINT = f"python -m {PIPES_ENTRY}"


def k8s_pod_spec(cfg: PolicyConfig) -> dict[str, Any]:
    """``base_pod_spec`` for ``PipesK8sClient``: GPU limits from config, the store as a PVC mount."""
    k = cfg.k8s
    limits = {"cpu": k.cpu, "memory": k.memory}
    if cfg.num_gpus:
        limits[k.gpu_resource] = str(cfg.num_gpus)
    container: dict[str, Any] = {"resources": {"limits": limits, "requests": dict(limits)}}
    spec: dict[str, Any] = {"restart_policy": "Never", "containers": [container]}
    if k.volume_claim:
        container["volume_mounts"] = [{"name": "store", "mount_path": k.mount_path}]
        spec["volumes"] = [{"name": "store", "persistent_volume_claim": {"claim_name": k.volume_claim}}]
        # GR00T's data loader and torch's shared-memory workers need more than the default 64 MiB /dev/shm.
        container["volume_mounts"].append({"name": "dshm", "mount_path": "/dev/shm"})
        spec["volumes"].append({"name": "dshm", "empty_dir": {"medium": "Memory"}})
    if k.node_selector:
        spec["node_selector"] = dict(k.node_selector)
    if k.service_account:
        spec["service_account_name"] = k.service_account
    return spec


def remap_for_volume(cmd: TrainCommand, k8s, store_root: str | Path) -> TrainCommand:
    """Paths under the local store root -> the same paths under the pod's mount of the store's PVC."""
    if not k8s.volume_claim:
        return cmd
    root = str(store_root)
    argv = [a.replace(root, k8s.mount_path) for a in cmd.argv]
    return replace(cmd, argv=argv, output_dir=cmd.output_dir.replace(root, k8s.mount_path))


def ray_job_params(cfg: PolicyConfig, env: dict[str, str]) -> dict[str, Any]:
    """``submit_job_params`` for ``PipesRayJobClient``: the Pipes entry as the job, GPUs as its resources."""
    return ray_job_submission(ENTRYPOINT, env, gpus=cfg.num_gpus, working_dir=cfg.ray.working_dir)


def trainer_launch(cfg: PolicyConfig, cmd: TrainCommand, store_root: str | Path) -> PipesLaunch:
    """The trainer's Pipes entry as one launch, with what each launcher needs: the command spec in the
    environment (paths on the pod's volume for Kubernetes), the GPU pod spec, the Ray job's GPUs."""
    from robodata.train.pipes_entry import spec_env

    spec = spec_env(cmd, log_steps=cfg.log_steps, batch_size=cfg.batch_size)
    pod = spec_env(remap_for_volume(cmd, cfg.k8s, store_root), log_steps=cfg.log_steps, batch_size=cfg.batch_size)
    return PipesLaunch([sys.executable, "-m", PIPES_ENTRY], env=spec, label=f"trainer: {cmd.shell()}",
                       image=cfg.k8s.image, namespace=cfg.k8s.namespace, pod_spec=k8s_pod_spec(cfg), pod_env=pod,
                       gpus=cfg.num_gpus, ray_working_dir=cfg.ray.working_dir)


def loss_curve_png(curve: list[dict], title: str = "") -> bytes:
    from robodata.plots import _fig, _png

    plt, fig = _fig(6, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], lw=1.2, marker="." if len(curve) < 40 else None)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("training loss", fontsize=8)
    if min(p["loss"] for p in curve) > 0:
        ax.set_yscale("log")
    ax.set_title(title or "training loss", fontsize=9)
    return _png(plt, fig)
