"""Partitions shared by the per-recording tiers, and how a tier runs one of them.

A partition is one robot's recordings of one UTC day: ``dg.MultiPartitionsDefinition`` of a daily dimension
(``date``, from ``landing.start_date``) and a dynamic one (``robot``, added by the sensor as robots appear).
100 robots for a year are 36,500 partitions per asset, inside Dagster's guidance (~100,000), where one
partition per recording (tens of thousands a month) would not be. The recordings of a partition are rows of
the registry; each tier keeps, per recording, the version of the inputs it used and of what it wrote
(``robodata_outputs``), so a run for a partition does only the recordings whose inputs changed, and the
partition's data version is the digest of its recordings' versions: an unchanged re-run starts nothing
downstream, a new recording landing in the partition changes it.
"""

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from robodata.config import ProjectConfig
from robodata.errors import is_transient
from robodata.registry import FAILED, INGESTED, PUBLISHED, QUARANTINED, REGISTERED, Output, Recording, Registry
from robodata.stages.base import CheckResult

ROBOTS = "robots"
EVERY_RECORDING = "every_recording_published"  # each tier's non-blocking check: none quarantined or failed
DUPLICATE_RESULT = "duplicate"
NOT_EVALUATED = "checks_not_evaluated"  # in a recording's output summary: its checks the output could not decide


@functools.lru_cache(maxsize=8)
def _fleet(start_date: str) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({
        "date": dg.DailyPartitionsDefinition(start_date=start_date, end_offset=1),  # today's is open
        "robot": dg.DynamicPartitionsDefinition(name=ROBOTS),
    })


def fleet_partitions(cfg: ProjectConfig | None = None) -> dg.MultiPartitionsDefinition:
    """The robot x day partitions of ``cfg`` (one object per start date, shared by every tier)."""
    return _fleet((cfg or ProjectConfig()).landing.start_date)


_BACKOFF = {"exponential": dg.Backoff.EXPONENTIAL, "linear": dg.Backoff.LINEAR}
_JITTER = {"plus_minus": dg.Jitter.PLUS_MINUS, "full": dg.Jitter.FULL, "none": None}


def retry_policy(cfg: ProjectConfig | None = None) -> dg.RetryPolicy:
    """The step retry policy of every tier (``retries:`` in the config): a transient fault re-raised by
    :func:`failures_classified` is retried with backoff and jitter; a ``dg.Failure(allow_retries=False)``
    (the data's or the config's fault) never is."""
    r = (cfg or ProjectConfig()).retries
    return dg.RetryPolicy(max_retries=r.max_retries, delay=r.delay_s, backoff=_BACKOFF[r.backoff],
                          jitter=_JITTER[r.jitter])


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


_RETRIED = "_robodata_step_retried"  # set on a fault already let through for the step's retry (nested blocks)


@contextlib.contextmanager
def failures_classified(context: dg.AssetExecutionContext, what: str) -> Iterator[None]:
    """The one place a tier's exceptions become Dagster's: a transient fault (:func:`robodata.errors.is_transient`)
    goes up as it is while the step's retry policy has retries left (the step is retried, with backoff), and on
    the last attempt as one ``dg.Failure`` saying how many attempts failed; anything else (a bad file, a bad
    setting, a bug) as one ``dg.Failure(allow_retries=False)`` with its message, run once. ``what`` names the
    step ("raw_teleop partition 2026-12-01|robot-a"). Blocks may nest (an asset's setup, then
    :func:`downstream_tier`): the innermost decides."""
    try:
        yield
    except (dg.Failure, dg.RetryRequested):
        raise
    except Exception as err:
        if getattr(err, _RETRIED, False):
            raise
        if not is_transient(err):
            raise dg.Failure(description=f"{what}: {_one_line(err)}", allow_retries=False) from err
        policy = context.op_def.retry_policy
        attempt, attempts = context.retry_number + 1, 1 + (policy.max_retries if policy else 0)
        if attempt < attempts:
            context.log.warning(f"{what}: a transient fault on attempt {attempt} of {attempts} "
                                f"({type(err).__name__}: {_one_line(err)}); the step is retried")
            with contextlib.suppress(AttributeError):  # an exception type with __slots__ keeps no flag
                setattr(err, _RETRIED, True)
            raise
        raise dg.Failure(description=f"{what}: still failing after {attempts} attempt(s) on a transient fault "
                         f"({type(err).__name__}): {_one_line(err)}", allow_retries=False) from err


def robot_of(partition: str) -> str:
    return partition.split("|", 1)[1] if "|" in partition else partition


def every_recording_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(EVERY_RECORDING, asset=asset, blocking=False,
                             description="Every recording of the partition was processed and published (none "
                                         "quarantined by a blocking check, none failed)")


@dataclass
class Todo:
    """A recording a tier's run must (re)make, and the version of the inputs it makes it from."""

    rec: Recording
    input_version: str
    upstream: Output | None = None


@dataclass
class Result:
    """What a tier made of one recording."""

    key: str
    status: str  # PUBLISHED, QUARANTINED, FAILED or DUPLICATE_RESULT
    version: str = ""
    checks: Sequence[CheckResult] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    error: str = ""


@dataclass
class Plan:
    tier: str
    partition: str
    todo: list[Todo]
    current: dict[str, Output]  # up to date: their inputs are the same as last time
    candidates: list[Recording]
    code_version: str = ""
    upstream: str | None = None
    started: float = field(default_factory=time.monotonic)  # when the run planned it (its duration's start)


def plan_partition(registry: Registry, tier: str, partition: str, code_version: str,
                   upstream_tier: str | None, *, only_tick: int | None = None) -> Plan:
    """Which recordings of ``partition`` ``tier`` must make now. The first tier (``upstream_tier`` None) takes
    every recording not found to be a duplicate or superseded; a later one those whose upstream output is
    published. A recording is up to date when its inputs' version (this tier's code version and the upstream
    output's version) is the one its output was made from. ``only_tick``: a sensor's run makes only the
    recordings its tick registered (a run of the same partition from an earlier tick may still be going)."""
    from robodata_dagster.assets.versions import digest

    if upstream_tier is None:
        recs = registry.in_partition(partition, status=[REGISTERED, INGESTED, FAILED])
        ups: dict[str, Output] = {}
    else:
        recs = registry.in_partition(partition, status=[INGESTED])
        ups = registry.outputs(upstream_tier, [r.key for r in recs])
        recs = [r for r in recs if r.key in ups and ups[r.key].status == PUBLISHED]
    mine = registry.outputs(tier, [r.key for r in recs])
    todo, current = [], {}
    for r in recs:
        up = ups.get(r.key)
        iv = digest(code_version, up.version if up is not None else r.key)
        had = mine.get(r.key)
        if had is not None and had.input_version == iv and had.status in (PUBLISHED, QUARANTINED):
            current[r.key] = had
        elif only_tick is None or r.tick == only_tick:
            todo.append(Todo(r, iv, up))
    return Plan(tier, partition, todo, current, recs, code_version, upstream_tier)


def run_each(todo: Sequence[Todo], make: Callable[[Todo], Result], errors: tuple[type[BaseException], ...],
             keep: Callable[[Sequence[Result]], None] | None = None) -> list[Result]:
    """``make`` each recording in turn; an error of its data fails that recording only, named (``errors``
    with their message as is, any other with its type). A transient fault (:func:`robodata.errors.is_transient`)
    stops the run: ``keep`` records what was made so far (a retry makes only the rest), and the fault goes up
    for the step's retry policy."""
    out: list[Result] = []
    for t in todo:
        try:
            out.append(make(t))
        except Exception as err:
            if is_transient(err):
                if keep is not None:
                    keep(out)
                raise
            why = str(err) if isinstance(err, errors) else f"{type(err).__name__}: {_one_line(err)}"
            out.append(Result(t.rec.key, FAILED, error=f"recording {t.rec.key} ({t.rec.url}): {why}"))
    return out


def keep_made(registry: Registry, plan: Plan, results: Sequence[Result]) -> None:
    """Record the recordings an attempt published or quarantined before a transient fault stopped it: each
    output is whole (published atomically), so the step's retry finds them up to date and makes only the rest.
    Failed ones are not recorded: the retry makes them again."""
    by_key = {t.rec.key: t for t in plan.todo}
    now = time.time()
    for r in results:
        if r.status in (PUBLISHED, QUARANTINED):
            t = by_key[r.key]
            unevaluated = [c.name for c in r.checks if c.metadata.get("evaluated") is False]
            registry.put_output(Output(plan.tier, r.key, plan.partition, t.input_version, r.version, r.status,
                                       r.path, {c.name: bool(c.passed) for c in r.checks},
                                       {**r.summary, **({NOT_EVALUATED: unevaluated} if unevaluated else {})}, now))


def finish_partition(context: dg.AssetExecutionContext, registry: Registry, plan: Plan, results: Sequence[Result],
                     specs: Sequence[dg.AssetCheckSpec], metadata: Mapping[str, Any] | None = None, *,
                     asset_key: str | None = None) -> dg.MaterializeResult | None:
    """Record each result in the registry and turn the partition's recordings into one materialization.

    - A partition where nothing could be made (every recording failed) fails the run with each error, naming
      its file; a multi_asset's (``asset_key``) where every recording is a duplicate materializes nothing
      (None); a later tier's partition with no published upstream recording fails, saying so.
    - A check passes when every recording passed it. A blocking one also passes when the partition still
      publishes something: a recording that failed it is quarantined (not published, excluded downstream and
      from releases), listed in the check's metadata and in the failing :data:`EVERY_RECORDING` check, and
      does not hold back the robot's other recordings of that day.
    - The data version is the digest of the published recordings' versions.
    """
    from robodata_dagster.assets.versions import digest

    now = time.time()
    by_key = {t.rec.key: t for t in plan.todo}
    failed: dict[str, str] = {}
    for r in results:
        t = by_key[r.key]
        if r.status == DUPLICATE_RESULT:
            continue
        if r.status == FAILED:
            failed[r.key] = r.error
            context.log.error(r.error)
        unevaluated = [c.name for c in r.checks if c.metadata.get("evaluated") is False]
        registry.put_output(Output(plan.tier, r.key, plan.partition, t.input_version, r.version, r.status, r.path,
                                   {c.name: bool(c.passed) for c in r.checks},
                                   {**r.summary, **({NOT_EVALUATED: unevaluated} if unevaluated else {})}, now, r.error))
    from robodata import metrics_hooks

    metrics_hooks.partition_finished(plan.tier, time.monotonic() - plan.started, cfg=_config_of(context),
                                     run_id=context.run_id, partition=plan.partition)
    # The partition as the registry has it now: a run of the same partition that finished meanwhile (another
    # tick's) is in it, and a recording found to be a copy or superseded meanwhile is not.
    plan = plan_partition(registry, plan.tier, plan.partition, plan.code_version, plan.upstream)
    made = {t.rec.key for t in by_key.values()}
    outputs = registry.outputs(plan.tier, [r.key for r in plan.candidates])
    rows = {k: o for k, o in outputs.items() if o.status in (PUBLISHED, QUARANTINED) and k not in failed}
    # failed in this run, or in an earlier one and not made again since (a sensor run makes only its tick's)
    failing = {**{k: o.note for k, o in outputs.items() if o.status == FAILED}, **failed}
    if not rows:
        if failed:
            raise dg.Failure(description="; ".join(failed.values()), allow_retries=False,
                             metadata={"failed_recordings": dg.MetadataValue.json(failed)})
        if asset_key is not None:  # a multi_asset (raw_teleop): every recording was a copy; nothing to show
            return None
        raise dg.Failure(description=f"partition {plan.partition}: no recording here has a published "
                         "upstream output to start from", allow_retries=False)
    published = sorted(k for k, o in rows.items() if o.status == PUBLISHED)
    quarantined = sorted(k for k, o in rows.items() if o.status == QUARANTINED)
    findings: dict[str, list[str]] = {}  # check -> this run's findings, each naming its recording
    check_meta: dict[str, dict[str, Any]] = {}  # check -> its metadata, when the run made one recording
    for r in results:
        for c in r.checks:
            findings.setdefault(c.name, []).extend(f"{r.key}: {f}" for f in c.findings[:20])
            if len(results) == 1:
                check_meta[c.name] = dict(c.metadata)
    check_results = []
    for spec in specs:
        if spec.name == EVERY_RECORDING:
            continue
        # not evaluated (the output records too little to decide it): never passed, shown as a warning
        unevaluated = sorted(k for k, o in rows.items() if spec.name in o.summary.get(NOT_EVALUATED, ()))
        failed_it = sorted(k for k, o in rows.items()
                           if spec.name in o.checks and not o.checks[spec.name] and k not in unevaluated)
        passed = (not failed_it or (spec.blocking and bool(published))) and not unevaluated
        cmeta = {k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v
                for k, v in check_meta.get(spec.name, {}).items()}
        cmeta.update(recordings_checked=len([o for o in rows.values() if spec.name in o.checks]),
                    recordings_failing=dg.MetadataValue.json(failed_it))
        if unevaluated:
            cmeta.update(evaluated=False, recordings_not_evaluated=dg.MetadataValue.json(unevaluated))
        if findings.get(spec.name):
            cmeta["findings"] = dg.MetadataValue.json(findings[spec.name][:50])
        error = spec.blocking and (passed or bool(failed_it))
        check_results.append(dg.AssetCheckResult(
            asset_key=asset_key, check_name=spec.name, passed=passed, metadata=cmeta,
            severity=dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN))
    check_results.append(dg.AssetCheckResult(
        asset_key=asset_key, check_name=EVERY_RECORDING, passed=not quarantined and not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": dg.MetadataValue.json(quarantined), "failed": dg.MetadataValue.json(failing)}))
    first = next((rows[k] for k in published), None) or rows[sorted(rows)[0]]
    meta: dict[str, Any] = {
        "partition": plan.partition,
        "recordings_total": len(plan.candidates),
        "recordings_published": len(published),
        "recordings_made_now": len([r for r in results if r.status in (PUBLISHED, QUARANTINED)]),
        "recordings_unchanged": len([k for k in rows if k not in made]),
        "path": dg.MetadataValue.path(first.path),
        **{k: v for k, v in (metadata or {}).items() if k != "recordings"},  # the table below is the record
        "recordings": dg.MetadataValue.md(_table(plan, rows, failing, made)),
    }
    version = digest(plan.tier, [(k, rows[k].version) for k in published])
    return dg.MaterializeResult(asset_key=asset_key, metadata=meta, check_results=check_results,
                                data_version=dg.DataVersion(version))


def _config_of(context: dg.AssetExecutionContext) -> Any:
    """The run's project config, where the asset has the project resource (None otherwise)."""
    try:
        return context.resources.project.config
    except Exception:  # noqa: BLE001 - an asset without the resource: the metrics defaults
        return None


def _table(plan: Plan, rows: Mapping[str, Output], failed: Mapping[str, str], made: set[str]) -> str:
    """The partition's recordings as a Markdown table (the UI's per-recording view)."""
    lines = ["| recording | landed as | status | this run | profile | note |", "|---|---|---|---|---|---|"]
    for rec in plan.candidates[:200]:
        o = rows.get(rec.key)
        status = "failed" if rec.key in failed else (o.status if o else "-")
        note = (failed.get(rec.key) or (o.note if o else "") or rec.note or "").replace("|", "/")[:160]
        lines.append(f"| {rec.key} | {rec.name} | {status} | {'made' if rec.key in made else 'unchanged'} "
                     f"| {_profile_cell(o.summary if o else {})} | {note} |")
    if len(plan.candidates) > 200:
        lines.append(f"| ... {len(plan.candidates) - 200} more | | | | | |")
    return "\n".join(lines)


def _profile_cell(summary: Mapping[str, Any]) -> str:
    """A recording's profile in one cell: idle share and warnings, and where its HTML report is."""
    p = summary.get("profile") if isinstance(summary, Mapping) else None
    if not isinstance(p, Mapping):
        return ""
    idle = p.get("idle_fraction")
    head = f"idle {idle:.0%}, " if isinstance(idle, (int, float)) else ""
    return f"{head}{p.get('warning_count', 0)} warning(s): {p.get('profile_path', '')}".replace("|", "/")


def combined(summaries: Sequence[Mapping[str, Any]], additive: Sequence[str]) -> dict[str, Any]:
    """One run's per-recording summaries as one: the ``additive`` counts summed over the recordings made,
    everything else (settings, plots, rates) as the last recording's, and ``recordings_summed`` saying how
    many went in."""
    if not summaries:
        return {}
    out = dict(summaries[-1])
    for k in additive:
        vals = [s[k] for s in summaries if isinstance(s.get(k), (int, float)) and not isinstance(s.get(k), bool)]
        if vals:
            out[k] = sum(vals)
    out["recordings_summed"] = len(summaries)
    return out


def downstream_tier(context: dg.AssetExecutionContext, project: Any, tier: str, upstream: str, code_version: str,
                    specs: Sequence[dg.AssetCheckSpec], make: Callable[[Todo], Result],
                    metadata: Callable[[list[Result]], Mapping[str, Any]] | None = None) -> dg.MaterializeResult:
    """A later tier's run for its partition: plan, ``make`` each recording whose inputs changed (an error of
    its data fails that recording only), record and materialize; a transient fault retries the step
    (:func:`failures_classified`)."""
    from robodata.errors import RobodataError

    with failures_classified(context, f"{tier} partition {context.partition_key}"):
        registry = Registry(project.config.registry_url)
        plan = plan_partition(registry, tier, context.partition_key, code_version, upstream)
        results = run_each(plan.todo, make, (RobodataError,), keep=lambda done: keep_made(registry, plan, done))
        made = [r for r in results if r.status != FAILED]
        out = finish_partition(context, registry, plan, results, specs, metadata(made) if metadata and made else {})
    assert out is not None  # only a multi_asset may materialize nothing
    return out
