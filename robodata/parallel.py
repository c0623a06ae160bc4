"""Fan work out as Ray tasks when Ray is up (a local Ray or a cluster); run in-process otherwise."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robodata.errors import RobodataError, is_transient
from robodata.logs import project_log_path, quiet_ray

# A task whose worker process or node died (a raylet killed, a node preempted, OOM-killed) runs again on
# another node, up to this many times. An exception the task raises is never retried: a bad recording stays
# bad, and the error is reported once, for its item.
SYSTEM_FAILURE_RETRIES = 3
RAY_CONNECT_TIMEOUT_S = 10.0


class RayUnreachableError(RobodataError):
    """The configured Ray cluster does not answer at its address (``ray.address``)."""


def check_ray_reachable(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds, naming the address, when nothing listens at a Ray cluster's address: ``ray.init``
    itself retries for minutes. ``host:port`` (the GCS, default port 6379) and ``ray://host:port`` (the Ray
    Client server, default 10001) are checked; ``auto`` and ``local`` are Ray's to resolve."""
    if address.strip().lower() in ("", "auto", "local"):
        return
    scheme, _, rest = address.strip().rpartition("://")
    hostport = rest.split("/", 1)[0]
    host, colon, port = hostport.rpartition(":")
    if not colon:
        host, port = hostport, "10001" if scheme == "ray" else "6379"
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise RayUnreachableError(f"Ray cluster address {address!r} (ray.address) is not host:port or "
                                  "ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        reason = f"no answer in {timeout_s:g} s" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise RayUnreachableError(f"Ray cluster at {address} is not reachable: {reason} (is its head node up? "
                                  "check ray.address in the config)") from None


# What a Ray worker must see of the driver's environment: its workers keep the environment of the ray.init that
# started them, not of the process that later submits work.
_WORKER_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "HF_HUB_OFFLINE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "ROBODATA_STORAGE_OPTIONS", "PYTHONPATH")


def start_ray_data(address: str | None = None, log_path: Callable[[], Path] | None = None) -> None:
    """Ray for a Ray Data run outside Dagster (the Python API, the video corpus scan): the cluster at ``address``,
    or an embedded one; a Ray already up is used as it is. Quiet: Ray's and Ray Data's notices (the token notice,
    "Started a local Ray instance", "Progress bars disabled") go to the log file (``log_path()``, default the
    project's ``logs/robodata.log``), progress output is off, the result object is the report
    (``RAY_DATA_VERBOSE=1`` or ``--verbose`` shows Ray's own output)."""
    import logging

    import ray
    from ray.data import DataContext

    quiet_ray(log_path or project_log_path)  # both loggers exist now (ray.data sets its own up on import)
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in _WORKER_ENV if k in os.environ}
        opts: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False, "namespace": "robodata",
                                "runtime_env": {"env_vars": env}}
        if address:
            check_ray_reachable(address)  # a head that is gone: one sentence in seconds, not minutes of retries
            ray.init(address=address, **opts)
        else:
            ray.init(include_dashboard=False, object_store_memory=512 * 1024 * 1024, **opts)
    if not os.environ.get("RAY_DATA_VERBOSE"):
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)


@dataclass
class TaskResult:
    ok: bool
    value: Any = None
    error: BaseException | None = None

    @property
    def transient(self) -> bool:
        """The task failed on a service's fault (its worker or node lost beyond Ray's retries, a storage
        timeout inside it), not on its item's data: worth running again (:func:`robodata.errors.is_transient`)."""
        return self.error is not None and is_transient(self.error)


def _unwrap(err: BaseException) -> BaseException:
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def gpus_available() -> float:
    """GPUs the connected Ray cluster has (0 when Ray is not up)."""
    try:
        import ray

        return float(ray.cluster_resources().get("GPU", 0)) if ray.is_initialized() else 0.0
    except Exception:  # noqa: BLE001
        return 0.0


def run_tasks(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    *,
    num_cpus: float = 1,
    num_gpus: float = 0,
    use_ray: bool = True,
) -> list[TaskResult]:
    """Run ``fn(*a)`` for every ``a`` in ``args``; one result per item, in order, errors captured per item.

    ``num_gpus`` is requested only when the cluster has GPUs, so the same config runs on a laptop. A task
    lost with its worker or node is retried elsewhere (:data:`SYSTEM_FAILURE_RETRIES`); ``fn`` must be
    idempotent (robodata's tasks write to staging and publish atomically). Its own exceptions are not retried.
    """
    try:
        import ray
    except ImportError:  # the bare library (no [ray] extra): run in-process
        ray = None  # type: ignore[assignment]
    if not (use_ray and ray is not None and ray.is_initialized()) or len(args) == 0:
        out = []
        for a in args:
            try:
                out.append(TaskResult(True, fn(*a)))
            except Exception as err:  # noqa: BLE001 - reported per item
                out.append(TaskResult(False, error=err))
        return out
    gpus = num_gpus if gpus_available() >= num_gpus > 0 else 0
    remote = ray.remote(num_cpus=num_cpus, num_gpus=gpus, max_retries=SYSTEM_FAILURE_RETRIES,
                        retry_exceptions=False)(fn)
    refs = [remote.remote(*a) for a in args]
    out = []
    for r in refs:
        try:
            out.append(TaskResult(True, ray.get(r)))
        except Exception as err:  # noqa: BLE001 - RayTaskError wraps the user's exception
            out.append(TaskResult(False, error=_unwrap(err)))
    return out
