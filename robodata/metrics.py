"""Prometheus metrics: what an operator of the platform watches, in one registry of ``robodata_`` series.

The families (labels ``tier``, ``status``, ``check``, ``direction``, ``gpu`` where they mean something):

- ``robodata_recordings_total{tier,status}``: recordings a tier finished, by outcome (``landed``, ``ingested``,
  ``failed``, ``quarantined``, ``duplicate``); ``robodata_frames_total{tier}``, ``robodata_bytes_total{tier,
  direction}`` (``read`` / ``written``) and ``robodata_check_failures_total{tier,check}`` (one per recording or
  release that failed the check);
- ``robodata_stage_seconds{tier}``: how long a tier took over one partition (a histogram: p50/p95 in Grafana);
- ``robodata_landing_queue_depth`` (recordings registered, not yet ingested), ``robodata_landing_last_registered
  _timestamp_seconds`` and ``robodata_registry_recordings{status}``: the landing zone as the registry has it;
- ``robodata_gpu_memory_used_bytes{gpu}`` / ``robodata_gpu_utilization{gpu}`` (0..1): read at scrape time from
  NVML (``pynvml``), or torch's CUDA where torch is already imported; no series at all without a GPU.

Two ways out, both over the same :data:`REGISTRY`: the code location's long-running process serves it on HTTP
(:func:`serve`, scraped by Prometheus), and a run pushes its own numbers to a Pushgateway when it ends
(:func:`push`). A push never fails or holds up a run: an unreachable gateway is one warning naming it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from robodata.errors import MissingExtraError, RobodataError

try:
    import prometheus_client as prom
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ModuleNotFoundError as _err:  # pragma: no cover - the platform extra installs it
    raise MissingExtraError("robodata's Prometheus metrics", "prometheus_client") from _err

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464  # the port OpenTelemetry's Prometheus exporter uses by convention; nothing else here takes it
PUSH_TIMEOUT_S = 3.0  # a run's push waits at most this long for the gateway
QUERY_TIMEOUT_S = 10.0

# A recording's outcome in a tier (``robodata_recordings_total``'s ``status`` label).
LANDED, INGESTED, FAILED, QUARANTINED, DUPLICATE = "landed", "ingested", "failed", "quarantined", "duplicate"
OUTCOMES = (LANDED, INGESTED, FAILED, QUARANTINED, DUPLICATE)
# What a tier's per-recording result status ("published", ...) counts as.
_RESULT_OUTCOME = {"published": INGESTED, "ingested": INGESTED, "quarantined": QUARANTINED, "failed": FAILED,
                   "duplicate": DUPLICATE, "landed": LANDED, "registered": LANDED}
# Stage durations from a small recording on a laptop (seconds) to a 20 GB bag on a busy worker (an hour or more).
STAGE_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)

prom.disable_created_metrics()  # no ``*_created`` twin of every counter: Prometheus 2.x stores them as gauges
REGISTRY = prom.CollectorRegistry(auto_describe=True)

RECORDINGS = prom.Counter("robodata_recordings", "Recordings a tier finished, by outcome", ["tier", "status"],
                          registry=REGISTRY)
FRAMES = prom.Counter("robodata_frames", "Frames a tier wrote", ["tier"], registry=REGISTRY)
BYTES = prom.Counter("robodata_bytes", "Bytes a tier read or wrote", ["tier", "direction"], registry=REGISTRY)
CHECK_FAILURES = prom.Counter("robodata_check_failures", "Recordings (or releases) that failed a check",
                              ["tier", "check"], registry=REGISTRY)
STAGE_SECONDS = prom.Histogram("robodata_stage_seconds", "Time a tier took over one partition (or release)",
                               ["tier"], buckets=STAGE_BUCKETS, registry=REGISTRY)
QUEUE_DEPTH = prom.Gauge("robodata_landing_queue_depth", "Recordings registered from the landing zone and not yet "
                         "ingested", registry=REGISTRY)
LAST_REGISTERED = prom.Gauge("robodata_landing_last_registered_timestamp_seconds",
                             "When the newest recording was registered (Unix time; 0: none yet)", registry=REGISTRY)
REGISTRY_RECORDINGS = prom.Gauge("robodata_registry_recordings", "Recordings in the registry, by status",
                                 ["status"], registry=REGISTRY)

GPU_MEMORY = "robodata_gpu_memory_used_bytes"
GPU_UTILIZATION = "robodata_gpu_utilization"

# Every family name a dashboard or alert may use (the histogram's and counters' sample names included).
METRIC_NAMES = frozenset({
    "robodata_recordings_total", "robodata_frames_total", "robodata_bytes_total", "robodata_check_failures_total",
    "robodata_stage_seconds_bucket", "robodata_stage_seconds_sum", "robodata_stage_seconds_count",
    "robodata_landing_queue_depth", "robodata_landing_last_registered_timestamp_seconds",
    "robodata_registry_recordings", GPU_MEMORY, GPU_UTILIZATION,
})


class MetricsError(RobodataError):
    """A metrics service (Prometheus, the Pushgateway) cannot be reached or refused a request; named with its
    address."""


@dataclass(frozen=True)
class MetricsSettings:
    """Where metrics go: the HTTP port the long-running process serves on (None: not served), the address it
    binds, and the Pushgateway runs push to (None: runs do not push)."""

    port: int | None = DEFAULT_PORT
    addr: str = "127.0.0.1"
    pushgateway: str | None = None


def metrics_settings(cfg: Any) -> MetricsSettings:
    """The metrics settings of a project config: its ``metrics`` section (a model with ``port``/``addr``/
    ``pushgateway``, or a mapping), or the defaults where it has none."""
    section = getattr(cfg, "metrics", None) if not isinstance(cfg, Mapping) else cfg.get("metrics")
    if section is None:
        return MetricsSettings()
    get = section.get if isinstance(section, Mapping) else lambda k, d: getattr(section, k, d)
    port = get("port", DEFAULT_PORT)
    return MetricsSettings(port=None if port is None else int(port), addr=str(get("addr", "127.0.0.1")),
                           pushgateway=get("pushgateway", None) or None)


# ---- recording what happened ------------------------------------------------------------------------------------
def outcome_of(status: str) -> str:
    """The ``status`` label for a tier's result status (``published`` -> ``ingested``, ...)."""
    return _RESULT_OUTCOME.get(status, status)


def record_outcome(tier: str, outcome: str, *, frames: int = 0, bytes_read: int = 0, bytes_written: int = 0,
                   failed_checks: Iterable[str] = (), count: int = 1) -> None:
    """``count`` recordings of ``tier`` ended as ``outcome`` (one of :data:`OUTCOMES`, or a result status such as
    ``published``), with the frames and bytes they made and the checks they failed."""
    status = outcome_of(outcome)
    if status not in OUTCOMES:
        raise ValueError(f"unknown recording outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
    RECORDINGS.labels(tier=tier, status=status).inc(count)
    if frames:
        FRAMES.labels(tier=tier).inc(frames)
    if bytes_read:
        BYTES.labels(tier=tier, direction="read").inc(bytes_read)
    if bytes_written:
        BYTES.labels(tier=tier, direction="written").inc(bytes_written)
    for check in failed_checks:
        CHECK_FAILURES.labels(tier=tier, check=check).inc()


def record_summary(tier: str, outcome: str, summary: Mapping[str, Any], failed_checks: Iterable[str] = ()) -> None:
    """:func:`record_outcome` from an ingest's or a tier's summary (``frames``/``frames_out``, ``bytes_read``,
    ``bytes_written``/``bytes``: whichever it has)."""
    def num(*keys: str) -> int:
        for k in keys:
            v = summary.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
        return 0

    record_outcome(tier, outcome, frames=num("frames", "frames_out"), bytes_read=num("bytes_read"),
                   bytes_written=num("bytes_written", "bytes", "hdf5_bytes"), failed_checks=failed_checks)


def record_checks(tier: str, checks: Mapping[str, bool]) -> None:
    """A release's (or any output's) check verdicts: each failed one counts once."""
    for name, passed in checks.items():
        if not passed:
            CHECK_FAILURES.labels(tier=tier, check=name).inc()


def observe_stage(tier: str, seconds: float) -> None:
    """``tier`` took ``seconds`` over one partition (or release)."""
    STAGE_SECONDS.labels(tier=tier).observe(max(0.0, float(seconds)))


def update_landing(registry: Any) -> dict[str, int]:
    """The landing zone's gauges from a :class:`robodata.registry.Registry`: recordings per status, the queue
    (registered, not yet ingested) and when the newest one was registered. Returns the counts by status."""
    from robodata.registry import RECORDINGS as TABLE
    from robodata.registry import REGISTERED

    counts = registry.counts()
    with registry.engine.connect() as c:
        newest = c.execute(sa.select(sa.func.max(TABLE.c.registered_at))).scalar()
    QUEUE_DEPTH.set(counts.get(REGISTERED, 0))
    LAST_REGISTERED.set(float(newest or 0.0))
    for status in set(counts) | {s for s, in _label_values(REGISTRY_RECORDINGS)}:
        REGISTRY_RECORDINGS.labels(status=status).set(counts.get(status, 0))
    return dict(counts)


def _label_values(metric: Any) -> list[tuple[str, ...]]:
    """The label values a labelled metric already has children for."""
    return [tuple(s.labels.values()) for fam in metric.collect() for s in fam.samples]


# ---- GPUs ---------------------------------------------------------------------------------------------------------
class GpuCollector(Collector):
    """Per-GPU memory in use and utilization, read when Prometheus scrapes: NVML where ``pynvml`` is installed
    (the whole device, any process), else torch's CUDA if this process already imported torch (its memory view
    is the device's too: ``mem_get_info``). No GPU, no series."""

    def collect(self) -> Iterator[Any]:
        readings = _nvml_readings() or _torch_readings()
        if not readings:
            return
        mem = GaugeMetricFamily(GPU_MEMORY, "GPU memory in use (bytes, whole device)", labels=["gpu"])
        util = GaugeMetricFamily(GPU_UTILIZATION, "GPU utilization over the driver's last sample period (0..1)",
                                 labels=["gpu"])
        for gpu, used, busy in readings:
            mem.add_metric([gpu], used)
            if busy is not None:
                util.add_metric([gpu], busy)
        yield mem
        if util.samples:
            yield util


def _nvml_readings() -> list[tuple[str, float, float | None]]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
        try:
            out: list[tuple[str, float, float | None]] = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                util = pynvml.nvmlDeviceGetUtilizationRates(h)
                out.append((str(i), float(mem.used), float(util.gpu) / 100.0))
            return out
        finally:
            pynvml.nvmlShutdown()
    except Exception as err:  # noqa: BLE001 - NVML without a driver (a CPU node) means no GPU series, said once
        log.debug("NVML: %s", err)
        return []


def _torch_readings() -> list[tuple[str, float, float | None]]:
    torch = sys.modules.get("torch")  # never import torch (seconds, CUDA init) just to be scraped
    if torch is None:
        return []
    try:
        if not torch.cuda.is_available():
            return []
        out: list[tuple[str, float, float | None]] = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            out.append((str(i), float(total - free), None))
        return out
    except Exception as err:  # noqa: BLE001 - a CUDA that cannot answer means no GPU series
        log.debug("torch.cuda: %s", err)
        return []


REGISTRY.register(GpuCollector())


# ---- serving and pushing ---------------------------------------------------------------------------------------
_served: dict[tuple[str, int], Any] = {}
_serve_lock = threading.Lock()


def serve(port: int = DEFAULT_PORT, addr: str = "127.0.0.1") -> bool:
    """Serve :data:`REGISTRY` on ``http://addr:port/metrics`` from a daemon thread of this process (the code
    location's long-running one). Once per process and address; a port already taken is one warning naming
    it (a second process of the same code location), never an exception. Returns whether this process serves."""
    with _serve_lock:
        if (addr, port) in _served:
            return True
        try:
            server, _thread = prom.start_http_server(port, addr=addr, registry=REGISTRY)
        except OSError as err:
            log.warning("robodata metrics: cannot serve on http://%s:%d/metrics (%s); this process's metrics "
                        "are not scraped", addr, port, err.strerror or err)
            return False
        _served[(addr, port)] = server
        return True


def stop_serving() -> None:
    """Stop every server :func:`serve` started in this process (tests)."""
    with _serve_lock:
        for server in _served.values():
            server.shutdown()
            server.server_close()
        _served.clear()


class _RunFamilies(Collector):
    """What a run pushes: the families of its own work (:data:`RUN_FAMILIES`). The landing gauges belong to the
    long-running process and GPU readings to the moment of a scrape; a run's zeros or stale readings of them
    in the Pushgateway would contradict the real ones."""

    def collect(self) -> Iterator[Any]:
        for fam in REGISTRY.collect():
            if fam.name in RUN_FAMILIES:
                yield fam


RUN_FAMILIES = frozenset({"robodata_recordings", "robodata_frames", "robodata_bytes", "robodata_check_failures",
                          "robodata_stage_seconds"})
_PUSHED = prom.CollectorRegistry(auto_describe=False)
_PUSHED.register(_RunFamilies())


def push(gateway_url: str, job: str = "robodata_run", grouping: Mapping[str, str] | None = None,
         timeout_s: float = PUSH_TIMEOUT_S) -> bool:
    """Push this process's :data:`RUN_FAMILIES` to the Pushgateway at ``gateway_url`` under ``job`` and
    ``grouping`` (POST: series of this group not in this push stay). Never raises for the gateway's sake and waits
    at most ``timeout_s``: an unreachable or refusing gateway is one warning naming it. Returns whether the push
    landed."""
    try:
        prom.pushadd_to_gateway(gateway_url, job=job, registry=_PUSHED, grouping_key=dict(grouping or {}),
                                timeout=timeout_s)
        return True
    except urllib.error.HTTPError as err:
        log.warning("robodata metrics: the Pushgateway at %s refused the push (HTTP %s %s); the run goes on "
                    "without it", gateway_url, err.code, err.reason)
    except (OSError, ValueError) as err:  # refused, timed out, unresolvable, a malformed URL
        reason = getattr(err, "reason", None) or err
        log.warning("robodata metrics: the Pushgateway at %s is unreachable (%s); the run goes on without it",
                    gateway_url, reason)
    return False


def query_prometheus(url: str, expr: str, timeout_s: float = QUERY_TIMEOUT_S) -> list[dict[str, Any]]:
    """The instant vector ``expr`` evaluates to on the Prometheus at ``url`` (its HTTP API), as the API's
    ``result`` list (``{"metric": {...}, "value": [t, "v"]}``).

    Raises:
        MetricsError: Prometheus is unreachable, or refuses the query; the message names the address.
    """
    q = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(q, timeout=timeout_s) as resp:
            doc = json.load(resp)
    except urllib.error.HTTPError as err:
        detail = _error_text(err)
        raise MetricsError(f"Prometheus at {url} refused the query {expr!r}: HTTP {err.code} {detail}") from err
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise MetricsError(f"Prometheus at {url} is unreachable: {reason}") from err
    if doc.get("status") != "success":
        raise MetricsError(f"Prometheus at {url} refused the query {expr!r}: {doc.get('error', doc)}")
    return list(doc["data"]["result"])


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(err.read()).get("error", err.reason))
    except Exception:  # noqa: BLE001 - the error body is a courtesy; its reason is enough
        return str(err.reason)
