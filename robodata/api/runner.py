"""The Python API's runner: a pipeline of library stages on Ray Data.

Two streaming passes over real ``ray.data`` datasets:

1. **episodes**: recordings -> (ingest stage, per recording, published into the working store) -> episode
   rows -> the user's stages -> validators -> metrics -> small metadata rows (arrays a stage changed are
   saved by content). The driver keeps only metadata rows, so memory is flat in the number of recordings.
2. **parts**: kept episodes (after exact-duplicate removal, decided on the driver in episode-id order so
   the outcome does not depend on scheduling) -> one-episode LeRobot v3.0 parts, each published under a name
   derived from everything that shapes it. A rerun after a kill skips the parts already published.

The parts are then joined (video remuxed, not re-encoded) into the output, which the dataset validators check
on the staging copy before it is published; a failed output goes to quarantine.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robodata import plugins
from robodata import store_layout as layout
from robodata.api.episodes import (
    EpisodeEvent,
    Row,
    batch_of,
    carried,
    episode_rows,
    finish_row,
    kept_action,
    kept_row,
    part_key,
    publish_fitted,
    rows_of,
    run_batch_hook,
    run_episode_hook,
    signature,
    validate_episode,
    write_store,
)
from robodata.api.errors import PipelineError
from robodata.api.extensions import Datasource, Metric, PipelineStage, SourceFindingsError, Validator
from robodata.api.result import PipelineResult
from robodata.api.spec import ComponentSpec, PipelineSpec
from robodata.config import ProjectConfig, load_config
from robodata.errors import RobodataError
from robodata.parallel import start_ray_data
from robodata.stages.base import Finding, stage_and_publish
from robodata.storage import DataStore

LINEAGE_PATH = "meta/robodata_lineage.json"  # in the output: which input each episode came from [extension]


# ---- what every worker needs (pickled into each Ray task) --------------------------------------------------


@dataclass
class RunContext:
    run_id: str
    work_url: str
    spec: PipelineSpec
    project: ProjectConfig
    datasources: list[Datasource]
    codec: dict[str, Any] = field(default_factory=dict)
    gx: bool = False
    dedup: Any = None  # robodata.dedup.DedupConfig, None when dedup is off

    @classmethod
    def dedup_config(cls, spec: PipelineSpec, project: ProjectConfig) -> Any:
        """The dedup settings of the project config (``quality.dedup``: tolerances, frames per camera), the policy
        the pipeline's ``dedup`` says (``True``: the config's, else ``exclude_exact``); None for ``dedup: false``."""
        from robodata.dedup import DedupConfig

        if spec.dedup is False:
            return None
        settings = dict(project.quality.dedup)
        policy = spec.dedup if isinstance(spec.dedup, str) else settings.get("policy", "exclude_exact")
        try:
            return DedupConfig(**{**settings, "policy": policy})
        except ValueError as err:
            raise PipelineError(f"quality.dedup: {err}") from err
    final: list[PipelineStage] = field(default_factory=list)  # publish-fitted stages, applied when parts are written

    @functools.cached_property
    def work(self) -> DataStore:
        return DataStore(self.work_url)

    def event(self, kind: str, ident: str, **data: Any) -> None:
        """Record a drop, failure or quarantine in the working store (the driver reads them after the pass)."""
        digest = hashlib.blake2b(f"{kind}:{ident}".encode(), digest_size=12).hexdigest()
        rel = f"{layout.pipeline_run_path(self.run_id)}/events/{kind}-{digest}.json"
        with self.work.write_path(rel) as tmp:
            tmp.write_text(json.dumps({"kind": kind, **data}, default=str))


# ---- pass 1: recordings -> episode rows --------------------------------------------------------------------


def _local(url: str) -> Any:
    """A local path for a recording URL (itself when local, a downloaded copy otherwise), as a context."""
    parent, _, name = url.rstrip("/").rpartition("/")
    return DataStore(parent or ".").read_path(name)


def ingest_item(ctx: RunContext, item: dict[str, Any]) -> list[dict[str, Any]]:
    """One recording -> its canonical store (ingested once per reading options, then reused) -> one row per
    episode. What the ingest assumed (notes) and found (a datasource's findings) go with the ``ingested`` event;
    a ``strict`` source's findings instead make a ``strict`` event (the driver fails the run on it)."""
    from robodata.partitions import content_digest, slugify
    from robodata.stages.tiers import IngestStage, JointsWithinModelLimits

    source = ctx.datasources[item["source_index"]]
    try:
        with _local(item["url"]) as path:
            key = f"{slugify(item['name'])}-{content_digest(path)}"
            stage = IngestStage(ctx.project.tiers.raw_teleop)
            model = ctx.project.quality.robot_model
            if model is not None:  # joints within the robot model's limits, as in the platform's raw_teleop
                stage.robot_model = (model, ctx.project._local(model.path))
            reading = source.reading_options(item["name"], ctx.project)
            rel = stage.output_path(f"{key}-{_options_digest(reading)}" if reading else key)
            if ctx.work.exists(rel):
                report = _read_report(ctx.work, rel)
            else:
                tm = _topic_map(ctx, source, item["name"])

                def work(staged: Path) -> Any:
                    if source.reads_itself:
                        return stage.work(staged, key, recording=path, topic_map=tm, datasource=source)
                    return stage.work(staged, key, recording=path, topic_map=tm, hdf5_options=reading)

                # GX is the [platform] layer's: without it, the readers' checks and the robot model's
                outcome = stage_and_publish(stage.name, ctx.work, rel, work,
                                            stage.validators() if ctx.gx else stage.model_validators())
                if not outcome.published:
                    first = outcome.findings[0] if outcome.findings else "failed"
                    raise PipelineError(f"{item['url']}: failed the ingest checks ({first}); "
                                        f"kept in quarantine at {outcome.quarantined}")
                checked = [f for c in outcome.checks if c.name == JointsWithinModelLimits.name for f in c.findings]
                report = {"notes": [str(n) for n in getattr(outcome.report, "notes", None) or ()],
                          "findings": [f.to_json() for f in getattr(outcome.report, "findings", None) or ()],
                          "checks": [f.to_json() for f in checked]}  # warnings of the data, not the source's
                with ctx.work.write_path(_report_rel(rel)) as tmp:  # for the runs that reuse the store
                    tmp.write_text(json.dumps(report))
    except SourceFindingsError as err:
        ctx.event("strict", item["url"], source=item["url"], findings=[_at(item["url"], f.to_json())
                                                                       for f in err.findings])
        return []
    except RobodataError as err:
        ctx.event("failed", item["url"], source=item["url"], stage="ingest", error=str(err))
        return []
    findings = [_at(item["url"], f) for f in report.get("findings", [])]
    if findings and source.strict:
        ctx.event("strict", item["url"], source=item["url"], findings=findings)
        return []
    with ctx.work.read_path(rel) as local:
        rows = episode_rows(local, key=key, source=item["url"], rel=rel,
                            default_task=ctx.spec.task or Path(item["name"]).stem,
                            frames_per_camera=ctx.dedup.frames_per_camera if ctx.dedup is not None else 0)
    ctx.event("ingested", key, recording=key, source=item["url"], episodes=[r["episode_id"] for r in rows],
              frames=sum(r["num_frames"] for r in rows), notes=report.get("notes", []),
              findings=findings + [_at(item["url"], f) for f in report.get("checks", [])])
    return rows


def _options_digest(options: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(options, sort_keys=True, default=str).encode(), digest_size=6).hexdigest()


def _report_rel(store_rel: str) -> str:
    """Beside a canonical store in the working store: what its ingest noted and found."""
    return store_rel.rsplit(".", 1)[0] + ".report.json"


def _read_report(work: DataStore, store_rel: str) -> dict[str, Any]:
    rel = _report_rel(store_rel)
    if not work.exists(rel):  # a store from before reports were kept
        return {}
    with work.read_path(rel) as p:
        out: dict[str, Any] = json.loads(p.read_text())
    return out


def _at(url: str, finding: dict[str, Any]) -> dict[str, Any]:
    """A datasource's finding (``where`` inside the recording) named by the recording's URL."""
    where = finding.get("where") or ""
    return {**finding, "where": f"{url}: {where}" if where else url}


def _strict_error(events: list[dict[str, Any]]) -> PipelineError:
    lines = [f"  {f['severity']}: {f['where']}: {f['message']}" for e in events for f in e["findings"]]
    names = ", ".join(e["source"] for e in events)
    return PipelineError(f"{names}: {len(lines)} finding(s), and strict=True makes each an error; nothing "
                         "published:\n" + "\n".join(lines))


def _topic_map(ctx: RunContext, source: Datasource, name: str) -> Any:
    from robodata.topicmap import load_topic_map

    ref = source.topic_map or ctx.spec.topic_map
    if ref is not None:
        return load_topic_map(ref)
    return ctx.project.topic_map_for(name) if source.needs_topic_map else None


# ---- the user's stages, validators and metrics on Ray Data ------------------------------------------------


def _record(ctx: RunContext, events: list[EpisodeEvent]) -> None:
    for e in events:
        ctx.event(e.kind, e.episode_id, **e.to_json())


def _episode_hook(ctx: RunContext, stage: PipelineStage, row: Row) -> list[Row]:
    out, events = run_episode_hook(stage, row)
    _record(ctx, events)
    return out


def _batch_hook(ctx: RunContext, stage: PipelineStage, batch: dict[str, Any]) -> dict[str, Any]:
    out, events = run_batch_hook(stage, rows_of(batch))
    _record(ctx, events)
    return batch_of(out, batch)


def apply_stage(ds: Any, stage: PipelineStage, ctx: RunContext, gpus: float) -> Any:
    stage.seed = ctx.spec.seed
    need = min(stage.num_gpus, ctx.spec.num_gpus) if gpus else 0.0
    if stage.overrides("process"):
        try:
            return stage.process(ds)
        except Exception as err:
            raise PipelineError(f"stage {stage.label!r}: process() raised {type(err).__name__}: {err}") from err
    if stage.overrides("process_batch"):
        return ds.map_batches(functools.partial(_batch_hook, ctx, stage), batch_format="numpy",
                              batch_size=stage.batch_size or ctx.spec.batch_size, num_gpus=need or None)
    return ds.flat_map(functools.partial(_episode_hook, ctx, stage), num_gpus=need or None)


# ---- validators, metrics, and the small rows the driver keeps ---------------------------------------------


def validate_row(ctx: RunContext, validators: Sequence[Validator], row: Row) -> list[Row]:
    keep, findings = validate_episode(validators, row)
    if findings:
        ctx.event("findings", row["episode_id"], episode_id=row["episode_id"], findings=[f.to_json() for f in findings])
    if not keep:
        ctx.event("quarantined", row["episode_id"], episode_id=row["episode_id"],
                  findings=[f.to_json() for f in findings if f.severity == "error"])
        return []
    return [row]


def finalize_row(ctx: RunContext, metrics: Sequence[Metric], row: dict[str, Any]) -> dict[str, Any]:
    """Metrics, and the arrays a stage changed saved by content; the row the driver keeps has no arrays."""
    values: dict[str, float] = {}
    for m in metrics:
        try:
            values.update({k if k == m.label else f"{m.label}.{k}": float(v) for k, v in m.compute(row).items()})
        except Exception as err:  # noqa: BLE001 - a broken metric is reported, the episode goes on
            ctx.event("failed_metric", f"{m.label}:{row['episode_id']}", episode_id=row["episode_id"],
                      stage=m.label, error=f"metric {m.label!r} raised {type(err).__name__}: {err}")
    action = np.asarray(row["action"], np.float32)
    state = np.asarray(row["observation.state"], np.float32)
    dedup = json.dumps(dedup_signature(ctx, row, action, state).to_json()) if ctx.dedup is not None else ""
    sig = signature(action, state)
    extra = carried(row)  # frames a stage cut, column names it gave: the writer needs them
    changed = sig != row.get("_signature") or bool(extra["carried"])
    if changed:
        rel = layout.pipeline_arrays_path(sig)
        if not ctx.work.exists(rel):
            with ctx.work.write_path(rel) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, action=action, state=state)
    return {"episode_id": row["episode_id"], "recording": row["recording"], "source": row["source"],
            "store": row["store"], "demo": row["demo"], "num_frames": int(row["num_frames"]), "task": row["task"],
            "signature": sig, "arrays": layout.pipeline_arrays_path(sig) if changed else "",
            "metrics": json.dumps(values), "dedup": dedup, **extra}


def dedup_signature(ctx: RunContext, row: dict[str, Any], action: np.ndarray, state: np.ndarray) -> Any:
    """What dedup keeps of an episode as the stages left it (:class:`robodata.dedup.EpisodeSignature`): its state
    and action, its clock, and the frame hashes read at ingest (a row a stage cut is hashed again over the frames
    it kept, from its store)."""
    from robodata.api.episodes import FRAME_HASHES_COLUMN, frames_of
    from robodata.dedup import EpisodeSignature, hash_frames, sampled_frames
    from robodata.formats.isaaclab import EpisodeStore

    n = int(row["num_frames"])
    ts = row.get("timestamp")
    if ts is None or len(np.asarray(ts).reshape(-1)) != n:
        ts = np.arange(n, dtype=np.float64) / float(row.get("fps") or 1.0)
    cut = frames_of(row)
    if cut is None and row.get(FRAME_HASHES_COLUMN):
        hashes, digest = json.loads(row[FRAME_HASHES_COLUMN])
        hashed = ({str(k): [int(x) for x in v] for k, v in hashes.items()}, str(digest))
    else:
        with ctx.work.read_path(row["store"]) as local, EpisodeStore(local) as es:
            start, stop = cut if cut is not None else (0, es.num_samples(row["demo"]))
            hashed = hash_frames(sampled_frames(es, row["demo"], ctx.dedup.frames_per_camera, start, stop))
    return EpisodeSignature.compute(row["episode_id"], row["recording"], state, action, np.asarray(ts, np.float64),
                                    config=ctx.dedup, hashed_frames=hashed)


# ---- pass 2: episodes -> one-episode LeRobot parts ---------------------------------------------------------


def part_id(ctx: RunContext, row: dict[str, Any]) -> str:
    # the store too: a recording read with other options (fps, quaternion order) is another store, another part
    doc = {"episode": row["episode_id"], "store": row["store"], "signature": row["signature"], "task": row["task"],
           "codec": ctx.codec, "carried": row.get("carried", ""), "final": part_key(ctx.final)}
    return hashlib.blake2b(json.dumps(doc, sort_keys=True).encode(), digest_size=12).hexdigest()


def write_part(ctx: RunContext, row: dict[str, Any]) -> dict[str, Any]:
    from robodata.lerobot import write_shard
    from robodata.stages.tiers import write_episode_part

    rel = layout.pipeline_part_path(part_id(ctx, row))
    out = {"episode_id": row["episode_id"], "part": rel, "resumed": False, "error": ""}
    try:
        if ctx.work.exists(rel):
            out["resumed"] = True
        elif not row["arrays"] and not ctx.final:
            write_episode_part(ctx.work, row["store"], row["demo"], rel, ctx.codec, task=row["task"])
        else:
            changed = finish_row(kept_row(ctx.work, row), ctx.final)
            with ctx.work.read_path(row["store"]) as src, \
                    tempfile.TemporaryDirectory(prefix="robodata-ep-") as tmp, ctx.work.write_path(rel) as dst:
                one = Path(tmp) / "episode.hdf5"
                write_store(src, one, [changed])
                write_shard(one, dst, task=row["task"], **ctx.codec)
    except RobodataError as err:
        out["error"] = f"writing LeRobot: {err}"
    return out


# ---- the driver -------------------------------------------------------------------------------------------


def _component(kind: str, spec: ComponentSpec | Any) -> Any:
    if not isinstance(spec, ComponentSpec):
        return spec
    cls = plugins.get(kind, spec.type)
    try:
        return cls(**spec.options)
    except TypeError as err:
        raise PipelineError(f"{kind[:-1]} {spec.type!r}: bad options {spec.options} ({err})") from err


def _work_url(spec: PipelineSpec) -> str:
    if spec.work_dir:
        return spec.work_dir
    out = spec.output.rstrip("/")
    parent, _, name = out.rpartition("/")
    return f"{parent}/.{name}.robodata"


def _read_events(work: DataStore, run_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    rel = f"{layout.pipeline_run_path(run_id)}/events"
    for name in work.listdir(rel):
        if not name.endswith(".json"):
            continue
        with work.read_path(f"{rel}/{name}") as p:
            ev = json.loads(p.read_text())
        out.setdefault(ev.pop("kind"), []).append(ev)
    for rows in out.values():
        rows.sort(key=lambda e: str(e.get("episode_id") or e.get("recording") or e.get("source")))
    return out


class Pipeline:
    """Sources -> ingest -> your stages -> validators -> dedup -> LeRobot output, on Ray Data.

    Build one with :func:`robodata.pipeline` or :class:`robodata.PipelineBuilder`; :meth:`run` returns a
    :class:`~robodata.api.result.PipelineResult`.
    """

    def __init__(self, spec: PipelineSpec, *, stages: Sequence[Any] = (), validators: Sequence[Any] = (),
                 metrics: Sequence[Any] = (), datasources: Sequence[Datasource] = (),
                 project: ProjectConfig | None = None):
        if not datasources:
            spec.require_runnable()
        elif not spec.output.strip("/"):
            raise PipelineError("the pipeline: no output (a folder or URL for the LeRobot dataset)")
        self.spec = spec
        self.project = project or load_config(spec.config)
        self.stages: list[PipelineStage] = [_component("stages", s) for s in [*spec.stages, *stages]]
        self.validators: list[Validator] = [_component("validators", v) for v in [*spec.validators, *validators]]
        self.metrics: list[Metric] = [_component("metrics", m) for m in [*spec.metrics, *metrics]]
        self.datasources: list[Datasource] = [*self._spec_sources(), *datasources]
        for kind, objs, base in (("stage", self.stages, PipelineStage), ("validator", self.validators, Validator),
                                 ("metric", self.metrics, Metric), ("datasource", self.datasources, Datasource)):
            for o in objs:
                if not isinstance(o, base):
                    raise PipelineError(f"{kind} {o!r} is not a robodata.{base.__name__}")
        self.final = publish_fitted(self.stages)  # fitted over the published episodes, applied in pass 2

    def _log_path(self) -> Path:
        """Ray's chatter goes to the project's log file (:func:`robodata.logs.quiet_ray`)."""
        from robodata.logs import LOG_FILE

        return self.project.logs_dir / LOG_FILE

    def _spec_sources(self) -> list[Datasource]:
        out = []
        for s in self.spec.sources:
            cls = plugins.get("datasources", s.type)
            out.append(cls(s.path, topic_map=s.topic_map, pattern=s.pattern, **s.options))
        return out

    def run(self, run_id: str | None = None) -> PipelineResult:
        import importlib.util

        import ray

        from robodata.parallel import gpus_available
        from robodata.stages.tiers import codec_options

        t0 = time.perf_counter()
        spec = self.spec
        run_id = run_id or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        start_ray_data(spec.ray_address or self.project.ray.address, log_path=self._log_path)
        gpus = gpus_available()
        items = [{"name": it.name, "url": it.url, "source_index": i}
                 for i, src in enumerate(self.datasources) for it in src.list()]
        if not items:
            raise PipelineError(f"no recordings found in {', '.join(s.path for s in self.datasources)}")
        ctx = RunContext(run_id, _work_url(spec), spec, self.project, self.datasources,
                         codec_options(self.project.tiers.lerobot, min(gpus, spec.num_gpus)),
                         importlib.util.find_spec("great_expectations") is not None,
                         RunContext.dedup_config(spec, self.project))
        result = PipelineResult(run_id, "", spec.format, False, num_gpus=min(gpus, spec.num_gpus))
        if spec.num_gpus > gpus:
            result.notes.append(f"num_gpus={spec.num_gpus:g} asked, the Ray cluster has {gpus:g}: "
                                "GPU stages run on what there is")
        if not ctx.gx:
            result.notes.append("great-expectations is not installed: the ingest checks ran in the readers only")

        # Pass 1: recordings -> episode rows -> stages -> validators -> metrics -> metadata rows.
        ds: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.flat_map(functools.partial(ingest_item, ctx))
        for stage in self.stages[:len(self.stages) - len(self.final)]:
            ds = apply_stage(ds, stage, ctx, gpus)
        if self.validators:
            ds = ds.flat_map(functools.partial(validate_row, ctx, self.validators))
        ds = ds.map(functools.partial(finalize_row, ctx, self.metrics))
        rows = sorted(ds.iter_rows(), key=lambda r: r["episode_id"])
        events = _read_events(ctx.work, run_id)
        if events.get("strict"):
            raise _strict_error(events["strict"])

        kept = self._dedup(ctx, rows, result)

        # Statistics over the episodes that are published (after validators and dedup), applied in pass 2.
        for stage in self.final if kept else []:
            acts = ray.data.from_items(kept, override_num_blocks=min(len(kept), 64))
            stage.fit_published(acts.map(functools.partial(kept_action, ctx.work)).iter_rows())  # type: ignore[attr-defined]
        ctx.final = list(self.final)

        # Pass 2: one-episode parts (skipped when an earlier run published them).
        parts: dict[str, dict[str, Any]] = {}
        if kept:
            pds = ray.data.from_items(kept, override_num_blocks=min(len(kept), 64))
            for p in pds.map(functools.partial(write_part, ctx)).iter_rows():
                parts[p["episode_id"]] = dict(p)
        written = []
        for r in kept:
            p = parts.get(r["episode_id"], {"error": "no part was written"})
            if p["error"]:
                result.failed.append({"episode_id": r["episode_id"], "stage": "lerobot", "error": p["error"]})
            else:
                written.append((r, p))
                result.resumed_episodes += int(p["resumed"])

        ingested = events.get("ingested", [])
        result.recordings = [{"key": e["recording"], "source": e["source"], "episodes": len(e["episodes"]),
                              "frames": e["frames"]} for e in ingested]
        result.episodes_in = sum(len(e["episodes"]) for e in ingested)
        result.dropped = events.get("dropped", [])
        result.failed = events.get("failed", []) + events.get("failed_metric", []) + result.failed
        result.quarantined = events.get("quarantined", [])
        result.findings = [f for e in ingested for f in e.get("findings", [])] + \
            [f for e in events.get("findings", []) for f in e["findings"]]
        result.notes += [f"{e['source']}: {n}" for e in ingested for n in e.get("notes", [])]
        result.metrics = _aggregate_metrics([json.loads(r["metrics"]) for r, _ in written])
        if written:
            self._publish(ctx, written, result)
        else:
            result.notes.append("no episode reached the output: nothing was published")
        result.seconds = round(time.perf_counter() - t0, 3)
        with ctx.work.write_path(f"{layout.pipeline_run_path(run_id)}/result.json") as tmp:
            tmp.write_text(result.to_json())
        return result

    @staticmethod
    def _dedup(ctx: RunContext, rows: list[dict[str, Any]], result: PipelineResult) -> list[dict[str, Any]]:
        """Duplicates among the episodes, decided here in episode-id order (the same choice on every run):
        :func:`robodata.dedup.dedup_episodes` on their signatures (exact copies under any file name, the same
        demonstration re-recorded or re-exported, matching frames), the later of two copies the duplicate. The
        policy's are left out (``result.duplicates``, each with its twin); the rest are reported and kept
        (``result.kept_duplicates``: near copies ``exclude_exact`` keeps, augmented visual variants)."""
        from robodata.dedup import DedupIndex, EpisodeSignature, dedup_episodes

        if ctx.dedup is None or not rows:
            return [dict(r) for r in rows]
        sigs = [EpisodeSignature.from_json(json.loads(r["dedup"])) for r in rows]
        rep = dedup_episodes(sigs, DedupIndex(config=ctx.dedup), config=ctx.dedup)
        source = {r["episode_id"]: r["source"] for r in rows}
        for d in [*rep.duplicates, *rep.variants]:
            entry = {"episode_id": d.episode_id, "twin": d.twin_id, "source": source.get(d.episode_id, ""),
                     "kind": d.kind, "distance": d.distance, "frame_distance": d.frame_distance}
            (result.duplicates if d.excluded else result.kept_duplicates).append(entry)
        out = {eid for _, eid in rep.excluded}
        return [dict(r) for r in rows if r["episode_id"] not in out]

    def _publish(self, ctx: RunContext, written: list[tuple[dict[str, Any], dict[str, Any]]],
                 result: PipelineResult) -> None:
        from robodata.lerobot import aggregate, validate_dataset
        from robodata.lerobot.layout import INFO_PATH

        spec = self.spec
        out = spec.output.rstrip("/")
        parent, _, name = out.rpartition("/")
        target = DataStore(parent or ".")
        lineage = [{"episode_index": i, "episode_id": r["episode_id"], "recording": r["recording"],
                    "source": r["source"], "demo": r["demo"], "part": p["part"]} for i, (r, p) in enumerate(written)]
        with tempfile.TemporaryDirectory(prefix="robodata-parts-") as tmp:
            local = ctx.work.local_copies([p["part"] for _, p in written], Path(tmp))
            with target.staged(name) as staged:
                aggregate(local, staged, version=spec.version)
                (staged / LINEAGE_PATH).write_text(json.dumps({"run_id": result.run_id, "episodes": lineage}, indent=1))
                for stage in self.stages:  # statistics a stage keeps with the dataset (action normalisation)
                    write = getattr(stage, "write_statistics", None)
                    if callable(write):
                        write(staged)
                if spec.profile:
                    from robodata.profile import profile_lerobot

                    prof = profile_lerobot(staged)
                    page, _ = prof.write(staged / PROFILE_DIR)
                    result.profile = {"report": f"{out}/{PROFILE_DIR}/{page.name}", **prof.summary()}
                findings = [Finding("lerobot_layout", f.message, "error" if f.severity == "error" else "warning",
                                    f.where) for f in validate_dataset(staged)]
                for v in self.validators:
                    try:
                        findings += [f for f in v.validate_dataset(staged) or ()]
                    except Exception as err:  # noqa: BLE001 - a broken dataset validator blocks, named
                        findings.append(Finding(v.label, f"validate_dataset raised {type(err).__name__}: {err}"))
                info = json.loads((staged / INFO_PATH).read_text())
                blocking = [f for f in findings if f.severity == "error"]
                result.findings += [f.to_json() for f in findings]
                if blocking:
                    result.quarantine = target.quarantine(staged, name, [f.to_json() for f in findings])
                    result.notes.append(f"the output failed {len(blocking)} blocking check(s): {blocking[0]}")
                else:
                    result.output = target.publish(staged, name)
                    result.published = True
        result.episodes_out = int(info.get("total_episodes", 0))
        result.frames_out = int(info.get("total_frames", 0))
        result.lineage = lineage


PROFILE_DIR = "meta/robodata_profile"


def _aggregate_metrics(per_episode: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = sorted({k for m in per_episode for k in m})
    out = {}
    for k in keys:
        vals = np.asarray([m[k] for m in per_episode if k in m], np.float64)
        out[k] = {"mean": float(vals.mean()), "min": float(vals.min()), "max": float(vals.max()),
                  "count": float(len(vals))}
    return out
