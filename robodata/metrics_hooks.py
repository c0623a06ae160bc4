"""One-line metrics calls for the places where things happen: a tier's run finishing a partition, a release
being cut, the landing sensor's tick. Each takes plain values (or duck-typed results), and none of them ever
raises: metrics are for watching the platform, never a reason for a run or a tick to fail. Without
``prometheus_client`` installed they do nothing.

- :func:`partition_finished` (in the run's process): counts each recording's outcome, frames, bytes and failed
  checks, observes the tier's duration, and pushes to the configured Pushgateway;
- :func:`release_finished` (the release run): its checks, duration and frames, pushed the same way;
- :func:`sensor_tick` (the code location's long-running process, where Dagster evaluates sensors): serves the
  metrics endpoint on the first tick, counts the recordings the tick registered, refreshes the landing gauges.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)

PUSHGATEWAY_ENV = "ROBODATA_PUSHGATEWAY"  # overrides the config's metrics.pushgateway (a run's environment)
RUN_JOB = "robodata_run"  # the Pushgateway job runs push under
LANDING_TIER = "landing"  # the tier label of recordings the sensor registered


class CheckLike(Protocol):
    name: str
    passed: bool


def partition_finished(tier: str, seconds: float | None = None, *, cfg: Any = None, run_id: str = "",
                       partition: str = "") -> None:
    """A run of ``tier`` finished ``partition`` after ``seconds``: observe its duration and push it. Its
    recordings' outcomes are counted from the registry by the long-running process (:func:`count_outputs`),
    not here: a pushed counter appears at its final value and ``rate()`` would not see it."""
    try:
        from robodata import metrics
    except ImportError:
        return
    try:
        if seconds is not None:
            metrics.observe_stage(tier, seconds)
    except Exception as err:  # noqa: BLE001 - a metric is never worth a failed run; said once
        log.warning("robodata metrics: not recorded for %s %s: %s", tier, partition, err)
        return
    _push(cfg, tier, run_id)


def release_finished(tier: str, checks: Mapping[str, bool] | Sequence[CheckLike], seconds: float | None = None, *,
                     frames: int = 0, cfg: Any = None, run_id: str = "") -> None:
    """A release (``tier``, e.g. ``lerobot_dataset``) was cut with these check verdicts: count, observe, push."""
    try:
        from robodata import metrics
    except ImportError:
        return
    try:
        verdicts = dict(checks) if isinstance(checks, Mapping) else {c.name: bool(c.passed) for c in checks}
        metrics.record_checks(tier, verdicts)
        if frames:
            metrics.FRAMES.labels(tier=tier).inc(frames)
        if seconds is not None:
            metrics.observe_stage(tier, seconds)
    except Exception as err:  # noqa: BLE001 - a metric is never worth a failed run; said once
        log.warning("robodata metrics: not recorded for %s: %s", tier, err)
        return
    _push(cfg, tier, run_id)


_COUNTED_UNTIL: dict[str, float] = {}  # per registry URL: outputs updated up to this time are counted


def count_outputs(registry: Any) -> int:
    """Count the tier outputs the registry recorded since the last call in this process (each recording's
    outcome, frames and failed checks, per tier): the runs' work, counted where the endpoint is scraped, so
    that ``rate()`` sees it (a run's own pushed counters appear at their final value and would not).
    The first call counts everything the registry holds. Returns the outputs counted."""
    import json

    import sqlalchemy as sa

    from robodata import metrics
    from robodata.registry import OUTPUTS

    since = _COUNTED_UNTIL.get(registry.url, -1.0)
    with registry.engine.connect() as c:
        rows = c.execute(sa.select(OUTPUTS.c.tier, OUTPUTS.c.status, OUTPUTS.c.checks, OUTPUTS.c.summary,
                                   OUTPUTS.c.updated_at).where(OUTPUTS.c.updated_at > since)).all()
    for r in rows:
        try:
            checks, summary = json.loads(r.checks or "{}"), json.loads(r.summary or "{}")
        except ValueError:
            checks, summary = {}, {}
        metrics.record_summary(r.tier, r.status, summary if isinstance(summary, dict) else {},
                               [k for k, v in (checks if isinstance(checks, dict) else {}).items() if not v])
    if rows:
        _COUNTED_UNTIL[registry.url] = max(r.updated_at for r in rows)
    return len(rows)


def sensor_tick(registry: Any, cfg: Any = None, *, registered: int = 0) -> None:
    """The landing sensor ticked and registered ``registered`` new recordings: serve the endpoint (once per
    process), count them and the outputs runs recorded since the last tick (:func:`count_outputs`), refresh
    the landing gauges from ``registry``."""
    try:
        from robodata import metrics
    except ImportError:
        return
    try:
        settings = metrics.metrics_settings(cfg)
        if settings.port is not None:
            metrics.serve(settings.port, settings.addr)
        if registered:
            metrics.record_outcome(LANDING_TIER, metrics.LANDED, count=registered)
        count_outputs(registry)
        metrics.update_landing(registry)
    except Exception as err:  # noqa: BLE001 - a tick never fails for its metrics; said once
        log.warning("robodata metrics: the landing gauges were not updated: %s", err)


def _push(cfg: Any, tier: str, run_id: str) -> None:
    from robodata import metrics

    gateway = os.environ.get(PUSHGATEWAY_ENV) or metrics.metrics_settings(cfg).pushgateway
    if gateway:
        metrics.push(gateway, RUN_JOB, {"tier": tier, "run_id": run_id or f"pid-{os.getpid()}"})
