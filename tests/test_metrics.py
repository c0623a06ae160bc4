"""Prometheus metrics, for real: a Prometheus (Debian's ``prometheus``) scrapes the endpoint robodata serves and a
Pushgateway a run pushed to, and the series are read back through Prometheus's query API; the alert rules load
in it and pass ``promtool``; the Grafana dashboard's queries name only series robodata defines and parse."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from robodata import metrics
from robodata.metrics import MetricsError, MetricsSettings, metrics_settings, query_prometheus

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "robodata-alerts.yml"
EXAMPLE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "robodata.json"
BINARIES = {"prometheus": "prometheus", "pushgateway": "prometheus-pushgateway", "promtool": "promtool"}
SERIES_TIMEOUT_S = 120.0  # a busy CI machine: Prometheus starts, scrapes every second, evaluates rules


def _binary(name: str) -> str:
    """The path of a Prometheus binary; missing: the test skips here, and fails on CI (which installs them)."""
    path = shutil.which(BINARIES[name]) or (f"/usr/bin/{BINARIES[name]}" if os.access(f"/usr/bin/{BINARIES[name]}",
                                                                                        os.X_OK) else None)
    if path is None:
        msg = f"{BINARIES[name]} is not installed (apt-get install prometheus prometheus-pushgateway)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready at {url} after {timeout_s:.0f} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # by PID: only the process this fixture started
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Services:
    prometheus: str  # http://127.0.0.1:PORT
    pushgateway: str
    metrics_port: int


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """robodata's endpoint served from this process, a Pushgateway, and a Prometheus scraping both every second
    with the project's alert rules loaded."""
    prom_bin, gw_bin = _binary("prometheus"), _binary("pushgateway")
    tmp = tmp_path_factory.mktemp("prometheus")
    port = _free_port()
    assert metrics.serve(port, "127.0.0.1")
    gw_port, prom_port = _free_port(), _free_port()
    gw_log = tmp / "pushgateway.log"
    with open(gw_log, "wb") as out:
        # its own persistence file: Debian's build persists to /var/lib/prometheus/pushgateway.data by default,
        # which would carry one test run's pushes into the next
        gw = subprocess.Popen([gw_bin, f"--web.listen-address=127.0.0.1:{gw_port}",
                               f"--persistence.file={tmp / 'pushgateway.data'}"], stdout=out, stderr=subprocess.STDOUT)
    procs = [gw]
    try:
        _wait_ready(f"http://127.0.0.1:{gw_port}/-/ready", gw, "the Pushgateway", gw_log)
        shutil.copy(ALERTS, tmp / ALERTS.name)
        (tmp / "prometheus.yml").write_text(textwrap.dedent(f"""\
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files: [{ALERTS.name}]
            scrape_configs:
              - job_name: robodata
                static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
              - job_name: pushgateway
                honor_labels: true
                static_configs: [{{targets: ["127.0.0.1:{gw_port}"]}}]
            """))
        prom_log = tmp / "prometheus.log"
        with open(prom_log, "wb") as out:
            prom = subprocess.Popen([prom_bin, f"--config.file={tmp / 'prometheus.yml'}",
                                     f"--storage.tsdb.path={tmp / 'data'}",
                                     f"--web.listen-address=127.0.0.1:{prom_port}"],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        procs.append(prom)
        _wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prom, "Prometheus", prom_log)
        yield Services(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{gw_port}", port)
    finally:
        for p in reversed(procs):
            _stop(p)
        metrics.stop_serving()


def _poll(prom: str, expr: str, ok: Callable[[list[dict[str, Any]]], bool],
          timeout_s: float = SERIES_TIMEOUT_S) -> list[dict[str, Any]]:
    """Query ``expr`` until ``ok`` holds for its result (the scrape every second brings it in)."""
    deadline = time.monotonic() + timeout_s
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = query_prometheus(prom, expr)
        if ok(result):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expr}: after {timeout_s:.0f} s Prometheus has {result}")


def _by(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


# ---- the real thing: scraped, pushed, queried ---------------------------------------------------------------------
def test_prometheus_scrapes_what_robodata_serves(services: Services, tmp_path: Path) -> None:
    from robodata.ingest import ingest_recording
    from robodata.registry import INGESTED, REGISTERED, Recording, Registry
    from robodata.topicmap import load_topic_map
    from tests.recordings import SMALL_TOPIC_MAP, make_mcap

    rep = ingest_recording(make_mcap(tmp_path / "r.mcap", 40), tmp_path / "r.hdf5", load_topic_map(SMALL_TOPIC_MAP))
    meta = rep.as_metadata()
    assert meta["frames"] > 0 and meta["bytes_read"] > 0 and meta["bytes_written"] > 0
    tier = "served_raw_teleop"  # this test's own label: the process's counters are shared by the module's tests
    metrics.record_summary(tier, "published", meta)
    metrics.record_summary(tier, "quarantined", meta, failed_checks=["finite_values"])
    metrics.record_outcome(tier, "failed")
    metrics.observe_stage(tier, rep.seconds)
    metrics.observe_stage(tier, 42.0)

    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    now = time.time()
    with registry.engine.begin() as c:
        for i, status in enumerate([REGISTERED, REGISTERED, INGESTED]):
            registry.add_recording(c, Recording(f"rec-{i}", "file:///landing", f"robot-1/r{i}.mcap", 10, now, "",
                                                now - 100 + i, 1, status, partition_key="2026-01-01|robot-1"))
    assert metrics.update_landing(registry) == {REGISTERED: 2, INGESTED: 1}

    prom = services.prometheus
    got = _by(_poll(prom, f'robodata_recordings_total{{job="robodata",tier="{tier}"}}', lambda r: len(r) == 3),
              "status")
    assert got == {("ingested",): 1.0, ("quarantined",): 1.0, ("failed",): 1.0}
    frames = _poll(prom, f'robodata_frames_total{{job="robodata",tier="{tier}"}}', lambda r: bool(r))
    assert float(frames[0]["value"][1]) == 2 * meta["frames"]
    by_dir = _by(_poll(prom, f'robodata_bytes_total{{tier="{tier}"}}', lambda r: len(r) == 2), "direction")
    assert by_dir == {("read",): 2.0 * meta["bytes_read"], ("written",): 2.0 * meta["bytes_written"]}
    checks = _poll(prom, f'robodata_check_failures_total{{tier="{tier}"}}', lambda r: bool(r))
    assert checks[0]["metric"]["check"] == "finite_values" and float(checks[0]["value"][1]) == 1
    count = _poll(prom, f'robodata_stage_seconds_count{{tier="{tier}"}}', lambda r: bool(r))
    assert float(count[0]["value"][1]) == 2
    le60 = _poll(prom, f'robodata_stage_seconds_bucket{{tier="{tier}",le="60.0"}}', lambda r: bool(r))
    assert float(le60[0]["value"][1]) == 2  # the ingest's seconds and 42 s both within a minute
    assert float(_poll(prom, "robodata_landing_queue_depth", bool)[0]["value"][1]) == 2
    last = _poll(prom, "robodata_landing_last_registered_timestamp_seconds", bool)
    assert float(last[0]["value"][1]) == pytest.approx(now - 98, abs=1e-3)
    statuses = _by(_poll(prom, "robodata_registry_recordings", lambda r: len(r) >= 2), "status")
    assert statuses[(REGISTERED,)] == 2 and statuses[(INGESTED,)] == 1
    # No GPU in this process's view: no GPU series at all, never a fake zero.
    if not _has_gpu():
        assert query_prometheus(prom, "robodata_gpu_memory_used_bytes") == []


def _has_gpu() -> bool:
    return any(s.name.startswith("robodata_gpu") for fam in metrics.GpuCollector().collect() for s in fam.samples)


_RUN = """
import sys
from robodata import metrics_hooks

metrics_hooks.partition_finished("raw_teleop", 12.5, cfg={"metrics": {"port": None,
                                 "pushgateway": sys.argv[1]}}, run_id="run-1234", partition="2026-01-01|robot-1")
"""


def test_a_run_pushes_and_prometheus_scrapes_the_gateway(services: Services) -> None:
    # A run is its own process (Dagster's run worker): it pushes its duration when it finishes. Its recordings'
    # outcomes are counted from the registry by the long-running process (test below): a pushed counter would
    # appear at its final value, and rate() / the failure-rate alert would not see it.
    done = subprocess.run([sys.executable, "-c", _RUN, services.pushgateway], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    prom = services.prometheus
    sel = 'job="robodata_run",run_id="run-1234",tier="raw_teleop"'
    assert float(_poll(prom, f"robodata_stage_seconds_sum{{{sel}}}", bool)[0]["value"][1]) == 12.5
    assert float(_poll(prom, f"robodata_stage_seconds_count{{{sel}}}", bool)[0]["value"][1]) == 1
    assert query_prometheus(prom, f"robodata_recordings_total{{{sel}}}") == []
    # The run pushed its own work only: no landing gauges (the long-running process owns them).
    assert query_prometheus(prom, 'robodata_landing_queue_depth{job="robodata_run"}') == []


def test_alert_rules_load_in_prometheus(services: Services) -> None:
    deadline = time.monotonic() + SERIES_TIMEOUT_S
    names: set[str] = set()
    while time.monotonic() < deadline and not names:
        with urllib.request.urlopen(f"{services.prometheus}/api/v1/rules", timeout=10) as r:
            doc = json.load(r)
        names = {rule["name"] for g in doc["data"]["groups"] for rule in g["rules"]}
        time.sleep(0.5)
    assert {"IngestFailureRate", "LandingZoneStale", "ReleaseChecksFailing"} <= names
    health = {rule["name"]: rule.get("health") for g in doc["data"]["groups"] for rule in g["rules"]}
    assert "err" not in health.values(), health


def test_dashboard_queries_parse_in_prometheus(services: Services) -> None:
    for title, expr in _dashboard_exprs():
        runnable = expr.replace("$__rate_interval", "1m")
        try:
            query_prometheus(services.prometheus, runnable)
        except MetricsError as err:
            raise AssertionError(f"dashboard panel {title!r}: {err}") from err


# ---- the files in deploy/ ----------------------------------------------------------------------------------------
def _dashboard_exprs() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


_NAME = re.compile(r"\brobodata_[a-z0-9_]+")


def test_dashboard_uses_only_series_robodata_defines() -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    used = set()
    for title, expr in exprs:
        names = set(_NAME.findall(expr))
        assert names, f"panel {title!r} queries no robodata series: {expr}"
        assert names <= metrics.METRIC_NAMES, f"panel {title!r}: {sorted(names - metrics.METRIC_NAMES)} undefined"
        used |= names
    for family in ("robodata_recordings_total", "robodata_frames_total", "robodata_stage_seconds_bucket",
                   "robodata_landing_queue_depth", "robodata_landing_last_registered_timestamp_seconds",
                   "robodata_check_failures_total", "robodata_gpu_memory_used_bytes"):
        assert family in used


def test_every_name_robodata_defines_is_what_it_exports() -> None:
    import prometheus_client

    text = prometheus_client.generate_latest(metrics.REGISTRY).decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))
    exported = {n for n in metrics.METRIC_NAMES if n in types or n.removesuffix("_total") in types
                or re.sub(r"_(bucket|sum|count)$", "", n) in types}
    assert exported == metrics.METRIC_NAMES - {metrics.GPU_MEMORY, metrics.GPU_UTILIZATION} | (
        {metrics.GPU_MEMORY, metrics.GPU_UTILIZATION} if _has_gpu() else set())


def test_promtool_accepts_the_rules_and_the_example_config(tmp_path: Path) -> None:
    promtool = _binary("promtool")
    done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 rules found" in done.stdout
    done = subprocess.run([promtool, "check", "config", str(EXAMPLE_CONFIG)], capture_output=True, text=True,
                          timeout=60, cwd=EXAMPLE_CONFIG.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    text = ALERTS.read_text()
    assert set(_NAME.findall(text)) <= metrics.METRIC_NAMES


# ---- bad input: a service that is not there ----------------------------------------------------------------------
def test_push_to_a_gateway_that_is_down_warns_once_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    metrics.record_outcome("raw_teleop", "ingested")
    with caplog.at_level(logging.WARNING, logger="robodata"):
        t0 = time.monotonic()
        assert metrics.push(url, "robodata_run", {"run_id": "r1"}) is False
        assert time.monotonic() - t0 < metrics.PUSH_TIMEOUT_S + 2
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and url in warnings[0].getMessage() and "Pushgateway" in warnings[0].getMessage()


def test_push_to_a_gateway_that_never_answers_does_not_hang(caplog: pytest.LogCaptureFixture) -> None:
    from robodata import metrics_hooks

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with caplog.at_level(logging.WARNING, logger="robodata"):
            t0 = time.monotonic()
            metrics_hooks.partition_finished("raw_teleop", 1.0, cfg={"metrics": {"pushgateway": url}},
                                             run_id="r2")
            took = time.monotonic() - t0
    assert took < metrics.PUSH_TIMEOUT_S + 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and url in warnings[0].getMessage()


def test_prometheus_unreachable_is_one_error_naming_it() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(MetricsError) as err:
        query_prometheus(url, "up")
    msg = str(err.value)
    assert msg.startswith(f"Prometheus at {url} is unreachable") and "\n" not in msg


def test_a_port_already_taken_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="robodata"):
            assert metrics.serve(port, "127.0.0.1") is False
    assert f"127.0.0.1:{port}" in caplog.text


def test_settings_from_a_config_section_or_the_defaults() -> None:
    assert metrics_settings(object()) == MetricsSettings()
    assert metrics_settings({"metrics": {"port": None, "pushgateway": "http://gw:9091"}}) == MetricsSettings(
        port=None, pushgateway="http://gw:9091")

    class Section:
        port = 9100
        addr = "0.0.0.0"
        pushgateway = None

    class Cfg:
        metrics = Section()

    assert metrics_settings(Cfg()) == MetricsSettings(port=9100, addr="0.0.0.0", pushgateway=None)


def test_unknown_outcome_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown recording outcome 'lost'"):
        metrics.record_outcome("raw_teleop", "lost")


def test_outputs_recorded_in_the_registry_are_counted_once_by_the_long_running_process(tmp_path: Path) -> None:
    import time as _time

    from robodata.metrics_hooks import count_outputs
    from robodata.registry import Output, Registry

    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite3'}")

    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    before = value("robodata_recordings_total", tier="raw_teleop", status="ingested")
    failed_before = value("robodata_check_failures_total", tier="raw_teleop", check="finite_values")
    frames_before = value("robodata_frames_total", tier="raw_teleop")
    now = _time.time()
    registry.put_output(Output("raw_teleop", "a", "2026-01-01|r", "i", "v", "published", "p", {"finite_values": True},
                               {"frames": 120}, now))
    registry.put_output(Output("raw_teleop", "b", "2026-01-01|r", "i", "v", "quarantined", "p",
                               {"finite_values": False}, {"frames": 10}, now))
    assert count_outputs(registry) == 2
    assert value("robodata_recordings_total", tier="raw_teleop", status="ingested") == before + 1
    assert value("robodata_check_failures_total", tier="raw_teleop", check="finite_values") == failed_before + 1
    assert value("robodata_frames_total", tier="raw_teleop") == frames_before + 130
    assert count_outputs(registry) == 0  # nothing new since
    registry.put_output(Output("raw_teleop", "a", "2026-01-01|r", "i2", "v2", "published", "p", {}, {"frames": 5},
                               now + 1))  # a re-run of a recording is a new outcome
    assert count_outputs(registry) == 1
    assert value("robodata_recordings_total", tier="raw_teleop", status="ingested") == before + 2
