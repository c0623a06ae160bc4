"""Dagster resources: the project (config, storage, landing zone) and Ray."""

from robodata_dagster.resources.project import ProjectResource
from robodata_dagster.resources.ray import ClusterRay, make_ray_resource

__all__ = ["ProjectResource", "ClusterRay", "make_ray_resource"]
