"""Backfills the way Dagster runs them: a ``PartitionBackfill`` in the instance, executed by the daemon.

``robodata backfill`` creates the same object the UI creates when you materialize a selection of partitions
(an *asset backfill*, as ``dagster_graphql``'s ``create_and_launch_partition_backfill`` builds it with
``PartitionBackfill.from_asset_partitions`` and ``instance.add_backfill``): it is listed in the UI's
Backfills tab and by ``instance.get_backfills()``, its runs carry the ``dagster/backfill`` tag, and the
assets' ``BackfillPolicy`` decides how many partitions one run takes (every per-recording tier:
``multi_run(max_partitions_per_run=1)``: one robot x day per run, its recordings in parallel inside it).
By default a backfill takes the partitions that hold recordings (the registry's), not the whole grid of
robots and days.

The daemon executes it: the backfill daemon turns it into runs, the run queue (``QueuedRunCoordinator``,
``concurrency.runs.max_concurrent_runs`` in the instance's dagster.yaml) launches them. A daemon already
heartbeating for this instance (``robodata ui``, a deployment's ``dagster-daemon``) is used as it is;
otherwise ``dagster-daemon run`` is started over the project's code location, in its own process group, for
as long as the backfill needs it, and stopped when it is done. Its log goes to
``$DAGSTER_HOME/daemon_logs/`` (not ``logs/``: Dagster's telemetry moves that folder away).

Part of the code location (never imported by the library).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from robodata.errors import RobodataError

CODE_LOCATION_MODULE = "robodata_dagster.definitions"  # what `robodata ui` and workspace.yaml load
BACKFILL_TAG = "dagster/backfill"
# A daemon counts as alive while its heartbeats (every 30 s) are this fresh. Dagster's own health check
# tolerates 30 min of silence, far too long to tell whether anyone will pick a backfill up.
HEARTBEAT_MAX_AGE_S = 120.0
_NEEDED_DAEMONS = ("BACKFILL", "QUEUED_RUN_COORDINATOR")
DAEMON_LOGS = "daemon_logs"  # under $DAGSTER_HOME
_STOPPED_FILE = "robodata_stopped_daemons.json"  # ids of daemons robodata started and stopped (heartbeats stay)


class BackfillError(RobodataError):
    """A backfill could not be launched, or its daemon could not run it."""


# ---- what to backfill ------------------------------------------------------------------------------------------


def resolve_selection(defs: dg.Definitions, instance: dg.DagsterInstance, *, job: str | None = None,
                      assets: Sequence[str] = (), partitions: Sequence[str] = ()
                      ) -> tuple[list[dg.AssetKey], list[str] | None]:
    """The asset keys (a job's, or those named) and partition keys (all, or those named) to backfill.

    Partitions are ``None`` when no selected asset is partitioned (a release-level job: one run)."""
    graph = defs.resolve_asset_graph()
    if assets:
        keys = [dg.AssetKey.from_user_string(a) for a in assets]
        unknown = [k.to_user_string() for k in keys if not graph.has(k)]
        if unknown:
            have = ", ".join(sorted(k.to_user_string() for k in graph.materializable_asset_keys))
            raise BackfillError(f"unknown assets: {unknown} (the graph has {have})")
    else:
        name = job or "ingest_recordings"
        try:
            job_def = defs.resolve_job_def(name)
        except dg.DagsterError as err:  # reworded with the jobs there are
            names = ", ".join(sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")))
            raise BackfillError(f"no job named {name!r} (jobs: {names})") from err
        keys = sorted(job_def.asset_layer.selected_asset_keys, key=lambda k: k.to_user_string())
        if not keys:
            raise BackfillError(f"job {name} materializes no assets: nothing to backfill")
    partitioned = [k for k in keys if graph.get(k).is_partitioned]
    if not partitioned:
        if partitions:
            raise BackfillError(f"{', '.join(k.to_user_string() for k in keys)} is not partitioned: "
                                f"name no partitions (got {list(partitions)})")
        return keys, None
    pdefs = {graph.get(k).partitions_def for k in partitioned}
    if len(pdefs) > 1:
        raise BackfillError("the selected assets are partitioned differently; backfill them separately")
    pdef = next(iter(pdefs))
    assert pdef is not None
    # Partitions are robot x day: by default those that hold recordings (the registry knows them; a fleet's
    # grid of every robot and every day is mostly empty). A recording's key names its partition.
    from robodata.registry import Registry

    registry = Registry((defs.resources or {})["project"].config.registry_url)
    held = registry.partitions()
    if not partitions:
        return keys, sorted(held)
    out = []
    for p in partitions:
        if "|" not in p:
            try:
                p = registry.lookup(p).partition_key
            except RobodataError:
                raise BackfillError(f"unknown recording partitions: [{p!r}] (name a robot x day partition "
                                    "such as 2026-12-01|robot-17, or a recording key)") from None
        if p not in held:
            raise BackfillError(f"unknown recording partitions: [{p!r}] (no recording is registered in it)")
        out.append(p)
    return keys, list(dict.fromkeys(out))


def launch_backfill(instance: dg.DagsterInstance, defs: dg.Definitions, asset_keys: Sequence[dg.AssetKey],
                    partitions: Sequence[str] | None, *, tags: dict[str, str] | None = None,
                    overrides: dict[str, Any] | None = None, title: str | None = None,
                    description: str | None = None) -> str:
    """Add an asset backfill of ``asset_keys`` x ``partitions`` to the instance (status REQUESTED); its id.

    ``partitions`` None targets the (unpartitioned) assets themselves. ``overrides`` (``--set``) reach every run
    through the project resource's config, as a launchpad user would give them."""
    backfill_id = make_new_backfill_id()
    run_config: dict[str, Any] | None = None
    if overrides:
        run_config = {"resources": {"project": {"config": {"overrides_json": json.dumps(overrides)}}}}
    try:
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=defs.resolve_asset_graph(),
            partition_names=list(partitions) if partitions is not None else None,
            asset_selection=list(asset_keys),
            backfill_timestamp=time.time(),
            tags={"robodata/launched_by": "cli", **(tags or {})},
            dynamic_partitions_store=instance,
            all_partitions=partitions is None,
            title=title,
            description=description,
            run_config=run_config,
        )
    except dg.DagsterError as err:
        raise BackfillError(f"cannot backfill {', '.join(k.to_user_string() for k in asset_keys)}: {err}") from err
    instance.add_backfill(backfill)
    return backfill_id


# ---- the daemon ------------------------------------------------------------------------------------------------


def _stopped_file() -> Path:
    return Path(os.environ["DAGSTER_HOME"]) / _STOPPED_FILE


def _stopped_list() -> list[str]:
    p = _stopped_file()
    try:
        ids = json.loads(p.read_text()) if p.exists() else []
    except (OSError, ValueError):
        return []
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _stopped_daemons() -> set[str]:
    return set(_stopped_list())


def _remember_stopped(daemon_id: str) -> None:
    ids = [i for i in _stopped_list() if i != daemon_id]
    tmp = _stopped_file().with_name(f".{_STOPPED_FILE}.{os.getpid()}")
    tmp.write_text(json.dumps([*ids[-19:], daemon_id]))
    os.replace(tmp, _stopped_file())


def live_daemon(instance: dg.DagsterInstance, *, max_age_s: float = HEARTBEAT_MAX_AGE_S) -> str | None:
    """The id of a daemon heartbeating for this instance now (backfills and the run queue), or None.

    Daemons robodata started and stopped itself are ignored: their last heartbeats outlive them."""
    needed = [t for t in _NEEDED_DAEMONS if t in instance.get_required_daemon_types()]
    beats = instance.get_daemon_heartbeats()
    stopped = _stopped_daemons()
    now = time.time()
    ids = set()
    for t in needed:
        hb = beats.get(t)
        if hb is None or now - hb.timestamp > max_age_s or (hb.daemon_id or "") in stopped:
            return None
        ids.add(hb.daemon_id or "")
    return sorted(ids)[0] if ids else None


def daemon_command() -> list[str]:
    exe = Path(sys.executable).parent / "dagster-daemon"
    found = str(exe) if exe.exists() else shutil.which("dagster-daemon")
    if not found:
        raise BackfillError("dagster-daemon is not installed beside this Python: pip install 'robodata[platform]'")
    return [found, "run", "-m", CODE_LOCATION_MODULE]


class DaemonProcess:
    """``dagster-daemon run`` over the project's code location, in its own process group, with a log file.

    Same environment (``DAGSTER_HOME``, ``ROBODATA_CONFIG``) and working folder as this process, so it opens
    the same instance and builds the same code location. :meth:`stop` ends the whole group (the daemon, the
    code server it started and their run workers)."""

    def __init__(self, instance: dg.DagsterInstance, log_path: Path):
        self.instance = instance
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.daemon_id: str | None = None

    def start(self) -> DaemonProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(daemon_command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=dict(os.environ), start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def note_heartbeat(self) -> None:
        """Learn this daemon's id from its first heartbeat (to ignore its stale heartbeats once stopped)."""
        if self.daemon_id is None:
            hb = self.instance.get_daemon_heartbeats().get("BACKFILL")
            if hb is not None and hb.timestamp >= self.started_at - 1 and hb.daemon_id:
                self.daemon_id = hb.daemon_id

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM the group (the daemon shuts its threads and code server down), SIGKILL what is left."""
        if self.proc is None:
            return
        self.note_heartbeat()
        pgid = self.proc.pid  # start_new_session: the daemon leads its own group
        _signal_group(pgid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.time() + 5
        while _group_alive(pgid) and time.time() < deadline:
            time.sleep(0.2)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(10)
        deadline = time.time() + 30  # the group's last members take a moment to die after SIGKILL
        while _group_alive(pgid) and time.time() < deadline:
            time.sleep(0.2)
        if self.daemon_id:
            _remember_stopped(self.daemon_id)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. Zombies do not count: killed children whose parent died
    with them wait for init to reap them, and in a container without a reaping init that may be never."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    import psutil

    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False


# ---- waiting ---------------------------------------------------------------------------------------------------


@dataclass
class BackfillOutcome:
    """How waiting for a backfill ended: its final status, who ran it, where the daemon's log is."""

    backfill_id: str
    status: BulkActionStatus
    daemon: str  # "existing" (heartbeating already), "started" (robodata ran dagster-daemon), "none"
    daemon_log: str = ""
    daemon_pid: int | None = None
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in BULK_ACTION_TERMINAL_STATUSES


def backfill_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_TAG: backfill_id})))


def wait_for_backfill(instance: dg.DagsterInstance, defs: dg.Definitions, backfill_id: str, *,
                      timeout_s: float | None = None, poll_s: float = 2.0,
                      progress: Callable[[str], None] | None = None, drain_s: float = 600.0) -> BackfillOutcome:
    """Wait until the backfill reaches a terminal status, making sure a daemon executes it meanwhile.

    A live daemon for the instance is only watched; when there is none (or it goes away), ``dagster-daemon
    run`` is started and, once the backfill is done and the runs it launched have finished, stopped. On a
    timeout or Ctrl-C with robodata's own daemon, the backfill is canceled first (its runs terminated), so
    that no run is left marked as started with nothing running it."""
    graph = defs.resolve_asset_graph()
    log_path = Path(os.environ["DAGSTER_HOME"]) / DAEMON_LOGS / f"backfill-{backfill_id}.log"
    daemon: DaemonProcess | None = None
    used = "existing" if live_daemon(instance) else "started"
    deadline = time.time() + timeout_s if timeout_s else None
    last_line = ""
    outcome = BackfillOutcome(backfill_id, BulkActionStatus.REQUESTED, used)
    try:
        while True:
            backfill = instance.get_backfill(backfill_id)
            if backfill is None:
                raise BackfillError(f"backfill {backfill_id} is not in the instance {os.environ['DAGSTER_HOME']}")
            outcome.status = backfill.status
            if backfill.status in BULK_ACTION_TERMINAL_STATUSES:
                break
            if daemon is not None:
                daemon.note_heartbeat()
                if not daemon.alive():
                    raise BackfillError(f"dagster-daemon exited ({daemon.proc.returncode if daemon.proc else '?'}) "
                                        f"before backfill {backfill_id} finished; its log {log_path}:\n"
                                        f"{daemon.log_tail()}")
            elif not live_daemon(instance):
                if outcome.daemon == "existing":
                    outcome.notes.append("the daemon that was running went away; started dagster-daemon")
                outcome.daemon = "started"
                daemon = DaemonProcess(instance, log_path).start()
                outcome.daemon_log, outcome.daemon_pid = str(log_path), daemon.pid
                if progress:
                    progress(f"no Dagster daemon is running for this instance: started dagster-daemon "
                             f"(pid {daemon.pid}, log {log_path})")
            line = _progress_line(backfill, graph, instance)
            if progress and line != last_line:
                progress(line)
                last_line = line
            if deadline is not None and time.time() > deadline:
                outcome.timed_out = True
                break
            time.sleep(poll_s)
        if daemon is not None and not outcome.timed_out:
            _drain(instance, daemon, min(drain_s, max(0.0, deadline - time.time())) if deadline else drain_s,
                   outcome, poll_s)
    except BaseException:
        if daemon is not None and daemon.alive():
            _cancel(instance, backfill_id, daemon, outcome, progress)
        raise
    finally:
        if daemon is not None:
            if outcome.timed_out and daemon.alive():
                _cancel(instance, backfill_id, daemon, outcome, progress)
            daemon.stop()
            _fail_orphans(instance, backfill_id, daemon, outcome)
    return outcome


def _progress_line(backfill: PartitionBackfill, graph: Any, instance: dg.DagsterInstance) -> str:
    try:
        data = backfill.get_asset_backfill_data(graph)
        total = data.target_subset.num_partitions_and_non_partitioned_assets
        done = data.materialized_subset.num_partitions_and_non_partitioned_assets
        failed = data.failed_and_downstream_subset.num_partitions_and_non_partitioned_assets
        counts = f"{done}/{total} materialized, {failed} failed"
    except Exception:  # noqa: BLE001 - progress only; the graph may have changed under the backfill
        counts = ""
    by_status: dict[str, int] = {}
    for r in backfill_runs(instance, backfill.backfill_id):
        by_status[r.status.value.lower()] = by_status.get(r.status.value.lower(), 0) + 1
    runs = ", ".join(f"{n} {st}" for st, n in sorted(by_status.items())) or "none yet"
    return f"backfill {backfill.backfill_id}: {backfill.status.value}, {counts}; runs: {runs}"


def _drain(instance: dg.DagsterInstance, daemon: DaemonProcess, limit_s: float, outcome: BackfillOutcome,
           poll_s: float) -> None:
    """Let runs the daemon launched meanwhile (a sensor's, automation's) finish before the daemon stops."""
    since = datetime.fromtimestamp(daemon.started_at - 1, tz=UTC)
    running = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    deadline = time.time() + limit_s
    while daemon.alive():
        active = instance.get_runs(filters=dg.RunsFilter(statuses=running, created_after=since))
        if not active:
            return
        if time.time() > deadline:
            outcome.notes.append(f"stopped the daemon with {len(active)} run(s) it launched still going: "
                                 + ", ".join(r.run_id for r in active))
            return
        time.sleep(poll_s)


def _cancel(instance: dg.DagsterInstance, backfill_id: str, daemon: DaemonProcess, outcome: BackfillOutcome,
            progress: Callable[[str], None] | None, limit_s: float = 90.0) -> None:
    backfill = instance.get_backfill(backfill_id)
    if backfill is None or backfill.status in BULK_ACTION_TERMINAL_STATUSES:
        return
    if progress:
        progress(f"canceling backfill {backfill_id} (its runs are terminated) before stopping the daemon")
    instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
    deadline = time.time() + limit_s
    while daemon.alive() and time.time() < deadline:
        b = instance.get_backfill(backfill_id)
        if b is None or b.status in BULK_ACTION_TERMINAL_STATUSES:
            break
        time.sleep(1.0)
    b = instance.get_backfill(backfill_id)
    outcome.status = b.status if b else outcome.status
    outcome.notes.append(f"backfill {backfill_id} was canceled ({outcome.status.value})")


def _fail_orphans(instance: dg.DagsterInstance, backfill_id: str, daemon: DaemonProcess,
                  outcome: BackfillOutcome) -> None:
    """Runs still marked in progress once robodata's daemon and its process group (the code server, their
    run workers) are gone: this backfill's, and any the daemon launched meanwhile. Left as they are they would
    hold run-queue slots (``max_concurrent_runs``) for ever: the default run launcher cannot tell that their
    worker died, so run monitoring would not catch them either."""
    since = datetime.fromtimestamp(daemon.started_at - 1, tz=UTC)
    running = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    runs = {r.run_id: r for r in backfill_runs(instance, backfill_id) if r.status in running}
    # Launched through a code server (a daemon's): not a run executing in some other process of its own.
    runs.update({r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(statuses=running, created_after=since))
                 if ".dagster/grpc_info" in r.tags})
    for run in runs.values():
        instance.report_run_failed(run, "robodata stopped the dagster-daemon it had started for a backfill "
                                        f"({backfill_id}) while this run was in progress")
        outcome.notes.append(f"run {run.run_id} was still in progress when the daemon stopped: marked failed")


# ---- the report ------------------------------------------------------------------------------------------------


@dataclass
class PartitionRow:
    """One asset partition of a backfill: what became of it, in which run, what it produced."""

    partition: str  # "" for an unpartitioned asset
    asset: str
    status: str  # materialized | failed | canceled | not run
    run_id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "materialized" and all(self.checks.values())


def _run_partitions(run: dg.DagsterRun, known: list[str]) -> list[str]:
    tags = run.tags
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start and start == end:
        return [start]
    if start and end and start in known and end in known:
        return known[known.index(start): known.index(end) + 1]
    return []


@dataclass
class _RunDetails:
    error: str = ""  # a failed run's error: the user's message, not Dagster's wrapper
    checks: dict[tuple[str, str], dict[str, bool]] = field(default_factory=dict)  # (asset, partition) -> checks
    materialized: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # -> metadata


def _run_details(instance: dg.DagsterInstance, run_id: str) -> _RunDetails:
    """What one run did, from its own events (not the asset's latest materialization: another run, a sensor's
    or automation's, may have materialized the same partition since)."""
    out = _RunDetails()
    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE,
             dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.ASSET_MATERIALIZATION}
    for entry in instance.all_logs(run_id, of_type=kinds):
        ev = entry.dagster_event
        if ev is None:
            continue
        data: Any = ev.event_specific_data
        if ev.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and data is not None:
            mat = data.materialization
            out.materialized[(mat.asset_key.to_user_string(), mat.partition or "")] = {
                k: getattr(v, "value", v) for k, v in mat.metadata.items() if k != "overview"}
        elif ev.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION and data is not None:
            out.checks.setdefault((data.asset_key.to_user_string(), ev.partition or ""), {})[data.check_name] = \
                data.passed
        elif ev.event_type == dg.DagsterEventType.STEP_FAILURE and not out.error and data is not None:
            ufd = getattr(data, "user_failure_data", None)
            if ufd is not None and getattr(ufd, "description", None):
                out.error = ufd.description
            elif getattr(data, "error", None) is not None:
                e: Any = data.error
                while getattr(e, "cause", None) is not None:
                    e = e.cause
                out.error = " ".join((e.message or "").split())
        elif ev.event_type == dg.DagsterEventType.RUN_FAILURE and not out.error:
            out.error = " ".join((ev.message or "run failed").split())
    return out


def backfill_report(instance: dg.DagsterInstance, defs: dg.Definitions, backfill_id: str) -> list[PartitionRow]:
    """One row per asset partition the backfill targeted, from its runs' own events."""
    backfill = instance.get_backfill(backfill_id)
    if backfill is None:
        raise BackfillError(f"backfill {backfill_id} is not in the instance")
    graph = defs.resolve_asset_graph()
    data = backfill.get_asset_backfill_data(graph)
    runs = backfill_runs(instance, backfill_id)  # newest first: a retried partition shows its last run
    details = {r.run_id: _run_details(instance, r.run_id) for r in runs}
    known_by_def: dict[int, list[str]] = {}
    rows = []
    for akp in sorted(data.target_subset.iterate_asset_partitions(),
                      key=lambda a: (a.partition_key or "", a.asset_key.to_user_string())):
        asset, part = akp.asset_key, akp.partition_key
        name, pkey = asset.to_user_string(), part or ""
        pdef = graph.get(asset).partitions_def
        if pdef is not None and id(pdef) not in known_by_def:
            known_by_def[id(pdef)] = list(pdef.get_partition_keys(dynamic_partitions_store=instance))
        known = known_by_def.get(id(pdef), []) if pdef is not None else []
        covering = [r for r in runs if asset in (r.asset_selection or set())
                    and (part is None or part in _run_partitions(r, known))]
        run = next((r for r in covering if (name, pkey) in details[r.run_id].materialized),
                   covering[0] if covering else None)
        row = PartitionRow(pkey, name, "not run", run.run_id if run else "")
        d = details[run.run_id] if run is not None else _RunDetails()
        if akp in data.materialized_subset:
            row.status = "materialized"
        elif run is not None and run.status == dg.DagsterRunStatus.CANCELED:
            row.status = "canceled"
        elif akp in data.failed_and_downstream_subset:
            row.status = "failed"
        row.metadata = dict(d.materialized.get((name, pkey), {}))
        if run is not None and part is not None and row.metadata:
            n = len(_run_partitions(run, known))
            if n > 1:
                row.metadata["run_partitions"] = n  # one result for the whole run: its numbers are totals
        row.checks = d.checks.get((name, pkey)) or d.checks.get((name, ""), {})
        if row.status == "canceled":
            row.error = f"run {run.run_id[:8] if run else ''} was canceled"
        elif row.status != "materialized":
            row.error = d.error or ("a run upstream of it failed" if run is None else
                                    "run failed" if row.status == "failed" else "")
        failed_checks = [c for c, ok in row.checks.items() if not ok]
        if failed_checks:
            row.error = f"{row.error + '; ' if row.error else ''}failed checks: {', '.join(failed_checks)}"
        rows.append(row)
    return rows


def report_table(rows: Sequence[PartitionRow]) -> str:
    several = len({r.asset for r in rows}) > 1
    head = f"{'partition':44s} {'asset':18s} " if several else f"{'partition':44s} "
    lines = [f"{head}{'ok':3s} {'status':12s} {'run':8s} {'episodes':>8s} {'frames':>7s}  note"]
    for r in rows:
        m = r.metadata
        note = r.error[:110] if r.error else (
            f"release {m['release']}" if "release" in m
            else f"{m['recordings_published']} of {m['recordings_total']} recordings published"
            if "recordings_total" in m else "")
        cell = f"{r.partition or '(unpartitioned)':44s} " + (f"{r.asset:18s} " if several else "")
        lines.append(f"{cell}{'yes' if r.ok else 'NO':3s} {r.status:12s} {r.run_id[:8]:8s} "
                     f"{m.get('episodes', ''):>8} {m.get('frames', ''):>7}  {note}")
    failed = [r for r in rows if r.error]
    if failed:  # the notes above are cut short; the whole error of each failed partition
        lines.append("")
        lines += [f"{r.partition or '(unpartitioned)'}{' ' + r.asset if several else ''}: {r.error}" for r in failed]
    return "\n".join(lines)
