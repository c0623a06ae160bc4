"""Ingest of a registered recording (a landed file the sensor registered as a partition), as one call.

Runs anywhere (a Ray worker, the CLI, a test): looks the recording up in the registry, checks it is still the
file that landed, runs the ingest stage (stage -> validate -> publish or quarantine), draws the overview plot,
and returns a plain summary that any runner can turn into metadata.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robodata import store_layout as layout
from robodata.config import ProjectConfig
from robodata.errors import RobodataError
from robodata.landing import LandingError, landing_zone
from robodata.registry import DUPLICATE, FAILED, INGESTED, SUPERSEDED, Registry
from robodata.stages.base import StageOutcome
from robodata.stages.tiers import IngestStage
from robodata.storage import DataStore
from robodata.topicmap import TopicMap


def topic_map_version(topic_map: TopicMap | None, hdf5_options: dict[str, Any] | None = None) -> str:
    """A short digest of the settings that shape an ingest's output (its data version follows it): the topic
    map, and the HDF5 reading options a source sets (none: the digest of the topic map alone, as before)."""
    doc: dict[str, Any] = topic_map.model_dump(mode="json") if topic_map else {}
    if hdf5_options:
        doc = {"topic_map": doc, "hdf5": hdf5_options}
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def ingest_registered(cfg: ProjectConfig, key: str) -> tuple[StageOutcome | None, dict[str, Any]]:
    """Ingest the registered recording ``key`` into ``cfg``'s store; returns the outcome and a summary.

    The run, not the sensor, reads the recording's bytes: it computes their 128-bit digest and claims them in
    the registry. A recording whose bytes another one already owns is not ingested again: the outcome is None
    and the summary says ``duplicate_of`` (the same digest with a different size would be a BLAKE2b collision:
    refused loudly, never taken for a copy)."""
    from robodata.formats.isaaclab import EpisodeStore
    from robodata.partitions import content_digest
    from robodata.plots import trajectory_and_rates_png

    store = DataStore(cfg.storage_url)
    registry = Registry(cfg.registry_url)
    entry = registry.lookup(key)
    landing = landing_zone(cfg, entry.zone)
    try:
        landed = landing.info(entry.name)
    except OSError as err:
        raise LandingError(f"{entry.url}: cannot read the landed recording: {err}") from err
    if landed is None or landed.refused:
        why = "is gone" if landed is None else f"is now {landed.refused}"
        registry.set_status(key, FAILED, note=f"the landed recording {why}")
        raise LandingError(f"{entry.url}: the landed recording {why} (registered as {key})")
    if landed.identity != (entry.size, round(entry.mtime, 6), entry.etag):
        registry.set_status(key, SUPERSEDED, note="the landed content changed after it was registered")
        raise LandingError(
            f"{entry.url}: changed since it landed ({entry.size} -> {landed.size} bytes); "
            "the sensor registers the new content as a new recording"
        )
    # A configured pipeline's datasource that takes this file ingests it (a plugin's format); else robodata's.
    source = next((s for s in cfg.datasources() if s.matches(Path(entry.name).name, landed.is_dir)), None)
    topic_map = cfg.topic_map_for(Path(entry.name).name)
    hdf5_options = cfg.hdf5_options_for(entry.name)
    if source is not None and source.topic_map is not None:
        from robodata.topicmap import load_topic_map

        topic_map = load_topic_map(source.topic_map)
    stage = IngestStage(cfg.tiers.raw_teleop)
    from robodata.quality import latest_release_bounds

    stage.reference = latest_release_bounds(store)  # what the latest release saw: a warning beyond it
    if cfg.quality.robot_model is not None:
        stage.robot_model = (cfg.quality.robot_model, cfg._local(cfg.quality.robot_model.path))
    with landing.local(entry.name) as src:
        digest = content_digest(src)
        claim = registry.claim_content(key, digest, landed.size)
        if not claim.is_mine(key):
            if claim.size != landed.size:
                registry.set_status(key, FAILED, note=f"digest {digest} clashes with {claim.owner}")
                raise RobodataError(f"{entry.url}: its BLAKE2b-128 digest {digest} equals that of recording "
                                    f"{claim.owner}, whose size differs ({claim.size} vs {landed.size} bytes): a "
                                    "hash collision; not ingested, report it")
            registry.set_status(key, DUPLICATE, duplicate_of=claim.owner,
                                note=f"the same bytes as recording {claim.owner}")
            return None, {"duplicate_of": claim.owner, "digest": digest, "source_name": entry.name}
        try:
            outcome = stage.run(store, key, recording=src, topic_map=topic_map, datasource=source,
                                hdf5_options=hdf5_options)
        except Exception as err:
            registry.set_status(key, FAILED, note=" ".join(str(err).split())[:500])
            raise
    registry.set_status(key, INGESTED if outcome.published else FAILED,
                        note="" if outcome.published else f"quarantined at {outcome.quarantined}")
    report = outcome.report
    summary: dict[str, Any] = asdict(report)
    summary.pop("topic_gaps", None)
    trajectories = {}
    if outcome.published:
        with store.read_path(outcome.output) as path, EpisodeStore(path) as es:
            pose = [f.name for f in es.schema.of_role("pose")] or [f.name for f in es.schema.of_role("state")]
            for name in es.demo_names[:8]:
                ep = es.read(name, images=False)
                if pose and pose[0] in ep.obs:
                    trajectories[name] = ep.obs[pose[0]][:, :2]
    png = trajectory_and_rates_png(trajectories, report.topic_gaps, title=entry.name)
    with store.write_path(layout.overview_path(layout.RAW_TELEOP, key)) as tmp_png:
        tmp_png.write_bytes(png)
    if outcome.published and cfg.quality.profiles:
        summary["profile"] = write_profile(store, outcome.output, layout.profile_path(layout.RAW_TELEOP, key),
                                           report)
    summary.update(png=png, path=outcome.url or outcome.quarantined, source_name=entry.name, digest=digest,
                   topic_map_version=topic_map_version(topic_map, hdf5_options))
    return outcome, summary


MAX_DROPPED_FRACTION = 0.05  # the few_frames_out_of_sync warning: more reference frames dropped than this


def summarize_ingests(keys: list[str], summaries: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """One run's ingest summaries (one per recording, a ranged backfill has several) as the numbers a person
    wants to see: episodes, frames, drops, topics of the first, throughput, and the data version (from the
    recordings' keys and the topic maps that shaped them)."""
    first = summaries[0]
    eps = [e for s in summaries for e in s["episodes"]]
    frames = sum(e["frames"] for e in eps)
    dropped = sum(e["dropped_frames"] for e in eps)
    mb = sum(s["bytes_read"] for s in summaries) / 1e6
    # The data version follows the recordings' bytes and the settings that shaped them, not their names.
    version = hashlib.sha1("|".join(f"{s['digest']}:{s['topic_map_version']}" for s in summaries)
                           .encode()).hexdigest()[:16]
    return {
        "recordings": [s["source_name"] for s in summaries],
        "episodes": len(eps),
        "frames": frames,
        "duration_s": round(sum(e["duration_s"] for e in eps), 2),
        "successes": sum(1 for e in eps if e["success"]),
        "dropped_frames": dropped,
        "dropped_fraction": round(dropped / (frames + dropped), 4) if frames + dropped else 0.0,
        "frames_outside_episodes": sum(s["frames_outside_episodes"] for s in summaries),
        "short_episodes_skipped": sum(s["short_episodes_skipped"] for s in summaries),
        "misaligned_by_feature": first["misaligned"],
        "topics": {t: f"{v['rate_hz']} Hz, jitter {v['jitter_ms']} ms, {v['count']} msgs"
                   for t, v in first["topics"].items()},
        "reference_rate_hz": round(first["reference_rate_hz"], 3),
        "bytes_read": sum(s["bytes_read"] for s in summaries),
        "bytes_written": sum(s["bytes_written"] for s in summaries),
        "ingest_MB_per_s": round(mb / seconds, 2) if seconds else 0.0,
        "path": first["path"],
        "version": version,
    }


def write_profile(store: DataStore, rel: str, html_rel: str, ingest: Any = None) -> dict[str, Any]:
    """Profile the store or release at ``rel`` (:mod:`robodata.profile`), write its HTML report at ``html_rel``
    and return the summary (for the asset's metadata, with ``profile_path``)."""
    import logging

    from robodata.profile import profile_path

    try:
        with store.read_path(rel) as path:
            prof = profile_path(path, ingest)
        with store.write_path(html_rel) as tmp:
            tmp.write_text(prof.to_html())
    except Exception as err:  # noqa: BLE001 - a report that cannot be drawn never fails the data it describes
        logging.getLogger(__name__).warning("profile of %s not written: %s", rel, err)
        return {"profile_error": f"{type(err).__name__}: {err}"}
    return {**prof.summary(), "profile_path": store.url(html_rel)}

