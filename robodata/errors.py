"""The root of robodata's user-facing errors: one clear sentence naming the file and the problem."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager


class RobodataError(Exception):
    """An error a user can cause (bad input, bad config); its message is shown as is, without a traceback."""


# The optional layers (``pip install 'robodata[EXTRA]'``): top-level module -> (extra, what it is called).
EXTRAS: dict[str, tuple[str, str]] = {
    "mujoco": ("sim", "the simulator"),
    "gymnasium": ("sim", "the simulator"),
    "gymnasium_robotics": ("sim", "the simulator"),
    "scipy": ("sim", "SciPy (MimicGen's pose maths)"),
    "torch": ("train", "torch"),
    "torchvision": ("train", "torch"),
    "lerobot": ("train", "LeRobot's trainer"),
    "mlflow": ("train", "MLflow"),
    "ray": ("ray", "Ray"),
    "prometheus_client": ("platform", "Prometheus metrics"),
    "pinocchio": ("robot", "the robot model (pinocchio)"),
    "dagster": ("platform", "the platform (Dagster)"),
    "dagster_k8s": ("platform", "the platform (Dagster)"),
    "dagster_pipes": ("platform", "the platform (Dagster)"),
    "dagster_ray": ("platform", "the platform (Dagster)"),
    "great_expectations": ("platform", "the platform (Great Expectations)"),
}


class MissingExtraError(RobodataError):
    """A command needs an optional layer that is not installed; the message names the ``pip install``."""

    def __init__(self, what: str, module: str):
        self.extra, needs = EXTRAS.get(module, ("all", module))
        super().__init__(f"{what} needs {needs}: pip install 'robodata[{self.extra}]'")


def require(what: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` for the first of ``modules`` that is not installed."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(what, module)


@contextmanager
def extra_hint(what: str) -> Iterator[None]:
    """Turn an import of a missing optional layer (torch, mujoco, ray, dagster, ...) into MissingExtraError."""
    try:
        yield
    except ModuleNotFoundError as err:
        module = (err.name or "").split(".")[0]
        if module not in EXTRAS:
            raise
        raise MissingExtraError(what, module) from err
