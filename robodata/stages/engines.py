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
    gpus: float = 0
    ray_working_dir: str | None = None

    def portable_command(self) -> list[str]:
        """The command for a container or a cluster node: this machine's interpreter becomes ``python``."""
        if self.command and self.command[0] == sys.executable:
            return ["python", *self.command[1:]]
        return list(self.command)


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
