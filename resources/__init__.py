"""Dagster resources: the project (config, storage, landing zone) and Ray."""

from resources.project import ProjectResource
from resources.ray import ClusterRay, make_ray_resource

__all__ = ["ProjectResource", "ClusterRay", "make_ray_resource"]
