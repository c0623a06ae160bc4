"""The root of robodata's user-facing errors: one clear sentence naming the file and the problem."""

from __future__ import annotations

import errno
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


# ---- transient faults: worth retrying, unlike anything a user's data or config causes ---------------------------


class TransientError(RobodataError):
    """A fault of a service, not of the data (a storage read timed out, a Ray worker or a pod lost): running the
    same work again may succeed. The message still names the service and the address."""


# Exception classes whose instances (and their subclasses') are transient, by (module, class name) anywhere in the
# exception's MRO: no optional library is imported to ask (botocore, urllib3, aiohttp, ray, dagster-k8s).
TRANSIENT_TYPES: frozenset[tuple[str, str]] = frozenset({
    ("builtins", "TimeoutError"),  # socket.timeout, asyncio/fsspec timeouts, ray.exceptions.GetTimeoutError
    ("builtins", "ConnectionError"),  # refused, reset, aborted, broken pipe
    ("botocore.exceptions", "ConnectionError"),  # EndpointConnectionError, ConnectTimeoutError, proxy errors
    ("botocore.exceptions", "HTTPClientError"),  # ReadTimeoutError, ConnectionClosedError
    ("urllib3.exceptions", "TimeoutError"),  # connect/read timeouts, NewConnectionError (the Kubernetes client)
    ("urllib3.exceptions", "ProtocolError"),  # a connection dropped mid-response
    ("aiohttp.client_exceptions", "ClientConnectionError"),  # s3fs/gcsfs over aiohttp
    ("aiohttp.client_exceptions", "ClientPayloadError"),
    ("requests.exceptions", "ConnectionError"),
    ("requests.exceptions", "Timeout"),
    ("ray.exceptions", "WorkerCrashedError"),  # the worker process died (after Ray's own task retries)
    ("ray.exceptions", "NodeDiedError"),
    ("ray.exceptions", "LocalRayletDiedError"),
    ("ray.exceptions", "RaySystemError"),
    ("ray.exceptions", "RayActorError"),  # ActorDiedError, ActorUnavailableError
    ("ray.exceptions", "ObjectLostError"),  # its owner or the node holding it died
    ("ray.exceptions", "RpcError"),
    ("dagster_k8s.client", "DagsterK8sAPIRetryLimitExceeded"),  # the API server kept answering 5xx
    ("dagster_k8s.client", "DagsterK8sTimeoutError"),
})
# OSError numbers of a network or a busy remote service (s3fs maps SlowDown/503 to EBUSY, 500 to EREMOTEIO).
TRANSIENT_ERRNOS = frozenset(getattr(errno, n) for n in (
    "ETIMEDOUT", "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "EHOSTUNREACH", "EHOSTDOWN", "ENETUNREACH",
    "ENETDOWN", "ENETRESET", "EAGAIN", "EBUSY", "ESTALE", "EREMOTEIO") if hasattr(errno, n))
# What a Kubernetes pod that was lost (not one whose program failed) says in dagster-k8s's DagsterK8sError: deleted
# under the run ("was unexpectedly killed"), evicted or preempted, its node gone, its deadline passed, never
# scheduled in time ("Timed out while waiting for pod to become ready").
POD_LOST_REASONS = ("unexpectedly killed", "Evicted", "Preempt", "DeadlineExceeded", "NodeLost", "NodeShutdown",
                    "ContainerStatusUnknown", "Timed out while waiting for pod to become ready")
HTTP_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def _names(exc: BaseException) -> set[tuple[str, str]]:
    return {(c.__module__, c.__name__) for c in type(exc).__mro__}


def _client_error_transient(exc: BaseException) -> bool:
    """A botocore ClientError is transient when botocore's own retry rules say so (a throttling or transient
    error code) or its HTTP status is 429/5xx."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if status in HTTP_TRANSIENT_STATUS:
        return True
    from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

    ctx = RetryContext(attempt_number=1, parsed_response=response)
    return bool(ThrottledRetryableChecker().is_retryable(ctx) or TransientRetryableChecker().is_retryable(ctx))


def _is_transient(exc: BaseException, seen: set[int]) -> bool:
    if id(exc) in seen:
        return False
    seen.add(id(exc))
    if isinstance(exc, TransientError):
        return True
    cause = exc.__cause__  # explicit chaining only (``raise ... from err``), never the incidental __context__
    if isinstance(exc, RobodataError):
        # a user-facing error is about the data or the config, unless the library raised it from a service's
        # fault (a landing read that timed out, a launch whose pod was evicted): then that fault decides
        return cause is not None and _is_transient(cause, seen)
    names = _names(exc)
    if names & TRANSIENT_TYPES:
        return True
    if ("botocore.exceptions", "ClientError") in names:
        return _client_error_transient(exc)
    if ("kubernetes.client.exceptions", "ApiException") in names:
        return getattr(exc, "status", None) in HTTP_TRANSIENT_STATUS
    if ("dagster_k8s.client", "DagsterK8sError") in names:
        return any(r in str(exc) for r in POD_LOST_REASONS)
    if ("sqlalchemy.exc", "DBAPIError") in names and getattr(exc, "connection_invalidated", False):
        return True  # the database dropped the connection (a restart, a failover)
    if ("urllib3.exceptions", "MaxRetryError") in names and isinstance(getattr(exc, "reason", None), BaseException):
        return _is_transient(exc.reason, seen)  # type: ignore[attr-defined]
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return True
    return cause is not None and _is_transient(cause, seen)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a fault worth retrying (a timeout, a dropped connection, throttling or a 5xx from a
    service, a Ray worker or node lost, a Kubernetes pod evicted or lost) rather than one of the data or the
    config. A :class:`RobodataError` is transient only as a :class:`TransientError` or when raised from a
    transient fault; a bad file, a failed blocking check or a bad setting never is."""
    return _is_transient(exc, set())
