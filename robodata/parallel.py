"""Fan work out as Ray tasks when Ray is up (a local Ray or a cluster); run in-process otherwise."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class TaskResult:
    ok: bool
    value: Any = None
    error: BaseException | None = None


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

    ``num_gpus`` is requested only when the cluster has GPUs, so the same config runs on a laptop.
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
    remote = ray.remote(num_cpus=num_cpus, num_gpus=gpus, max_retries=0)(fn)
    refs = [remote.remote(*a) for a in args]
    out = []
    for r in refs:
        try:
            out.append(TaskResult(True, ray.get(r)))
        except Exception as err:  # noqa: BLE001 - RayTaskError wraps the user's exception
            out.append(TaskResult(False, error=_unwrap(err)))
    return out
