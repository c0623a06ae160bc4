"""Ray for the assets, through dagster-ray: embedded ``LocalRay`` by default, or an existing cluster."""

from __future__ import annotations

import os
from typing import Any

from dagster_ray import Lifecycle, LocalRay, RayResource
from pydantic import Field

from robodata.config import ProjectConfig
from robodata.parallel import check_ray_reachable


class ClusterRay(RayResource):
    """Connect to a running Ray cluster (``ray://head:10001``, ``auto``; KubeRay's head service on Kubernetes)."""

    address: str = Field(description="Ray cluster address")

    @property
    def host(self) -> str:
        return self.address.split("://")[-1].split(":")[0]

    @property
    def ray_address(self) -> str:
        return self.address

    @property
    def name(self) -> str:
        return f"Ray cluster at {self.address}"

    @property
    def created(self) -> bool:
        return True

    @property
    def ready(self) -> bool:
        return True

    def connect(self, context: Any) -> Any:  # type: ignore[override]  # the base method is tenacity-wrapped
        """``ray.init`` on the cluster, after a check that fails the run in seconds with one sentence naming
        the address when the head is gone (``ray.init`` alone retries for minutes)."""
        check_ray_reachable(self.address)
        return super().connect(context)


def _worker_env() -> dict[str, str]:
    keep = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "ROBODATA_HOME", "ROBODATA_CONFIG", "HF_HUB_OFFLINE")
    return {k: os.environ[k] for k in keep if k in os.environ}


def make_ray_resource(cfg: ProjectConfig) -> RayResource:
    import ray  # noqa: F401 - imported here so that its log handlers exist for quiet_ray to reroute

    from robodata.logs import quiet_ray

    quiet_ray()  # under the CLI: Ray's notices (token auth, "Started a local Ray instance") go to the log file
    env = {"env_vars": _worker_env()}
    if cfg.ray.address:
        return ClusterRay(address=cfg.ray.address, ray_init_options={"namespace": cfg.ray.namespace, "runtime_env": env})
    opts: dict = {
        "ignore_reinit_error": True,
        "include_dashboard": False,
        "log_to_driver": False,
        "namespace": cfg.ray.namespace,
        "object_store_memory": 512 * 1024 * 1024,
        "runtime_env": env,
    }
    if cfg.ray.num_cpus:
        opts["num_cpus"] = cfg.ray.num_cpus
    # Keep the embedded Ray up between runs of one process (CLI runs, tests): it costs ~10 s to start.
    return LocalRay(ray_init_options=opts, lifecycle=Lifecycle(cleanup="never"))
