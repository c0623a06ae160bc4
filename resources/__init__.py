"""Dagster resources: the project (config, storage, landing zone), Ray, and the engines and launchers."""

from robodata_dagster.resources.engines import (
    AugmentationEngine,
    CosmosTransfer,
    IsaacLabMimic,
    KubernetesLauncher,
    LocalAugmentation,
    LocalMimicGen,
    PipesLauncher,
    RayJobLauncher,
    SubprocessLauncher,
    SyntheticDemosEngine,
    engine_resources,
)
from robodata_dagster.resources.project import ProjectResource
from robodata_dagster.resources.ray import ClusterRay, make_ray_resource

__all__ = [
    "AugmentationEngine", "ClusterRay", "CosmosTransfer", "IsaacLabMimic", "KubernetesLauncher", "LocalAugmentation",
    "LocalMimicGen", "PipesLauncher", "ProjectResource", "RayJobLauncher", "SubprocessLauncher",
    "SyntheticDemosEngine", "engine_resources", "make_ray_resource",
]
