"""What production launchers need: the trainer's GPU pod for Kubernetes, Ray job parameters, the loss plot."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from robodata.stages.engines import (
    PipesLaunch,
    PodPathError,
    PodPaths,
    local_paths_in,
    pod_launch_fields,
    pod_spec,
    ray_job_submission,
)
from robodata.train.commands import TrainCommand
from robodata.train.config import PolicyConfig

PIPES_ENTRY = "robodata.train.pipes_entry"
ENTRYPOINT = f"python -m {PIPES_ENTRY}"


def k8s_pod_spec(cfg: PolicyConfig) -> dict[str, Any]:
    """``base_pod_spec`` for ``PipesK8sClient``: the shared pod spec of ``tiers.policy.k8s`` with ``num_gpus`` GPUs
    (the store's PVC, and a memory-backed /dev/shm for GR00T's data loader and torch's shared-memory workers)."""
    return pod_spec(cfg.k8s, gpus=cfg.num_gpus)


def pod_train_command(cmd: TrainCommand, paths: PodPaths) -> TrainCommand:
    """``cmd`` as the pod runs it: store paths on the pod's mount (the output folder must be in the store), and a
    trainer from this machine's venv by its name on the image's PATH. Refuses a command still naming a temp or
    home path of this machine."""
    argv = paths.rewrite(list(cmd.argv))
    exe = Path(argv[0]) if argv else None
    if exe is not None and str(exe) == sys.executable:
        argv[0] = "python"
    elif exe is not None and exe.parent == Path(sys.executable).parent:
        argv[0] = exe.name  # e.g. <venv>/bin/lerobot-train -> lerobot-train
    pod = replace(cmd, argv=argv, output_dir=paths.to_pod(cmd.output_dir), env=paths.rewrite_tree(dict(cmd.env)))
    bad = local_paths_in(pod.to_dict())
    if bad:
        raise PodPathError(f"the trainer pod would be given local paths it cannot see: {', '.join(bad[:3])} (keep the "
                           "release, the run folder and trainer files in the project store on the shared volume)")
    return pod


def ray_job_params(cfg: PolicyConfig, env: dict[str, str]) -> dict[str, Any]:
    """``submit_job_params`` for ``PipesRayJobClient``: the Pipes entry as the job, GPUs as its resources."""
    return ray_job_submission(ENTRYPOINT, env, gpus=cfg.num_gpus, working_dir=cfg.ray.working_dir)


def trainer_launch(cfg: PolicyConfig, cmd: TrainCommand, store_root: str | Path) -> PipesLaunch:
    """The trainer's Pipes entry as one launch, with what its launcher needs: the command spec in the environment,
    for ``launcher: k8s`` the GPU pod (the store's PVC required, the spec's paths on its mount), the Ray job's GPUs."""
    from robodata.train.pipes_entry import spec_env

    spec = spec_env(cmd, log_steps=cfg.log_steps, batch_size=cfg.batch_size)
    launch = PipesLaunch([sys.executable, "-m", PIPES_ENTRY], env=spec, label=f"trainer: {cmd.shell()}",
                         image=cfg.k8s.image, namespace=cfg.k8s.namespace, gpus=cfg.num_gpus,
                         ray_working_dir=cfg.ray.working_dir)
    if cfg.launcher == "k8s":
        pod_spec(cfg.k8s)  # no shared volume: the one error, before any path is looked at
        paths = PodPaths(str(store_root), cfg.k8s.mount_path)
        pod_env = spec_env(pod_train_command(cmd, paths), log_steps=cfg.log_steps, batch_size=cfg.batch_size)
        fields = pod_launch_fields(cfg.k8s, str(store_root), launch.command, pod_env, gpus=cfg.num_gpus)
        launch.pod_spec, launch.pod_command, launch.pod_env = fields["pod_spec"], fields["pod_command"], \
            fields["pod_env"]
    return launch


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
