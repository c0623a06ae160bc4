"""Engines as Dagster resources: where out-of-process steps run, and which engine each heavy tier uses.

As in Dagster's example projects (``class HNClient(ConfigurableResource, ABC)`` with an API and a snapshot
implementation), each choice is an abstract resource with one implementation per option; an asset asks its
resource and never branches on a setting. :func:`engine_resources` picks the implementations from the
project config when the definitions load:

===========================  =============================================  ====================================
resource key                 implementations                                chosen by
===========================  =============================================  ====================================
``synthetic_demos_engine``   ``LocalMimicGen``, ``IsaacLabMimic``            ``tiers.synthetic_demos.engine``
``augmented_videos_engine``  ``LocalAugmentation``, ``CosmosTransfer``       ``tiers.augmented_videos.engine``
``policy_launcher``          ``SubprocessLauncher``, ``KubernetesLauncher``,  ``tiers.policy.launcher``
                             ``RayJobLauncher``
===========================  =============================================  ====================================

The production engines hold a :class:`PipesLauncher` too (``isaaclab.launcher``, ``cosmos.launcher``). Which
trainer the policy tier runs (lerobot-train or GR00T, ``tiers.policy.engine``) is a per-run setting of the
``policy_checkpoint`` launchpad, so it stays config: the library builds that trainer's command line.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from pydantic import Field

from robodata.augment.engines import ClipAugmenter, CosmosClipAugmenter, LocalClipAugmenter
from robodata.config import ProjectConfig
from robodata.mimicgen.engines import DemoGenerator, IsaacLabDemoGenerator, LocalDemoGenerator
from robodata.stages.engines import LaunchResult, PipesLaunch, ray_job_submission

REPO_ROOT = Path(__file__).resolve().parents[1]  # the code location's root: the trainer's working directory


# ---- launchers ----------------------------------------------------------------------------------------------


@dataclass
class BoundLauncher:
    """A launcher resource bound to one asset's context: what a library stage calls (``robodata.stages.engines.Launcher``)."""

    kind: str
    run: Callable[[PipesLaunch], LaunchResult]

    def __call__(self, request: PipesLaunch) -> LaunchResult:
        return self.run(request)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, dg.MetadataValue) else value


class PipesLauncher(dg.ConfigurableResource, ABC):
    """Runs a stage's out-of-process step (a ``PipesLaunch``) through Dagster Pipes and collects its reports."""

    kind: ClassVar[str]

    @abstractmethod
    def invoke(self, context: dg.AssetExecutionContext, request: PipesLaunch) -> dg.PipesClientCompletedInvocation:
        """Start ``request`` with this launcher's Pipes client and wait for it to end."""

    def launch(self, context: dg.AssetExecutionContext, request: PipesLaunch) -> LaunchResult:
        context.log.info(f"{self.kind}: {request.label or shlex.join(request.command)}")
        invocation = self.invoke(context, request)
        metadata: dict[str, Any] = {}
        for event in invocation.get_results():
            if isinstance(event, dg.MaterializeResult):
                metadata.update({k: _plain(v) for k, v in (event.metadata or {}).items()})
        messages = list(invocation.get_custom_messages())
        return LaunchResult(metadata, messages)

    def bind(self, context: dg.AssetExecutionContext) -> BoundLauncher:
        return BoundLauncher(self.kind, lambda request: self.launch(context, request))


class SubprocessLauncher(PipesLauncher):
    """A child process on this machine (``dg.PipesSubprocessClient``)."""

    kind: ClassVar[str] = "subprocess"
    cwd: str | None = Field(None, description="working directory when the launch names none")

    def invoke(self, context: dg.AssetExecutionContext, request: PipesLaunch) -> dg.PipesClientCompletedInvocation:
        return dg.PipesSubprocessClient().run(context=context, command=request.command, env=request.env or None,
                                              cwd=request.cwd or self.cwd, extras=request.extras or None)


def pod_spec(request: PipesLaunch) -> dict[str, Any] | None:
    """The launch's ``base_pod_spec``, with its working directory on the first container."""
    spec = dict(request.pod_spec or {})
    if request.cwd:
        containers = [dict(c) for c in spec.get("containers") or [{}]]
        containers[0]["working_dir"] = request.cwd
        spec["containers"] = containers
    return spec or None


class KubernetesLauncher(PipesLauncher):
    """A pod on Kubernetes (``dagster_k8s.PipesK8sClient``): the launch's image, namespace and pod spec."""

    kind: ClassVar[str] = "k8s"
    load_incluster_config: bool | None = Field(None, description="use the pod's service account (in a cluster)")
    kubeconfig_file: str | None = None
    kube_context: str | None = None

    @staticmethod
    def pod(request: PipesLaunch) -> dict[str, Any]:
        """``PipesK8sClient.run`` arguments for ``request``: image, command, namespace, environment, pod spec."""
        env = request.pod_env if request.pod_env is not None else request.env
        return {"image": request.image or None, "command": request.portable_command(), "namespace": request.namespace,
                "env": env or None, "base_pod_spec": pod_spec(request)}

    def invoke(self, context: dg.AssetExecutionContext, request: PipesLaunch) -> dg.PipesClientCompletedInvocation:
        from dagster_k8s import PipesK8sClient

        client = PipesK8sClient(load_incluster_config=self.load_incluster_config,
                                kubeconfig_file=self.kubeconfig_file, kube_context=self.kube_context)
        return client.run(context=context, extras=request.extras or None, **self.pod(request))


class RayJobLauncher(PipesLauncher):
    """A Ray job on a cluster (``dagster_ray.PipesRayJobClient``), with the GPUs the launch asks for."""

    kind: ClassVar[str] = "ray"
    address: str = Field(description="the Ray dashboard / job submission address, e.g. http://ray-head:8265")

    @staticmethod
    def job(request: PipesLaunch) -> dict[str, Any]:
        """``submit_job`` parameters for ``request``: its command as the entrypoint, its env, the GPUs it needs."""
        return ray_job_submission(shlex.join(request.portable_command()), request.env, gpus=request.gpus,
                                  working_dir=request.ray_working_dir)

    def invoke(self, context: dg.AssetExecutionContext, request: PipesLaunch) -> dg.PipesClientCompletedInvocation:
        from dagster_ray import PipesRayJobClient

        return PipesRayJobClient(address=self.address).run(
            context=context, submit_job_params=self.job(request), extras=request.extras or None)  # type: ignore[arg-type]


# ---- engines --------------------------------------------------------------------------------------------------


class SyntheticDemosEngine(dg.ConfigurableResource, ABC):
    """The engine of ``synthetic_demos`` (``tiers.synthetic_demos.engine``)."""

    @abstractmethod
    def generator(self, context: dg.AssetExecutionContext) -> DemoGenerator:
        """The library engine, bound to this asset's context."""


class LocalMimicGen(SyntheticDemosEngine):
    """MimicGen in the local MuJoCo Fetch simulator, trials as Ray tasks (``engine: local``)."""

    def generator(self, context: dg.AssetExecutionContext) -> DemoGenerator:
        return LocalDemoGenerator()


class IsaacLabMimic(SyntheticDemosEngine):
    """Isaac Lab Mimic's ``generate_dataset.py`` in its container, through Dagster Pipes (``engine: isaaclab``)."""

    launcher: PipesLauncher

    def generator(self, context: dg.AssetExecutionContext) -> DemoGenerator:
        return IsaacLabDemoGenerator(self.launcher.bind(context))


class AugmentationEngine(dg.ConfigurableResource, ABC):
    """The engine of ``augmented_videos`` (``tiers.augmented_videos.engine``)."""

    @abstractmethod
    def augmenter(self, context: dg.AssetExecutionContext) -> ClipAugmenter:
        """The library engine, bound to this asset's context."""


class LocalAugmentation(AugmentationEngine):
    """Domain randomisation in torch, in the clip tasks (``engine: local``)."""

    def augmenter(self, context: dg.AssetExecutionContext) -> ClipAugmenter:
        return LocalClipAugmenter()


class CosmosTransfer(AugmentationEngine):
    """Cosmos Transfer 2.5, one Pipes launch per clip variant (``engine: cosmos``)."""

    launcher: PipesLauncher

    def augmenter(self, context: dg.AssetExecutionContext) -> ClipAugmenter:
        return CosmosClipAugmenter(self.launcher.bind(context))


# ---- the choice, from the project config ------------------------------------------------------------------------


def engine_resources(cfg: ProjectConfig) -> dict[str, dg.ConfigurableResource]:
    """The engine and launcher resources ``cfg`` asks for, by resource key (``Definitions(resources=...)``)."""
    tiers = cfg.tiers
    pipes_launchers: dict[str, Callable[..., PipesLauncher]] = {
        "subprocess": SubprocessLauncher,
        "k8s": KubernetesLauncher,
    }
    synthetic: dict[str, Callable[[], SyntheticDemosEngine]] = {
        "local": LocalMimicGen,
        "isaaclab": lambda: IsaacLabMimic(launcher=pipes_launchers[tiers.synthetic_demos.isaaclab.launcher]()),
    }
    augment: dict[str, Callable[[], AugmentationEngine]] = {
        "local": LocalAugmentation,
        "cosmos": lambda: CosmosTransfer(launcher=pipes_launchers[tiers.augmented_videos.cosmos.launcher]()),
    }
    trainer: dict[str, Callable[..., PipesLauncher]] = {
        "subprocess": lambda: SubprocessLauncher(cwd=str(REPO_ROOT)),
        "k8s": KubernetesLauncher,
        "ray": lambda: RayJobLauncher(address=tiers.policy.ray.address),
    }
    return {
        "synthetic_demos_engine": synthetic[tiers.synthetic_demos.engine](),
        "augmented_videos_engine": augment[tiers.augmented_videos.engine](),
        "policy_launcher": trainer[tiers.policy.launcher](),
    }
