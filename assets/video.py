"""video_clips (a partition per configured video source) and mixed_release (the robot release plus every video
layer, with mixture weights): the top of the data pyramid in the asset graph.

Each ``video_clips`` partition scans its source (:func:`robodata.video.corpus.scan_corpus` on Ray Data: probe,
scene cuts, quality filters, perceptual hashes) and dedups against **one** persistent shot index shared by all
sources and every earlier scan, then publishes ``video/<source>/shots.json`` (accepted shots, rejections with
their reasons, findings on files) once its blocking check passed. ``mixed_release`` cuts
:func:`robodata.mix.cut_mixed_release` from the latest robot release and every source's published shots into
``mixed/releases/<id>`` (``id``: the digest of what went in; an identical release is reused) and points
``mixed/latest.json`` at it.
"""

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_ray import RayResource

from robodata import store_layout as layout
from robodata.config import ConfigError, ProjectConfig, VideoSourceConfig
from robodata.errors import RobodataError
from robodata.mix import MIXTURE_PATH, LayerDataset, MixError, normalise_weights
from robodata.stages.base import run_validators, stage_and_publish
from robodata.storage import DataStore
from robodata.video.checks import MIX_CHECKS, VIDEO_CHECKS, read_json
from robodata.video.shots import Shot
from robodata_dagster.assets.automation import NEW_MIX_INPUTS
from robodata_dagster.assets.checks import check_result, check_specs
from robodata_dagster.assets.partitions import failures_classified, retry_policy
from robodata_dagster.assets.versions import digest
from robodata_dagster.resources.project import ProjectResource

VIDEO_CLIPS = "video_clips"
MIXED_RELEASE = "mixed_release"
# Bump when the code changes what the asset writes (its materializations then show as stale).
VIDEO_CLIPS_REVISION = 1
MIXED_RELEASE_REVISION = 1
_SAMPLE_PER_LAYER = 3  # episodes per layer in the UI's provenance sample


# ---- video_clips ------------------------------------------------------------------------------------------------


def video_partitions(cfg: ProjectConfig) -> dg.StaticPartitionsDefinition:
    """One partition per configured video source, keyed by its name."""
    return dg.StaticPartitionsDefinition([s.name for s in cfg.video.sources])


def shot_index(cfg: ProjectConfig, store: DataStore) -> Any:
    """The one persistent shot index every source's scan dedups against (and adds its kept shots to)."""
    from robodata.video.hashing import ShotIndex

    return ShotIndex(cfg.video.index_url(cfg, Path(store.root) if store.local else None), cfg.video.corpus)


def manifest_version(manifest: dict[str, Any]) -> str:
    """A manifest's data version: its accepted shots (ids, frames, hashes, captions, provenance) and the scan's
    settings; a re-scan that accepts the same shots has the same version."""
    return digest(manifest.get("corpus_config_version"), manifest.get("shots") or [])


def read_manifest(store: DataStore, source: str) -> dict[str, Any] | None:
    """The published manifest of ``source``, or None before its first scan that passed."""
    rel = layout.video_manifest_path(source)
    if not store.exists(rel):
        return None
    with store.read_path(rel) as p:
        return read_json(p)


def scan_source(cfg: ProjectConfig, src: VideoSourceConfig, index: Any) -> tuple[Any, str]:
    """Scan one source (generated clips listed with their provenance first); the corpus result and its URL."""
    from robodata.mix import _clip_key  # how the scan names a clip (the Python API's mixed form matches the same way)
    from robodata.video.corpus import CorpusResult, scan_corpus
    from robodata.video.generated import list_generated

    url = src.resolved_url(cfg)
    corpus = cfg.video.corpus
    kind = "generated" if src.listing == "cosmos" else "video"
    extra = {"kind": kind, "source": url, "video_source": src.name}
    if src.listing == "cosmos":
        listing = list_generated(url)
        listed = {_clip_key(s.clip): s for s in listing.shots}
        res = (scan_corpus([s.clip for s in listing.shots], corpus, index=index, ray_address=cfg.ray.address,
                           layer=src.layer, source=src.name) if listing.shots else CorpusResult())
        res.findings = sorted([*listing.findings, *res.findings], key=lambda f: f.path)
        shots = []
        for s in res.shots:  # the scan read the clip alone: caption and provenance come from the listing
            g = listed.get(_clip_key(s.clip))
            shots.append(replace(s, caption=s.caption or (g.caption if g else None),
                                 provenance={**s.provenance, **(g.provenance if g else {}), **extra}))
        res.shots = shots
    else:
        res = scan_corpus([url], corpus, index=index, ray_address=cfg.ray.address, layer=src.layer, source=src.name)
        res.shots = [replace(s, provenance={**s.provenance, **extra}) for s in res.shots]
    return res, url


def manifest_of(src: VideoSourceConfig, url: str, res: Any, corpus_version: str) -> dict[str, Any]:
    from robodata.stages.tiers import utc_iso

    return {"source": src.name, "url": url, "layer": src.layer, "kind": src.listing,
            "scanned": utc_iso(time.time()), "corpus_config_version": corpus_version,
            "counts": res.counts, "hours": round(sum(s.duration for s in res.shots) / 3600.0, 6),
            "shots": [s.to_dict() for s in res.shots], "rejections": [asdict(r) for r in res.rejections],
            "findings": [asdict(f) for f in res.findings], "clips": [asdict(c) for c in res.clips]}


def rejections_table(rejections: list[dict[str, Any]], limit: int = 100) -> str:
    """The rejected shots as a Markdown table: clip, shot, reason, detail (for a duplicate: its twin)."""
    if not rejections:
        return "No shot rejected."
    lines = ["| clip | shot | reason | detail |", "|---|---|---|---|"]
    for r in rejections[:limit]:
        shot = "whole clip" if r["index"] < 0 else str(r["index"])
        lines.append(f"| {r['clip']} | {shot} | {r['reason']} | {str(r['detail']).replace('|', '/')[:200]} |")
    if len(rejections) > limit:
        lines.append(f"| ... {len(rejections) - limit} more | | | |")
    return "\n".join(lines)


def build_video_clips(cfg: ProjectConfig) -> dg.AssetsDefinition:
    """``video_clips`` for ``cfg``'s video sources (one static partition each)."""
    corpus_version = digest(VIDEO_CLIPS_REVISION, cfg.video.corpus.model_dump(mode="json"))
    code_version = f"video_clips-r{VIDEO_CLIPS_REVISION}-{corpus_version}"

    @dg.asset(
        name=VIDEO_CLIPS,
        partitions_def=video_partitions(cfg),
        group_name="video",
        kinds={"video"},
        code_version=code_version,
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        # one source at a time writes the shared shot index (the pool caps it where the instance sets a limit)
        op_tags={"dagster/concurrency_key": "video_shot_index"},
        check_specs=check_specs(VIDEO_CLIPS, VIDEO_CHECKS),
        retry_policy=retry_policy(cfg),
        description="A folder or bucket of clips (web, human or generated video) split into shots, filtered by "
                    "quality (with reasons) and deduplicated across every source: video/<source>/shots.json.",
    )
    def video_clips(context: dg.AssetExecutionContext, project: ProjectResource,
                    ray_cluster: RayResource) -> dg.MaterializeResult:
        # ray_cluster: the project's Ray (embedded or the cluster) is up before the scan's Ray Data map runs on it
        with failures_classified(context, f"video_clips partition {context.partition_key}"):
            return _scan(context, project, corpus_version)

    return video_clips


def _scan(context: dg.AssetExecutionContext, project: ProjectResource, corpus_version: str) -> dg.MaterializeResult:
    cfg = project.config
    name = context.partition_key
    src = next((s for s in cfg.video.sources if s.name == name), None)
    if src is None:
        raise ConfigError(f"video source {name!r} is not in the project config's video.sources "
                          f"({', '.join(s.name for s in cfg.video.sources) or 'none'})")
    store = project.store()
    t0 = time.perf_counter()
    res, url = scan_source(cfg, src, shot_index(cfg, store))
    manifest = manifest_of(src, url, res, corpus_version)
    rel = layout.video_manifest_path(name)

    def work(tmp: Path) -> None:
        tmp.write_text(json.dumps(manifest, indent=1, default=str) + "\n")

    outcome = stage_and_publish(VIDEO_CLIPS, store, rel, work, [v() for v in VIDEO_CHECKS])
    current = manifest if outcome.published else read_manifest(store, name)  # a failed scan: the previous stays
    reasons = {k: v for k, v in res.counts.items() if k not in ("accepted", "clips", "findings")}
    dups = [{"shot": f"{r.clip}#{r.index}", "twin": r.twin} for r in res.rejections if r.reason == "duplicate"]
    metadata: dict[str, Any] = {
        "source": name,
        "url": url,
        "layer": src.layer,
        "clips": len(res.clips),
        "accepted_shots": len(res.shots),
        "hours": manifest["hours"],
        "rejected_shots": len(res.rejections),
        "unusable_files": len(res.findings),
        "rejections": dg.MetadataValue.json(reasons),
        "report": dg.MetadataValue.md(res.to_markdown()),
        "rejected": dg.MetadataValue.md(rejections_table(manifest["rejections"])),
        "duplicates": dg.MetadataValue.json(dups[:100]),
        "published": outcome.published,
        "manifest": dg.MetadataValue.path(outcome.url or outcome.quarantined),
        "corpus_config_version": corpus_version,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return dg.MaterializeResult(
        metadata=metadata, check_results=[check_result(c) for c in outcome.checks],
        data_version=dg.DataVersion(manifest_version(current) if current is not None else digest(name, "none")))


# ---- mixed_release ----------------------------------------------------------------------------------------------


def mix_layers(cfg: ProjectConfig) -> list[str]:
    """The layers of the mixed release: the robot release's, then each video source's (in config order)."""
    out = [cfg.mix.robot_layer]
    for s in cfg.video.sources:
        if s.layer not in out:
            out.append(s.layer)
    return out


def mix_weights(cfg: ProjectConfig) -> dict[str, float]:
    """``mix.weights`` normalised over the layers; a weight for a layer with no source, or a layer without a
    weight (when any is given), is one :class:`ConfigError` naming it."""
    try:
        return normalise_weights(cfg.mix.weights or None, mix_layers(cfg), "mix.weights")
    except MixError as err:
        raise ConfigError(f"{cfg.source_file or 'the project config'}: {err}") from None


def _robot_release(store: DataStore) -> tuple[dict[str, Any], str]:
    from robodata.releases import read_latest

    latest = read_latest(store)
    if not latest or not latest.get("release"):
        raise RobodataError(f"no robot release at {store.url(layout.LATEST)} yet: materialize lerobot_dataset first")
    path = str(latest.get("path") or "")
    rel = store.rel(path) if path.startswith(store.root + "/") else layout.release_path(str(latest["release"]))
    if not store.exists(rel):
        raise RobodataError(f"{store.url(layout.LATEST)} points at {store.url(rel)}, which does not exist")
    return latest, rel


def layers_table(mixture: dict[str, Any]) -> str:
    """The mix as a Markdown table: per layer weight, effective weight, kind, datasets, episodes, frames, hours."""
    lines = ["| layer | weight | effective weight | kind | datasets | episodes | frames | hours |",
             "|---|---|---|---|---|---|---|---|"]
    for k, v in (mixture.get("layers") or {}).items():
        lines.append(f"| {k} | {v.get('weight', 0):.3f} | {v.get('effective_weight', v.get('weight', 0)):.3f} | "
                     f"{v.get('kind', '-')} | {', '.join(v.get('datasets') or []) or '-'} | {v.get('episodes', 0)} | "
                     f"{v.get('frames', 0)} | {v.get('hours', 0):.4f} |")
    return "\n".join(lines)


def provenance_sample(mixture: dict[str, Any], per_layer: int = _SAMPLE_PER_LAYER) -> list[dict[str, Any]]:
    """The first episodes of each layer: dataset, episode index, layer, provenance."""
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for e in mixture.get("episodes") or []:
        if seen.get(e["layer"], 0) < per_layer:
            seen[e["layer"]] = seen.get(e["layer"], 0) + 1
            out.append({k: e.get(k) for k in ("dataset", "episode_index", "layer", "frames", "provenance")})
    return out


def build_mixed_release(cfg: ProjectConfig) -> dg.AssetsDefinition:
    """``mixed_release`` for ``cfg``: cut when the robot release or a video manifest has new data."""
    mix_weights(cfg)  # a bad weight fails loading the code location, naming it
    settings = {"mix": cfg.mix.model_dump(mode="json", exclude={"enabled"}),
                "episodes": cfg.video.episodes.model_dump(mode="json"), "format": cfg.tiers.lerobot.version,
                "layers": {s.name: s.layer for s in cfg.video.sources}}
    code_version = f"mixed_release-r{MIXED_RELEASE_REVISION}-{digest(settings)}"
    return dg.asset(
        name=MIXED_RELEASE,
        deps=[dg.AssetDep("lerobot_dataset"),
              dg.AssetDep(VIDEO_CLIPS, partition_mapping=dg.AllPartitionMapping())],
        group_name="release",
        kinds={"lerobot", "video"},
        code_version=code_version,
        automation_condition=NEW_MIX_INPUTS,
        check_specs=check_specs(MIXED_RELEASE, MIX_CHECKS),
        retry_policy=retry_policy(cfg),
        description="One release from every layer: the robot release and each video source's accepted shots "
                    "(observation-only episodes), with mixture weights and per-episode layer and provenance.",
    )(_cut_mix)


def _cut_mix(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    with failures_classified(context, MIXED_RELEASE):
        return _mix(context, project)


def _mix(context: dg.AssetExecutionContext, project: ProjectResource) -> dg.MaterializeResult:
    from robodata.mix import cut_mixed_release, profile_mix, read_mixture

    cfg = project.config
    store = project.store()
    t0 = time.perf_counter()
    weights = mix_weights(cfg)
    latest, robot_rel = _robot_release(store)
    manifests = {s.name: read_manifest(store, s.name) for s in cfg.video.sources}
    unscanned = sorted(k for k, m in manifests.items() if m is None)
    if unscanned:
        context.log.warning(f"video source(s) {', '.join(unscanned)} have no published shots yet (materialize "
                            "video_clips for them): their layers get no episodes from them")
    versions = {k: manifest_version(m) for k, m in manifests.items() if m is not None}
    release = digest(MIXED_RELEASE_REVISION, latest["release"], versions, weights, cfg.tiers.lerobot.version,
                     cfg.video.episodes.model_dump(mode="json"), cfg.mix.robot_layer,
                     {s.name: s.layer for s in cfg.video.sources})
    rel = layout.mixed_release_path(release)
    reused = store.exists(f"{rel}/{MIXTURE_PATH}")
    if reused:  # the same inputs: the release is there already; re-checked, not rewritten
        with store.read_path(rel) as root:
            checks = run_validators(root, [v() for v in MIX_CHECKS])
            mixture = read_mixture(root)
        published, url = not any(c.blocking and not c.passed for c in checks), store.url(rel)
    else:
        layers: dict[str, list[Any]] = {layer: [] for layer in weights}
        for s in cfg.video.sources:
            layers[s.layer] += [Shot(**d) for d in (manifests[s.name] or {}).get("shots") or []]
        with store.read_path(robot_rel) as robot_root:
            layers[cfg.mix.robot_layer].append(LayerDataset(robot_root, {
                "kind": "lerobot_release", "release": latest["release"], "release_path": store.url(robot_rel)}))

            def work(tmp: Path) -> dict[str, Any]:
                mixed = cut_mixed_release(layers, tmp, weights=weights, version=cfg.tiers.lerobot.version,
                                          episodes=cfg.video.episodes, profile=False)
                doc = {**mixed.mixture, "release": release, "robot_release": latest["release"],
                       "video_manifests": versions}
                (tmp / MIXTURE_PATH).write_text(json.dumps(doc, indent=1, default=str) + "\n")
                profile_mix(tmp, doc, source=store.url(rel)).write(tmp)
                return doc

            outcome = stage_and_publish(MIXED_RELEASE, store, rel, work, [v() for v in MIX_CHECKS])
        checks, published, mixture = outcome.checks, outcome.published, outcome.report
        url = outcome.url or outcome.quarantined
    if published:
        pointer = {"release": release, "path": url, "format": cfg.tiers.lerobot.version,
                   "robot_release": latest["release"], "video_manifests": versions,
                   "layers": {k: v.get("episodes") for k, v in (mixture.get("layers") or {}).items()}}
        with store.write_path(layout.MIXED_LATEST) as p:  # one atomic replace of the pointer file
            p.write_text(json.dumps(pointer, indent=1))
    lay = mixture.get("layers") or {}
    datasets = mixture.get("datasets") or {}
    return dg.MaterializeResult(
        metadata={
            "release": release,
            "format": cfg.tiers.lerobot.version,
            "reused_existing": reused,
            "promoted_to_latest": published,
            "robot_release": latest["release"],
            "video_manifests": dg.MetadataValue.json(versions),
            "mix": dg.MetadataValue.md(layers_table(mixture)),
            "layers": dg.MetadataValue.json({k: {f: v.get(f) for f in ("weight", "effective_weight", "kind",
                                                                         "datasets", "episodes", "frames", "hours")}
                                             for k, v in lay.items()}),
            "dataset_weights": dg.MetadataValue.json({k: d.get("weight") for k, d in datasets.items()}),
            "datasets": dg.MetadataValue.json({k: {f: d.get(f) for f in ("layers", "episodes", "frames", "hours",
                                                                          "observation_only")}
                                               for k, d in datasets.items()}),
            "episodes": sum(int(v.get("episodes") or 0) for v in lay.values()),
            "frames": sum(int(v.get("frames") or 0) for v in lay.values()),
            "hours": round(sum(float(v.get("hours") or 0) for v in lay.values()), 6),
            "provenance_sample": dg.MetadataValue.json(provenance_sample(mixture)),
            "notes": dg.MetadataValue.json(list(mixture.get("notes") or [])[:50]),
            "profile_path": dg.MetadataValue.path(f"{url}/profile.html"),
            "path": dg.MetadataValue.path(url),
            "seconds": round(time.perf_counter() - t0, 2),
        },
        check_results=[check_result(c) for c in checks],
        data_version=dg.DataVersion(release),
    )
