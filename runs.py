"""Driving the Dagster code location from Python and the CLI (part of the code location, never the library).

It opens the project's Dagster instance (SQLite under the project home unless ``$DAGSTER_HOME`` says
otherwise; PostgreSQL where the config's ``instance.storage`` says so), ticks the real ``new_recordings``
sensor, and executes runs against that instance, so that everything done here shows up in the UI exactly as
if the daemon had done it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robodata.config import INSTANCE_PG_URL_ENV, ProjectConfig, load_config
from robodata.errors import RobodataError

_DAGSTER_YAML = """\
# Written by robodata: an embedded Dagster instance ({storage}) under the project home.
telemetry:
  enabled: false
{storage_block}concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 2
# The daemon marks a run whose worker died as failed and frees its pool slots; a run that died for such an
# infrastructure reason is retried (twice), a run that failed on the data is not.
run_monitoring:
  enabled: true
  start_timeout_seconds: 600
  poll_interval_seconds: 30
  max_resume_run_attempts: 0
  free_slots_after_run_end_seconds: 60
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
"""
PG_SERVICE = "the Dagster instance"
PG_SCHEME = "postgresql+psycopg2"  # the SQLAlchemy driver dagster-postgres installs


class InstanceUnreachable(RobodataError):
    """The Dagster instance's database (PostgreSQL) cannot be reached: at start, or gone during a run."""


def dagster_yaml(cfg: ProjectConfig) -> str:
    """The instance's dagster.yaml for ``cfg``: SQLite by default; with ``instance.storage: postgres`` one
    dagster-postgres ``storage:`` block (runs, event log, schedules), its password (or whole URL) read by
    Dagster from the environment, so that no secret is ever written to the file."""
    if cfg.instance.storage == "sqlite":
        return _DAGSTER_YAML.format(storage="SQLite", storage_block="")
    pg = cfg.instance.postgres
    if os.environ.get(INSTANCE_PG_URL_ENV):
        where = f"PostgreSQL from ${INSTANCE_PG_URL_ENV}"
        block = f"storage:\n  postgres:\n    postgres_url:\n      env: {INSTANCE_PG_URL_ENV}\n"
    else:
        where = f"PostgreSQL at {pg.host}:{pg.port}/{pg.db}"
        password = f"      password:\n        env: {pg.pass_env}\n" if pg.pass_env else ""
        # the driver named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, dagster-postgres brings psycopg2
        block = (f"storage:\n  postgres:\n    postgres_db:\n      username: {json.dumps(pg.username)}\n{password}"
                 f"      hostname: {json.dumps(pg.host)}\n      db_name: {json.dumps(pg.db)}\n      port: {pg.port}\n"
                 f"      scheme: {PG_SCHEME}\n")
    return _DAGSTER_YAML.format(storage=where, storage_block=block)


def _postgres_target(cfg: ProjectConfig) -> tuple[str, str]:
    """(the libpq URL robodata connects to, ``host:port`` as shown in errors) of the instance's PostgreSQL."""
    from urllib.parse import quote, urlsplit

    url = os.environ.get(INSTANCE_PG_URL_ENV)
    if url:
        u = urlsplit(url)
        where = f"{u.hostname}:{u.port or 5432}"
        if u.scheme != PG_SCHEME and importlib.util.find_spec("psycopg") is None:
            raise InstanceUnreachable(f"PostgreSQL at {where} ({PG_SERVICE}): ${INSTANCE_PG_URL_ENV} must start with "
                                      f"{PG_SCHEME}:// (SQLAlchemy reads {u.scheme}:// as a driver that is not "
                                      "installed; dagster-postgres brings psycopg2)")
        return url.replace(f"{PG_SCHEME}://", "postgresql://", 1), where
    pg = cfg.instance.postgres
    password = ""
    if pg.pass_env:
        if not os.environ.get(pg.pass_env):
            raise InstanceUnreachable(f"PostgreSQL at {pg.host}:{pg.port} ({PG_SERVICE}): ${pg.pass_env} is not set "
                                      "(instance.postgres.pass_env names the variable that holds the password)")
        password = ":" + quote(os.environ[pg.pass_env], safe="")
    return (f"postgresql://{quote(pg.username, safe='')}{password}@{pg.host}:{pg.port}/{quote(pg.db, safe='')}",
            f"{pg.host}:{pg.port}")


def check_instance_reachable(cfg: ProjectConfig, *, timeout_s: int = 5) -> None:
    """With PostgreSQL storage: connect once (``timeout_s``), or raise one :class:`InstanceUnreachable` naming the
    service and its address, before anything starts (else Dagster retries and fails deep inside a run)."""
    if cfg.instance.storage != "postgres":
        return
    try:
        import dagster_postgres  # noqa: F401 - what the dagster.yaml's storage block loads
        import psycopg2
    except ImportError:
        raise InstanceUnreachable("instance.storage: postgres needs dagster-postgres (and psycopg2): "
                                  "pip install 'robodata[platform]'") from None
    from robodata.secrets import redact

    url, where = _postgres_target(cfg)
    try:
        psycopg2.connect(url, connect_timeout=timeout_s).close()
    except psycopg2.Error as err:
        why = redact(" ".join(str(err).split())) or type(err).__name__
        raise InstanceUnreachable(f"PostgreSQL at {where} ({PG_SERVICE}) is not reachable: {why}") from None


_WRITTEN_BY = "# Written by robodata"
OWNER_TAG = "robodata/owner"  # host-pid-start of the process executing a CLI run (robodata.owner)
# Runs this process executed whose end it could not record (the instance's database went away mid-run): ended by
# the next sweep (:func:`sweep_dead_runs`) once the database is back; another process ends them by their owner.
_UNRECORDED_ENDS: set[str] = set()


@dataclass
class RunOutcome:
    partition: str
    success: bool
    run_id: str
    error: str = ""
    metadata: dict[str, Any] | None = None
    checks: dict[str, bool] | None = None
    recording: str = ""  # `robodata ingest`: the recording the partition's run was for


def prepare_home(cfg: ProjectConfig) -> Path:
    """Create the project home (Dagster instance folder, landing zone, store) and point DAGSTER_HOME at it."""
    home = Path(os.environ.get("DAGSTER_HOME") or cfg.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    dagster_yaml_file = home / "dagster.yaml"
    # ours (first line) and out of date (settings, or the storage: SQLite <-> PostgreSQL): rewritten; a
    # dagster.yaml somebody else wrote is left alone
    want = dagster_yaml(cfg)
    if not dagster_yaml_file.exists() or (dagster_yaml_file.read_text().startswith(_WRITTEN_BY)
                                          and dagster_yaml_file.read_text() != want):
        dagster_yaml_file.write_text(want)
    os.environ["DAGSTER_HOME"] = str(home)
    if "://" not in cfg.landing_url:
        Path(cfg.landing_url).mkdir(parents=True, exist_ok=True)
    if "://" not in cfg.storage_url:
        Path(cfg.storage_url).mkdir(parents=True, exist_ok=True)
    if cfg.source_file:
        os.environ.setdefault("ROBODATA_CONFIG", cfg.source_file)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    check_instance_reachable(cfg)
    return home


def instance_and_defs(cfg: ProjectConfig):
    """The project's Dagster instance and the code location built for ``cfg`` (its ``--set`` overrides too:
    engines and launchers are resources chosen from it). What this process starts from here on (Ray, a
    daemon) is cleaned up when it ends, even by ``kill -9`` (:func:`robodata.owner.start_reaper`)."""
    from robodata.owner import start_reaper

    start_reaper()
    prepare_home(cfg)
    import dagster as dg

    from robodata_dagster.definitions import build_definitions

    instance = dg.DagsterInstance.get()
    defs = build_definitions(cfg)
    init_pools(instance, asset_pools(defs))
    return instance, defs


def asset_pools(defs: Any) -> list[str]:
    """The pools the code location's steps claim slots of (their op tag ``dagster/concurrency_key``)."""
    pools = set()
    for asset in defs.assets or ():
        node = getattr(asset, "node_def", None)
        pool = (getattr(node, "tags", None) or {}).get("dagster/concurrency_key")
        if pool:
            pools.add(pool)
    return sorted(pools)


def init_pools(instance: Any, pools: list[str]) -> None:
    """Create the assets' pools (at the default limit) before any run claims a slot. Dagster creates a pool on
    its first claim by an insert that, on a duplicate key, is followed by an update in the same transaction:
    on PostgreSQL the failed insert has already aborted that transaction, so two runs making the same pool's
    first claim at once fail one of them ("current transaction is aborted"). Made here, a race between two
    processes starting together is retried: the loser finds the pool the winner made."""
    storage = instance.event_log_storage
    for pool in pools:
        for attempt in range(3):
            try:
                if pool not in storage.get_concurrency_keys():
                    storage.initialize_concurrency_limit_to_default(pool)
                break
            except Exception:  # the other process's insert won: look again
                if attempt == 2:
                    raise
                time.sleep(0.2)


def tick_sensor(instance: Any, defs: Any, *, wait_settle: bool = True, evaluations: int = 2
                ) -> tuple[list[Any], str | None]:
    """Evaluate ``new_recordings`` against the instance as the daemon would, ``evaluations`` ticks in a row
    (a file is taken once it is unchanged on two ticks); returns the run requests and the last skip reason.

    The cursor is kept in the instance folder, so repeated CLI ticks never request the same file twice.
    """
    import dagster as dg

    from robodata_dagster.sensors.new_recordings import SENSOR_NAME

    cursor_file = Path(os.environ["DAGSTER_HOME"]) / "cli_sensor_cursor.json"
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    resources = {"project": defs.resources["project"]}
    requests: list[Any] = []
    skip: str | None = None
    settle = defs.resources["project"].config.landing.settle_seconds
    for i in range(evaluations):
        if wait_settle and i:
            time.sleep(settle + 0.2)
        cursor = cursor_file.read_text() if cursor_file.exists() else None
        with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as ctx:
            result = sensor(ctx)
        for req in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        if result.cursor:
            cursor_file.write_text(result.cursor)
        requests += list(result.run_requests or [])
        skip = result.skip_reason
    return requests, (None if requests else skip)


def sweep_dead_runs(instance: Any, *, fix: bool = True) -> list[str]:
    """Fail the runs a killed process left STARTED, and free their pool slots (else every later ingest
    waits on "Step blocked by limit for pool ingest" for ever). A CLI run executes in the CLI's own process,
    a daemon's in a run worker of the code server; neither is seen by Dagster's run monitoring with the
    default run launcher. Their ``robodata/owner`` tag says which process that is (set by the CLI, or by the
    project resource in the run worker), and a run whose owner is provably gone (robodata.owner) is ended. Returns the run ids ended (with
    ``fix`` False: those that would be, nothing changed)."""
    import dagster as dg

    from robodata.owner import Owner

    ended = []
    live = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=live)):
        owner = Owner.parse(run.tags.get(OWNER_TAG, ""))
        mine = run.run_id in _UNRECORDED_ENDS
        if not mine and (owner is None or not owner.gone()):
            continue
        if not fix:
            ended.append(run.run_id)
            continue
        why = ("the instance's database went away while this process executed the run, so its end was never "
               "recorded; robodata marked the run failed and freed its concurrency slots" if mine else
               f"the process executing this run (pid {owner.pid if owner else '?'}) is gone (killed?); "
               "robodata marked the run failed and freed its concurrency slots")
        instance.report_run_failed(run, why)
        _UNRECORDED_ENDS.discard(run.run_id)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        ended.append(run.run_id)
    if fix:  # slots still held by runs that ended (a run worker that died: the code server failed its run)
        storage = instance.event_log_storage
        for pool in storage.get_concurrency_keys():
            for run_id in storage.get_concurrency_info(pool).active_run_ids:
                run = instance.get_run_by_id(run_id)
                if run is None or run.is_finished:
                    storage.free_concurrency_slots_for_run(run_id)
    return ended


def run_partitions(instance: Any, defs: Any, job_name: str, keys: list[str], *, tags: dict[str, str] | None = None,
                   progress: Any = None, quiet_console: bool = True,
                   overrides: dict[str, Any] | None = None) -> list[RunOutcome]:
    """Execute ``job_name`` once per partition key against the instance (visible in the UI). Runs a killed
    CLI left behind are ended first (:func:`sweep_dead_runs`)."""
    from dagster._core.utils import make_new_run_id

    from robodata.owner import Owner

    sweep_dead_runs(instance)
    job = defs.resolve_job_def(job_name)
    owner = Owner.me().token()
    outcomes = []
    for i, key in enumerate(keys):
        if progress:
            progress(i, len(keys), key)
        run_tags = {"robodata/launched_by": "cli", OWNER_TAG: owner, **(tags or {})}
        # Runs log to the instance (the UI shows every event and traceback); the terminal gets our summary.
        run_config: dict[str, Any] = {}
        if quiet_console:
            run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
        if overrides:  # `--set key=value` reaches the assets through the project resource's config
            run_config["resources"] = {"project": {"config": {"overrides_json": json.dumps(overrides)}}}
        run_id = make_new_run_id()
        try:
            res = job.execute_in_process(instance=instance, partition_key=key or None, tags=run_tags,
                                         raise_on_error=False, run_config=run_config, run_id=run_id)
        except Exception as exc:
            _raise_if_instance_lost(instance, run_id, key, exc)
            raise
        if not res.success:  # Dagster may have swallowed the database's failure into a failed run
            _raise_if_instance_lost(instance, run_id, key, None)
        err = ""
        meta: dict[str, Any] = {}
        if not res.success:
            for ev in res.all_events:
                if ev.is_failure and ev.event_specific_data is not None:
                    e = getattr(ev.event_specific_data, "error", None)
                    desc = getattr(ev.event_specific_data, "user_failure_data", None)
                    if desc is not None and getattr(desc, "description", None):
                        err = desc.description
                    elif e is not None:
                        while getattr(e, "cause", None) is not None:  # the user's error, not Dagster's wrapper
                            e = e.cause
                        err = " ".join((e.message or str(e)).split())
                        if ": " in err and err.split(": ", 1)[0].replace(".", "").replace("_", "").isalnum():
                            err = err.split(": ", 1)[1]  # drop the exception's class name
                    if err:
                        break
        for mat in res.get_asset_materialization_events():
            m = mat.materialization
            meta = {k: getattr(v, "value", v) for k, v in m.metadata.items() if k != "overview"}
        checks = {ev.check_name: ev.passed for ev in res.get_asset_check_evaluations()}
        failed = [k for k, ok in checks.items() if not ok]
        if not res.success and failed:
            err = f"{err + '; ' if err else ''}failed checks: {', '.join(failed)}"
        elif not res.success and not err:
            err = "run failed"
        outcomes.append(RunOutcome(key, res.success, res.run_id, err, meta, checks))
    if progress:
        progress(len(keys), len(keys), "")
    return outcomes


def instance_postgres_url(instance: Any) -> str | None:
    """The PostgreSQL URL the instance's run storage uses (with its password), or None (SQLite, ...)."""
    url = getattr(instance.run_storage, "postgres_url", None)
    return url if isinstance(url, str) else None


def _raise_if_instance_lost(instance: Any, run_id: str, key: str, err: BaseException | None) -> None:
    """After a run raised (``err``) or failed: when the instance's PostgreSQL is unreachable now, remember that
    the run's end is unrecorded and raise one :class:`InstanceUnreachable` naming the service, its address and
    the run; otherwise return (the run failed on its own)."""
    url = instance_postgres_url(instance)
    if url is None:
        return
    from urllib.parse import urlsplit

    import psycopg2

    from robodata.secrets import redact

    u = urlsplit(url)
    try:
        psycopg2.connect(url.replace(f"{PG_SCHEME}://", "postgresql://", 1), connect_timeout=5).close()
        return
    except psycopg2.Error as gone:
        why = redact(" ".join(str(gone).split())) or type(gone).__name__
    _UNRECORDED_ENDS.add(run_id)
    try:  # the database may be back already
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            sweep_dead_runs(instance)
    except Exception:  # noqa: BLE001 - still gone: the next sweep ends the run
        pass
    raise InstanceUnreachable(
        f"PostgreSQL at {u.hostname}:{u.port or 5432} ({PG_SERVICE}) went away during run {run_id}"
        f"{' of partition ' + key if key else ''}: {why}; the run is marked failed once the database is back "
        "(the next robodata run or `robodata doctor --fix`); outputs are published whole or not at all, rerun it") from err


def register_and_ingest(path: str | Path, config: str | None = None, *, under: str = "") -> RunOutcome:
    """``robodata ingest PATH``: land the file, register it through the sensor's own registration path (one
    dedup rule: a copy of bytes already ingested is recognised in the run), and ingest it now."""
    from robodata.landing import LandingError, landing_zone, register_landed
    from robodata.registry import DUPLICATE, FAILED, REGISTERED, LandedRow, Registry
    from robodata_dagster.assets.partitions import ROBOTS, robot_of

    cfg = load_config(config)
    instance, defs = instance_and_defs(cfg)
    landing = landing_zone(cfg)
    src = Path(path)
    if not src.exists():
        raise LandingError(f"{src}: no such file or folder")
    from robodata.pathkind import detect, find_rosbag2_folder

    bag = find_rosbag2_folder(src) is not None
    if not (landing.takes(src.name, src.is_dir()) or bag or detect(src) is not None):
        raise LandingError(f"{src}: not something robodata can ingest (a .mcap file, a ROS 1 .bag, a ROS 2 bag "
                           "folder, an Isaac Lab .hdf5 episode store, or what a configured datasource takes); "
                           "nothing was landed")
    landed = landing.land(src, under=under)  # `under`: e.g. robot-17/2026-12-01, as the fleet lands them
    rel = str(landed) if landing.local_root is None else landed.relative_to(landing.local_root).as_posix()
    f = landing.info(rel)
    if f is None or f.refused:
        raise LandingError(f"{landing.url}/{rel}: {'vanished after landing' if f is None else f.refused}")
    registry = Registry(cfg.registry_url)
    now = time.time()
    with registry.engine.begin() as conn:
        rec, _ = register_landed(conn, registry, landing, f, tick=0, now=now, settings=cfg.landing)
        registry.put_landed(conn, landing.url, LandedRow(f.name, f.size, f.mtime, f.etag, REGISTERED, 2, rec.key, now))
    if rec.note:
        print(f"robodata ingest: {rec.url}: {rec.note}", file=sys.stderr)
    instance.add_dynamic_partitions(ROBOTS, [robot_of(rec.partition_key)])
    outcome = run_partitions(instance, defs, "ingest_recordings", [rec.partition_key])[0]
    # The run ingests the partition (this robot's day); the outcome is this recording's.
    mine = registry.outputs("raw_teleop", [rec.key]).get(rec.key)
    entry = registry.lookup(rec.key)
    if mine is not None and mine.status == FAILED:
        outcome.success, outcome.error = False, mine.note
    elif entry.status == DUPLICATE:
        outcome.error = f"the same bytes as recording {entry.duplicate_of}: not ingested again"
    outcome.recording = rec.key
    return outcome


def summary_table(outcomes: list[RunOutcome]) -> str:
    """One line per partition run: recordings published of those in the partition, episodes (demos for the
    synthetic and augmented tiers), frames, drops."""
    lines = [f"{'partition':40s} {'ok':3s} {'recordings':>10s} {'episodes':>8s} {'frames':>7s} {'dropped':>7s}  note"]
    for o in outcomes:
        m = o.metadata or {}
        recs = f"{m['recordings_published']}/{m['recordings_total']}" if "recordings_total" in m else ""
        note = o.error[:100] if o.error else (m.get("release") or "")
        lines.append(
            f"{o.partition or '-':40s} {'yes' if o.success else 'NO':3s} {recs:>10s} "
            f"{m.get('episodes', m.get('demos', m.get('demos_out', ''))):>8} "
            f"{m.get('frames', m.get('frames_out', '')):>7} {m.get('dropped_frames', ''):>7}  {note}"
        )
    return "\n".join(lines)
