"""What a stage's engine needs from the runner: out-of-process launches, and config and engine in agreement.

A production engine (Isaac Lab Mimic, Cosmos Transfer, a GPU trainer) runs outside the process that drives
the stage: a subprocess, a Kubernetes pod, a Ray job. The stage describes that run as a :class:`PipesLaunch`;
the runner hands the stage a :class:`Launcher` (in the Dagster code location, a launcher resource speaking
Dagster Pipes), which runs it and returns what the process reported as a :class:`LaunchResult`.

The library never imports Dagster: the child's side of the protocol is ``dagster_pipes``, in each engine's
entry module (``robodata.mimicgen.pipes_entry``, ``robodata.train.pipes_entry``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from robodata.errors import RobodataError


@dataclass
class PipesLaunch:
    """One out-of-process run: the command as this machine runs it, and what a pod or a cluster needs besides.

    Each launcher reads the fields that concern it: a subprocess ``command``, ``env``, ``cwd``; a Kubernetes
    pod ``image``, ``namespace``, ``pod_spec`` and ``pod_env`` (the environment as the pod sees it, with paths
    on its volume; ``env`` when unset); a Ray job ``gpus`` and ``ray_working_dir``.
    """

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # handed to the process through Pipes
    label: str = ""  # what is launched, for the run's log: "Isaac Lab Mimic: <its command line>"
    image: str = ""
    namespace: str | None = None
    pod_spec: dict[str, Any] | None = None
    pod_env: dict[str, str] | None = None
    pod_command: list[str] | None = None  # the command as the pod runs it (store paths on its mount)
    gpus: float = 0
    ray_working_dir: str | None = None

    def portable_command(self) -> list[str]:
        """The command for a container or a cluster node: this machine's interpreter becomes ``python``
        (``pod_command`` when set: the paths as the pod sees them)."""
        cmd = list(self.pod_command if self.pod_command is not None else self.command)
        if cmd and cmd[0] == sys.executable:
            return ["python", *cmd[1:]]
        return cmd


@dataclass
class LaunchResult:
    """What the launched process reported: materialization metadata (plain values) and custom messages."""

    metadata: dict[str, Any] = field(default_factory=dict)
    messages: list[Any] = field(default_factory=list)


class Launcher(Protocol):
    """Runs a :class:`PipesLaunch` to its end (raising when it fails); ``kind`` is subprocess, k8s or ray."""

    kind: str

    def __call__(self, request: PipesLaunch) -> LaunchResult: ...


class EngineMismatch(RobodataError):
    """A run's config names another engine or launcher than the one the runner was given."""


def require_engine(key: str, configured: str, provided: str) -> None:
    """Refuse a run whose config (``key`` = ``configured``) disagrees with the engine the runner gave it."""
    if configured != provided:
        raise EngineMismatch(
            f"{key} is {configured!r} for this run, but the runner was given the {provided!r} one (the code "
            "location picks engines and launchers from the project config when its definitions load); set "
            f"{key} in the project config and reload the code location"
        )


def ray_job_submission(entrypoint: str, env: dict[str, str], *, gpus: float = 0,
                       working_dir: str | None = None) -> dict[str, Any]:
    """``JobSubmissionClient.submit_job`` parameters: the entrypoint, its environment, the GPUs it needs."""
    params: dict[str, Any] = {"entrypoint": entrypoint, "runtime_env": {"env_vars": dict(env)},
                              "entrypoint_num_gpus": gpus, "entrypoint_num_cpus": 1}
    if working_dir:
        params["runtime_env"]["working_dir"] = working_dir
    return params


# ---- Kubernetes pods: one shared volume, GPUs and node placement from config --------------------------------

class PodPathError(RobodataError):
    """A launch names a path the pod cannot see (outside the shared volume, a local temp or home folder)."""


class PodSettings(BaseModel):
    """Where a production engine's pod runs and what it mounts (``<tier>.k8s`` of an engine's config).

    The store lives on one shared volume: the PVC ``volume_claim`` mounted at ``mount_path`` in the pod, the
    same files the Dagster side reads under the local store root. Paths handed to the pod are rewritten from
    the local root to ``mount_path``; a path outside the store (a local temp folder, a home directory) is
    refused, never passed through.
    """

    model_config = ConfigDict(extra="forbid")

    volume_claim: str | None = Field(None, description="PVC holding the project store (required for k8s)")
    mount_path: str = Field("/data", description="where the pod mounts the store's PVC")
    gpus: int = Field(1, ge=0, description="GPUs per pod (limits and requests)")
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = "8"
    memory: str = "64Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    service_account: str | None = None
    shm_size: str | None = Field("16Gi", description="a memory-backed /dev/shm of this size; null: the default")


_LOCAL_ROOTS = ("/tmp", "/var/tmp", "/private/tmp")


def local_only_roots() -> tuple[str, ...]:
    """Folders that exist on this machine only: temp folders and the user's home."""
    import os
    import tempfile

    roots = {*_LOCAL_ROOTS, tempfile.gettempdir(), os.path.expanduser("~")}
    return tuple(sorted(r.rstrip("/") for r in roots if r and r != "/"))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class PodPaths:
    """Local store root -> the pod's mount of the same volume."""

    local_root: str
    mount_path: str

    def to_pod(self, path: str | Any) -> str:
        """``path`` (absolute, under the local store root) as the pod sees it; refuses anything else."""
        import os

        p = os.path.realpath(str(path))  # symlinks resolved, as on the volume (a temp folder may be one)
        root = os.path.realpath(self.local_root)
        if not _under(p, root):
            raise PodPathError(f"{p} is not under the project store {root}: a pod mounts only the store's volume, "
                               "so inputs and outputs must live in the store")
        return self.mount_path.rstrip("/") + p[len(root):]

    def rewrite(self, args: list[str]) -> list[str]:
        """Every argument that is a path under the local store root (``--flag=path`` too), as the pod sees it
        (others unchanged)."""
        return [self.rewrite_value(a) for a in args]

    def rewrite_value(self, value: str) -> str:
        """``value`` as the pod sees it when it is a path under the local store root, or ``key=path``."""
        import os

        root = os.path.realpath(self.local_root)
        if value.startswith("/") and _under(os.path.realpath(value), root):
            return self.to_pod(value)
        key, sep, rest = value.partition("=")
        if sep and rest.startswith("/") and _under(os.path.realpath(rest), root):
            return f"{key}={self.to_pod(rest)}"
        return value

    def rewrite_tree(self, value: Any) -> Any:
        """``value`` (nested dicts and lists, e.g. a JSON spec) with every string path under the store root
        as the pod sees it."""
        if isinstance(value, dict):
            return {k: self.rewrite_tree(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.rewrite_tree(v) for v in value]
        return self.rewrite_value(value) if isinstance(value, str) else value


def shared_root(*paths: str | Any) -> str:
    """The folder that holds all of ``paths`` (resolved): the store root as both sides of the volume see it.

    Refuses a root that is a temp or home folder itself or holds one (``/``): paths under it are this machine's
    scratch files (a remote store's local copies), not the store on the shared volume."""
    import os

    resolved = [os.path.realpath(str(p)) for p in paths]
    root = os.path.commonpath(resolved)
    if root == "/" or any(_under(r, root) for r in local_only_roots()):
        raise PodPathError(f"{', '.join(resolved)} share no folder of the project store (common folder {root}): a "
                           "pod mounts only the store's volume, so a k8s launch needs a store on that volume (a "
                           "local store root where the PVC is mounted), not local copies in a temp folder")
    return root


def pod_spec(settings: PodSettings, *, gpus: int | None = None) -> dict[str, Any]:
    """``base_pod_spec`` for ``PipesK8sClient`` (snake_case, as ``kubernetes.client.V1PodSpec`` names them):
    the store's PVC mounted at ``mount_path``, ``nvidia.com/gpu`` limits, node selector, tolerations."""
    if not settings.volume_claim:
        raise PodPathError("k8s launch without a shared volume: set <engine>.k8s.volume_claim to the PVC that holds "
                           "the project store (a pod cannot see this machine's files)")
    n = settings.gpus if gpus is None else gpus
    limits = {"cpu": settings.cpu, "memory": settings.memory}
    if n:
        limits[settings.gpu_resource] = str(n)
    mounts: list[dict[str, Any]] = [{"name": "store", "mount_path": settings.mount_path}]
    volumes: list[dict[str, Any]] = [{"name": "store", "persistent_volume_claim": {"claim_name": settings.volume_claim}}]
    if settings.shm_size:
        mounts.append({"name": "dshm", "mount_path": "/dev/shm"})
        volumes.append({"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": settings.shm_size}})
    container = {"name": "main", "resources": {"limits": limits, "requests": dict(limits)}, "volume_mounts": mounts}
    spec: dict[str, Any] = {"restart_policy": "Never", "containers": [container], "volumes": volumes}
    if settings.node_selector:
        spec["node_selector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(t) for t in settings.tolerations]
    if settings.service_account:
        spec["service_account_name"] = settings.service_account
    return spec


def local_paths_in(value: Any) -> list[str]:
    """Every string in ``value`` (nested dicts/lists, ``--flag=path`` too) naming a temp or home path of this machine."""
    roots = local_only_roots()
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            for part in (v, v.split("=", 1)[-1]):
                if part.startswith("/") and any(_under(part, r) for r in roots):
                    found.append(v)
                    break

    walk(value)
    return found


def pod_launch_fields(settings: PodSettings, local_root: str, command: list[str], env: dict[str, str] | None = None,
                      *, gpus: int | None = None, cwd: str | None = None) -> dict[str, Any]:
    """What a :class:`PipesLaunch` needs for a pod: the pod spec, and the command and environment with store paths
    on the pod's mount. Refuses a launch that would still name a temp or home path of this machine (``cwd``, the
    container's working directory, included)."""
    paths = PodPaths(local_root, settings.mount_path)
    spec = pod_spec(settings, gpus=gpus)
    pod_command = paths.rewrite(list(command))
    pod_env = {k: paths.rewrite_value(v) for k, v in (env or {}).items()}
    bad = local_paths_in([pod_command[1:], pod_env, spec, cwd or ""])
    if bad:
        raise PodPathError(f"the pod would be given local paths it cannot see: {', '.join(bad[:3])} (keep inputs, "
                           "outputs and specs in the project store on the shared volume)")
    return {"pod_spec": spec, "pod_command": pod_command, "pod_env": pod_env}
